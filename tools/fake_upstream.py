"""A fake api.openai.com for the end-to-end tests, the example-cassette recorder and the benchmarks.

It speaks the wire format that the official SDK parses (see OPENAI_WIRE.md), with the habits of the real CDN
that a proxy must survive: every body is sent with chunked transfer encoding, SSE events are cut at awkward
byte offsets (inside multi-byte UTF-8 characters too), and JSON is gzipped when the client accepts it.

The replies themselves (bodies, chunks, SSE events, faults) are built by tools/fake_replies.py; this module
serves them.

Run it as a script for benchmarks and recording: `python -m tools.fake_upstream --port 9999`.
"""

from __future__ import annotations

import argparse
import itertools
import signal
import ssl
from collections.abc import Iterator
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import h11
import orjson
import trio

from tools.fake_replies import ReceivedRequest, Reply, build_reply

if TYPE_CHECKING:
    import trustme

# Varying chunk sizes, so that over a stream the cuts land everywhere: inside `data: `, between the two
# newlines that end an event, and inside multi-byte UTF-8 characters.
SSE_CHUNK_SIZES_BYTES = (7, 1, 13, 3, 5)
RECEIVE_SIZE_BYTES = 65536


def awkward_slices(event: bytes, sizes: Iterator[int]) -> Iterator[bytes]:
    """`event` cut into consecutive slices whose sizes come from `sizes`, one transfer-encoding chunk each."""
    start = 0
    while start < len(event):
        end = start + next(sizes)
        yield event[start:end]
        start = end


# --- The server ---------------------------------------------------------------------------------------


