"""The WebSocket I/O shell over loopback: the upgrade h11 parsed, wsproto frames, the limits, the upstream client."""

from __future__ import annotations

import contextlib
import struct

import trio

from inference_gate.core.http_models import HttpRequest, HttpResponse
from inference_gate.http.server import ServerLimits, serve_http
from inference_gate.http.websocket import (
    WebSocketClosed,
    WebSocketLimits,
    WebSocketUpgrade,
    connect_websocket,
    is_websocket_upgrade,
    offered_subprotocols,
)
from tests.websocket_client import Refused, WebSocketTestClient

TEST_TIMEOUT_S = 5.0
LIMITS = WebSocketLimits(max_message_bytes=1000, idle_timeout_s=2.0, max_messages=6, close_timeout_s=1.0)


async def plain(request: HttpRequest) -> HttpResponse:
    return HttpResponse(200, [(b"content-type", b"text/plain")], body=b"plain " + request.path.encode())


async def echo_session(request: HttpRequest, upgrade: WebSocketUpgrade) -> HttpResponse | None:
    """Refuses /refuse; otherwise accepts (choosing the first subprotocol) and echoes every message."""
    if request.path == "/refuse":
        return HttpResponse(403, [(b"content-type", b"text/plain")], body=b"not here")
    offered = offered_subprotocols(request.headers)
    websocket = await upgrade.accept(
        request.headers, subprotocol=offered[0] if offered else None, extra_headers=[(b"x-inference-gate", b"hit")]
    )
    with contextlib.suppress(WebSocketClosed):
        while True:
            message = await websocket.receive()
            if message == "answer in three":
                await websocket.send_messages(["one", b"two", "three"])
            else:
                await websocket.send(message)
    return None


async def start(nursery: trio.Nursery, limits: WebSocketLimits = LIMITS) -> int:
    server_limits = ServerLimits(idle_timeout_s=2.0, websocket=limits)
    return await nursery.start(
        lambda task_status: serve_http(
            plain, "127.0.0.1", 0, server_limits, websocket_handler=echo_session, task_status=task_status
        )
    )


def test_an_upgrade_is_recognised_by_its_two_headers() -> None:
    assert is_websocket_upgrade([(b"upgrade", b"websocket"), (b"connection", b"keep-alive, Upgrade")])
    assert not is_websocket_upgrade([(b"upgrade", b"websocket")])
    assert not is_websocket_upgrade([(b"upgrade", b"h2c"), (b"connection", b"upgrade")])


