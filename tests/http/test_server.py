"""The HTTP server over real loopback sockets, seen byte for byte by a tiny h11 client."""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace

import h11
import orjson
import pytest
import trio
import trio.testing

from inference_gate.core.errors import GATE_ERROR_TYPE, GateError
from inference_gate.core.http_models import HttpRequest, HttpResponse
from inference_gate.http.server import ServerLimits, _Server, serve_http

TEST_TIMEOUT_S = 5.0
SETTLE_S = 0.1
FAST_LIMITS = ServerLimits(max_head_bytes=1024, max_body_bytes=1024, request_timeout_s=2.0, idle_timeout_s=2.0)


@dataclass
class Reply:
    status: int
    headers: dict[bytes, bytes]
    body: bytes


class Client:
    """A raw socket plus an h11 client that frames what the test sends and parses what the server answers."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.parser = h11.Connection(h11.CLIENT)
        self.received = bytearray()

    @classmethod
    async def connect(cls, port: int) -> Client:
        return cls(await trio.open_tcp_stream("127.0.0.1", port))

    async def request(
        self, method: str = "GET", target: str = "/", body: bytes = b"", headers: tuple[tuple[str, str], ...] = ()
    ) -> Reply:
        self._start_cycle()
        head = [("host", "gate"), *headers]
        if not any(name == "transfer-encoding" for name, _ in head):
            head.append(("content-length", str(len(body))))
        data = self.parser.send(h11.Request(method=method, target=target, headers=head))
        data += self.parser.send(h11.Data(data=body)) + self.parser.send(h11.EndOfMessage())
        await self.stream.send_all(data)
        return await self.read_response()

    async def read_response(self, method: str = "GET") -> Reply:
        """Read one response; after raw bytes, h11 is told a `method` request went out so it can parse it."""
        self._start_cycle()
        if self.parser.our_state is h11.IDLE:
            self.parser.send(h11.Request(method=method, target="/", headers=[("host", "gate")]))
            self.parser.send(h11.EndOfMessage())
        head = await self.next_event()
        assert type(head) is h11.Response
        body = bytearray()
        while type(event := await self.next_event()) is h11.Data:
            body += event.data
        assert type(event) is h11.EndOfMessage
        return Reply(head.status_code, dict(head.headers), bytes(body))

    async def next_event(self) -> h11.Event:
        while (event := self.parser.next_event()) is h11.NEED_DATA:
            data = await self.stream.receive_some(65536)
            self.received += data
            self.parser.receive_data(data)
        return event

    async def assert_closed_by_server(self) -> None:
        """The server has closed the connection, and sent nothing more before doing so."""
        assert await self.stream.receive_some(65536) == b""

    def _start_cycle(self) -> None:
        if self.parser.our_state is h11.DONE and self.parser.their_state is h11.DONE:
            self.parser.start_next_cycle()


async def echo(request: HttpRequest) -> HttpResponse:
    """Answers with the request's body, and its method and target in headers."""
    headers = [(b"x-method", request.method.encode()), (b"x-target", request.target.encode())]
    return HttpResponse(200, headers, body=request.body)


async def start_server(nursery: trio.Nursery, handler=echo, limits: ServerLimits = FAST_LIMITS) -> int:
    return await nursery.start(serve_http, handler, "127.0.0.1", 0, limits)


async def assert_still_serving(port: int) -> None:
    client = await Client.connect(port)
    async with client.stream:
        reply = await client.request("POST", "/still", b"alive")
    assert (reply.status, reply.body) == (200, b"alive")


@pytest.fixture
async def connect() -> AsyncIterator[Callable[[int], Awaitable[Client]]]:
    """Opens clients to a port, and closes them all when the test ends."""
    clients: list[Client] = []

    async def open_client(port: int) -> Client:
        clients.append(await Client.connect(port))
        return clients[-1]

    yield open_client
    for client in clients:
        await client.stream.aclose()


