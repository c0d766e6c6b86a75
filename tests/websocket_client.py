"""A small wsproto WebSocket client for tests: connect, send and receive whole messages, see how it closed."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.extensions import PerMessageDeflate


class Refused(Exception):
    def __init__(self, status: int, headers: dict[bytes, bytes], body: bytes) -> None:
        super().__init__(f"refused with {status}: {body!r}")
        self.status = status
        self.headers = headers
        self.body = body


@dataclass
class WebSocketTestClient:
    stream: trio.SocketStream
    protocol: WSConnection
    headers: dict[bytes, bytes]
    subprotocol: str | None
    extensions: list[str]
    close_code: int | None = None
    close_reason: str | None = None
    _parts: list[str | bytes] = field(default_factory=list)

    @classmethod
    async def connect(
        cls,
        port: int,
        target: str = "/",
        *,
        headers: list[tuple[bytes, bytes]] | None = None,
        subprotocols: list[str] | None = None,
        deflate: bool = False,
        first_message: str | None = None,
    ) -> WebSocketTestClient:
        """Open a WebSocket to 127.0.0.1:`port`; `first_message` goes out in the same write as the upgrade."""
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        protocol = WSConnection(ConnectionType.CLIENT)
        request = Request(
            host="gate",
            target=target,
            extra_headers=headers or [],
            subprotocols=subprotocols or [],
            extensions=[PerMessageDeflate()] if deflate else [],
        )
        data = protocol.send(request)
        if first_message is not None:
            # Framed by a second client that already believes the upgrade was accepted; masking is per frame.
            data += Connection(ConnectionType.CLIENT).send(TextMessage(data=first_message))
        await stream.send_all(data)
        status, reject_headers, body = 0, {}, b""
        while True:
            received = await stream.receive_some(65536)
            protocol.receive_data(received or None)
            for event in protocol.events():
                if isinstance(event, AcceptConnection):
                    extensions = [extension.name for extension in event.extensions]
                    return cls(stream, protocol, dict(event.extra_headers), event.subprotocol, extensions)
                if isinstance(event, RejectConnection):
                    status, reject_headers = event.status_code, dict(event.headers)
                    if not event.has_body:
                        raise Refused(status, reject_headers, b"")
                if isinstance(event, RejectData):
                    body += event.data
                    if event.body_finished:
                        raise Refused(status, reject_headers, body)
            if not received:
                raise Refused(status, reject_headers, body)

    async def send(self, message: str | bytes) -> None:
        await self.stream.send_all(self.protocol.send(_message(message)))

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def receive(self) -> str | bytes | None:
        """The next whole message, or None once the server has closed (then `close_code` says how)."""
        while True:
            for event in self.protocol.events():
                if isinstance(event, Message):
                    self._parts.append(event.data)
                    if event.message_finished:
                        parts, self._parts = self._parts, []
                        return "".join(parts) if isinstance(parts[0], str) else b"".join(parts)
                elif isinstance(event, Ping):
                    await self.stream.send_all(self.protocol.send(event.response()))
                elif isinstance(event, CloseConnection):
                    self.close_code, self.close_reason = event.code, event.reason
                    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                        await self.stream.send_all(self.protocol.send(event.response()))
                    return None
            try:
                data = await self.stream.receive_some(65536)
            except trio.BrokenResourceError:
                data = b""
            if not data:
                self.close_code = self.close_code or 1006
                return None
            self.protocol.receive_data(data)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close, and wait for the server's answer."""
        await self.stream.send_all(self.protocol.send(CloseConnection(code=code, reason=reason)))
        while True:
            try:
                data = await self.stream.receive_some(65536)
            except trio.BrokenResourceError:
                break
            if not data:
                break
            self.protocol.receive_data(data)
            if any(isinstance(event, CloseConnection) for event in self.protocol.events()):
                break
        await self.stream.aclose()


def _message(message: str | bytes) -> Message:
    return TextMessage(data=message) if isinstance(message, str) else BytesMessage(data=message)
