"""The upstream client: HTTP/1.1 driven by h11 over trio TCP or TLS streams, with a keep-alive pool.

Only the gate's misses come here, but a recording session can send many in a row, so connections are kept
alive and reused: a TLS handshake costs far more than the gate's whole record path is allowed to add.

Every failure becomes a `GateError` whose message names the upstream and says what went wrong, because the
person reading it is usually debugging their network, proxy or certificate setup, not the gate.
"""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import h11
import trio

from inference_gate.core.content_coding import inflater_for
from inference_gate.core.errors import GateError
from inference_gate.core.http_models import Headers
from inference_gate.core.upstream_url import UpstreamURL
from inference_gate.http.descriptors import retrying_without_descriptors

RECEIVE_BUFFER_BYTES = 64 * 1024

# The pool frames every request itself; a caller's copy of these would contradict it.
_HEADERS_SET_BY_POOL = frozenset({b"host", b"content-length", b"transfer-encoding"})


class UpstreamResponse:
    """A response whose head has arrived; the body is read, once, through `body_chunks`."""

    __slots__ = ("_connection", "_read_timeout_s", "headers", "status")

    def __init__(self, head: h11.Response, connection: _Connection, *, read_timeout_s: float) -> None:
        self.status: int = head.status_code
        self.headers: Headers = list(head.headers)
        self._connection = connection
        self._read_timeout_s = read_timeout_s

    async def body_chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, deframed, and decoded when it is gzip or deflate.

        Raises `GateError(502, code="upstream_disconnected")` if the connection drops before the body is
        complete, so that nobody mistakes a truncated body for a whole one.
        """
        connection = self._connection
        inflater = inflater_for(self.headers, connection.url.origin)
        while True:
            with _read_timeout(connection.url, self._read_timeout_s):
                event = await connection.next_event()
            if isinstance(event, h11.Data):
                if inflater is None:
                    yield bytes(event.data)
                elif chunk := inflater.decode(event.data):
                    yield chunk
            elif isinstance(event, h11.EndOfMessage):
                if inflater is not None and (tail := inflater.finish()):
                    yield tail
                return


class UpstreamPool:
    """Keep-alive connections to one upstream, and the one way to send it a request."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout_s: float,
        read_timeout_s: float,
        ssl_context: ssl.SSLContext | None = None,
        max_idle_connections: int = 32,
    ) -> None:
        self.url = UpstreamURL.parse(base_url)
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        # The default context reads SSL_CERT_FILE / SSL_CERT_DIR, which is how users behind a corporate
        # proxy or with a private CA make verification pass. Verification is never switched off.
        self._ssl_context = None
        if self.url.scheme == "https":
            self._ssl_context = ssl_context or ssl.create_default_context()
        self._max_idle_connections = max_idle_connections
        self._idle: list[_Connection] = []
        self._closed = False

    @asynccontextmanager
    async def request(
        self, method: str, target: str, headers: Headers, body: bytes
    ) -> AsyncIterator[UpstreamResponse]:
        """Send a request and yield the response once its head has arrived.

        `target` is the client's path and query; the pool prepends the URL's path prefix and sets Host and
        Content-Length itself. On exit the connection goes back to the pool if the body was read to the end
        and HTTP allows reuse; otherwise it is closed.
        """
        request_headers = [(b"host", self.url.host_header)]
        request_headers += [(name, value) for name, value in headers if name not in _HEADERS_SET_BY_POOL]
        if body or method not in ("GET", "HEAD"):
            request_headers.append((b"content-length", str(len(body)).encode("ascii")))
        head = h11.Request(method=method, target=self.url.path_prefix + target, headers=request_headers)
        connection, response_head = await self._exchange(head, body)
        response = UpstreamResponse(response_head, connection, read_timeout_s=self._read_timeout_s)
        try:
            yield response
        finally:
            if connection.ready_for_next_request():
                await self._release(connection)
            else:
                await trio.aclose_forcefully(connection.stream)

    async def aclose(self) -> None:
        """Close every idle connection; connections still in use close when their request ends."""
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            await trio.aclose_forcefully(connection.stream)

    async def _exchange(self, head: h11.Request, body: bytes) -> tuple[_Connection, h11.Response]:
        """Send the request and read the response head, on a pooled connection or a fresh one.

        A pooled connection may have been closed by the upstream while it sat idle, which shows only when
        it is used. If it fails before any response byte arrives, the request cannot have been answered, so
        it is sent once more on a fresh connection. A fresh connection's failure is the upstream's answer.
        """
        if self._idle:
            connection = self._idle.pop()
            try:
                return connection, await self._send_and_read_head(connection, head, body)
            except _ClosedBeforeResponse:
                await trio.aclose_forcefully(connection.stream)
            except BaseException:
                await trio.aclose_forcefully(connection.stream)
                raise
        connection = await self._connect()
        try:
            try:
                return connection, await self._send_and_read_head(connection, head, body)
            except _ClosedBeforeResponse:
                raise GateError(
                    502,
                    f"upstream {self.url.origin} closed the connection without responding",
                    code="upstream_disconnected",
                ) from None
        except BaseException:
            await trio.aclose_forcefully(connection.stream)
            raise

    async def _send_and_read_head(
        self, connection: _Connection, head: h11.Request, body: bytes
    ) -> h11.Response:
        protocol = connection.protocol
        request_bytes = protocol.send(head) or b""
        if body:
            request_bytes += protocol.send(h11.Data(data=body)) or b""
        request_bytes += protocol.send(h11.EndOfMessage()) or b""
        with _read_timeout(self.url, self._read_timeout_s):
            await connection.send(request_bytes)
            event = await connection.next_event()
            while isinstance(event, h11.InformationalResponse):  # a 1xx: the final response follows
                event = await connection.next_event()
        if not isinstance(event, h11.Response):
            message = f"upstream {self.url.origin} switched protocols, which the gate does not support"
            raise GateError(502, message, code="upstream_bad_response")
        return event

    async def _connect(self) -> _Connection:
        return _Connection(await self.open_stream(), self.url)

    async def open_stream(self) -> trio.abc.Stream:
        """A new TCP or TLS stream to the upstream, within the connect timeout; for a WebSocket, which is not
        pooled, as for HTTP. Without a file descriptor for the socket it waits a moment and tries again
        (descriptors.py)."""
        return await retrying_without_descriptors(self._open_stream_in_time, "to connect to the upstream")

    async def _open_stream_in_time(self) -> trio.abc.Stream:
        try:
            with trio.fail_after(self._connect_timeout_s):
                return await self._open_stream()
        except trio.TooSlowError:
            raise GateError(
                504,
                f"timed out after {self._connect_timeout_s} s connecting to upstream {self.url.origin}",
                code="upstream_timeout",
            ) from None

    async def _open_stream(self) -> trio.abc.Stream:
        url = self.url
        try:
            tcp_stream = await trio.open_tcp_stream(url.host, url.port)
        except socket.gaierror as exc:
            message = f"could not resolve upstream host {url.host!r}: {exc.strerror}"
            raise GateError(502, message, code="upstream_dns_error") from exc
        except OSError as exc:
            raise GateError(
                502,
                f"could not connect to upstream {url.origin}: {_connect_failure_reason(exc)}",
                code="upstream_unreachable",
            ) from exc
        if self._ssl_context is None:
            return tcp_stream
        tls_stream = trio.SSLStream(
            tcp_stream, self._ssl_context, server_hostname=url.host, https_compatible=True
        )
        try:
            try:
                await tls_stream.do_handshake()
            except trio.BrokenResourceError as exc:
                raise _tls_failure(url, exc.__cause__) from exc
        except BaseException:
            await trio.aclose_forcefully(tls_stream)
            raise
        return tls_stream

    async def _release(self, connection: _Connection) -> None:
        if self._closed or len(self._idle) >= self._max_idle_connections:
            await trio.aclose_forcefully(connection.stream)
        else:
            self._idle.append(connection)


