"""Realtime and Live sessions through the gate: recorded whole, replayed by following the client.

**Replay** never connects upstream. The sessions recorded at the same path and query are the candidates;
`SessionFollower` (core/websocket_session.py) sends the server frames each client frame was answered with, at the
recorded pace when `replay_speed` is set (each frame as long after the client frame it answers as it was then).
A client frame no recording answers gets the API's `error` event, naming the closest recording and the first
difference, then a close with 1008 and a reason; never silence.

**Recording** (`start`, `start --refresh`) forwards every frame at once, both ways, and keeps it with its offset
from the `101`. A session cannot be replayed for a while and then go live (the upstream would not know what the
replay said), and which recording could answer it is known only once the client has spoken; so in `start` a
session always goes upstream, and its cassette is written when it ends, unless one with the same key (the same
client frames) is there already, which is kept (`refresh` replaces it). The cassette is written, fsynced and
linked before the close handshake completes: a client that has seen its close answered can rely on `recorded`.
A session that ends without a close handshake (a dropped connection on either side) is not recorded: it may have
stopped anywhere, and a half conversation would replay as a whole one.

The upstream is opened before the client's upgrade is accepted, so an upstream refusal (a bad key: 401) reaches
the client as the HTTP response it is. The client's credentials go upstream only when the gate has no key of its
own; they never reach the disk (a key offered as a subprotocol included).
"""

from __future__ import annotations

import collections
import logging
import time
from typing import TYPE_CHECKING

import orjson
import trio

from inference_gate.config.settings import gate_keys
from inference_gate.core.dialects import route_of
from inference_gate.core.errors import GateError, error_response
from inference_gate.core.forwarding import subprotocol_credentials
from inference_gate.core.http_models import HttpRequest, HttpResponse
from inference_gate.core.keys import canonical_query, is_credential_parameter
from inference_gate.core.outcome import OUTCOME_HEADER, RECORDING, REPLAYING, Outcome
from inference_gate.core.policy import Mode
from inference_gate.core.redact import client_credentials, redact_request, stored_request_headers
from inference_gate.core.session_cassette import SessionCassette, SessionClose
from inference_gate.core.websocket_session import (
    Followed,
    Miss,
    Sender,
    SessionFollower,
    SessionFrame,
    event_type,
    match_form,
    miss_event,
    restore_audio,
    session_key,
    stored_frame,
)
from inference_gate.http.websocket import (
    CLOSE_ABNORMAL,
    CLOSE_INTERNAL_ERROR,
    CLOSE_NORMAL,
    CLOSE_POLICY_VIOLATION,
    CLOSE_TRY_AGAIN_LATER,
    WebSocket,
    WebSocketClosed,
    WebSocketUpgrade,
    offered_subprotocols,
)
from inference_gate.proxy.faults import INJECTED_FAULT_TYPE, FaultKind
from inference_gate.proxy.websocket_routes import open_upstream
from inference_gate.store.cassette_store import SecretLeakError, TakeWrite

if TYPE_CHECKING:
    from inference_gate.proxy.gate import Gate

logger = logging.getLogger("inference_gate")

MISS_CLOSE_REASON = "inference-gate: no recorded session answers this event"
# What a frame whose audio is stored by digest counts towards `max_recorded_bytes`: about its stored size.
OMITTED_AUDIO_FRAME_BYTES = 200


async def run_session(gate: Gate, request: HttpRequest, upgrade: WebSocketUpgrade) -> HttpResponse | None:
    if gate.mode is Mode.REPLAY:
        await _replay(gate, request, upgrade)
        return None
    return await _record(gate, request, upgrade)


def _query_of(request: HttpRequest) -> list[tuple[str, str]]:
    """The query as a session is matched and stored by: without credential parameters."""
    _path, _, query = request.target.partition("?")
    return [pair for pair in canonical_query(query) if not is_credential_parameter(pair[0])]


def _report(
    gate: Gate, request: HttpRequest, started: float, outcome: Outcome, *, status: int = 101, **named: str | None
) -> None:
    gate.report(request, started, status, outcome, **named)


def _kind_of(frame: SessionFrame) -> str:
    return event_type(frame.data) or ("a text message" if frame.text is not None else "a binary message")


