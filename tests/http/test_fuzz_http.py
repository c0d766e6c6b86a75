"""Fuzzing the gate's HTTP front: whatever bytes arrive, in whatever pieces, the gate answers or closes, in time.

One replay-mode gate with an empty cache serves the whole module from a background thread, so that every
request it can parse is a fast, deterministic 404 cache miss. Hypothesis drives it with plain blocking sockets:
random request heads (methods, targets, header names and values, invalid bytes), random bodies, random
framing (right, wrong or missing Content-Length; valid or broken chunked encoding), pipelined requests, and
random cuts of the bytes into separate writes. Small limits and timeouts put 408, 413 and 431 within reach.

The property: every byte the gate sends back parses as complete HTTP responses whose bodies are the gate's
own JSON errors, with no 5xx; the gate closes the connection within a bound; no traceback is logged; and
afterwards a fresh, valid request on a new connection still gets its 404 cache miss.
"""

from __future__ import annotations

import functools
import http.client
import itertools
import logging
import queue
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h11
import orjson
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inference_gate import Gate, Mode, Settings
from inference_gate.core.errors import CACHE_MISS_TYPE, GATE_ERROR_TYPE

LIMITS = {"max_head_bytes": 1024, "max_body_bytes": 1024, "request_timeout_s": 0.1, "idle_timeout_s": 0.1}
# Long enough for a stalled request to reach its timeout and for a lingering close to end, with a margin.
CLOSE_WITHIN_S = 5.0
START_WITHIN_S = 10.0
# What a gate may answer to anything a client sends in replay mode with an empty cache.
EXPECTED_STATUSES = {400, 404, 408, 413, 431, 501, 505}
VALID_CHAT_BODY = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]})