class _ClosedBeforeResponse(Exception):
    """The connection closed before any byte of the response arrived: the request went unanswered."""


class _Connection:
    """One upstream connection: the byte stream, and the h11 state machine that frames it."""

    __slots__ = ("protocol", "response_started", "saw_eof", "stream", "url")

    def __init__(self, stream: trio.abc.Stream, url: UpstreamURL) -> None:
        self.stream = stream
        self.url = url
        self.protocol = h11.Connection(h11.CLIENT)
        self.response_started = False
        self.saw_eof = False

    async def send(self, data: bytes) -> None:
        try:
            await self.stream.send_all(data)
        except trio.BrokenResourceError:
            raise _ClosedBeforeResponse from None

    async def next_event(self) -> h11.Event | type[h11.PAUSED]:
        """The next h11 event, reading from the stream as needed.

        Raises `_ClosedBeforeResponse` if the connection ends before any response byte, and
        `GateError` if it ends later, or if the upstream does not speak HTTP/1.1 correctly.
        """
        while True:
            try:
                event = self.protocol.next_event()
            except h11.RemoteProtocolError as exc:
                if self.saw_eof:
                    raise _disconnected(self.url) from exc
                message = f"upstream {self.url.origin} sent a malformed HTTP response: {exc}"
                raise GateError(502, message, code="upstream_bad_response") from exc
            if event is not h11.NEED_DATA:
                return event
            try:
                data = await self.stream.receive_some(RECEIVE_BUFFER_BYTES)
            except trio.BrokenResourceError as exc:
                if not self.response_started:
                    raise _ClosedBeforeResponse from exc
                raise _disconnected(self.url) from exc
            if not data and not self.response_started:
                raise _ClosedBeforeResponse
            self.response_started = True
            self.saw_eof = not data
            self.protocol.receive_data(data)

    def ready_for_next_request(self) -> bool:
        """Whether the response was read to its end and HTTP allows reuse; if so, reset for the next one.

        h11 reaches DONE on both sides only then: a response abandoned midway leaves the upstream's side in
        SEND_BODY, and `Connection: close` (or a body framed by closing) leaves it in MUST_CLOSE.
        """
        if self.protocol.our_state is not h11.DONE or self.protocol.their_state is not h11.DONE:
            return False
        self.protocol.start_next_cycle()
        self.response_started = False
        return True


