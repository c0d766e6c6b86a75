"""`verify`'s I/O: recorded requests sent to the live upstreams again, a few at a time, and their answers read.

This is the proxy's part of `inference-gate verify`; review/verify.py chooses the requests, compares the answers
and writes the report. It lives here, not in review/, because it sends through the recorder's own upstream path
(`Recorder.forward`: the route, the key and the headers `start` would use), and the layer rule lets only the
proxy and what sits above it use the HTTP client.

A run is bounded and honest about its cost:
- at most `concurrency` requests are in flight at once;
- a request the upstream answers with 429 or 503 and a `Retry-After` (or `retry-after-ms`) of at most
  `MAX_RETRY_WAIT_S` is sent once more after that wait, and every other request waits too before it is sent,
  since the limit is the account's, not the request's. So a run sends at most twice as many requests as it has
  to check (`most_requests`), and says so before it starts;
- a streamed request is sent streamed, and its events are read as the recorder reads them;
- a WebSocket session (Realtime, Live) is played again from the client's side, through the upstream WebSocket
  a recording gate opens (`open_upstream`): its recorded client frames are sent in order, each once the
  server frames that followed the previous one have come again, which is known by the last of them: as many
  frames of that event type as the recording had in that turn (`response.done`, say). A turn whose last event
  does not come within `SESSION_TURN_TIMEOUT_S` fails the session. Then the session is closed normally.

Each answer is a `RecordedResponse` (as a cassette would store it), the server frames of a session, or, when
none came, the reason as text.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from email.utils import parsedate_to_datetime
from urllib.parse import urlencode

import trio

from inference_gate.config.settings import Settings
from inference_gate.core.cassette import BodyTiming, RecordedResponse, StreamTiming
from inference_gate.core.errors import GateError
from inference_gate.core.http_models import Headers, HttpRequest
from inference_gate.core.policy import Mode
from inference_gate.core.redact import stored_response_headers
from inference_gate.core.session_cassette import SessionCassette
from inference_gate.core.sse import SSEEvent, SSEParser
from inference_gate.core.websocket_session import Sender, SessionFrame, event_type
from inference_gate.http.websocket import CLOSE_NORMAL, WebSocketClosed, WebSocketLimits
from inference_gate.proxy.gate import Gate
from inference_gate.proxy.recorder import Recorder, elapsed_ms
from inference_gate.proxy.websocket_routes import open_upstream

DEFAULT_CONCURRENCY = 4
SESSION_TURN_TIMEOUT_S = 60.0
MAX_RETRY_WAIT_S = 60.0
RETRY_STATUSES = frozenset({429, 503})

Answer = RecordedResponse | tuple[SessionFrame, ...] | str
Question = HttpRequest | SessionCassette


def most_requests(count: int) -> int:
    """The most requests a run checking `count` cassettes sends: each one, and each retried at most once."""
    return 2 * count


def retry_after_s(headers: Headers, *, now_s: float | None = None) -> float | None:
    """How long the upstream asks to wait: `retry-after-ms` (OpenAI's), else `Retry-After` in seconds or as an
    HTTP date (RFC 9110 section 10.2.3); None when it asks nothing readable."""
    values = {name.decode("latin-1").lower(): value.decode("latin-1").strip() for name, value in headers}
    try:
        if "retry-after-ms" in values:
            return max(0.0, float(values["retry-after-ms"]) / 1000)
        if "retry-after" in values:
            given = values["retry-after"]
            if given.replace(".", "", 1).isdigit():
                return float(given)
            when = parsedate_to_datetime(given).timestamp()
            return max(0.0, when - (time.time() if now_s is None else now_s))
    except (ValueError, TypeError, IndexError):
        return None
    return None


class _Pause:
    """The time before which no request is sent, set by the longest wait an upstream asked for."""

    def __init__(self) -> None:
        self.until = 0.0

    def extend(self, wait_s: float) -> None:
        self.until = max(self.until, trio.current_time() + wait_s)

    async def wait(self) -> None:
        await trio.sleep_until(self.until)


async def fetch_answers(
    settings: Settings, requests: Sequence[Question], *, concurrency: int = DEFAULT_CONCURRENCY
) -> list[Answer]:
    """Today's answer to each request or session, in order, sent through a gate built from `settings` as `start`
    builds it. Returns once every one has its answer or its failure."""
    gate = Gate(settings, Mode.REFRESH)
    recorder = gate.recorder
    if recorder is None:
        raise RuntimeError("a refreshing gate has a recorder")
    limiter = trio.CapacityLimiter(max(1, concurrency))
    pause = _Pause()
    answers: list[Answer] = ["not sent"] * len(requests)

    async def fetch(index: int) -> None:
        async with limiter:
            question = requests[index]
            if isinstance(question, SessionCassette):
                answers[index] = await _session_answer(gate, question)
            else:
                answers[index] = await _answer(recorder, question, pause, settings.max_recorded_bytes)

    try:
        async with trio.open_nursery() as nursery:
            for index in range(len(requests)):
                nursery.start_soon(fetch, index)
    finally:
        with trio.CancelScope(shield=True):
            await recorder.aclose()
    return answers


async def _answer(recorder: Recorder, request: HttpRequest, pause: _Pause, max_bytes: int) -> Answer:
    """One request's answer; sent again once if the upstream asks to wait and the wait is short enough."""
    for attempt in range(2):
        await pause.wait()
        try:
            response, wait_s = await _send(recorder, request, max_bytes)
        except GateError as error:
            return error.message
        if wait_s is None or attempt == 1:
            return response
        pause.extend(wait_s)
    raise AssertionError("unreachable: the second attempt always returns")


async def _send(recorder: Recorder, request: HttpRequest, max_bytes: int) -> tuple[Answer, float | None]:
    """The answer to one request, and the wait the upstream asked for when it asks to be retried."""
    sent_at = time.monotonic()
    first_event_at: float | None = None
    async with recorder.forward(request) as upstream:
        content_type = dict(upstream.headers).get(b"content-type", b"")
        parser = SSEParser() if content_type.startswith(b"text/event-stream") else None
        chunks: list[bytes] = []
        events: list[SSEEvent] = []
        size = 0
        async for chunk in upstream.body_chunks():
            size += len(chunk)
            if size > max_bytes:
                return f"the answer is larger than max_recorded_bytes ({max_bytes} bytes)", None
            if parser is None:
                chunks.append(chunk)
                continue
            events += parser.feed(chunk)
            if first_event_at is None and events:
                first_event_at = time.monotonic()
        ended_at = time.monotonic()
    if parser is not None and parser.has_partial_event:
        return "the upstream stream ended mid-event", None
    timing = (
        BodyTiming(elapsed_ms(sent_at, ended_at))
        if first_event_at is None
        else StreamTiming(elapsed_ms(sent_at, first_event_at), elapsed_ms(sent_at, ended_at))
    )
    response = RecordedResponse(
        status=upstream.status,
        headers=stored_response_headers(upstream.headers),
        body=b"".join(chunks),
        events=events if parser is not None else None,
        timing=timing,
    )
    wait_s = retry_after_s(upstream.headers) if upstream.status in RETRY_STATUSES else None
    return response, wait_s if wait_s is not None and wait_s <= MAX_RETRY_WAIT_S else None


async def _session_answer(gate: Gate, session: SessionCassette) -> tuple[SessionFrame, ...] | str:
    """The server frames of `session` played again against the live upstream, or why it could not be."""
    settings = gate.settings
    query = urlencode([(name, value) for name, value in session.query])
    headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in session.headers.items()]
    if session.subprotocol:
        headers.append((b"sec-websocket-protocol", session.subprotocol.encode("latin-1")))
    request = HttpRequest("GET", f"{session.path}?{query}" if query else session.path, headers)
    limits = WebSocketLimits(max_message_bytes=settings.max_body_bytes, send_timeout_s=settings.send_timeout_s)
    try:
        upstream, _ = await open_upstream(gate, request, limits)
    except GateError as error:
        return error.message
    received: list[SessionFrame] = []
    opened_at = trio.current_time()
    try:
        for client_frame, expected in session_turns(session.frames):
            if client_frame is not None:
                await upstream.send(client_frame.message())
            if expected is None:
                continue
            last_type, count = expected
            with trio.move_on_after(SESSION_TURN_TIMEOUT_S) as waited:
                while count:
                    message = await upstream.receive()
                    at_ms = round((trio.current_time() - opened_at) * 1000)
                    frame = SessionFrame.of_message(Sender.SERVER, at_ms, message)
                    received.append(frame)
                    count -= event_type(frame.data) == last_type
            if waited.cancelled_caught:
                return f"no {last_type} came within {SESSION_TURN_TIMEOUT_S:g} s"
    except WebSocketClosed as closed:
        return f"the upstream closed the session early ({closed})"
    finally:
        with trio.CancelScope(shield=True):
            await upstream.close(CLOSE_NORMAL, "")
    return tuple(received)


def session_turns(frames: Sequence[SessionFrame]) -> list[tuple[SessionFrame | None, tuple[str | None, int] | None]]:
    """A session as turns: each client frame (None before the first) with the event type of the last server frame
    that followed it and how many frames of that type followed it (None when no server frame did)."""
    turns: list[tuple[SessionFrame | None, list[SessionFrame]]] = [(None, [])]
    for frame in frames:
        if frame.sender is Sender.CLIENT:
            turns.append((frame, []))
        else:
            turns[-1][1].append(frame)
    expected = []
    for client_frame, answers in turns:
        if not answers:
            expected.append((client_frame, None))
            continue
        last_type = event_type(answers[-1].data)
        count = sum(event_type(frame.data) == last_type for frame in answers)
        expected.append((client_frame, (last_type, count)))
    return [turn for turn in expected if turn != (None, None)]


def run_fetch_answers(
    settings: Settings, requests: Sequence[Question], *, concurrency: int = DEFAULT_CONCURRENCY
) -> list[Answer]:
    """`fetch_answers` in a trio run of its own, for a caller that is not async (the CLI)."""
    return trio.run(lambda: fetch_answers(settings, requests, concurrency=concurrency))