def assert_gate_error(reply: Reply, status: int) -> dict:
    assert reply.status == status
    assert reply.headers[b"content-type"].startswith(b"application/json")
    error = orjson.loads(reply.body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == GATE_ERROR_TYPE
    return error


async def test_keep_alive_serves_three_requests_on_one_connection(nursery, connect):
    with trio.fail_after(TEST_TIMEOUT_S):
        port = await start_server(nursery)
        client = await connect(port)
        first = await client.request("GET", "/v1/models?limit=2")
        second = await client.request("POST", "/v1/chat/completions", b'{"n": 1}')
        third = await client.request("POST", "/chunked", b"x" * 500, (("transfer-encoding", "chunked"),))
        assert (first.status, first.headers[b"x-target"], first.body) == (200, b"/v1/models?limit=2", b"")
        assert second.body == b'{"n": 1}'
        assert (third.headers[b"x-method"], third.body) == (b"POST", b"x" * 500)
        assert b"connection" not in third.headers


async def test_client_expecting_100_continue_is_told_to_send_its_body(nursery, connect):
    with trio.fail_after(TEST_TIMEOUT_S):
        port = await start_server(nursery)
        client = await connect(port)
        head = [("host", "gate"), ("content-length", "5"), ("expect", "100-continue")]
        await client.stream.send_all(client.parser.send(h11.Request(method="POST", target="/", headers=head)))
        interim = await client.next_event()
        assert (type(interim), interim.status_code) == (h11.InformationalResponse, 100)
        await client.stream.send_all(client.parser.send(h11.Data(data=b"hello")))
        await client.stream.send_all(client.parser.send(h11.EndOfMessage()))
        assert (await client.read_response()).body == b"hello"


async def test_http_10_request_is_answered_then_closed(nursery, connect):
    with trio.fail_after(TEST_TIMEOUT_S):
        port = await start_server(nursery)
        client = await connect(port)
        await client.stream.send_all(b"POST /old HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc")
        reply = await client.read_response("POST")
        assert (reply.status, reply.body, reply.headers[b"connection"]) == (200, b"abc", b"close")
        await client.assert_closed_by_server()


async def test_pipelined_requests_are_answered_in_order(nursery, connect):
    with trio.fail_after(TEST_TIMEOUT_S):
        port = await start_server(nursery)
        client = await connect(port)
        await client.stream.send_all(
            b"GET /one HTTP/1.1\r\nHost: gate\r\n\r\n"
            b"POST /two HTTP/1.1\r\nHost: gate\r\nContent-Length: 3\r\n\r\nabc"
            b"GET /three HTTP/1.1\r\nHost: gate\r\n\r\n"
        )
        replies = [await client.read_response(method) for method in ("GET", "POST", "GET")]
        assert [reply.headers[b"x-target"] for reply in replies] == [b"/one", b"/two", b"/three"]
        assert replies[1].body == b"abc"


async def test_oversized_head_gets_431(nursery, connect):
    with trio.fail_after(TEST_TIMEOUT_S):
        port = await start_server(nursery)
        client = await connect(port)
        # Larger than one receive buffer, so that h11 sees an incomplete head above the limit.
        await client.stream.send_all(b"GET / HTTP/1.1\r\nHost: gate\r\nX-Big: " + b"a" * 128 * 1024 + b"\r\n\r\n")
        reply = await client.read_response()
        assert_gate_error(reply, 431)
        assert reply.headers[b"connection"] == b"close"
        await client.assert_closed_by_server()
        await assert_still_serving(port)


async def test_content_length_above_limit_gets_413_before_the_body_is_sent(nursery, connect):
    handled: list[HttpRequest] = []

    async def recording_echo(request: HttpRequest) -> HttpResponse:
        handled.append(request)
        return await echo(request)

    with trio.fail_after(TEST_TIMEOUT_S):
        port = await start_server(nursery, recording_echo)
        client = await connect(port)
        await client.stream.send_all(b"POST /big HTTP/1.1\r\nHost: gate\r\nContent-Length: 1000000000\r\n\r\n")
        error = assert_gate_error(await client.read_response("POST"), 413)
        assert error["code"] == "body_too_large"
        await client.assert_closed_by_server()
        assert handled == []
        await assert_still_serving(port)


async def test_413_reaches_a_client_still_sending_its_body(nursery, connect):
    """Like an SDK, the client sends its whole body before it reads; the server must not reset the connection."""
    with trio.fail_after(TEST_TIMEOUT_S):
        port = await start_server(nursery)
        client = await connect(port)
        body = b"a" * 512 * 1024
        head = b"POST /big HTTP/1.1\r\nHost: gate\r\nContent-Length: %d\r\n\r\n" % len(body)
        await client.stream.send_all(head + body)
        assert_gate_error(await client.read_response("POST"), 413)
        await client.assert_closed_by_server()


async def test_chunked_body_growing_past_limit_gets_413(nursery, connect):
    with trio.fail_after(TEST_TIMEOUT_S):
        port = await start_server(nursery)
        client = await connect(port)
        await client.stream.send_all(
            b"POST /big HTTP/1.1\r\nHost: gate\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"400\r\n"
            + b"a" * 1024
            + b"\r\n"
            + b"1\r\nb\r\n"
        )
        assert_gate_error(await client.read_response("POST"), 413)
        await client.assert_closed_by_server()
        await assert_still_serving(port)


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(b"\x00\x01 definitely not HTTP\r\n\r\n", id="binary"),
        pytest.param(b"HELLO THERE\r\n\r\n", id="bad-request-line"),
        pytest.param(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32)), id="tls-client-hello"),
        pytest.param(b"POST / HTTP/1.1\r\nHost: gate\r\nContent-Length: -5\r\n\r\n", id="negative-length"),
        pytest.param(b"POST / HTTP/1.1\r\nHost: gate\r\nContent-Length: ten\r\n\r\n", id="non-numeric-length"),
    ],
)
async def test_malformed_request_gets_400_quietly(nursery, caplog, garbage, connect):
    caplog.set_level(logging.DEBUG, logger="inference_gate.server")
    with trio.fail_after(TEST_TIMEOUT_S):
        port = await start_server(nursery)
        client = await connect(port)
        await client.stream.send_all(garbage)
        error = assert_gate_error(await client.read_response(), 400)
        assert error["code"] == "bad_request"
        await client.assert_closed_by_server()
        await assert_still_serving(port)
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


