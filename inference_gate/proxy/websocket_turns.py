"""The Responses API's WebSocket mode through the gate: each `response.create` is one turn, one cassette.

Each turn is the streamed HTTP call it is equivalent to (core/responses_websocket.py), so the gate answers it as
it answers that call: `Gate.plan_turn` keys it, counts its take and asks the policy. A turn the policy replays is
`Gate.handle`'s own answer (a hit, a miss, an injected fault), its SSE events sent back as messages; so the log,
the ledger and faults need nothing new. A turn to record goes to the upstream WebSocket, opened at the first such
turn and kept for the next (a chained turn's `previous_response_id` may live only in that connection). Its events
are relayed as they arrive; the last one (`response.completed` and its kin) is held back until the cassette is
durable, so a client that has the whole answer can rely on `recorded`.

The `101` says `x-inference-gate: replaying` in replay mode and `recording` in a recording mode, a promise like a
live stream's: each turn's own outcome is in its log line and in the ledger. A turn that misses gets the
Responses `error` event naming the closest cassette and the first difference, then a close (1008); a turn the
gate cannot key (not JSON, another event type) gets an `error` event and the session goes on.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import orjson
import trio

from inference_gate.core.cassette import StreamTiming
from inference_gate.core.errors import GateError, error_response
from inference_gate.core.forwarding import subprotocol_credentials
from inference_gate.core.http_models import HttpRequest, HttpResponse
from inference_gate.core.outcome import OUTCOME_HEADER, RECORDING, REPLAYING, Outcome
from inference_gate.core.responses_websocket import (
    NotATurn,
    ends_turn,
    event_of_message,
    messages_of_events,
    turn_request_body,
)
from inference_gate.core.sse import SSEEvent, SSEParser
from inference_gate.http.websocket import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_NORMAL,
    CLOSE_POLICY_VIOLATION,
    WebSocket,
    WebSocketClosed,
    WebSocketUpgrade,
    offered_subprotocols,
)
from inference_gate.proxy.recorder import TurnToRecord
from inference_gate.proxy.websocket_routes import open_upstream
from inference_gate.store.cassette_store import TakeWrite

if TYPE_CHECKING:
    from inference_gate.proxy.gate import Gate

logger = logging.getLogger("inference_gate")

MISS_CLOSE_REASON = "inference-gate: no cassette answers this response.create"
MESSAGE_CACHE_ANSWERS = 256  # parsed answers kept; a cached answer costs about its body's size again
_TURN_HEADERS_LEFT_OUT = frozenset(
    {b"upgrade", b"connection", b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-extensions"}
)


def error_event(response: HttpResponse) -> str:
    """The WebSocket mode's `error` event (the SDK's `ResponseWsError`) for a call an HTTP error answered: the
    status the HTTP call had, and the error object its body carried."""
    try:
        error = orjson.loads(response.body)["error"]
        if not isinstance(error, dict):
            raise TypeError(error)
    except (orjson.JSONDecodeError, KeyError, TypeError):
        message = response.body.decode("utf-8", "replace")
        error = {"type": "server_error", "code": "upstream_error", "message": message, "param": None}
    return orjson.dumps({"type": "error", "status": response.status, "error": error}).decode()


def gate_error_event(error: GateError) -> str:
    return error_event(error_response(error))


async def run_turns(gate: Gate, request: HttpRequest, upgrade: WebSocketUpgrade) -> None:
    promise = REPLAYING if gate.recorder is None else RECORDING
    websocket = await upgrade.accept(request.headers, extra_headers=[(OUTCOME_HEADER, promise)])
    turns = _Turns(gate, request, websocket)
    try:
        await turns.run()
    finally:
        if turns.upstream is not None:
            with trio.CancelScope(shield=True):
                await turns.upstream.close(CLOSE_NORMAL, "")
        closed = websocket.closed
        logger.info(
            "WS %s %s %d client / %d server messages, closed %s: %s",
            request.path,
            " ".join(f"{count} {outcome}" for outcome, count in turns.outcomes.items()) or "no turns",
            turns.client_messages,
            turns.server_messages,
            closed.code if closed else "-",
            closed.reason if closed and closed.reason else "",
        )


class _Turns:
    """One Responses WebSocket: its turns, one at a time, as the API answers them."""

    def __init__(self, gate: Gate, request: HttpRequest, websocket: WebSocket) -> None:
        self.gate = gate
        self.request = request
        self.websocket = websocket
        self.upstream: WebSocket | None = None
        self.outcomes: Counter[str] = Counter()
        self.client_messages = 0
        self.server_messages = 0
        self._turn_headers = [
            *((name, value) for name, value in request.headers if name not in _TURN_HEADERS_LEFT_OUT),
            (b"content-type", b"application/json"),
        ]

    async def run(self) -> None:
        try:
            while True:
                message = await self.websocket.receive()
                self.client_messages += 1
                await self._turn(message)
        except WebSocketClosed:
            return

    async def _send(self, message: str) -> None:
        self.server_messages += 1
        await self.websocket.send(message)

    async def _turn(self, message: str | bytes) -> None:
        started = time.perf_counter()
        try:
            body = turn_request_body(message)
        except NotATurn as error:
            await self._send(gate_error_event(GateError(400, f"inference-gate: {error}.", code="invalid_event")))
            return
        turn = HttpRequest("POST", self.request.path, self._turn_headers, body)
        try:
            plan = await self.gate.plan_turn(turn)
        except GateError as error:
            self.outcomes[Outcome.ERROR.value] += 1
            await self._send(gate_error_event(error))
            return
        if isinstance(plan, HttpResponse):
            await self._replay(plan)
        else:
            await self._record(turn, message, plan, started)

    async def _replay(self, response: HttpResponse) -> None:
        """Send a turn `Gate.handle` answered: its events as messages, or its error as an `error` event."""
        outcome = dict(response.headers).get(OUTCOME_HEADER, b"").decode("ascii", "replace")
        self.outcomes[outcome or "?"] += 1
        if response.status >= 400:
            await self._send_error(response, closing=outcome == Outcome.MISS.value)
            return
        if response.stream is None:  # a whole answer, not paced: its messages go out in one write
            messages = _messages_of_body(response.body)
            self.server_messages += len(messages)
            await self.websocket.send_messages(messages)
            return
        try:
            async for event in _events_of(response):
                for data in messages_of_events([event]):
                    await self._send(data)
        except GateError:
            # An injected `stream_cut` fault: the connection drops, as a cut HTTP stream does.
            await self.websocket.drop()
            raise WebSocketClosed(1006, "the stream was cut on purpose", by_peer=False) from None

    async def _send_error(self, response: HttpResponse, *, closing: bool) -> None:
        await self._send(error_event(response))
        if closing:
            await self.websocket.close(CLOSE_POLICY_VIOLATION, MISS_CLOSE_REASON)
            raise WebSocketClosed(CLOSE_POLICY_VIOLATION, MISS_CLOSE_REASON, by_peer=False)

    async def _record(self, turn: HttpRequest, message: str | bytes, plan: TurnToRecord, started: float) -> None:
        """Relay a turn to the upstream and back, and record it before its last event goes to the client.

        A client that goes away mid-turn does not stop it, as for an HTTP exchange (recorder.py): the turn is
        read to its end and recorded, since its tokens are paid for either way; then the session ends.
        """
        client_gone: WebSocketClosed | None = None
        recorder = self.gate.recorder
        if recorder is None:
            raise RuntimeError("only a recording gate records WebSocket turns")
        try:
            if self.upstream is None:
                self.upstream, _subprotocol = await open_upstream(self.gate, self.request, self.websocket.limits)
            sent_at = recorder.monotonic()
            await self.upstream.send(message)
            events: list[SSEEvent] = []
            first_ms: int | None = None
            kept_bytes, cap = 0, self.gate.settings.max_recorded_bytes
            over_cap: str | None = None  # past the recording cap the turn is relayed, and nothing more is held
            while True:
                answer = await self.upstream.receive()
                if not isinstance(answer, str):
                    raise GateError(502, "the upstream sent a binary message in a Responses turn", code="bad_upstream")
                first_ms = recorder.now_ms(sent_at) if first_ms is None else first_ms
                kept_bytes += len(answer)
                if over_cap is None and kept_bytes > cap:
                    over_cap = f"the turn outgrew max_recorded_bytes ({cap} bytes)"
                    events.clear()
                last = event_of_message(answer)
                if over_cap is None:
                    events.append(last)
                if ends_turn(answer):
                    break
                if client_gone is None:
                    try:
                        await self._send(answer)
                    except WebSocketClosed as closed:
                        if closed is not self.websocket.closed:
                            raise
                        client_gone = closed
        except WebSocketClosed as closed:
            if closed is self.websocket.closed:
                raise
            self._report(turn, started, Outcome.PASSTHROUGH, None, "the upstream closed mid-turn")
            message = f"inference-gate: the upstream closed ({closed})."
            await self._send(gate_error_event(GateError(502, message, code="upstream_disconnected")))
            await self.websocket.close(CLOSE_INTERNAL_ERROR, "the upstream WebSocket closed")
            raise WebSocketClosed(CLOSE_INTERNAL_ERROR, "the upstream closed", by_peer=False) from None
        except GateError as error:
            self._report(turn, started, Outcome.ERROR, None, error.code)
            await self._send(gate_error_event(error))
            await self.websocket.close(CLOSE_INTERNAL_ERROR, error.code)
            raise WebSocketClosed(CLOSE_INTERNAL_ERROR, error.code, by_peer=False) from None
        if over_cap is not None:
            self._report(turn, started, Outcome.PASSTHROUGH, None, over_cap)
        elif last.event == "error":
            self._report(turn, started, Outcome.PASSTHROUGH, None, "the upstream answered with an error event")
        else:
            timing = StreamTiming(first_ms or 0, recorder.now_ms(sent_at))
            secrets = subprotocol_credentials(offered_subprotocols(self.request.headers))
            write, how = await recorder.save_turn(turn, plan, events, timing, more_secrets=secrets)
            if write is None:
                self._report(turn, started, Outcome.PASSTHROUGH, None, how)
            else:
                self._report(turn, started, Outcome.RECORDED, plan.slot.name, how, new_cassette=write is TakeWrite.NEW)
        if client_gone is not None:
            raise client_gone
        await self._send(last.data)

    def _report(
        self,
        turn: HttpRequest,
        started: float,
        outcome: Outcome,
        cassette: str | None,
        reason: str | None,
        *,
        new_cassette: bool = False,
    ) -> None:
        self.outcomes[outcome.value] += 1
        self.gate.report(turn, started, 200, outcome, cassette=cassette, reason=reason, new_cassette=new_cassette)


@functools.lru_cache(maxsize=MESSAGE_CACHE_ANSWERS)
def _messages_of_body(body: bytes) -> tuple[str, ...]:
    """A replayed answer's messages, kept by its body: a recorded stream is parsed once, not on every replay of it
    (the bench's row (m))."""
    return tuple(messages_of_events(SSEParser().feed(body)))


async def _events_of(response: HttpResponse) -> AsyncIterator[SSEEvent]:
    """A replayed turn's SSE events, as its body's parts arrive (at their pace, when the replay is paced)."""
    parser = SSEParser()
    if response.stream is None:
        for event in parser.feed(response.body):
            yield event
        return
    try:
        async for part in response.stream:
            for event in parser.feed(part):
                yield event
    finally:
        aclose = getattr(response.stream, "aclose", None)
        if aclose is not None:
            await aclose()
