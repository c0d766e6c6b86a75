"""The upstream client against small trio + h11 servers on loopback, scripted by each test."""

from __future__ import annotations

import socket
import ssl
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial

import h11
import pytest
import trio
import trio.testing
import trustme

from inference_gate.core.errors import GateError
from inference_gate.http.upstream import UpstreamPool, UpstreamURL

TEST_DEADLINE_S = 5.0


@dataclass
class Reply:
    """A response the loopback server sends through h11; without content-length, h11 sends it chunked."""

    status: int = 200
    headers: list[tuple[bytes, bytes]] = field(default_factory=lambda: [(b"content-length", b"2")])
    chunks: list[bytes] = field(default_factory=lambda: [b"ok"])
    close_after: bool = False


# A handler answers one request. It returns a Reply, or writes raw bytes itself and returns None, after
# which the server closes the connection.
Handler = Callable[[trio.abc.Stream, h11.Request, bytes], Awaitable[Reply | None]]


class LoopbackUpstream:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.port = 0
        self.connections_accepted = 0
        self.connections_finished = 0
        self.requests: list[tuple[h11.Request, bytes]] = []

    async def serve(self, stream: trio.abc.Stream) -> None:
        self.connections_accepted += 1
        protocol = h11.Connection(h11.SERVER)
        try:
            async with stream:
                while (received := await read_request(stream, protocol)) is not None:
                    self.requests.append(received)
                    reply = await self.handler(stream, *received)
                    if reply is None:
                        return
                    await send_reply(stream, protocol, reply)
                    if reply.close_after or protocol.our_state is not h11.DONE:
                        return
                    protocol.start_next_cycle()
        except trio.BrokenResourceError:
            pass  # the client went away, which several tests do on purpose
        finally:
            self.connections_finished += 1

    def request_header(self, index: int, name: bytes) -> list[bytes]:
        return [value for key, value in self.requests[index][0].headers if key == name]


async def read_request(stream: trio.abc.Stream, protocol: h11.Connection) -> tuple[h11.Request, bytes] | None:
    request: h11.Request | None = None
    body = b""
    while True:
        event = protocol.next_event()
        if event is h11.NEED_DATA:
            protocol.receive_data(await stream.receive_some(65536))
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            assert request is not None
            return request, body
        elif isinstance(event, h11.ConnectionClosed):
            return None


async def send_reply(stream: trio.abc.Stream, protocol: h11.Connection, reply: Reply) -> None:
    await stream.send_all(protocol.send(h11.Response(status_code=reply.status, headers=reply.headers)))
    for chunk in reply.chunks:
        await stream.send_all(protocol.send(h11.Data(data=chunk)))
    await stream.send_all(protocol.send(h11.EndOfMessage()))


async def start_upstream(
    nursery: trio.Nursery, handler: Handler, *, ssl_context: ssl.SSLContext | None = None
) -> LoopbackUpstream:
    upstream = LoopbackUpstream(handler)
    if ssl_context is None:
        listeners = await nursery.start(partial(trio.serve_tcp, upstream.serve, 0, host="127.0.0.1"))
        upstream.port = listeners[0].socket.getsockname()[1]
    else:
        serve = partial(
            trio.serve_ssl_over_tcp, upstream.serve, 0, ssl_context, host="127.0.0.1", https_compatible=True
        )
        listeners = await nursery.start(serve)
        upstream.port = listeners[0].transport_listener.socket.getsockname()[1]
    return upstream


async def answer(reply: Reply, stream: trio.abc.Stream, request: h11.Request, body: bytes) -> Reply:
    return reply


def always(reply: Reply) -> Handler:
    return partial(answer, reply)


@asynccontextmanager
async def open_pool(base_url: str, **options: object) -> AsyncIterator[UpstreamPool]:
    settings: dict = {"connect_timeout_s": 2.0, "read_timeout_s": 2.0, **options}
    pool = UpstreamPool(base_url, **settings)
    try:
        yield pool
    finally:
        await pool.aclose()