async def test_request_trickling_in_too_slowly_gets_408(nursery, connect):
    limits = ServerLimits(request_timeout_s=0.2)

    async def trickle_header_lines(stream: trio.SocketStream) -> None:
        await stream.send_all(b"GET / HTTP/1.1\r\n")
        while True:
            await stream.send_all(b"X-Slow: 1\r\n")
            await trio.sleep(0.02)

    with trio.fail_after(TEST_TIMEOUT_S):
        port = await start_server(nursery, limits=limits)
        client = await connect(port)
        started_s = trio.current_time()
        async with trio.open_nursery() as slowloris:
            slowloris.start_soon(trickle_header_lines, client.stream)
            reply = await client.read_response()
            slowloris.cancel_scope.cancel()
        assert trio.current_time() - started_s >= 0.2
        assert_gate_error(reply, 408)
        await client.assert_closed_by_server()
        await assert_still_serving(port)


async def test_idle_keep_alive_connection_is_closed_without_a_response(nursery, connect):
    with trio.fail_after(TEST_TIMEOUT_S):
        port = await start_server(nursery, limits=ServerLimits(idle_timeout_s=0.2))
        used = await connect(port)
        await used.request()
        never_used = await connect(port)
        await used.assert_closed_by_server()
        await never_used.assert_closed_by_server()
        await assert_still_serving(port)