def _log_session(request: HttpRequest, outcome: Outcome, subject: str, client: int, server: int) -> None:
    logger.info(
        "WS %s %s: %d client / %d server frames %s", request.path, outcome.value, client, server, subject
    )


# --- replay -----------------------------------------------------------------------------------------------------


async def _replay(gate: Gate, request: HttpRequest, upgrade: WebSocketUpgrade) -> None:
    started = time.perf_counter()
    query = [list(pair) for pair in _query_of(request)]
    found, problems = await trio.to_thread.run_sync(gate.store.sessions, request.path)
    for problem in problems:
        logger.warning("corrupt session cassette: %s", problem)
    candidates = [(slot, cassette) for slot, cassette in found if cassette.query == query]
    offered = offered_subprotocols(request.headers)
    recorded_protocol = candidates[0][1].subprotocol if candidates else None
    websocket = await upgrade.accept(
        request.headers,
        subprotocol=recorded_protocol if recorded_protocol in offered else None,
        extra_headers=[(OUTCOME_HEADER, REPLAYING)],
    )
    # Each recording plays its take for this, the n-th replay of it (by this gate, since `reset_take_counters`).
    sessions = [cassette.replayable(slot.name, gate.session_take(slot.name)) for slot, cassette in candidates]
    follower = SessionFollower(sessions, gate.key_rules)
    endpoint = route_of(request.path).endpoint
    speed = gate.pace.speed if gate.pace is not None else None
    client_frames = server_frames = 0
    followed_name: str | None = candidates[0][0].name if candidates else None
    faults_decided = False  # a session fails on purpose, if at all, at its first answer (faults.py)
    reason: str | None = None
    try:
        server_frames += await _send_paced(websocket, follower.opening(), 0, trio.current_time(), speed)
        while True:
            message = await websocket.receive()
            received_at = trio.current_time()
            client_frames += 1
            frame = SessionFrame.of_message(Sender.CLIENT, 0, message)
            answer = follower.follow(frame)
            if isinstance(answer, Miss):
                client_event_id = frame.data.get("event_id") if isinstance(frame.data, dict) else None
                event = miss_event(endpoint, answer.message(), client_event_id=client_event_id)
                await websocket.send(orjson.dumps(event).decode())
                await websocket.close(CLOSE_POLICY_VIOLATION, MISS_CLOSE_REASON)
                model = dict(_query_of(request)).get("model")
                described = f"{endpoint} {model or '-'} client event {answer.frame_index + 1}: {_kind_of(frame)}"
                closest = f"{answer.closest} differs at {answer.difference}" if answer.closest else None
                _report(
                    gate, request, started, Outcome.MISS, reason="cache_miss", described=described, closest=closest
                )
                _log_session(request, Outcome.MISS, answer.message(), client_frames, server_frames + 1)
                return
            followed_name = answer.session
            fault = gate.session_fault(answer.session) if answer.frames and not faults_decided else None
            faults_decided = faults_decided or bool(answer.frames)
            if fault is not None:
                server_frames += await _fail_on_purpose(websocket, fault, endpoint, answer, received_at, speed)
                _report(gate, request, started, Outcome.ERROR, cassette=answer.session, reason=fault.reason)
                _log_session(request, Outcome.ERROR, f"{answer.session} {fault.reason}", client_frames, server_frames)
                return
            server_frames += await _send_paced(websocket, answer.frames, answer.after_ms, received_at, speed)
            if answer.close is not None:
                # The recording ended with the server's close (Live closes after `session.closed`): so does this.
                await websocket.close(*answer.close)
                break
    except WebSocketClosed as closed:
        dropped = closed.code == CLOSE_ABNORMAL and closed.by_peer
        reason = "the client dropped the connection" if dropped else None
    if followed_name is not None:
        gate.count_session(followed_name)
    _report(gate, request, started, Outcome.HIT, cassette=followed_name, reason=reason)
    _log_session(request, Outcome.HIT, followed_name or "", client_frames, server_frames)


