"""The ceiling of our stack for WebSockets: a minimal trio + wsproto server that plays one canned session.

The benchmark measures the gate's WebSocket replay against it. It does what any trio + wsproto server must do
and nothing more: accept the upgrade (wsproto's handshake, which h11 parses), send the session's opening
messages, answer each client message with the next turn's canned messages, whatever the client said, and answer
the client's close. The canned messages are those the gate sent in a replay, so both servers put the same
messages on the wire, and the difference between them is what the gate's own work costs (finding the
recording, following the client, the outcome header).

    python -m tools.baseline_ws_server session.json --port 0      # prints http://127.0.0.1:PORT

`session.json` is `CannedSession.to_json()`.
"""

from __future__ import annotations

import argparse
import functools
from dataclasses import dataclass
from pathlib import Path

import orjson
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Ping, Request, TextMessage
from wsproto.utilities import ProtocolError

from tools.baseline_server import serve_until_signalled

RECEIVE_BUFFER_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class CannedSession:
    """What the server sends: `opening` as the connection opens, then `answers[n]` after the n-th client message
    (nothing once they run out)."""

    opening: list[str]
    answers: list[list[str]]

    def to_json(self) -> bytes:
        return orjson.dumps({"opening": self.opening, "answers": self.answers})

    @classmethod
    def from_json(cls, data: bytes) -> CannedSession:
        stored = orjson.loads(data)
        return cls(stored["opening"], stored["answers"])


async def serve_canned_session(
    session: CannedSession,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Play `session` to every connection on `host:port` until cancelled; reports the bound port."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(functools.partial(_serve_connection, session), listeners)


async def _serve_connection(session: CannedSession, stream: trio.SocketStream) -> None:
    """One session; a broken client ends its own connection only."""
    connection = WSConnection(ConnectionType.SERVER)
    answered = 0
    try:
        while True:
            data = await stream.receive_some(RECEIVE_BUFFER_BYTES)
            connection.receive_data(data or None)
            for event in connection.events():
                if isinstance(event, Request):
                    out = connection.send(AcceptConnection())
                    out += b"".join(connection.send(TextMessage(data=message)) for message in session.opening)
                    await stream.send_all(out)
                elif isinstance(event, TextMessage) and event.message_finished:
                    turn = session.answers[answered] if answered < len(session.answers) else []
                    answered += 1
                    await stream.send_all(b"".join(connection.send(TextMessage(data=message)) for message in turn))
                elif isinstance(event, Ping):
                    await stream.send_all(connection.send(event.response()))
                elif isinstance(event, CloseConnection):
                    if data:
                        await stream.send_all(connection.send(event.response()))
                    return
            if not data:
                return
    except (trio.BrokenResourceError, ProtocolError):
        return
    finally:
        await trio.aclose_forcefully(stream)


def main() -> None:
    parser = argparse.ArgumentParser(description="Play one canned WebSocket session to every connection.")
    parser.add_argument("session_file", type=Path, help="a CannedSession as JSON")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    arguments = parser.parse_args()
    session = CannedSession.from_json(arguments.session_file.read_bytes())
    serve = functools.partial(serve_canned_session, session, arguments.host, arguments.port)
    trio.run(serve_until_signalled, serve, arguments.host)


if __name__ == "__main__":
    main()