async def test_streamed_response_arrives_chunk_by_chunk(nursery, connect):
    first_chunk_read = trio.Event()

    async def chunks() -> AsyncIterator[bytes]:
        yield b"data: one\n\n"
        await first_chunk_read.wait()
        yield b""
        yield b"data: two\n\n"

    async def streaming(request: HttpRequest) -> HttpResponse:
        if request.path != "/v1/chat/completions":
            return await echo(request)
        return HttpResponse(200, [(b"content-type", b"text/event-stream")], stream=chunks())

    with trio.fail_after(TEST_TIMEOUT_S):
        port = await start_server(nursery, streaming)
        client = await connect(port)
        await client.stream.send_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gate\r\nContent-Length: 0\r\n\r\n")
        client.parser.send(h11.Request(method="POST", target="/", headers=[("host", "gate")]))
        client.parser.send(h11.EndOfMessage())
        head = await client.next_event()
        assert head.status_code == 200
        assert dict(head.headers)[b"transfer-encoding"] == b"chunked"
        assert (await client.next_event()).data == b"data: one\n\n"
        first_chunk_read.set()
        assert (await client.next_event()).data == b"data: two\n\n"
        assert type(await client.next_event()) is h11.EndOfMessage
        assert client.received.endswith(b"0\r\n\r\n")
        assert (await client.request("POST", "/next", b"kept alive")).body == b"kept alive"


async def test_streamed_response_to_http_10_client_is_close_delimited(nursery, connect):
    async def chunks() -> AsyncIterator[bytes]:
        yield b"one "
        yield b"two"

    async def streaming(request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, stream=chunks())

    with trio.fail_after(TEST_TIMEOUT_S):
        port = await start_server(nursery, streaming)
        client = await connect(port)
        await client.stream.send_all(b"GET / HTTP/1.0\r\n\r\n")
        reply = await client.read_response()
        assert (reply.body, reply.headers[b"connection"]) == (b"one two", b"close")
        assert b"transfer-encoding" not in reply.headers


async def test_stream_that_raises_ends_the_connection_without_a_last_chunk(nursery, connect):
    async def broken_upstream() -> AsyncIterator[bytes]:
        yield b"data: partial\n\n"
        raise RuntimeError("upstream went away")

    async def streaming(request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, stream=broken_upstream()) if request.path == "/" else await echo(request)

    with trio.fail_after(TEST_TIMEOUT_S):
        port = await start_server(nursery, streaming)
        client = await connect(port)
        with pytest.raises(h11.RemoteProtocolError, match="incomplete chunked read"):
            await client.request()
        assert client.received.endswith(b"data: partial\n\n\r\n")
        assert not client.received.endswith(b"0\r\n\r\n")
        await assert_still_serving(port)


async def test_client_leaving_mid_stream_closes_the_stream(nursery, connect):
    class EndlessUpstream:
        """An upstream body that never ends, and records whether the server released it."""

        def __init__(self) -> None:
            self.closed = trio.Event()

        def __aiter__(self) -> EndlessUpstream:
            return self

        async def __anext__(self) -> bytes:
            await trio.sleep(0.005)
            return b"data: more\n\n"

        async def aclose(self) -> None:
            self.closed.set()

    upstream = EndlessUpstream()

    async def streaming(request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, stream=upstream) if request.path == "/stream" else await echo(request)

    with trio.fail_after(TEST_TIMEOUT_S):
        port = await start_server(nursery, streaming)
        client = await connect(port)
        await client.stream.send_all(b"GET /stream HTTP/1.1\r\nHost: gate\r\n\r\n")
        assert await client.stream.receive_some(65536)
        await client.stream.aclose()
        await upstream.closed.wait()
        await assert_still_serving(port)


@pytest.mark.parametrize("leaving", ["close", "reset"])
async def test_a_client_leaving_stops_a_stream_at_once_not_at_its_next_chunk(nursery, connect, leaving):
    cancelled, closed = trio.Event(), trio.Event()

    async def slow_stream() -> AsyncIterator[bytes]:
        try:
            yield b"data: first\n\n"
            await trio.sleep(10 * TEST_TIMEOUT_S)  # a paced stream's next event, far off
            yield b"data: second\n\n"
        except trio.Cancelled:
            cancelled.set()
            raise
        finally:
            closed.set()

    async def streaming(request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, stream=slow_stream()) if request.path == "/stream" else await echo(request)

    with trio.fail_after(TEST_TIMEOUT_S):
        port = await start_server(nursery, streaming)
        client = await connect(port)
        await client.stream.send_all(b"GET /stream HTTP/1.1\r\nHost: gate\r\n\r\n")
        assert b"data: first" in await client.stream.receive_some(65536)
        if leaving == "reset":  # a zero linger time makes close send a reset
            client.stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await client.stream.aclose()
        await closed.wait()
        assert cancelled.is_set()
        await assert_still_serving(port)