async def test_messages_go_both_ways_with_the_101s_headers_and_subprotocol() -> None:
    with trio.fail_after(TEST_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            port = await start(nursery)
            client = await WebSocketTestClient.connect(port, "/v1/realtime", subprotocols=["realtime", "other"])
            assert client.headers[b"x-inference-gate"] == b"hit"
            assert client.subprotocol == "realtime"
            await client.send('{"type": "a"}')
            assert await client.receive() == '{"type": "a"}'
            await client.send(b"\x00\x01")
            assert await client.receive() == b"\x00\x01"
            await client.close()
            nursery.cancel_scope.cancel()


async def test_permessage_deflate_is_agreed_when_offered() -> None:
    with trio.fail_after(TEST_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            port = await start(nursery)
            client = await WebSocketTestClient.connect(port, deflate=True)
            assert client.extensions == ["permessage-deflate"]
            text = "compressible " * 50
            await client.send(text)
            assert await client.receive() == text
            await client.close()
            nursery.cancel_scope.cancel()


async def test_bytes_sent_with_the_upgrade_request_are_the_first_message() -> None:
    with trio.fail_after(TEST_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            port = await start(nursery)
            client = await WebSocketTestClient.connect(port, first_message="early")
            assert await client.receive() == "early"
            await client.close()
            nursery.cancel_scope.cancel()


async def test_a_refusal_is_an_http_response_and_the_server_keeps_serving() -> None:
    with trio.fail_after(TEST_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            port = await start(nursery)
            try:
                await WebSocketTestClient.connect(port, "/refuse")
            except Refused as refused:
                assert (refused.status, refused.body) == (403, b"not here")
            else:
                raise AssertionError("the upgrade was accepted")
            client = await WebSocketTestClient.connect(port)
            await client.send("still")
            assert await client.receive() == "still"
            nursery.cancel_scope.cancel()


async def test_a_message_over_the_limit_closes_with_1009_and_a_reason() -> None:
    with trio.fail_after(TEST_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            port = await start(nursery)
            client = await WebSocketTestClient.connect(port, deflate=True)
            await client.send("x" * 5000)  # deflates to a few bytes: the limit holds after inflation
            assert await client.receive() is None
            assert (client.close_code, client.close_reason) == (1009, "message larger than 1000 bytes")
            nursery.cancel_scope.cancel()


async def test_a_bad_frame_closes_with_a_protocol_error_and_the_server_keeps_serving() -> None:
    with trio.fail_after(TEST_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            port = await start(nursery)
            client = await WebSocketTestClient.connect(port)
            await client.send_raw(b"\x81\x05hello")  # an unmasked text frame: clients must mask (RFC 6455 5.1)
            assert await client.receive() is None
            assert client.close_code == 1002
            assert client.close_reason
            other = await WebSocketTestClient.connect(port)
            await other.send("fine")
            assert await other.receive() == "fine"
            nursery.cancel_scope.cancel()


async def test_the_message_limit_counts_utf8_bytes() -> None:
    with trio.fail_after(TEST_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            port = await start(nursery)
            client = await WebSocketTestClient.connect(port)
            await client.send("é" * 400)  # 400 characters, 800 bytes: under the limit of 1000
            assert await client.receive() == "é" * 400
            await client.send("é" * 600)  # 600 characters, 1200 bytes: over it
            assert await client.receive() is None
            assert client.close_code == 1009
            nursery.cancel_scope.cancel()


async def test_invalid_utf8_in_a_text_frame_closes_with_1007() -> None:
    with trio.fail_after(TEST_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            port = await start(nursery)
            client = await WebSocketTestClient.connect(port)
            mask = b"\x00\x00\x00\x00"
            await client.send_raw(b"\x81" + struct.pack("B", 0x80 | 2) + mask + b"\xff\xfe")
            assert await client.receive() is None
            assert client.close_code == 1007
            nursery.cancel_scope.cancel()


async def test_messages_sent_as_one_answer_arrive_whole_and_in_order() -> None:
    with trio.fail_after(TEST_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            port = await start(nursery)
            client = await WebSocketTestClient.connect(port)
            await client.send("answer in three")
            assert [await client.receive() for _ in range(3)] == ["one", b"two", "three"]
            await client.send("answer in three")  # messages 5 to 7 of a session capped at 6: none is sent
            assert await client.receive() is None
            assert (client.close_code, client.close_reason) == (1008, "more than 6 messages in one session")
            nursery.cancel_scope.cancel()


async def test_too_many_messages_close_the_session_with_1008() -> None:
    with trio.fail_after(TEST_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            port = await start(nursery)
            client = await WebSocketTestClient.connect(port)
            replies = []
            for index in range(4):
                await client.send(str(index))
                replies.append(await client.receive())
            assert replies[:3] == ["0", "1", "2"]  # six messages both ways; the seventh closes
            assert replies[3] is None
            assert (client.close_code, client.close_reason) == (1008, "more than 6 messages in one session")
            nursery.cancel_scope.cancel()


async def test_an_idle_session_is_closed_with_1001() -> None:
    with trio.fail_after(TEST_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            port = await start(nursery, WebSocketLimits(idle_timeout_s=0.2, close_timeout_s=0.5))
            client = await WebSocketTestClient.connect(port)
            assert await client.receive() is None
            assert (client.close_code, client.close_reason) == (1001, "idle for 0.2 s")
            nursery.cancel_scope.cancel()


async def test_a_plain_request_still_goes_to_the_http_handler() -> None:
    with trio.fail_after(TEST_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            port = await start(nursery)
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(b"GET /x HTTP/1.1\r\nhost: gate\r\nconnection: close\r\n\r\n")
            received = b""
            while chunk := await stream.receive_some(65536):
                received += chunk
            assert received.endswith(b"plain /x")
            nursery.cancel_scope.cancel()


async def test_the_upstream_client_opens_a_websocket_and_moves_messages() -> None:
    with trio.fail_after(TEST_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            port = await start(nursery)
            websocket, headers, subprotocol = await connect_websocket(
                lambda: trio.open_tcp_stream("127.0.0.1", port),
                host="127.0.0.1",
                target="/v1/responses",
                headers=[(b"authorization", b"Bearer sk-test")],
                subprotocols=["realtime"],
                limits=LIMITS,
            )
            assert dict(headers)[b"x-inference-gate"] == b"hit"
            assert subprotocol == "realtime"
            await websocket.send("ping")
            assert await websocket.receive() == "ping"
            await websocket.close(1000, "done")
            nursery.cancel_scope.cancel()


async def test_an_upstream_refusal_is_a_gate_error_with_its_status() -> None:
    from inference_gate.core.errors import GateError

    with trio.fail_after(TEST_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            port = await start(nursery)
            try:
                await connect_websocket(
                    lambda: trio.open_tcp_stream("127.0.0.1", port),
                    host="127.0.0.1", target="/refuse", headers=[], subprotocols=[], limits=LIMITS,
                )
            except GateError as error:
                assert error.status == 403
                assert "not here" in error.message
            else:
                raise AssertionError("the refusal was not reported")
            nursery.cancel_scope.cancel()