class TracebackCollector(logging.Handler):
    """Keeps every record logged with a traceback; the gate must log none, whatever a client sends."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.messages.append(self.format(record))


@dataclass
class GateInThread:
    port: int
    tracebacks: TracebackCollector


@pytest.fixture(scope="module")
def gate(tmp_path_factory) -> Iterator[GateInThread]:
    """One replay gate with an empty cache, run by `trio.run` in a thread for the whole module."""
    cache_dir: Path = tmp_path_factory.mktemp("empty-cache")
    gate = Gate(Settings(host="127.0.0.1", port=0, cache_dir=cache_dir, **LIMITS), Mode.REPLAY)
    started: queue.Queue[tuple[int, trio.lowlevel.TrioToken, trio.Event]] = queue.Queue()
    failures: list[BaseException] = []

    async def serve() -> None:
        shutdown = trio.Event()
        async with trio.open_nursery() as nursery:
            port = await nursery.start(functools.partial(gate.run, shutdown=shutdown))
            started.put((port, trio.lowlevel.current_trio_token(), shutdown))

    def run() -> None:
        try:
            trio.run(serve)
        except BaseException as failure:  # reported by the fixture, in the test's thread
            failures.append(failure)

    tracebacks = TracebackCollector()
    logger = logging.getLogger("inference_gate")
    logger.addHandler(tracebacks)
    thread = threading.Thread(target=run, name="fuzzed-gate")
    thread.start()
    try:
        try:
            port, token, shutdown = started.get(timeout=START_WITHIN_S)
        except queue.Empty:
            pytest.fail(f"the gate did not start: {failures!r}")
        yield GateInThread(port, tracebacks)
        trio.from_thread.run_sync(shutdown.set, trio_token=token)
        thread.join(START_WITHIN_S)
        assert not thread.is_alive(), "the gate did not shut down"
    finally:
        logger.removeHandler(tracebacks)
    assert failures == []


# --- What a client may send ---------------------------------------------------------------------------

TOKEN_CHARACTERS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
TOKENS = st.text(TOKEN_CHARACTERS, min_size=1, max_size=12).map(str.encode)
LATIN_1_TEXT = st.text(st.characters(codec="latin-1"), max_size=20).map(lambda text: text.encode("latin-1"))

# Each part of a request, valid and broken. A request breaks at most one part, and half of them none: one
# broken everywhere gets a 400 at its first line and reaches nothing deeper (bodies, framing, keep-alive,
# pipelining, timeouts).
VALID_PARTS = {
    # A HEAD response has no body whatever its Content-Length says; parsing the answers must not have to know.
    "method": st.sampled_from([b"POST", b"GET", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"CONNECT", b"FUZZ"]),
    "target": st.sampled_from([b"/v1/chat/completions", b"/v1/responses", b"/v1/models?limit=2", b"/", b"*"])
    | st.sampled_from([b"http://gate/v1/embeddings", b"/v1/chat/completions?a=%zz&b", b"/v1/../../etc/passwd"]),
    "version": st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0"]),
    "header": st.tuples(
        st.sampled_from([b"content-type", b"expect", b"connection", b"upgrade", b"authorization", b"user-agent"]),
        st.sampled_from([b"application/json", b"100-continue", b"close", b"keep-alive", b"Bearer sk-fuzz"])
        | TOKENS
        | st.text(st.characters(min_codepoint=0x21, max_codepoint=0xFF), min_size=1, max_size=20).map(str.encode),
    ),
    "framing": st.sampled_from(["content-length", "chunked", "none"]),
}
BROKEN_PARTS = {
    "method": (TOKENS | st.binary(max_size=8)).filter(lambda method: method != b"HEAD"),
    "target": st.text(st.characters(codec="ascii"), max_size=30).map(lambda text: ("/" + text).encode())
    | st.binary(max_size=30),
    "version": st.sampled_from([b"HTTP/2.0", b"HTTP/1.x", b"", b"http/1.1", b"HTTP/1.1 extra"]),
    "header": st.tuples(
        st.sampled_from([b"content-length", b"transfer-encoding", b"Content-Length ", b"host", b""])
        | TOKENS
        | st.binary(max_size=12),
        st.sampled_from([b"chunked", b"gzip, chunked", b"0", b"-1", b"99999999999999999999"])
        | LATIN_1_TEXT
        | st.binary(max_size=20),
    ),
    "framing": st.sampled_from(["wrong-content-length", "broken-chunked"]),
}
BROKEN_PART = st.sampled_from([None, None, None, None, None, "method", "target", "version", "header", "framing"])
BODIES = st.sampled_from([b"", VALID_CHAT_BODY, b'{"model": "gpt-4o-mini", "input": "x"}', b"{", b"[1, 2"]) | st.binary(
    max_size=1500
)
PADDING_BYTES = st.sampled_from([0, 0, 0, 0, 900, 3000, 100_000])


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    """One request, well-formed or broken in one part, as bytes."""
    broken = draw(BROKEN_PART)

    def part(name: str):
        return draw(BROKEN_PARTS[name] if name == broken else VALID_PARTS[name])

    request_line = b"%s %s %s" % (part("method"), part("target"), part("version"))
    headers = [(b"host", b"gate")] if draw(st.sampled_from([True, True, True, False])) else []
    headers += draw(st.lists(VALID_PARTS["header"], max_size=3))
    if broken == "header":
        headers.insert(draw(st.integers(min_value=0, max_value=len(headers))), part("header"))
    if padding := draw(PADDING_BYTES):
        headers.append((b"x-padding", b"p" * padding))
    body = draw(BODIES)
    framing = part("framing")
    if framing == "content-length":
        headers.append((b"content-length", b"%d" % len(body)))
    elif framing == "wrong-content-length":
        headers.append((b"content-length", b"%d" % draw(st.integers(min_value=-10, max_value=10**20))))
    elif framing in ("chunked", "broken-chunked"):
        headers.append((b"transfer-encoding", b"chunked"))
        body = chunked(body) if framing == "chunked" else b"%s\r\n%s" % (draw(TOKENS | st.binary(max_size=8)), body)
    head = b"".join([request_line, b"\r\n", *(name + b": " + value + b"\r\n" for name, value in headers), b"\r\n"])
    return head + body


def chunked(body: bytes) -> bytes:
    """`body` in chunked transfer encoding, in chunks of up to 300 bytes, and the last chunk."""
    pieces = [body[start : start + 300] for start in range(0, len(body), 300)]
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


@st.composite
def writes(draw: st.DrawFn) -> list[bytes]:
    """One to three pipelined requests, cut at random places into separate writes."""
    data = b"".join(draw(st.lists(requests(), min_size=1, max_size=3)))
    cuts = sorted(draw(st.lists(st.integers(min_value=0, max_value=len(data)), max_size=4)))
    bounds = [0, *cuts, len(data)]
    return [data[start:end] for start, end in itertools.pairwise(bounds) if end > start]


# --- Talking to the gate ------------------------------------------------------------------------------


def exchange(port: int, pieces: list[bytes], *, half_close: bool) -> bytes:
    """Send `pieces` as separate writes, and return everything the gate sends until it closes the connection.

    A reset counts as the gate closing; bytes it sent before stay in the result. Fails if the gate keeps the
    connection open past `CLOSE_WITHIN_S`.
    """
    deadline_s = time.monotonic() + CLOSE_WITHIN_S
    received = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=CLOSE_WITHIN_S) as connection:
        try:
            for piece in pieces:
                connection.sendall(piece)
                time.sleep(0.001)  # so that the gate sees the pieces in separate reads
            if half_close:
                connection.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the gate refused and closed before reading everything; what it said is still to be read
        while True:
            connection.settimeout(max(deadline_s - time.monotonic(), 0.001))
            try:
                data = connection.recv(65536)
            except TimeoutError:
                pytest.fail(f"the gate kept the connection open for {CLOSE_WITHIN_S} s; it sent {bytes(received)!r}")
            except ConnectionResetError:
                break
            if not data:
                break
            received += data
    return bytes(received)


def parse_responses(data: bytes) -> list[tuple[int, bytes]]:
    """The status and body of each response in `data`, which must hold whole responses and nothing else."""
    parser = h11.Connection(h11.CLIENT)
    parser.receive_data(data)
    responses = []
    while True:
        if parser.our_state is h11.DONE and parser.their_state is h11.DONE:
            parser.start_next_cycle()
        unparsed = parser.trailing_data[0]
        if not unparsed:
            return responses
        assert parser.our_state is h11.IDLE, f"bytes after the response that closed the connection: {data!r}"
        # h11 parses a response only after a request has gone out through it; ours went out raw.
        parser.send(h11.Request(method="GET", target="/", headers=[("host", "gate")]))
        parser.send(h11.EndOfMessage())
        while type(head := parser.next_event()) is h11.InformationalResponse:
            pass
        assert type(head) is h11.Response, f"not an HTTP response: {data!r}"
        body = bytearray()
        while type(event := parser.next_event()) is h11.Data:
            body += event.data
        assert type(event) is h11.EndOfMessage, f"a response was cut short: {data!r}"
        responses.append((head.status_code, bytes(body)))


def assert_cache_miss(port: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=CLOSE_WITHIN_S)
    try:
        connection.request("POST", "/v1/chat/completions", VALID_CHAT_BODY, {"content-type": "application/json"})
        response = connection.getresponse()
        assert response.status == 404
        assert orjson.loads(response.read())["error"]["type"] == CACHE_MISS_TYPE
    finally:
        connection.close()


# --- The property -------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pieces=writes(), half_close=st.sampled_from([True, True, False]))
def test_gate_answers_or_closes_in_time_and_keeps_serving(gate, pieces, half_close):
    answer = exchange(gate.port, pieces, half_close=half_close)
    for status, body in parse_responses(answer):
        assert status in EXPECTED_STATUSES, answer
        assert orjson.loads(body)["error"]["type"] in (GATE_ERROR_TYPE, CACHE_MISS_TYPE)
    assert gate.tracebacks.messages == []
    assert_cache_miss(gate.port)