async def test_a_request_pipelined_during_a_stream_is_answered_once_the_stream_ends(nursery, connect):
    first_chunk_read = trio.Event()

    async def held_stream() -> AsyncIterator[bytes]:
        yield b"data: one\n\n"
        await first_chunk_read.wait()
        yield b"data: two\n\n"

    async def streaming(request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, stream=held_stream()) if request.path == "/stream" else await echo(request)

    with trio.fail_after(TEST_TIMEOUT_S):
        port = await start_server(nursery, streaming)
        client = await connect(port)
        await client.stream.send_all(b"GET /stream HTTP/1.1\r\nHost: gate\r\n\r\n")
        client.parser.send(h11.Request(method="GET", target="/", headers=[("host", "gate")]))
        client.parser.send(h11.EndOfMessage())
        assert type(await client.next_event()) is h11.Response
        assert (await client.next_event()).data == b"data: one\n\n"
        await client.stream.send_all(b"POST /next HTTP/1.1\r\nHost: gate\r\nContent-Length: 4\r\n\r\nnext")
        await trio.sleep(SETTLE_S)  # the server reads it while the stream is still going
        first_chunk_read.set()
        assert (await client.next_event()).data == b"data: two\n\n"
        assert type(await client.next_event()) is h11.EndOfMessage
        reply = await client.read_response("POST")
        assert (reply.status, reply.body, reply.headers[b"x-target"]) == (200, b"next", b"/next")


async def test_gate_error_from_handler_is_sent_as_openai_error(nursery, connect):
    async def refusing(request: HttpRequest) -> HttpResponse:
        raise GateError(404, "No cassette for this request.", code="cassette_not_found", retryable=False)

    with trio.fail_after(TEST_TIMEOUT_S):
        port = await start_server(nursery, refusing)
        client = await connect(port)
        reply = await client.request("POST", "/v1/chat/completions", b"{}")
        error = assert_gate_error(reply, 404)
        assert (error["message"], error["code"], error["param"]) == (
            "No cassette for this request.",
            "cassette_not_found",
            None,
        )
        assert reply.headers[b"x-should-retry"] == b"false"
        assert (await client.request()).status == 404


async def test_handler_bug_gets_500_and_the_server_keeps_serving(nursery, caplog, connect):
    async def buggy(request: HttpRequest) -> HttpResponse:
        if request.path == "/bug":
            raise KeyError("oops")
        return await echo(request)

    with trio.fail_after(TEST_TIMEOUT_S):
        port = await start_server(nursery, buggy)
        client = await connect(port)
        error = assert_gate_error(await client.request("GET", "/bug"), 500)
        assert "internal gate error" in error["message"].lower()
        assert (await client.request("POST", "/after", b"fine")).body == b"fine"
        await assert_still_serving(port)
    [record] = [record for record in caplog.records if record.name == "inference_gate.server"]
    assert record.levelno == logging.ERROR
    assert record.exc_info[0] is KeyError


async def run_until_shutdown(
    limits: ServerLimits, handler, shutdown: trio.Event, returned: trio.Event, *, task_status=trio.TASK_STATUS_IGNORED
) -> None:
    await serve_http(handler, "127.0.0.1", 0, limits, shutdown=shutdown, task_status=task_status)
    returned.set()