async def _send_paced(
    websocket: WebSocket, frames: tuple[SessionFrame, ...], after_ms: int, since: float, speed: float | None
) -> int:
    """Send recorded server frames, each `(at_ms - after_ms) / speed` after `since` when paced, else all at once
    in one write."""
    if speed is None:
        await websocket.send_messages([_replayed_message(frame) for frame in frames])
        return len(frames)
    for frame in frames:
        await trio.sleep_until(since + max(0, frame.at_ms - after_ms) / 1000 / speed)
        await websocket.send(_replayed_message(frame))
    return len(frames)


def _replayed_message(frame: SessionFrame) -> str | bytes:
    return orjson.dumps(restore_audio(frame.data)).decode() if frame.data is not None else frame.message()


async def _fail_on_purpose(
    websocket: WebSocket, fault: FaultKind, endpoint: str, answer: Followed, since: float, speed: float | None
) -> int:
    """Fail a replayed session as `fault` says: a cut sends the first half of the answer and drops the
    connection; an error sends the API's `error` event and closes (1013, try again later, for a rate limit;
    1011 for a server error). Returns how many frames were sent."""
    if fault is FaultKind.STREAM_CUT:
        sent = await _send_paced(websocket, answer.frames[: len(answer.frames) // 2], answer.after_ms, since, speed)
        await websocket.drop()
        return sent
    message = f"Injected fault ({fault.value}): inference-gate fails a share of replayed sessions on purpose."
    event = miss_event(endpoint, message)
    error = event.get("error", event)
    error["code"], error["type"] = "injected_fault", INJECTED_FAULT_TYPE
    await websocket.send(orjson.dumps(event).decode())
    await websocket.close(CLOSE_TRY_AGAIN_LATER if fault is FaultKind.RATE_LIMITED else CLOSE_INTERNAL_ERROR, message)
    return 1


# --- recording --------------------------------------------------------------------------------------------------


async def _record(gate: Gate, request: HttpRequest, upgrade: WebSocketUpgrade) -> HttpResponse | None:
    started = time.perf_counter()
    try:
        upstream, subprotocol = await open_upstream(gate, request, upgrade.limits)
    except GateError as error:
        _report(gate, request, started, Outcome.ERROR, status=error.status, reason=error.code)
        return error_response(error, dialect=route_of(request.path).dialect)
    session = _LiveSession(gate, request, upstream, subprotocol)
    try:
        client = await upgrade.accept(
            request.headers, subprotocol=subprotocol, extra_headers=[(OUTCOME_HEADER, RECORDING)]
        )
        session.client = client
        session.opened_at = trio.current_time()
        async with trio.open_nursery() as relays:
            relays.start_soon(session.relay, client, upstream, Sender.CLIENT, relays.cancel_scope)
            relays.start_soon(session.relay, upstream, client, Sender.SERVER, relays.cancel_scope)
        outcome, cassette, reason = await session.finish()
    finally:
        # Only now, with the cassette written, is each side's close answered (or the other side's passed on).
        with trio.CancelScope(shield=True):
            ended = session.ended
            passed_on = (ended.code, ended.reason) if ended is not None and ended.by_peer else (CLOSE_NORMAL, "")
            await upstream.close(*passed_on)
            if session.client is not None:
                await session.client.close(*passed_on)
    _report(gate, request, started, outcome, cassette=cassette, reason=reason)
    client_frames, server_frames = session.count(Sender.CLIENT), session.count(Sender.SERVER)
    _log_session(request, outcome, cassette or reason or "", client_frames, server_frames)
    return None


class _LiveSession:
    """A session being relayed and recorded: its frames in the order the gate saw them, and how it ended."""

    def __init__(self, gate: Gate, request: HttpRequest, upstream: WebSocket, subprotocol: str | None) -> None:
        self.gate = gate
        self.subprotocol = subprotocol
        self.request = request
        self.upstream = upstream
        self.client: WebSocket | None = None
        self.opened_at = 0.0
        self.frames: list[SessionFrame] = []  # as stored: audio already by digest unless it is kept
        self.counts: collections.Counter[Sender] = collections.Counter()
        self.kept_bytes = 0
        self.over_cap: str | None = None  # why the frames are no longer kept, once they outgrow the cap
        self.ended: WebSocketClosed | None = None
        self.ended_by: Sender | None = None

    def count(self, sender: Sender) -> int:
        return self.counts[sender]

    def keep(self, sender: Sender, at_ms: int, message: str | bytes) -> None:
        """Keep a delivered message as the cassette will store it, within `max_recorded_bytes`: past it, the
        session is still relayed but will not be recorded, and nothing more is held for it."""
        self.counts[sender] += 1
        if self.over_cap is not None:
            return
        settings = self.gate.settings
        frame = SessionFrame.of_message(sender, at_ms, message)
        stored = stored_frame(frame, keep_audio=settings.store_session_audio)
        self.kept_bytes += len(message) if stored is frame else OMITTED_AUDIO_FRAME_BYTES
        if self.kept_bytes > settings.max_recorded_bytes:
            self.over_cap = f"the session outgrew max_recorded_bytes ({settings.max_recorded_bytes} bytes)"
            self.frames.clear()
            logger.warning("WS %s: %s; relaying it unrecorded", self.request.path, self.over_cap)
            return
        self.frames.append(stored)

    async def relay(self, source: WebSocket, sink: WebSocket, sender: Sender, both: trio.CancelScope) -> None:
        """Forward `source`'s messages to `sink` as they come, keeping each; the first end stops both relays."""
        try:
            while True:
                message = await source.receive()
                at_ms = round((trio.current_time() - self.opened_at) * 1000)
                await sink.send(message)
                self.keep(sender, at_ms, message)  # once delivered
        except WebSocketClosed as closed:
            if self.ended is None:
                self.ended, self.ended_by = closed, sender if closed is source.closed else _other(sender)
            both.cancel()

    async def finish(self) -> tuple[Outcome, str | None, str | None]:
        """Write the cassette of a session that closed cleanly; the outcome, the cassette's name, and why not."""
        ended, by = self.ended, self.ended_by
        if ended is None or by is None:
            raise RuntimeError("a WebSocket session is finished only once it has ended")
        if ended.code == CLOSE_ABNORMAL or not ended.by_peer:
            return Outcome.PASSTHROUGH, None, f"the session ended without a close handshake ({ended})"
        if self.over_cap is not None:
            return Outcome.PASSTHROUGH, None, self.over_cap
        settings = self.gate.settings
        frames = tuple(self.frames)
        query = _query_of(self.request)
        client_forms = [match_form(frame, self.gate.key_rules) for frame in frames if frame.sender is Sender.CLIENT]
        headers, stored_query, _ = redact_request(
            stored_request_headers(self.request.headers), query, None, settings.redact
        )
        cassette = SessionCassette(
            key=session_key(self.request.path, query, client_forms, self.gate.key_rules),
            recorded_at=self.gate.recorded_at(),
            path=self.request.path,
            query=[list(pair) for pair in stored_query],
            headers=headers,
            subprotocol=self.subprotocol,
            frames=frames,
            closed=SessionClose(by, int(ended.code), ended.reason),
        )
        store = self.gate.store
        slot = store.session_slot(cassette)
        refresh = self.gate.mode is Mode.REFRESH
        take_index = self.gate.count_session(f"recorded:{cassette.key}")
        try:
            write = await trio.to_thread.run_sync(
                lambda: store.put_session_take(
                    cassette,
                    slot,
                    take_index=take_index,
                    takes_wanted=settings.takes,
                    refresh=refresh,
                    secrets=self.secrets(),
                )
            )
        except SecretLeakError as error:
            logger.error("%s; the session was relayed but not recorded", error)
            return Outcome.PASSTHROUGH, None, "a credential is in the session"
        except OSError as error:
            return Outcome.PASSTHROUGH, None, f"the cassette could not be written: {error.strerror or error}"
        if write is TakeWrite.FULL:
            reason = f"an identical session has its {settings.takes} take(s) already: {slot.name}"
            return Outcome.PASSTHROUGH, None, reason
        return Outcome.RECORDED, slot.name, write.value if refresh else None

    def secrets(self) -> list[str]:
        """The credentials in play, which the last check before a write looks for."""
        offered = subprotocol_credentials(offered_subprotocols(self.request.headers))
        return [*gate_keys(self.gate.settings), *offered, *client_credentials(self.request.headers, ())]


def _other(sender: Sender) -> Sender:
    return Sender.SERVER if sender is Sender.CLIENT else Sender.CLIENT
