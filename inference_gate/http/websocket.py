"""WebSocket I/O: the upgrade h11 has parsed, the frames wsproto parses, and the limits on both.

This is the I/O shell for WebSockets and holds no cache logic. The server's h11 connection parses the upgrade
request like any other and sends the `101` (`accept_upgrade`); whatever the client sent after its request is
h11's trailing data, which becomes the first bytes of a wsproto connection. From then on a `WebSocket` moves
whole messages: it reassembles fragments, answers pings, enforces the limits, and turns a bad frame into a close
with wsproto's code and reason, never a traceback. The upstream side (`connect_websocket`) is a wsproto client
over a stream the HTTP upstream pool opens, so TLS, timeouts and error messages are the same as for HTTP.

permessage-deflate (RFC 7692) is accepted when the client offers it, as Node's `ws` client does by default, and
offered upstream. Deflate can inflate a frame about a thousandfold, so the message limit is checked after
inflation, as each piece arrives: memory is bounded by one receive buffer inflated, plus the limit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import h11
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection, ConnectionState
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
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.frame_protocol import CloseReason
from wsproto.handshake import server_extensions_handshake
from wsproto.utilities import LocalProtocolError, generate_accept_token, split_comma_header

from inference_gate.core.errors import GateError
from inference_gate.core.http_models import Headers

RECEIVE_BUFFER_BYTES = 64 * 1024

# RFC 6455 section 5.5: a control frame's payload, and so a close reason with its two-byte code, fits 125 bytes.
MAX_CLOSE_REASON_BYTES = 123

# Close codes (RFC 6455 section 7.4.1) the gate sends of its own accord.
CLOSE_NORMAL = CloseReason.NORMAL_CLOSURE
CLOSE_GOING_AWAY = CloseReason.GOING_AWAY
CLOSE_POLICY_VIOLATION = CloseReason.POLICY_VIOLATION
CLOSE_MESSAGE_TOO_BIG = CloseReason.MESSAGE_TOO_BIG
CLOSE_INTERNAL_ERROR = CloseReason.INTERNAL_ERROR
CLOSE_TRY_AGAIN_LATER = CloseReason.TRY_AGAIN_LATER
# No close frame arrived: the connection dropped (RFC 6455 section 7.1.5). Never sent, only reported.
CLOSE_ABNORMAL = CloseReason.ABNORMAL_CLOSURE


@dataclass(frozen=True, slots=True)
class WebSocketLimits:
    """What one WebSocket session may cost the gate."""

    max_message_bytes: int = 16 * 1024 * 1024  # one message, after reassembly and inflation
    idle_timeout_s: float = 300.0  # no message either way for this long closes the session
    max_messages: int = 100_000  # both directions together, per session
    close_timeout_s: float = 5.0  # how long to wait for the peer's answer to our close frame
    send_timeout_s: float = 30.0  # a peer not taking a message for this long has stopped reading


class WebSocketClosed(Exception):
    """The session is over: the peer closed it, the connection dropped, or a limit closed it.

    `code` and `reason` are what ended it (1006 when the connection dropped without a close frame); `by_peer`
    tells a close the other side asked for from one this side sent.
    """

    def __init__(self, code: int, reason: str, *, by_peer: bool) -> None:
        super().__init__(f"WebSocket closed with {code}: {reason}" if reason else f"WebSocket closed with {code}")
        self.code = code
        self.reason = reason
        self.by_peer = by_peer


def is_websocket_upgrade(headers: Headers) -> bool:
    """Whether a request asks to become a WebSocket: `Upgrade: websocket` with `Connection: upgrade`."""
    upgrade = connection = False
    for name, value in headers:
        if name == b"upgrade":
            upgrade = upgrade or b"websocket" in _tokens(value)
        elif name == b"connection":
            connection = connection or b"upgrade" in _tokens(value)
    return upgrade and connection


def offered_subprotocols(headers: Headers) -> list[str]:
    """The subprotocols a client offers, in its order of preference (`Sec-WebSocket-Protocol`)."""
    return [
        protocol
        for name, value in headers
        if name == b"sec-websocket-protocol"
        for protocol in split_comma_header(value)
    ]


class WebSocketUpgrade:
    """A WebSocket upgrade request the server has read, waiting for its handler to accept it (or not).

    The handler either calls `accept`, which sends the `101` and gives it the `WebSocket`, or returns an HTTP
    response, which the server sends instead (a refusal).
    """

    def __init__(self, stream: trio.abc.Stream, protocol: h11.Connection, limits: WebSocketLimits) -> None:
        self._stream = stream
        self._protocol = protocol
        self.limits = limits
        self.websocket: WebSocket | None = None

    async def accept(
        self, request_headers: Headers, *, subprotocol: str | None = None, extra_headers: Headers = ()
    ) -> WebSocket:
        """Send the `101` (with `extra_headers`) and return the open WebSocket."""
        head, protocol = accept_upgrade(
            self._protocol, request_headers, subprotocol=subprotocol, extra_headers=list(extra_headers)
        )
        websocket = WebSocket(self._stream, protocol, self.limits)
        await websocket.send_raw(head)
        self.websocket = websocket
        return websocket


def accept_upgrade(
    protocol: h11.Connection, request_headers: Headers, *, subprotocol: str | None, extra_headers: Headers
) -> tuple[bytes, Connection]:
    """The `101` that accepts a WebSocket upgrade h11 has parsed, and the wsproto connection that follows it.

    `protocol` must have received the whole request (h11 is then paused, waiting to switch protocols). The
    `101` carries the accept token, the agreed extensions, `subprotocol` when one was chosen, and
    `extra_headers` (the gate's outcome). Raises GateError(400) for a request without a usable key or version.
    """
    fields = {name: value for name, value in request_headers}
    key = fields.get(b"sec-websocket-key")
    if not key:
        raise GateError(400, "The WebSocket upgrade has no Sec-WebSocket-Key header.", code="bad_websocket_upgrade")
    if fields.get(b"sec-websocket-version") != b"13":
        raise GateError(
            426, "The gate speaks WebSocket version 13 only (Sec-WebSocket-Version: 13).", code="bad_websocket_upgrade"
        )
    extension = PerMessageDeflate()
    offers = [
        offer
        for name, value in request_headers
        if name == b"sec-websocket-extensions"
        for offer in split_comma_header(value)
    ]
    agreed = server_extensions_handshake(offers, [extension])
    headers: Headers = [
        (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"),
        (b"sec-websocket-accept", generate_accept_token(key)),
    ]
    if agreed is not None:
        headers.append((b"sec-websocket-extensions", agreed))
    if subprotocol is not None:
        headers.append((b"sec-websocket-protocol", subprotocol.encode("ascii")))
    headers += extra_headers
    head = protocol.send(h11.InformationalResponse(status_code=101, headers=headers))
    trailing, _closed = protocol.trailing_data
    extensions: list[Extension] = [extension] if agreed is not None else []
    return head, Connection(ConnectionType.SERVER, extensions=extensions, trailing_data=bytes(trailing))


class WebSocket:
    """One open WebSocket: whole messages in and out over a trio stream, within `WebSocketLimits`.

    One task receives; any number of tasks may send (a lock keeps their frames whole). Every message either way
    counts towards the session's cap and resets its idle clock. Any end of the session, by the peer, by a
    dropped connection, by a bad frame or by a limit, surfaces as `WebSocketClosed` from `receive` (and from
    `send` once the session is over).
    """

    def __init__(self, stream: trio.abc.Stream, protocol: Connection, limits: WebSocketLimits) -> None:
        self._stream = stream
        self._protocol = protocol
        self._limits = limits
        self._send_lock = trio.Lock()
        self._messages = 0
        self._idle_deadline = trio.current_time() + limits.idle_timeout_s
        self._peer_close_code: int = CLOSE_NORMAL
        self._reading: trio.CancelScope | None = None  # the read in progress, whose deadline activity moves
        self.closed: WebSocketClosed | None = None

    @property
    def limits(self) -> WebSocketLimits:
        return self._limits

    async def drop(self) -> None:
        """End the session without a close frame, as a dropped connection does (an injected fault)."""
        self.closed = self.closed or WebSocketClosed(CLOSE_ABNORMAL, "dropped on purpose", by_peer=False)
        await trio.aclose_forcefully(self._stream)

    @property
    def messages(self) -> int:
        """Messages moved so far, both directions."""
        return self._messages

    async def receive(self) -> str | bytes:
        """The peer's next whole message; raises `WebSocketClosed` when the session is over."""
        parts: list[str | bytes] = []
        size = 0
        while True:
            event = await self._next_event()
            if isinstance(event, Message):
                parts.append(event.data)
                size += len(event.data) if isinstance(event.data, bytes) else len(event.data.encode("utf-8"))
                if size > self._limits.max_message_bytes:
                    limit = self._limits.max_message_bytes
                    await self.close(CLOSE_MESSAGE_TOO_BIG, f"message larger than {limit} bytes")
                    raise self._closed_error()
                if event.message_finished:
                    await self._count_message()
                    if isinstance(event, TextMessage):
                        return "".join(parts)  # type: ignore[arg-type]
                    return b"".join(parts)  # type: ignore[arg-type]
            elif isinstance(event, Ping):
                await self._send_frame(event.response())
            elif isinstance(event, CloseConnection):
                if self._protocol.state is ConnectionState.REMOTE_CLOSING:
                    # The peer's close: answered by `close`, so that its owner can finish first (write a cassette).
                    self.closed = WebSocketClosed(event.code, event.reason or "", by_peer=True)
                    self._peer_close_code = event.code
                    raise self.closed
                await self._answer_bad_frame(event)
                raise self._closed_error()

    async def send(self, message: str | bytes) -> None:
        """Send one whole message; raises `WebSocketClosed` if the session is already over."""
        await self.send_messages([message])

    async def send_messages(self, messages: Sequence[str | bytes]) -> None:
        """Send whole messages in one write, as one answer: a replayed answer then costs one system call, not one
        per message (the bench's row (m) reads the difference). Raises `WebSocketClosed` if the session is over,
        or if the cap on messages closes it, before any of them is sent."""
        if not messages:
            return
        for _ in messages:
            await self._count_message()
        events = [TextMessage(data=m) if isinstance(m, str) else BytesMessage(data=m) for m in messages]
        async with self._send_lock:
            try:
                data = b"".join(self._protocol.send(event) for event in events)
            except LocalProtocolError:
                raise self._closed_error() from None
            await self._send_within_timeout(data)

    async def close(self, code: int, reason: str) -> None:
        """Close the session with `code` and `reason` (cut to fit a close frame), waiting briefly for the peer's
        answer; then the stream is closed. After the peer's own close, this answers it (echoing its code), which
        completes the close handshake. Closing a session that is over does nothing."""
        if self._protocol.state is ConnectionState.REMOTE_CLOSING:
            with contextlib.suppress(WebSocketClosed):
                await self._send_frame(CloseConnection(code=self._peer_close_code))
            await trio.aclose_forcefully(self._stream)
            return
        if self.closed is not None:
            return
        self.closed = WebSocketClosed(code, _fit_close_reason(reason), by_peer=False)
        if self._protocol.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            with contextlib.suppress(WebSocketClosed):
                await self._send_frame(CloseConnection(code=code, reason=self.closed.reason))
        if self._protocol.state is ConnectionState.LOCAL_CLOSING:
            with trio.move_on_after(self._limits.close_timeout_s):
                await self._drain_until_closed()
        await trio.aclose_forcefully(self._stream)

    async def send_raw(self, data: bytes) -> None:
        """Send bytes that are not a frame: the `101` that opens the session."""
        async with self._send_lock:
            await self._send_within_timeout(data)

    async def _count_message(self) -> None:
        """Count a message against the cap, and as activity against the idle clock; the message over the cap
        closes the session instead."""
        if self.closed is not None:
            raise self.closed
        self._messages += 1
        self._idle_deadline = trio.current_time() + self._limits.idle_timeout_s
        if self._reading is not None:
            self._reading.deadline = self._idle_deadline
        if self._messages > self._limits.max_messages:
            await self.close(CLOSE_POLICY_VIOLATION, f"more than {self._limits.max_messages} messages in one session")
            raise self._closed_error()

    async def _next_event(self) -> object:
        """wsproto's next event, reading as needed; an idle session or a dropped connection ends the session."""
        while True:
            if self.closed is not None:
                raise self.closed
            event = next(self._protocol.events(), None)
            if event is not None:
                return event
            with trio.CancelScope(deadline=self._idle_deadline) as self._reading:
                try:
                    data = await self._stream.receive_some(RECEIVE_BUFFER_BYTES)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
            idle = self._reading.cancelled_caught
            self._reading = None
            if idle:
                await self.close(CLOSE_GOING_AWAY, f"idle for {self._limits.idle_timeout_s} s")
                raise self._closed_error()
            if not data:
                self.closed = WebSocketClosed(CLOSE_ABNORMAL, "the connection dropped without a close", by_peer=True)
                await trio.aclose_forcefully(self._stream)
                raise self.closed
            self._protocol.receive_data(data)

    async def _answer_bad_frame(self, event: CloseConnection) -> None:
        """Close after a bad frame, which wsproto reports as a close of its own: with its code and reason (1002
        protocol error, 1007 bad UTF-8, ...)."""
        if self.closed is None:
            self.closed = WebSocketClosed(event.code, _fit_close_reason(event.reason or ""), by_peer=False)
        with contextlib.suppress(WebSocketClosed):
            await self._send_frame(CloseConnection(code=event.code, reason=self.closed.reason))
        await trio.aclose_forcefully(self._stream)

    async def _drain_until_closed(self) -> None:
        """Read until the peer answers our close frame, or goes away."""
        while self._protocol.state is not ConnectionState.CLOSED:
            try:
                data = await self._stream.receive_some(RECEIVE_BUFFER_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            if not data:
                return
            self._protocol.receive_data(data)
            for _event in self._protocol.events():
                pass

    async def _send_frame(self, event: object) -> None:
        async with self._send_lock:
            try:
                data = self._protocol.send(event)  # type: ignore[arg-type]
            except LocalProtocolError:
                raise self._closed_error() from None
            await self._send_within_timeout(data)

    async def _send_within_timeout(self, data: bytes) -> None:
        try:
            with trio.fail_after(self._limits.send_timeout_s):
                await self._stream.send_all(data)
        except trio.TooSlowError:
            self.closed = self.closed or WebSocketClosed(CLOSE_ABNORMAL, "the peer stopped reading", by_peer=False)
            await trio.aclose_forcefully(self._stream)
            raise self.closed from None
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.closed = self.closed or WebSocketClosed(CLOSE_ABNORMAL, "the connection dropped", by_peer=True)
            raise self.closed from None

    def _closed_error(self) -> WebSocketClosed:
        if self.closed is None:
            self.closed = WebSocketClosed(CLOSE_ABNORMAL, "the connection dropped", by_peer=True)
        return self.closed


async def connect_websocket(
    open_stream: Callable[[], Awaitable[trio.abc.Stream]],
    *,
    host: str,
    target: str,
    headers: Headers,
    subprotocols: list[str],
    limits: WebSocketLimits,
) -> tuple[WebSocket, Headers, str | None]:
    """Open a WebSocket to the upstream: its `101` headers and the subprotocol it chose come back with it.

    `open_stream` opens the TCP or TLS stream (the HTTP upstream pool's, so connection errors read the same).
    A refusal (any status but 101) becomes a GateError carrying the upstream's status and body.
    """
    stream = await open_stream()
    try:
        client = WSConnection(ConnectionType.CLIENT)
        request = Request(
            host=host,
            target=target,
            extensions=[PerMessageDeflate()],
            extra_headers=list(headers),
            subprotocols=subprotocols,
        )
        await stream.send_all(client.send(request))
        accepted = await _handshake_answer(stream, client)
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    protocol = client.connection
    if protocol is None:  # wsproto gives the connection once the handshake is accepted
        raise RuntimeError("the WebSocket handshake was accepted without a connection")
    websocket = WebSocket(stream, protocol, limits)
    return websocket, list(accepted.extra_headers), accepted.subprotocol


async def _handshake_answer(stream: trio.abc.Stream, client: WSConnection) -> AcceptConnection:
    status = 0
    body: list[bytes] = []
    while True:
        data = await stream.receive_some(RECEIVE_BUFFER_BYTES)
        client.receive_data(data or None)
        for event in client.events():
            if isinstance(event, AcceptConnection):
                return event
            if isinstance(event, RejectConnection):
                status = event.status_code
                if not event.has_body:
                    raise _refused(status, b"")
            elif isinstance(event, RejectData):
                body.append(event.data)
                if event.body_finished:
                    raise _refused(status, b"".join(body))
            elif isinstance(event, CloseConnection):
                raise GateError(502, "the upstream closed the connection during the WebSocket handshake",
                                code="upstream_disconnected")
        if not data:
            raise GateError(502, "the upstream closed the connection during the WebSocket handshake",
                            code="upstream_disconnected")


def _refused(status: int, body: bytes) -> GateError:
    detail = body.decode("utf-8", "replace")[:500]
    return GateError(status or 502, f"the upstream refused the WebSocket upgrade with {status}: {detail}",
                     code="upstream_websocket_refused")


def _fit_close_reason(reason: str) -> str:
    """`reason` cut, on a character boundary, to what a close frame can carry."""
    encoded = reason.encode("utf-8")[:MAX_CLOSE_REASON_BYTES]
    return encoded.decode("utf-8", "ignore")


def _tokens(value: bytes) -> list[bytes]:
    return [token.strip().lower() for token in value.split(b",")]