async def one_chunk(body: bytes) -> AsyncIterator[bytes]:
    yield body


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
async def test_graceful_shutdown_finishes_requests_in_flight(nursery, connect, streamed):
    limits = ServerLimits(shutdown_grace_s=2.0)
    handler_entered, release_handler = trio.Event(), trio.Event()

    async def slow(request: HttpRequest) -> HttpResponse:
        if request.path == "/slow":
            handler_entered.set()
            await release_handler.wait()
        response = await echo(request)
        if streamed:
            response.stream = one_chunk(b"finished")
        return response

    shutdown, returned = trio.Event(), trio.Event()
    with trio.fail_after(TEST_TIMEOUT_S):
        port = await nursery.start(run_until_shutdown, limits, slow, shutdown, returned)
        idle = await connect(port)
        await idle.request()
        busy = await connect(port)
        await busy.stream.send_all(b"GET /slow HTTP/1.1\r\nHost: gate\r\n\r\n")
        await handler_entered.wait()

        shutdown.set()
        shutdown_started_s = trio.current_time()
        await trio.testing.wait_all_tasks_blocked()
        await idle.assert_closed_by_server()
        with pytest.raises(OSError):
            await connect(port)
        assert not returned.is_set()

        release_handler.set()
        reply = await busy.read_response()
        assert (reply.status, reply.headers[b"x-target"], reply.headers[b"connection"]) == (200, b"/slow", b"close")
        assert reply.body == (b"finished" if streamed else b"")
        await busy.assert_closed_by_server()
        await returned.wait()
        assert trio.current_time() - shutdown_started_s < limits.shutdown_grace_s


async def test_shutdown_cancels_requests_still_running_after_the_grace_period(nursery, connect):
    limits = ServerLimits(shutdown_grace_s=0.2)
    handler_entered = trio.Event()

    async def stuck(request: HttpRequest) -> HttpResponse:
        handler_entered.set()
        await trio.sleep_forever()

    shutdown, returned = trio.Event(), trio.Event()
    with trio.fail_after(TEST_TIMEOUT_S):
        port = await nursery.start(run_until_shutdown, limits, stuck, shutdown, returned)
        client = await connect(port)
        await client.stream.send_all(b"GET / HTTP/1.1\r\nHost: gate\r\n\r\n")
        await handler_entered.wait()
        shutdown.set()
        shutdown_started_s = trio.current_time()
        await returned.wait()
        # The grace period is a lower bound the server keeps; how much later a busy machine returns is not tested.
        assert trio.current_time() - shutdown_started_s >= 0.2
        await client.assert_closed_by_server()


async def test_shutdown_closes_a_keep_alive_connection_when_its_stream_ends(nursery, connect):
    limits = ServerLimits(shutdown_grace_s=2.0)
    release_stream = trio.Event()

    async def chunks() -> AsyncIterator[bytes]:
        yield b"before shutdown "
        await release_stream.wait()
        yield b"after shutdown"

    async def streaming(request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, stream=chunks())

    shutdown, returned = trio.Event(), trio.Event()
    with trio.fail_after(TEST_TIMEOUT_S):
        port = await nursery.start(run_until_shutdown, limits, streaming, shutdown, returned)
        client = await connect(port)
        await client.stream.send_all(b"GET / HTTP/1.1\r\nHost: gate\r\n\r\n")
        client.parser.send(h11.Request(method="GET", target="/", headers=[("host", "gate")]))
        client.parser.send(h11.EndOfMessage())
        assert b"connection" not in dict((await client.next_event()).headers)
        assert (await client.next_event()).data == b"before shutdown "

        shutdown.set()
        shutdown_started_s = trio.current_time()
        await trio.testing.wait_all_tasks_blocked()
        release_stream.set()
        assert (await client.next_event()).data == b"after shutdown"
        assert type(await client.next_event()) is h11.EndOfMessage
        await client.assert_closed_by_server()
        await returned.wait()
        assert trio.current_time() - shutdown_started_s < limits.shutdown_grace_s