class FakeUpstream:
    """A fake OpenAI API server on trio and h11, recording every request it receives.

    `hold`, when set to an Event that is not yet set, pauses replies until it is: a streamed reply after its
    first event, any other reply before its status line. Tests use it to see live streaming and to keep a
    request in flight. `event_delay_s` is a sleep between SSE events.
    """

    def __init__(self, *, expected_api_key: str | None = None) -> None:
        self.expected_api_key = expected_api_key
        self.requests: list[ReceivedRequest] = []
        self.hold: trio.Event | None = None
        self.event_delay_s = 0.0
        self.port: int | None = None
        self._host = "127.0.0.1"
        self._ssl_context: ssl.SSLContext | None = None

    @property
    def url(self) -> str:
        """`http(s)://host:port`, without a path, once `serve` has started."""
        if self.port is None:
            raise RuntimeError("the fake upstream is not serving yet")
        scheme = "http" if self._ssl_context is None else "https"
        return f"{scheme}://{self._host}:{self.port}"

    def calls(self, path_suffix: str) -> int:
        """How many requests were received for a path ending with `path_suffix`."""
        return sum(1 for request in self.requests if request.path.endswith(path_suffix))

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ssl_context: ssl.SSLContext | None = None,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on `host:port` (port 0 picks a free one, given to `task_status`); serve until cancelled."""
        listeners = await trio.open_tcp_listeners(port, host=host)
        self._host = host
        self._ssl_context = ssl_context
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self.port)
        await trio.serve_listeners(self._serve_connection, listeners)

    async def _serve_connection(self, tcp_stream: trio.SocketStream) -> None:
        """One client connection: TLS if configured, then requests until either side closes.

        A client that goes away, fails the TLS handshake or sends broken HTTP ends its own connection only.
        """
        stream: trio.abc.Stream = tcp_stream
        if self._ssl_context is not None:
            stream = trio.SSLStream(tcp_stream, self._ssl_context, server_side=True, https_compatible=True)
        try:
            async with stream:
                if isinstance(stream, trio.SSLStream):
                    await stream.do_handshake()
                await self._serve_requests(stream)
        except (trio.BrokenResourceError, h11.RemoteProtocolError):
            return

    def build_reply(self, request: ReceivedRequest) -> Reply:
        """The whole reply to `request`; the fakes of other providers' APIs answer in their own format."""
        return build_reply(request, expected_api_key=self.expected_api_key)

    async def _serve_requests(self, stream: trio.abc.Stream) -> None:
        connection = h11.Connection(h11.SERVER)
        while True:
            request = await self._receive_request(stream, connection)
            if request is None:
                return
            self.requests.append(request)
            if connection.their_state is h11.MIGHT_SWITCH_PROTOCOL and await self.serve_upgrade(
                stream, connection, request
            ):
                return
            reply = self.build_reply(request)
            finished = await self._send_reply(stream, connection, reply)
            if not finished or connection.our_state is not h11.DONE or connection.their_state is not h11.DONE:
                return
            connection.start_next_cycle()

    async def serve_upgrade(
        self, stream: trio.abc.Stream, connection: h11.Connection, request: ReceivedRequest
    ) -> bool:
        """Take over a connection whose request asks to switch protocols; False answers it as plain HTTP instead.

        This fake speaks HTTP only; tools/fake_websocket.py overrides this to speak WebSocket.
        """
        return False

    async def _receive_request(
        self, stream: trio.abc.Stream, connection: h11.Connection
    ) -> ReceivedRequest | None:
        """The next complete request, or None when the client closed the connection between requests."""
        head: h11.Request | None = None
        body = bytearray()
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                connection.receive_data(await stream.receive_some(RECEIVE_SIZE_BYTES))
            elif isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None  # h11 emits EndOfMessage only after a Request
                headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in head.headers}
                return ReceivedRequest(
                    method=head.method.decode("ascii"),
                    target=head.target.decode("latin-1"),
                    headers=headers,
                    body=bytes(body),
                    json=_parse_json(bytes(body)),
                )
            elif isinstance(event, h11.ConnectionClosed):
                return None

    async def _send_reply(self, stream: trio.abc.Stream, connection: h11.Connection, reply: Reply) -> bool:
        """Send `reply`; False when it drops the connection on purpose."""
        await trio.sleep(reply.delay_s)
        if not reply.is_event_stream:
            await self._wait_for_hold()
        reason = HTTPStatus(reply.status).phrase.encode()
        head = h11.Response(status_code=reply.status, headers=reply.headers, reason=reason)
        await stream.send_all(connection.send(head))
        chunk_sizes = itertools.cycle(SSE_CHUNK_SIZES_BYTES)
        for index, part in enumerate(reply.parts):
            if index == reply.drop_after_parts:
                await trio.aclose_forcefully(stream)
                return False
            chunks = [part]
            if reply.is_event_stream:
                if index == 1:
                    await self._wait_for_hold()
                if index > 0:
                    await trio.sleep(self.event_delay_s)
                chunks = list(awkward_slices(part, chunk_sizes))
            # One socket write per part keeps the fake fast; the chunk framing alone is what cuts events.
            await stream.send_all(b"".join(connection.send(h11.Data(data=chunk)) for chunk in chunks))
        await stream.send_all(connection.send(h11.EndOfMessage()))
        return True

    async def _wait_for_hold(self) -> None:
        if self.hold is not None:
            await self.hold.wait()


def _parse_json(body: bytes) -> Any | None:
    if not body:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def tls_server_context(ca: trustme.CA) -> ssl.SSLContext:
    """A server-side TLS context with a certificate from `ca` for 127.0.0.1 and localhost."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


# --- Script entry point -----------------------------------------------------------------------------


async def _serve_until_signalled(upstream: FakeUpstream, host: str, port: int) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(upstream.serve, host, port)
            print(upstream.url, flush=True)
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve a fake OpenAI API until SIGINT or SIGTERM.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--expected-api-key", default=None, help="answer 401 to any other Bearer key")
    arguments = parser.parse_args()
    upstream = FakeUpstream(expected_api_key=arguments.expected_api_key)
    trio.run(_serve_until_signalled, upstream, arguments.host, arguments.port)


if __name__ == "__main__":
    main()
