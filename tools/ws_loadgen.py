"""A WebSocket session load generator and client on trio + wsproto, for the benchmark.

A session is a script: open the connection (the HTTP upgrade), then for each turn send the client's message, if
it has one, and read the server's messages up to the one whose `type` ends the turn; then close with 1000 and
wait for the server's close. Each connection plays the script again and again, each time on a new connection,
until the run's time is up, so a run measures whole sessions: handshake, frames and close. A session's latency
runs from before its connection opens to after the close handshake.

    python -m tools.ws_loadgen ws://127.0.0.1:8080/v1/responses --script session.json --connections 8 \\
        --duration-s 5

`session.json` is `SessionScript.to_json()`. The client offers no extension, as the official SDK by default.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Ping, RejectConnection, Request, TextMessage

RECEIVE_BUFFER_BYTES = 64 * 1024
RUN_GRACE_S = 30.0  # how long past its duration the command-line run may take before it is called hung


class SessionFailed(Exception):
    """A session that did not go as its script says: refused, closed early, or a message that is not JSON."""


@dataclass(frozen=True, slots=True)
class ScriptTurn:
    """One turn: what the client sends (None: nothing, the server speaks first) and the `type` of the server's
    message that ends its answer."""

    client: str | None
    ends_with: str


@dataclass(frozen=True, slots=True)
class SessionScript:
    target: str
    headers: list[tuple[str, str]]
    turns: list[ScriptTurn]

    def to_json(self) -> bytes:
        turns = [{"client": turn.client, "ends_with": turn.ends_with} for turn in self.turns]
        return orjson.dumps({"target": self.target, "headers": self.headers, "turns": turns})

    @classmethod
    def from_json(cls, data: bytes) -> SessionScript:
        stored = orjson.loads(data)
        turns = [ScriptTurn(turn["client"], turn["ends_with"]) for turn in stored["turns"]]
        return cls(stored["target"], [tuple(header) for header in stored["headers"]], turns)


@dataclass(slots=True)
class SessionLoadResult:
    """Whole sessions and the server messages they received, over `duration_s`."""

    duration_s: float
    sessions: int = 0
    messages: int = 0
    failed: int = 0
    latencies_s: list[float] = field(default_factory=list)

    @property
    def sessions_per_s(self) -> float:
        return self.sessions / self.duration_s

    @property
    def messages_per_s(self) -> float:
        return self.messages / self.duration_s

    def percentile_ms(self, fraction: float) -> float:
        ordered = sorted(self.latencies_s)
        if not ordered:
            return math.nan
        return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)] * 1000

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "sessions_per_s": self.sessions_per_s,
                "messages_per_s": self.messages_per_s,
                "sessions": self.sessions,
                "messages": self.messages,
                "failed": self.failed,
                "p50_ms": self.percentile_ms(0.5),
                "p99_ms": self.percentile_ms(0.99),
            }
        )


class _Client:
    """One WebSocket connection: wsproto's client over a trio stream."""

    def __init__(self, stream: trio.SocketStream, host: str) -> None:
        self._stream = stream
        self._host = host
        self._connection = WSConnection(ConnectionType.CLIENT)
        self._pending: list[object] = []

    async def open(self, target: str, headers: list[tuple[str, str]]) -> None:
        extra = [(name.encode(), value.encode()) for name, value in headers]
        await self._send(Request(host=self._host, target=target, extra_headers=extra))
        event = await self._next_event()
        if isinstance(event, RejectConnection):
            raise SessionFailed(f"the upgrade was refused with {event.status_code}")
        if not isinstance(event, AcceptConnection):
            raise SessionFailed(f"expected the upgrade's answer, got {event!r}")

    async def receive_message(self) -> str:
        """The next whole text message; pings are answered on the way."""
        parts: list[str] = []
        while True:
            event = await self._next_event()
            if isinstance(event, TextMessage):
                parts.append(event.data)
                if event.message_finished:
                    return "".join(parts)
            elif isinstance(event, Ping):
                await self._send(event.response())
            elif isinstance(event, CloseConnection):
                raise SessionFailed(f"the server closed the session early: {event.code} {event.reason}")

    async def send_message(self, text: str) -> None:
        await self._send(TextMessage(data=text))

    async def close(self) -> None:
        """Close with 1000 and wait for the server's close frame."""
        await self._send(CloseConnection(code=1000))
        while not isinstance(await self._next_event(), CloseConnection):
            pass

    async def _send(self, event: object) -> None:
        await self._stream.send_all(self._connection.send(event))

    async def _next_event(self) -> object:
        while not self._pending:
            data = await self._stream.receive_some(RECEIVE_BUFFER_BYTES)
            if not data:
                raise SessionFailed("the server dropped the connection")
            self._connection.receive_data(data)
            self._pending.extend(self._connection.events())
        return self._pending.pop(0)


async def play_session(host: str, port: int, script: SessionScript) -> list[str]:
    """Play `script` once on a new connection; every server message received, in order."""
    received: list[str] = []
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        client = _Client(stream, f"{host}:{port}")
        await client.open(script.target, script.headers)
        for turn in script.turns:
            if turn.client is not None:
                await client.send_message(turn.client)
            while True:
                message = await client.receive_message()
                received.append(message)
                # Only a message that names the type can be the one; the others are not parsed, to spare the client.
                if turn.ends_with in message and _message_type(message) == turn.ends_with:
                    break
        await client.close()
    return received


def _message_type(message: str) -> object:
    try:
        return orjson.loads(message).get("type")
    except (orjson.JSONDecodeError, AttributeError):
        raise SessionFailed(f"a server message is not a JSON object: {message[:80]!r}") from None


async def run_session_load(
    host: str, port: int, script: SessionScript, *, connections: int, duration_s: float
) -> SessionLoadResult:
    """`connections` clients each playing `script` back to back for `duration_s`; a failed session counts as
    failed and its client goes on with the next."""
    result = SessionLoadResult(duration_s=duration_s)
    deadline = trio.current_time() + duration_s

    async def one_client() -> None:
        while trio.current_time() < deadline:
            started = time.perf_counter()
            try:
                messages = await play_session(host, port, script)
            except (SessionFailed, OSError, trio.BrokenResourceError):
                result.failed += 1
                continue
            result.sessions += 1
            result.messages += len(messages)
            result.latencies_s.append(time.perf_counter() - started)

    async with trio.open_nursery() as nursery:
        for _ in range(connections):
            nursery.start_soon(one_client)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description="Play a WebSocket session script under load; print JSON figures.")
    parser.add_argument("url", help="ws://host:port (the script gives the path)")
    parser.add_argument("--script", type=Path, required=True, help="a SessionScript as JSON")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration-s", type=float, default=5.0)
    arguments = parser.parse_args()
    parts = urlsplit(arguments.url)
    script = SessionScript.from_json(arguments.script.read_bytes())

    async def bounded() -> SessionLoadResult:
        with trio.fail_after(arguments.duration_s + RUN_GRACE_S):
            return await run_session_load(
                parts.hostname, parts.port, script, connections=arguments.connections, duration_s=arguments.duration_s
            )

    print(trio.run(bounded).to_json().decode())


if __name__ == "__main__":
    main()