class RecordingStream(trio.abc.HalfCloseableStream):
    """A fake client connection: it hands the server `incoming`, then end of file, and keeps every object the
    server sends, so a test can tell whether two sends are the same buffer."""

    def __init__(self, incoming: bytes) -> None:
        self.incoming = [incoming]
        self.sent: list[bytes] = []

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        return self.incoming.pop() if self.incoming else b""

    async def send_all(self, data: bytes) -> None:
        await trio.lowlevel.checkpoint()
        self.sent.append(data)

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def send_eof(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


LARGE_BODY_BYTES = 4 * 1024 * 1024


async def test_every_connection_sends_one_shared_buffer_for_a_response_given_again():
    # Made with keep_alive_wire=None, as a prepared reply is: the server frames it once and keeps the bytes.
    prepared = HttpResponse(
        200, [(b"content-type", b"application/json")], b"x" * LARGE_BODY_BYTES, keep_alive_wire=None
    )

    async def replaying(request: HttpRequest) -> HttpResponse:
        return prepared

    server = _Server(replaying, ServerLimits())
    request = b"POST /v1/chat/completions HTTP/1.1\r\nhost: gate\r\ncontent-length: 2\r\n\r\n{}"
    connections = [RecordingStream(request * 2), RecordingStream(request)]
    with trio.fail_after(TEST_TIMEOUT_S):
        for stream in connections:
            await server.serve_connection(stream)
    sent = [data for stream in connections for data in stream.sent]
    assert len(sent) == 3 and all(data is sent[0] for data in sent)
    assert sent[0].startswith(b"HTTP/1.1 200 ") and sent[0].endswith(b"\r\n\r\n" + prepared.body)


async def test_a_large_body_to_an_http_10_client_is_sent_as_it_is_not_copied():
    body = b"x" * LARGE_BODY_BYTES

    async def replaying(request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, [], body)

    stream = RecordingStream(b"POST /old HTTP/1.0\r\ncontent-length: 0\r\n\r\n")
    with trio.fail_after(TEST_TIMEOUT_S):
        await _Server(replaying, ServerLimits()).serve_connection(stream)
    head, sent_body = stream.sent
    assert head.startswith(b"HTTP/1.1 200 ") and b"connection: close" in head.lower()
    assert sent_body is body


async def test_a_large_body_sent_once_on_a_keep_alive_connection_is_sent_as_it_is_not_copied():
    body = b"x" * LARGE_BODY_BYTES

    async def answering_once(request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, [], body)  # a new response object per request, as a recording's whole body is

    stream = RecordingStream(b"POST /v1/chat/completions HTTP/1.1\r\nhost: gate\r\ncontent-length: 0\r\n\r\n")
    with trio.fail_after(TEST_TIMEOUT_S):
        await _Server(answering_once, ServerLimits()).serve_connection(stream)
    assert any(sent is body for sent in stream.sent)


async def test_a_client_that_stops_reading_is_dropped_after_the_send_timeout(nursery, connect, autojump_clock):
    # Larger than what the loopback's socket buffers can hold between the two ends.
    unread = HttpResponse(200, [], b"x" * (64 * 1024 * 1024))

    async def large_or_echo(request: HttpRequest) -> HttpResponse:
        return unread if request.target == "/large" else await echo(request)

    limits = ServerLimits(send_timeout_s=1.0)
    with trio.fail_after(TEST_TIMEOUT_S):
        port = await start_server(nursery, large_or_echo, limits)
        stalled = await connect(port)
        await stalled.stream.send_all(b"GET /large HTTP/1.1\r\nhost: gate\r\n\r\n")
        await assert_still_serving(port)
        await trio.sleep(2 * limits.send_timeout_s)  # the mock clock's time: no real wait
        received = 0
        with contextlib.suppress(trio.BrokenResourceError):
            while data := await stalled.stream.receive_some(1024 * 1024):
                received += len(data)
        assert 0 < received < len(unread.body)
        await assert_still_serving(port)
async def test_a_connection_over_the_cap_waits_until_one_closes(nursery, connect):
    answered: list[str] = []

    async def counting(request: HttpRequest) -> HttpResponse:
        answered.append(request.target)
        return await echo(request)

    with trio.fail_after(TEST_TIMEOUT_S):
        port = await start_server(nursery, counting, replace(FAST_LIMITS, max_connections=2))
        first, second, waiting = await connect(port), await connect(port), await connect(port)
        await first.request(target="/first")
        await second.request(target="/second")
        await waiting.stream.send_all(b"GET /waiting HTTP/1.1\r\nHost: gate\r\n\r\n")
        await trio.testing.wait_all_tasks_blocked(cushion=SETTLE_S)
        assert answered == ["/first", "/second"]
        await first.stream.aclose()
        reply = await waiting.read_response()
    assert reply.headers[b"x-target"] == b"/waiting"
    assert answered == ["/first", "/second", "/waiting"]


# A server in a child process with few file descriptors: it prints its port, and logs to stderr.
LOW_FD_SERVER = """
import logging, resource, sys
import trio
from inference_gate.http.server import ServerLimits, serve_http
from inference_gate.core.http_models import HttpResponse

resource.setrlimit(resource.RLIMIT_NOFILE, ({limit}, {limit}))
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")

async def answer(request):
    return HttpResponse(200, [], b"ok")

async def main():
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_http, answer, "127.0.0.1", 0, ServerLimits(max_connections=10_000))
        print(port, flush=True)

trio.run(main)
"""
LOW_FD_LIMIT = 64
LOG_POLL_S = 0.05


def test_out_of_file_descriptors_the_server_logs_once_and_serves_again_once_connections_close(tmp_path):
    resource = pytest.importorskip("resource")
    idle_connections = 2 * LOW_FD_LIMIT
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < idle_connections + 64:
        pytest.skip("this process cannot open enough connections to exhaust the child's descriptors")
    log_file = tmp_path / "server.log"
    with log_file.open("w") as log_sink:
        server = subprocess.Popen(
            [sys.executable, "-c", LOW_FD_SERVER.format(limit=LOW_FD_LIMIT)],
            stdout=subprocess.PIPE,
            stderr=log_sink,
            text=True,
        )
    try:
        port = int(server.stdout.readline())
        idle = [socket.create_connection(("127.0.0.1", port), timeout=TEST_TIMEOUT_S) for _ in range(idle_connections)]
        probe = socket.create_connection(("127.0.0.1", port), timeout=TEST_TIMEOUT_S)
        probe.sendall(b"GET / HTTP/1.1\r\nHost: gate\r\nConnection: close\r\n\r\n")
        wait_for_line(log_file, "cannot accept connections")
        for connection in idle:
            connection.close()
        with probe:
            answer = probe.makefile("rb").read()
    finally:
        server.terminate()
        server.communicate(timeout=TEST_TIMEOUT_S)
    log = log_file.read_text()
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b"ok")
    assert len([line for line in log.splitlines() if "cannot accept connections" in line]) == 1, log
    assert "Too many open files" in log
    assert len([line for line in log.splitlines() if "accepting connections again" in line]) == 1, log


def wait_for_line(log_file, text: str) -> None:
    """Return once the log has a line containing `text`; fail if it has none within TEST_TIMEOUT_S."""
    for _ in range(int(TEST_TIMEOUT_S / LOG_POLL_S)):
        if text in log_file.read_text():
            return
        time.sleep(LOG_POLL_S)
    pytest.fail(f"the server never logged {text!r}: {log_file.read_text()}")


RAISE_LIMIT = """
import resource
from inference_gate.http.server import raise_open_files_limit

hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, ({low}, hard))
raise_open_files_limit()
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
print(soft == hard, soft > {low})
"""


def test_the_open_files_soft_limit_is_raised_to_the_hard_limit():
    resource = pytest.importorskip("resource")
    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] <= LOW_FD_LIMIT:
        pytest.skip("the hard limit on open files is no higher than the low soft limit this test sets")
    result = subprocess.run(
        [sys.executable, "-c", RAISE_LIMIT.format(low=LOW_FD_LIMIT)],
        capture_output=True,
        text=True,
        timeout=TEST_TIMEOUT_S * 4,
        check=True,
    )
    assert result.stdout.split() == ["True", "True"]