async def fetch(
    pool: UpstreamPool, method: str = "GET", target: str = "/v1/models", headers=(), body: bytes = b""
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    async with pool.request(method, target, list(headers), body) as response:
        return response.status, response.headers, b"".join([chunk async for chunk in response.body_chunks()])


def chunked(*pieces: bytes) -> bytes:
    """Chunked transfer-coding by hand, for servers that write raw bytes."""
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- requests and responses ---


async def test_get_returns_status_headers_and_body(nursery: trio.Nursery) -> None:
    headers = [(b"content-type", b"application/json"), (b"x-request-id", b"req_1")]
    reply = Reply(headers=headers, chunks=[b"{}"])
    upstream = await start_upstream(nursery, always(reply))
    with trio.fail_after(TEST_DEADLINE_S):
        async with open_pool(f"http://127.0.0.1:{upstream.port}") as pool:
            status, headers, body = await fetch(pool, headers=[(b"openai-project", b"proj-1")])

    assert (status, body) == (200, b"{}")
    assert (b"x-request-id", b"req_1") in headers
    request, request_body = upstream.requests[0]
    assert (request.method, request.target, request_body) == (b"GET", b"/v1/models", b"")
    assert upstream.request_header(0, b"openai-project") == [b"proj-1"]
    assert upstream.request_header(0, b"content-length") == []


async def test_post_sends_body_framed_by_content_length(nursery: trio.Nursery) -> None:
    upstream = await start_upstream(nursery, always(Reply()))
    payload = b'{"model": "gpt-4o-mini", "messages": []}'
    with trio.fail_after(TEST_DEADLINE_S):
        async with open_pool(f"http://127.0.0.1:{upstream.port}") as pool:
            await fetch(pool, "POST", "/v1/chat/completions", [(b"content-length", b"999")], payload)

    request, request_body = upstream.requests[0]
    assert (request.method, request_body) == (b"POST", payload)
    assert upstream.request_header(0, b"content-length") == [str(len(payload)).encode()]


async def test_chunked_response_is_deframed(nursery: trio.Nursery) -> None:
    reply = Reply(headers=[], chunks=[b"data: 1\n\n", b"data: ", b"2\n\n"])
    upstream = await start_upstream(nursery, always(reply))
    with trio.fail_after(TEST_DEADLINE_S):
        async with open_pool(f"http://127.0.0.1:{upstream.port}") as pool:
            _, headers, body = await fetch(pool)

    assert (b"transfer-encoding", b"chunked") in headers
    assert body == b"data: 1\n\ndata: 2\n\n"


async def test_path_prefix_is_prepended_to_target(nursery: trio.Nursery) -> None:
    upstream = await start_upstream(nursery, always(Reply()))
    with trio.fail_after(TEST_DEADLINE_S):
        async with open_pool(f"http://127.0.0.1:{upstream.port}/openai/") as pool:
            await fetch(pool, target="/v1/files?purpose=batch")

    assert upstream.requests[0][0].target == b"/openai/v1/files?purpose=batch"


async def test_host_header_names_upstream_with_its_port_replacing_the_callers(nursery: trio.Nursery) -> None:
    upstream = await start_upstream(nursery, always(Reply()))
    with trio.fail_after(TEST_DEADLINE_S):
        async with open_pool(f"http://127.0.0.1:{upstream.port}") as pool:
            await fetch(pool, headers=[(b"host", b"127.0.0.1:8080")])

    assert upstream.request_header(0, b"host") == [f"127.0.0.1:{upstream.port}".encode()]


async def test_informational_response_is_skipped(nursery: trio.Nursery) -> None:
    async def continue_then_answer(stream: trio.abc.Stream, request: h11.Request, body: bytes) -> None:
        await stream.send_all(b"HTTP/1.1 100 Continue\r\n\r\n")
        await stream.send_all(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok")

    upstream = await start_upstream(nursery, continue_then_answer)
    with trio.fail_after(TEST_DEADLINE_S):
        async with open_pool(f"http://127.0.0.1:{upstream.port}") as pool:
            status, _, body = await fetch(pool)

    assert (status, body) == (201, b"ok")


async def test_malformed_response_is_502(nursery: trio.Nursery) -> None:
    async def garbage(stream: trio.abc.Stream, request: h11.Request, body: bytes) -> None:
        await stream.send_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")

    upstream = await start_upstream(nursery, garbage)
    with trio.fail_after(TEST_DEADLINE_S), pytest.raises(GateError) as raised:
        async with open_pool(f"http://127.0.0.1:{upstream.port}") as pool:
            await fetch(pool)

    assert (raised.value.status, raised.value.code) == (502, "upstream_bad_response")


# --- the keep-alive pool ---


async def test_connection_is_reused_across_requests(nursery: trio.Nursery) -> None:
    upstream = await start_upstream(nursery, always(Reply()))
    with trio.fail_after(TEST_DEADLINE_S):
        async with open_pool(f"http://127.0.0.1:{upstream.port}") as pool:
            first = await fetch(pool)
            second = await fetch(pool, "POST", "/v1/embeddings", body=b"{}")

    assert first[2] == second[2] == b"ok"
    assert upstream.connections_accepted == 1
    assert len(upstream.requests) == 2


async def test_connection_the_upstream_asked_to_close_is_not_reused(nursery: trio.Nursery) -> None:
    reply = Reply(headers=[(b"content-length", b"2"), (b"connection", b"close")])
    upstream = await start_upstream(nursery, always(reply))
    with trio.fail_after(TEST_DEADLINE_S):
        async with open_pool(f"http://127.0.0.1:{upstream.port}") as pool:
            await fetch(pool)
            await fetch(pool)

    assert upstream.connections_accepted == 2


async def test_idle_connections_beyond_the_limit_are_closed(nursery: trio.Nursery) -> None:
    upstream = await start_upstream(nursery, always(Reply()))
    with trio.fail_after(TEST_DEADLINE_S):
        async with open_pool(f"http://127.0.0.1:{upstream.port}", max_idle_connections=0) as pool:
            await fetch(pool)
            await fetch(pool)

    assert upstream.connections_accepted == 2


async def test_aclose_closes_idle_connections(nursery: trio.Nursery) -> None:
    upstream = await start_upstream(nursery, always(Reply()))
    with trio.fail_after(TEST_DEADLINE_S):
        async with open_pool(f"http://127.0.0.1:{upstream.port}") as pool:
            await fetch(pool)
            await trio.testing.wait_all_tasks_blocked()
            assert upstream.connections_finished == 0
        await trio.testing.wait_all_tasks_blocked()

    assert upstream.connections_finished == 1


async def test_stale_pooled_connection_is_retried_once_on_a_fresh_one(nursery: trio.Nursery) -> None:
    upstream = await start_upstream(nursery, always(Reply(close_after=True)))
    with trio.fail_after(TEST_DEADLINE_S):
        async with open_pool(f"http://127.0.0.1:{upstream.port}") as pool:
            await fetch(pool)
            await trio.testing.wait_all_tasks_blocked()  # the server has closed the idle connection
            assert upstream.connections_finished == 1
            status, _, body = await fetch(pool)

    assert (status, body) == (200, b"ok")
    assert upstream.connections_accepted == 2
    assert len(upstream.requests) == 2


@pytest.mark.parametrize("how", ["close", "reset"])
async def test_pooled_connection_is_not_retried_after_a_partial_response(
    nursery: trio.Nursery, how: str
) -> None:
    async def answer_then_break(stream: trio.SocketStream, request: h11.Request, body: bytes) -> Reply | None:
        if len(upstream.requests) == 1:
            return Reply()
        await stream.send_all(b"HTTP/1.1 200 OK\r\n")
        if how == "reset":
            await trio.testing.wait_all_tasks_blocked()  # the client has read the status line
            stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return None

    upstream = await start_upstream(nursery, answer_then_break)
    with trio.fail_after(TEST_DEADLINE_S):
        async with open_pool(f"http://127.0.0.1:{upstream.port}") as pool:
            await fetch(pool)
            with pytest.raises(GateError) as raised:
                await fetch(pool)

    assert (raised.value.status, raised.value.code) == (502, "upstream_disconnected")
    assert upstream.connections_accepted == 1
    assert len(upstream.requests) == 2


async def test_fresh_connection_closed_without_response_is_not_retried(nursery: trio.Nursery) -> None:
    async def hang_up(stream: trio.abc.Stream, request: h11.Request, body: bytes) -> None:
        return None

    upstream = await start_upstream(nursery, hang_up)
    with trio.fail_after(TEST_DEADLINE_S), pytest.raises(GateError) as raised:
        async with open_pool(f"http://127.0.0.1:{upstream.port}") as pool:
            await fetch(pool)

    assert (raised.value.status, raised.value.code) == (502, "upstream_disconnected")
    assert "without responding" in raised.value.message
    assert upstream.connections_accepted == 1


@pytest.mark.parametrize(
    "partial_response",
    [
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + chunked(b"0123456789"),
    ],
    ids=["content-length", "chunked"],
)
async def test_mid_body_drop_raises_upstream_disconnected(
    nursery: trio.Nursery, partial_response: bytes
) -> None:
    async def drop_midway(stream: trio.abc.Stream, request: h11.Request, body: bytes) -> None:
        await stream.send_all(partial_response)

    upstream = await start_upstream(nursery, drop_midway)
    received = []
    with trio.fail_after(TEST_DEADLINE_S), pytest.raises(GateError) as raised:
        async with (
            open_pool(f"http://127.0.0.1:{upstream.port}") as pool,
            pool.request("GET", "/", [], b"") as response,
        ):
            async for chunk in response.body_chunks():
                received.append(chunk)

    assert b"".join(received) == b"0123456789"
    assert (raised.value.status, raised.value.code) == (502, "upstream_disconnected")


async def test_abandoned_response_closes_its_connection(nursery: trio.Nursery) -> None:
    upstream = await start_upstream(nursery, always(Reply()))
    with trio.fail_after(TEST_DEADLINE_S):
        async with open_pool(f"http://127.0.0.1:{upstream.port}") as pool:
            async with pool.request("GET", "/", [], b"") as response:
                assert response.status == 200
            await fetch(pool)

    assert upstream.connections_accepted == 2


# --- content-encoding ---


def compressor(encoding: str) -> zlib._Compress:
    window_bits = {
        "gzip": 16 + zlib.MAX_WBITS,
        "deflate-zlib": zlib.MAX_WBITS,
        "deflate-raw": -zlib.MAX_WBITS,
    }
    return zlib.compressobj(wbits=window_bits[encoding])


def small_pieces(data: bytes) -> list[bytes]:
    """`data` cut so that the first piece is a single byte and no piece is longer than 7 bytes."""
    return [data[:1]] + [data[start : start + 7] for start in range(1, len(data), 7)]


@pytest.mark.parametrize("encoding", ["gzip", "deflate-zlib", "deflate-raw"])
async def test_compressed_body_is_decoded_incrementally(nursery: trio.Nursery, encoding: str) -> None:
    first_half = b"".join(b'data: {"delta": "token %d"}\n\n' % n for n in range(200))
    second_half = b"data: [DONE]\n\n" * 50
    compress = compressor(encoding)
    first_compressed = compress.compress(first_half) + compress.flush(zlib.Z_SYNC_FLUSH)
    second_compressed = compress.compress(second_half) + compress.flush()
    client_decoded_first_half = trio.Event()

    async def send_compressed(stream: trio.abc.Stream, request: h11.Request, body: bytes) -> None:
        content_encoding = encoding.partition("-")[0].encode()
        head = b"HTTP/1.1 200 OK\r\ncontent-encoding: %s\r\ntransfer-encoding: chunked\r\n\r\n"
        await stream.send_all(head % content_encoding)
        for piece in small_pieces(first_compressed):
            await stream.send_all(chunked(piece))
        await client_decoded_first_half.wait()
        for piece in small_pieces(second_compressed):
            await stream.send_all(chunked(piece))
        await stream.send_all(b"0\r\n\r\n")

    upstream = await start_upstream(nursery, send_compressed)
    decoded = b""
    with trio.fail_after(TEST_DEADLINE_S):
        async with (
            open_pool(f"http://127.0.0.1:{upstream.port}") as pool,
            pool.request("GET", "/", [], b"") as response,
        ):
            async for chunk in response.body_chunks():
                decoded += chunk
                if decoded == first_half:
                    client_decoded_first_half.set()

    assert decoded == first_half + second_half


async def test_truncated_compressed_body_is_502(nursery: trio.Nursery) -> None:
    compressed = zlib.compress(b"x" * 1000, wbits=16 + zlib.MAX_WBITS)
    truncated = compressed[: len(compressed) // 2]
    headers = [(b"content-encoding", b"gzip"), (b"content-length", b"%d" % len(truncated))]
    reply = Reply(headers=headers, chunks=[truncated])
    upstream = await start_upstream(nursery, always(reply))
    with trio.fail_after(TEST_DEADLINE_S), pytest.raises(GateError) as raised:
        async with open_pool(f"http://127.0.0.1:{upstream.port}") as pool:
            await fetch(pool)

    assert (raised.value.status, raised.value.code) == (502, "upstream_bad_encoding")


async def test_unsupported_content_encoding_is_502(nursery: trio.Nursery) -> None:
    reply = Reply(headers=[(b"content-encoding", b"br")], chunks=[b"\x0b"])
    upstream = await start_upstream(nursery, always(reply))
    with trio.fail_after(TEST_DEADLINE_S), pytest.raises(GateError) as raised:
        async with open_pool(f"http://127.0.0.1:{upstream.port}") as pool:
            await fetch(pool)

    assert (raised.value.status, raised.value.code) == (502, "upstream_bad_encoding")
    assert "'br'" in raised.value.message


# --- failures to connect, and timeouts ---


async def test_connection_refused_is_502_unreachable() -> None:
    port = unused_port()
    with trio.fail_after(TEST_DEADLINE_S), pytest.raises(GateError) as raised:
        async with open_pool(f"http://127.0.0.1:{port}") as pool:
            await fetch(pool)

    assert (raised.value.status, raised.value.code) == (502, "upstream_unreachable")
    assert f"127.0.0.1:{port}" in raised.value.message
    assert "refused" in raised.value.message


async def test_dns_failure_is_502_naming_the_host(offline_resolver) -> None:
    with trio.fail_after(TEST_DEADLINE_S), pytest.raises(GateError) as raised:
        async with open_pool("https://nonexistent.invalid/v1") as pool:
            await fetch(pool)

    assert (raised.value.status, raised.value.code) == (502, "upstream_dns_error")
    assert "nonexistent.invalid" in raised.value.message


async def test_upstream_that_never_answers_is_504_read_timeout(nursery: trio.Nursery) -> None:
    async def never_answer(stream: trio.abc.Stream, request: h11.Request, body: bytes) -> None:
        await trio.sleep_forever()

    upstream = await start_upstream(nursery, never_answer)
    with trio.fail_after(TEST_DEADLINE_S), pytest.raises(GateError) as raised:
        async with open_pool(f"http://127.0.0.1:{upstream.port}", read_timeout_s=0.2) as pool:
            await fetch(pool)

    assert (raised.value.status, raised.value.code) == (504, "upstream_timeout")
    assert "read" in raised.value.message
    assert f"127.0.0.1:{upstream.port}" in raised.value.message


async def test_body_that_stalls_is_504_read_timeout(nursery: trio.Nursery) -> None:
    async def stall_midway(stream: trio.abc.Stream, request: h11.Request, body: bytes) -> None:
        await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n01234")
        await trio.sleep_forever()

    upstream = await start_upstream(nursery, stall_midway)
    with trio.fail_after(TEST_DEADLINE_S), pytest.raises(GateError) as raised:
        async with open_pool(f"http://127.0.0.1:{upstream.port}", read_timeout_s=0.2) as pool:
            await fetch(pool)

    assert (raised.value.status, raised.value.code) == (504, "upstream_timeout")


async def test_tcp_connect_that_never_completes_is_504_connect_timeout() -> None:
    # A listener whose accept queue is full drops new SYNs (on Linux), so connecting hangs on loopback.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        queue_fillers = [socket.socket() for _ in range(3)]
        for filler in queue_fillers:
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        try:
            with trio.fail_after(TEST_DEADLINE_S), pytest.raises(GateError) as raised:
                async with open_pool(f"http://127.0.0.1:{port}", connect_timeout_s=0.2) as pool:
                    await fetch(pool)
        finally:
            for filler in queue_fillers:
                filler.close()

    assert (raised.value.status, raised.value.code) == (504, "upstream_timeout")
    assert "connecting" in raised.value.message


async def test_tls_handshake_that_never_completes_is_504_connect_timeout(nursery: trio.Nursery) -> None:
    async def accept_and_say_nothing(stream: trio.abc.Stream) -> None:
        await trio.sleep_forever()

    listeners = await nursery.start(partial(trio.serve_tcp, accept_and_say_nothing, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    with trio.fail_after(TEST_DEADLINE_S), pytest.raises(GateError) as raised:
        async with open_pool(f"https://127.0.0.1:{port}", connect_timeout_s=0.2) as pool:
            await fetch(pool)

    assert (raised.value.status, raised.value.code) == (504, "upstream_timeout")
    assert "connecting" in raised.value.message


# --- TLS ---


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_ssl_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    return context


async def test_tls_with_trusted_ca_succeeds_and_sends_sni(
    nursery: trio.Nursery, ca: trustme.CA, server_ssl_context: ssl.SSLContext
) -> None:
    server_names = []
    server_ssl_context.sni_callback = lambda ssl_object, name, context: server_names.append(name)
    upstream = await start_upstream(nursery, always(Reply()), ssl_context=server_ssl_context)
    with ca.cert_pem.tempfile() as ca_file:
        client_context = ssl.create_default_context(cafile=ca_file)
    with trio.fail_after(TEST_DEADLINE_S):
        async with open_pool(f"https://localhost:{upstream.port}", ssl_context=client_context) as pool:
            first = await fetch(pool)
            second = await fetch(pool)

    assert first[2] == second[2] == b"ok"
    assert server_names == ["localhost"]
    assert upstream.connections_accepted == 1


async def test_tls_with_untrusted_certificate_is_502_tls_error(
    nursery: trio.Nursery, server_ssl_context: ssl.SSLContext
) -> None:
    upstream = await start_upstream(nursery, always(Reply()), ssl_context=server_ssl_context)
    with trustme.CA().cert_pem.tempfile() as other_ca_file:
        client_context = ssl.create_default_context(cafile=other_ca_file)
    with trio.fail_after(TEST_DEADLINE_S), pytest.raises(GateError) as raised:
        async with open_pool(f"https://localhost:{upstream.port}", ssl_context=client_context) as pool:
            await fetch(pool)

    assert (raised.value.status, raised.value.code) == (502, "upstream_tls_error")
    assert "failed verification" in raised.value.message
    assert "unable to get local issuer certificate" in raised.value.message
    assert "SSL_CERT_FILE" in raised.value.message
    assert upstream.requests == []


async def test_tls_to_a_plain_http_server_is_502_tls_error(nursery: trio.Nursery) -> None:
    async def reject_as_plain_http(stream: trio.abc.Stream) -> None:
        async with stream:
            await stream.receive_some(65536)
            await stream.send_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")

    listeners = await nursery.start(partial(trio.serve_tcp, reject_as_plain_http, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    with trio.fail_after(TEST_DEADLINE_S), pytest.raises(GateError) as raised:
        async with open_pool(f"https://127.0.0.1:{port}") as pool:
            await fetch(pool)

    assert (raised.value.status, raised.value.code) == (502, "upstream_tls_error")


# --- the upstream URL ---


@pytest.mark.parametrize(
    ("url", "expected", "host_header"),
    [
        ("https://api.openai.com", UpstreamURL("https", "api.openai.com", 443, ""), b"api.openai.com"),
        ("https://API.openai.com/v1/", UpstreamURL("https", "api.openai.com", 443, "/v1"), b"api.openai.com"),
        ("http://127.0.0.1:81/openai", UpstreamURL("http", "127.0.0.1", 81, "/openai"), b"127.0.0.1:81"),
        ("http://[::1]:80/", UpstreamURL("http", "::1", 80, ""), b"[::1]"),
        ("https://example.com:443", UpstreamURL("https", "example.com", 443, ""), b"example.com"),
    ],
)
def test_upstream_url_parses_prefix_and_default_port(
    url: str, expected: UpstreamURL, host_header: bytes
) -> None:
    parsed = UpstreamURL.parse(url)

    assert parsed == expected
    assert parsed.host_header == host_header


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("api.openai.com", "must start with http:// or https://"),
        ("ftp://example.com", "must start with http:// or https://"),
        ("https:///v1", "has no host"),
        ("https://example.com:99999", "invalid port"),
        ("https://user:pass@example.com", "must not contain credentials"),
    ],
)
def test_upstream_url_rejects_what_it_cannot_honour(url: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        UpstreamURL.parse(url)