@contextmanager
def _read_timeout(url: UpstreamURL, timeout_s: float) -> Iterator[None]:
    """`trio.fail_after` around a read, reporting expiry as a 504 that names the upstream."""
    try:
        with trio.fail_after(timeout_s):
            yield
    except trio.TooSlowError:
        message = f"timed out after {timeout_s} s waiting to read from upstream {url.origin}"
        raise GateError(504, message, code="upstream_timeout") from None


def _disconnected(url: UpstreamURL) -> GateError:
    return GateError(
        502,
        f"upstream {url.origin} closed the connection before the response was complete",
        code="upstream_disconnected",
    )


def _connect_failure_reason(error: OSError) -> str:
    """Why connecting failed, in words: trio reports one error per address it tried, as the cause."""
    attempts = error.__cause__.exceptions if isinstance(error.__cause__, ExceptionGroup) else [error]
    reasons = [os.strerror(attempt.errno) if attempt.errno else str(attempt) for attempt in attempts]
    return "; ".join(dict.fromkeys(reasons))


def _tls_failure(url: UpstreamURL, cause: BaseException | None) -> GateError:
    if isinstance(cause, ssl.SSLCertVerificationError):
        reason = (cause.verify_message or cause.reason or "no reason given").rstrip(".")
        message = (
            f"the TLS certificate of upstream {url.origin} failed verification: {reason}. If you reach it "
            "through a proxy or with a private CA, point SSL_CERT_FILE (or SSL_CERT_DIR) at the CA "
            "certificates to trust."
        )
    else:
        message = f"the TLS handshake with upstream {url.origin} failed: {cause or 'the connection closed'}"
    return GateError(502, message, code="upstream_tls_error")
