"""A bare trio + h11 server that answers every request with one canned response: the bench's reference for what
any trio + h11 server pays per request.

It does what such a server must do and nothing more: read each request in full, then have h11 frame the response
(head, body and end of message, sent in one write) and go on with the next request on the same connection. The
canned response is taken from a real gate response, so both servers put the same bytes on the wire, and the
difference between them is the gate's own work. It is a reference, not a ceiling: it frames its reply with h11
on every request, as a server handed a fresh response must, while the gate frames a replayed answer once and
sends the same bytes again; on a chunked stream, where framing costs most, the gate is the faster of the two.

    python -m tools.baseline_server reply.json --port 0      # prints http://127.0.0.1:PORT

`reply.json` is `CannedReply.to_json()`. Its headers are sent as given, framing included: with
`transfer-encoding: chunked` the body goes out as one chunk, as the gate sends a replayed stream; with
`content-length` it goes out whole.
"""

from __future__ import annotations

import argparse
import base64
import functools
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import h11
import orjson
import trio

RECEIVE_BUFFER_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class CannedReply:
    """A complete response: status, headers exactly as on the wire (framing included), and the whole body."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "status": self.status,
                "headers": [[name.decode("latin-1"), value.decode("latin-1")] for name, value in self.headers],
                "body_base64": base64.b64encode(self.body).decode("ascii"),
            }
        )

    @classmethod
    def from_json(cls, data: bytes) -> CannedReply:
        stored = orjson.loads(data)
        return cls(
            status=stored["status"],
            headers=[(name.encode("latin-1"), value.encode("latin-1")) for name, value in stored["headers"]],
            body=base64.b64decode(stored["body_base64"]),
        )


async def serve_canned(
    reply: CannedReply,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Answer every request on `host:port` with `reply` until cancelled; reports the bound port."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(functools.partial(_serve_connection, reply), listeners)


async def _serve_connection(reply: CannedReply, stream: trio.SocketStream) -> None:
    """Requests in, `reply` out, until the client closes; a broken client ends its own connection only."""
    connection = h11.Connection(h11.SERVER)
    head = h11.Response(status_code=reply.status, headers=reply.headers)
    try:
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                connection.receive_data(await stream.receive_some(RECEIVE_BUFFER_BYTES))
            elif type(event) is h11.EndOfMessage:
                await stream.send_all(
                    connection.send(head)
                    + connection.send(h11.Data(data=reply.body))
                    + connection.send(h11.EndOfMessage())
                )
                if connection.our_state is not h11.DONE or connection.their_state is not h11.DONE:
                    return
                connection.start_next_cycle()
            elif type(event) is h11.ConnectionClosed:
                return
    except (trio.BrokenResourceError, h11.ProtocolError):
        return
    finally:
        await trio.aclose_forcefully(stream)


async def serve_until_signalled(serve: Callable[..., Awaitable[None]], host: str) -> None:
    """Run `serve` (started with a `task_status` that reports the bound port) until SIGINT or SIGTERM, after
    printing the URL the bench reads its port from."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            bound_port = await nursery.start(serve)
            print(f"http://{host}:{bound_port}", flush=True)
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break


def main() -> None:
    parser = argparse.ArgumentParser(description="Answer every HTTP request with one canned response.")
    parser.add_argument("reply_file", type=Path, help="a CannedReply as JSON")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    arguments = parser.parse_args()
    reply = CannedReply.from_json(arguments.reply_file.read_bytes())
    serve = functools.partial(serve_canned, reply, arguments.host, arguments.port)
    trio.run(serve_until_signalled, serve, arguments.host)


if __name__ == "__main__":
    main()
