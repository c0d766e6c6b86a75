"""The gate's HTTP/1.1 server: trio moves the bytes, h11 does the protocol, a handler does the rest.

This is the I/O shell and holds no cache logic. Each connection turns bytes into an `HttpRequest`, awaits the
handler, and writes the `HttpResponse` back, many times over one keep-alive connection. The server enforces
its limits (head size, body size, slow and idle clients) and answers every problem it finds itself with an
OpenAI-shaped error, because its clients are OpenAI SDKs. Nothing one connection does can end the server: a
connection's failure ends that connection only.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import resource
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import h11
import trio

from inference_gate.core.errors import GateError, error_response, internal_error
from inference_gate.core.http_models import Headers, HttpRequest, HttpResponse
from inference_gate.http.websocket import CLOSE_NORMAL, WebSocketLimits, WebSocketUpgrade, is_websocket_upgrade

logger = logging.getLogger("inference_gate.server")

Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]
# Answers a WebSocket upgrade: accepts it (`WebSocketUpgrade.accept`) and runs the session, returning None; or
# refuses it with an HTTP response.
WebSocketHandler = Callable[[HttpRequest, WebSocketUpgrade], Awaitable[HttpResponse | None]]

RECEIVE_BUFFER_BYTES = 64 * 1024

# A whole response with a body at least this large goes out as head, then body, rather than joined into one new
# buffer: one write fewer is worth a copy of a small body, not of a large one.
JOIN_BODY_BELOW_BYTES = 64 * 1024

# What the scratch h11 connection that frames a response for keep-alive (see `_Server.keep_alive_wire`) is told
# the client asked: an HTTP/1.1 request that keeps the connection open, whose method changes no framing.
_KEEP_ALIVE_REQUEST = b"GET / HTTP/1.1\r\nhost: gate\r\n\r\n"

# After refusing a request, how long to keep discarding what the client still sends before closing. Closing a
# TCP socket with unread data makes the kernel send a reset, which can destroy the error response before the
# client has read it; an SDK that sent a too-large body would then see a connection error and retry instead
# of reading the 413. Web servers call this a lingering close.
LINGER_S = 2.0

# How many validated response heads the server keeps for reuse (see `_Server.response_head`): more than the
# cassettes a test suite replays at once, and at a few KiB each, little memory.
MAX_CACHED_HEADS = 1024

# How often per idle (or send) timeout the server looks for connections that have waited too long for their next
# request, or for their client to take a write (see `_Server.close_idle_connections`).
IDLE_CHECKS_PER_TIMEOUT = 4


# Accept failures that mean "out of a resource, try again soon" (file descriptors, socket buffers, memory), and
# how long the accept loop waits before it tries again. The connection waits in the kernel's backlog meanwhile.
ACCEPT_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
ACCEPT_RETRY_S = 0.1


# How connections end in normal life: the client went away, the stream being relayed broke (the client must see
# its connection close), or the peer broke the protocol mid-response. Anything else is a bug worth a traceback.
EXPECTED_CONNECTION_ENDINGS = (
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    GateError,
    h11.ProtocolError,
    OSError,
)


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """What one client may cost the server.

    `max_head_bytes` is checked by h11 against data it could not parse yet, so a head that arrives whole in
    one read may exceed it by up to one receive buffer (64 KiB); memory stays bounded either way.
    """

    max_head_bytes: int = 64 * 1024
    max_body_bytes: int = 32 * 1024 * 1024
    request_timeout_s: float = 30.0  # head and body must arrive within this once the request's first byte did
    idle_timeout_s: float = 60.0  # a keep-alive connection with no request for this long is closed (up to 1/4 later)
    send_timeout_s: float = 30.0  # a client not taking a write for this long is dropped (up to 1/4 later)
    shutdown_grace_s: float = 5.0
    max_connections: int = 1000  # connections beyond this wait in the kernel's backlog (descriptors.py)
    websocket: WebSocketLimits = field(default_factory=WebSocketLimits)


def raise_open_files_limit() -> None:
    """Raise this process's soft limit on open files to its hard limit.

    Each connection costs a file descriptor (two while it is being recorded), and many systems start processes
    with a soft limit of 1024 although the hard limit is far higher; no privilege is needed to raise it.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        logger.debug("raised the open files limit from %d to %d", soft, hard)


async def serve_http(
    handler: Handler,
    host: str,
    port: int,
    limits: ServerLimits,
    *,
    shutdown: trio.Event | None = None,
    websocket_handler: WebSocketHandler | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `handler` on `host:port` until cancelled or until `shutdown` is set.

    A WebSocket upgrade goes to `websocket_handler` when there is one (else to `handler`, as a plain request);
    its connection ends with its session.

    Reports the bound port (useful with port 0) through `task_status`. On shutdown the listeners close at
    once, so new connections are refused; idle keep-alive connections close at once; requests in flight get
    `limits.shutdown_grace_s` to finish, with `Connection: close`, and are cancelled after that.
    """
    if shutdown is None:
        shutdown = trio.Event()
    server = _Server(handler, limits, websocket_handler)
    listeners = await trio.open_tcp_listeners(port, host=host)
    try:
        async with trio.open_nursery() as connections:
            accepting = trio.CancelScope()
            await connections.start(_accept_connections, server, listeners, connections, accepting)
            task_status.started(listeners[0].socket.getsockname()[1])
            await shutdown.wait()
            accepting.cancel()
            server.begin_shutdown()
            connections.cancel_scope.deadline = trio.current_time() + limits.shutdown_grace_s
    finally:
        for listener in listeners:
            await trio.aclose_forcefully(listener)


async def _accept_connections(
    server: _Server,
    listeners: list[trio.SocketListener],
    connections: trio.Nursery,
    accepting: trio.CancelScope,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept into `connections`, and close idle ones, until `accepting` is cancelled, which closes the listeners.

    Connections run in the caller's nursery, not under `accepting`, so that they outlive the accept loop.
    """
    with accepting:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.close_idle_connections)
            for listener in listeners:
                nursery.start_soon(server.accept_from, listener, connections)
            task_status.started()


class _Server:
    """What all connections share: the handler, the limits, and the waits that shutdown must cut short."""

    def __init__(
        self, handler: Handler, limits: ServerLimits, websocket_handler: WebSocketHandler | None = None
    ) -> None:
        self.handler = handler
        self.websocket_handler = websocket_handler
        self.limits = limits
        self.shutting_down = False
        self._interruptible_waits: set[trio.CancelScope] = set()
        # Connections waiting for their next request: the scope that ends each one, and when it began to wait.
        self.waiting_since: dict[trio.CancelScope, float] = {}
        # Connections waiting for their client to take a write: likewise.
        self.sending_since: dict[trio.CancelScope, float] = {}
        self._heads: dict[tuple[int, tuple[tuple[bytes, bytes], ...]], h11.Response] = {}
        self._connection_slots = trio.Semaphore(limits.max_connections)
        self._failed_accepts = 0  # in the current burst of accept failures; 0 once an accept succeeds

    async def accept_from(self, listener: trio.SocketListener, connections: trio.Nursery) -> None:
        """Accept connections into `connections`, at most `max_connections` at a time.

        At the cap the loop stops accepting, so a new client waits in the kernel's backlog until a connection
        closes, rather than being accepted only to be dropped. An accept that fails for want of a resource (no
        file descriptor left) is retried shortly, and each burst of failures is logged once, when it begins. The
        listener is closed when the loop ends, so that new clients are refused at once.
        """
        async with listener:
            await self._accept_until_cancelled(listener, connections)

    async def _accept_until_cancelled(self, listener: trio.SocketListener, connections: trio.Nursery) -> None:
        while True:
            await self._connection_slots.acquire()
            try:
                stream = await listener.accept()
            except OSError as exc:
                self._connection_slots.release()
                if exc.errno not in ACCEPT_RESOURCE_ERRORS:
                    raise
                if not self._failed_accepts:
                    logger.error("cannot accept connections (%s); retrying until a connection closes", exc.strerror)
                self._failed_accepts += 1
                await trio.sleep(ACCEPT_RETRY_S)
                continue
            except BaseException:
                self._connection_slots.release()
                raise
            if self._failed_accepts:
                logger.info("accepting connections again, after %d failed attempts", self._failed_accepts)
                self._failed_accepts = 0
            connections.start_soon(self.serve_connection, stream)

    async def serve_connection(self, stream: trio.SocketStream) -> None:
        """Serve one client; whatever goes wrong ends this connection only, quietly. Frees its slot at the end."""
        try:
            await _Connection(self, stream).serve()
        except EXPECTED_CONNECTION_ENDINGS as exc:
            logger.debug("connection ended by %r", exc)
        except Exception:
            logger.exception("connection ended by an internal error")
        finally:
            self._connection_slots.release()
            await trio.aclose_forcefully(stream)

    def response_head(self, status: int, headers: Headers) -> h11.Response:
        """h11's response head for `status` and `headers`, built once and reused when the same head is sent again.

        h11 checks every header of every head it is given against regular expressions, which for a replayed
        answer with OpenAI's dozen headers costs more than all the rest of the gate's work for a hit. A keep-alive
        hit sends a wire framed once (`keep_alive_wire`); the heads a replay frames per exchange (HTTP/1.0,
        `Connection: close`, during shutdown) are the same every time, so checked heads are kept, keyed by their
        content; the oldest goes when there are `MAX_CACHED_HEADS`.
        """
        key = (status, tuple(headers))
        head = self._heads.get(key)
        if head is None:
            if len(self._heads) >= MAX_CACHED_HEADS:
                del self._heads[next(iter(self._heads))]
            head = self._heads[key] = h11.Response(status_code=status, headers=headers)
        return head

    def whole_response_pieces(
        self, connection: h11.Connection, response: HttpResponse, *, closing: bool
    ) -> list[bytes]:
        """What `connection` frames for a response whose body is all known: head, body and end, the body itself
        among them (not copied). A chunked body goes as one chunk; any other by Content-Length."""
        body = response.body
        headers = response.headers if response.chunked else [*response.headers, (b"content-length", b"%d" % len(body))]
        if closing:
            headers = [*headers, (b"connection", b"close")]
        pieces = [connection.send(self.response_head(response.status, headers))]
        pieces += connection.send_with_data_passthrough(h11.Data(data=body)) or ()
        pieces.append(connection.send(h11.EndOfMessage()))
        return pieces

    def keep_alive_wire(self, response: HttpResponse) -> bytes:
        """A whole response's bytes as h11 frames it in a keep-alive HTTP/1.1 exchange, kept on the response.

        They are framed by a scratch h11 connection, once per response object that asks for it (see
        `HttpResponse.keep_alive_wire`), so a prepared reply's hits send one shared buffer and their own h11
        connection frames nothing. Empty for a response sent once, and when the response itself closes the
        connection; then each exchange frames it.
        """
        wire = response.keep_alive_wire
        if wire is None:
            scratch = h11.Connection(h11.SERVER)
            scratch.receive_data(_KEEP_ALIVE_REQUEST)
            while type(scratch.next_event()) is not h11.EndOfMessage:
                pass
            wire = b"".join(self.whole_response_pieces(scratch, response, closing=False))
            if scratch.our_state is not h11.DONE:
                wire = b""
            response.keep_alive_wire = wire
        return wire

    async def close_idle_connections(self) -> None:
        """End every connection that has waited longer than the idle timeout for its next request, or longer than
        the send timeout for its client to take a write (a client that stopped reading).

        One task looks a few times per timeout, rather than each wait having a timeout of its own: a trio
        cancel scope, or a deadline, per request costs about as much as all the rest of a cache hit. So such a
        connection is closed between 1 and 1 + 1/`IDLE_CHECKS_PER_TIMEOUT` timeouts after its wait began.
        """
        limits = self.limits
        waits = ((self.waiting_since, limits.idle_timeout_s), (self.sending_since, limits.send_timeout_s))
        while True:
            await trio.sleep(min(limits.idle_timeout_s, limits.send_timeout_s) / IDLE_CHECKS_PER_TIMEOUT)
            now = trio.current_time()
            for since_by_scope, timeout_s in waits:
                for connection_scope, since in since_by_scope.items():
                    if since <= now - timeout_s:
                        connection_scope.cancel()

    def begin_shutdown(self) -> None:
        """Stop connections that are only waiting: for a next request, or for a refused client to go."""
        self.shutting_down = True
        for connection_scope in self.waiting_since:
            connection_scope.cancel()
        for wait in self._interruptible_waits:
            wait.cancel()

    @contextlib.contextmanager
    def interruptible_wait(self, timeout_s: float) -> Iterator[trio.CancelScope]:
        """A `move_on_after(timeout_s)` scope that shutdown also cancels, at once if it has begun already."""
        with trio.move_on_after(timeout_s) as wait:
            if self.shutting_down:
                wait.cancel()
            self._interruptible_waits.add(wait)
            try:
                yield wait
            finally:
                self._interruptible_waits.discard(wait)


class _Connection:
    """One client connection: a loop of request, handler, response, for as long as HTTP allows."""

    def __init__(self, server: _Server, stream: trio.SocketStream) -> None:
        self._server = server
        self._limits = server.limits
        self._stream = stream
        self._h11 = self._new_protocol()
        self._request_deadline_s = math.inf
        # Cancelled by the server, only while the connection waits: for its next request, when it has waited
        # too long or at shutdown; for its client to take a write, when that takes too long. This ends the
        # connection.
        self._scope = trio.CancelScope()

    def _new_protocol(self) -> h11.Connection:
        return h11.Connection(h11.SERVER, max_incomplete_event_size=self._limits.max_head_bytes)

    async def serve(self) -> None:
        with self._scope:
            while True:
                try:
                    request = await self._receive_request()
                except GateError as error:
                    logger.debug("refused a request with %d: %s", error.status, error.message)
                    await self._refuse(error)
                    return
                if request is None:
                    return
                if self._server.websocket_handler is not None and is_websocket_upgrade(request.headers):
                    await self._upgrade(request)
                    return
                response = await self._answer(request)
                if response.stream is None and self._keeps_alive(request):
                    wire = self._server.keep_alive_wire(response)
                    if wire:
                        await self._send(wire)
                        self._begin_next_exchange()
                        continue
                await self._send_response(response)
                if not self._may_continue():
                    return
                self._h11.start_next_cycle()

    async def _receive_request(self) -> HttpRequest | None:
        """The next complete request, or None when the connection should end without a response.

        The idle timeout covers the wait for a request's first byte; from then on, the whole request must
        arrive within the request timeout, however the client paces its bytes (slowloris). Raises GateError
        for a request the server refuses.
        """
        unparsed, closed = self._h11.trailing_data
        if not unparsed and not closed and not await self._receive_first_bytes():
            return None
        event = self._next_event()
        self._request_deadline_s = trio.current_time() + self._limits.request_timeout_s
        while event is h11.NEED_DATA:
            await self._receive_more()
            event = self._next_event()
        if type(event) is h11.ConnectionClosed:
            return None
        return await self._receive_body(event)

    async def _receive_first_bytes(self) -> bool:
        """Wait for a request to start; False if the server is shutting down.

        The server cancels the wait, which ends the connection, if the client stays idle too long or the server
        begins to shut down meanwhile (see `_Server.close_idle_connections`).
        """
        if self._server.shutting_down:
            return False
        waiting_since = self._server.waiting_since
        waiting_since[self._scope] = trio.current_time()
        try:
            data = await self._stream.receive_some(RECEIVE_BUFFER_BYTES)
        finally:
            del waiting_since[self._scope]
        self._h11.receive_data(data)
        return True

    async def _receive_body(self, head: h11.Request) -> HttpRequest:
        """Read the body of the request `head` in full, refusing it as soon as it is known to be too large."""
        headers = list(head.headers)
        max_body_bytes = self._limits.max_body_bytes
        content_length = _content_length(headers)
        if content_length is not None and content_length > max_body_bytes:
            raise _body_too_large(max_body_bytes)
        if self._h11.client_is_waiting_for_100_continue:
            # curl, among others, holds back a large body until told to go on, or for a second if not told.
            await self._send(self._h11.send(h11.InformationalResponse(status_code=100, headers=[])))
        parts: list[bytes] = []
        received_bytes = 0
        while True:
            event = self._next_event()
            if type(event) is h11.Data:
                received_bytes += len(event.data)
                if received_bytes > max_body_bytes:
                    raise _body_too_large(max_body_bytes)
                parts.append(event.data)
            elif type(event) is h11.EndOfMessage:
                break
            else:
                await self._receive_more()
        return HttpRequest(
            method=head.method.decode("ascii"),
            target=head.target.decode("ascii"),
            headers=headers,
            body=b"".join(parts),
        )

    async def _receive_more(self) -> None:
        """Feed h11 more of the current request, which must arrive in full by its deadline.

        The deadline is one absolute time per request, so that a client cannot stretch a request by pacing
        its bytes; only reads that must wait pay for a cancel scope, and a request that arrives in one read
        (the usual case) pays for none.
        """
        try:
            with trio.fail_at(self._request_deadline_s):
                data = await self._stream.receive_some(RECEIVE_BUFFER_BYTES)
        except trio.TooSlowError:
            raise GateError(
                408,
                f"The request did not arrive within {self._limits.request_timeout_s} s.",
                code="request_timeout",
            ) from None
        self._h11.receive_data(data)

    def _next_event(self) -> h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]:
        """h11's next event; a protocol violation by the client becomes the GateError that answers it."""
        try:
            return self._h11.next_event()
        except h11.RemoteProtocolError as exc:
            if exc.error_status_hint == 431:
                limit = self._limits.max_head_bytes
                raise GateError(
                    431,
                    f"The request head is larger than the gate's limit of {limit} bytes.",
                    code="request_head_too_large",
                ) from exc
            raise GateError(
                exc.error_status_hint, f"The gate could not parse the HTTP request: {exc}", code="bad_request"
            ) from exc

    async def _answer(self, request: HttpRequest) -> HttpResponse:
        """The handler's response; its GateError becomes an error response, and so does a bug, as a 500."""
        try:
            return await self._server.handler(request)
        except GateError as error:
            return error_response(error)
        except Exception as exc:
            logger.exception("internal error while handling %s %s", request.method, request.path)
            return error_response(internal_error(exc))

    async def _upgrade(self, request: HttpRequest) -> None:
        """Hand a WebSocket upgrade to the WebSocket handler; a refusal it returns is sent, and closes.

        h11 has read the whole request and paused, waiting to learn whether the protocol switches. A bug in the
        handler before it accepted is answered with a 500; after, the session's end closes the connection.
        """
        if self._server.websocket_handler is None:
            raise RuntimeError("a WebSocket upgrade reached a server without a WebSocket handler")
        upgrade = WebSocketUpgrade(self._stream, self._h11, self._limits.websocket)
        try:
            response = await self._server.websocket_handler(request, upgrade)
        except GateError as error:
            response = error_response(error)
        except Exception as exc:
            if upgrade.websocket is not None:
                raise
            logger.exception("internal error while handling the WebSocket upgrade of %s", request.path)
            response = error_response(internal_error(exc))
        if upgrade.websocket is not None:
            await upgrade.websocket.close(CLOSE_NORMAL, "")  # answers a peer's close the handler left unanswered
        elif response is not None:
            await self._send_whole_response(response, closing=True)

    def _keeps_alive(self, request: HttpRequest) -> bool:
        """Whether h11 would frame a whole response to `request` as it does in `_Server.keep_alive_wire`: an
        HTTP/1.1 request that does not ask to close, with a method that does not change the framing, while the
        server is not shutting down."""
        return (
            self._h11.their_http_version == b"1.1"
            and request.method not in ("HEAD", "CONNECT")
            and not self._server.shutting_down
            and not _asks_to_close(request.headers)
        )

    def _begin_next_exchange(self) -> None:
        """After a response h11 did not frame, wait for the next request on a fresh h11 connection, fed whatever
        the client sent beyond the request just answered: the state `start_next_cycle` leaves after a keep-alive
        exchange."""
        data, closed = self._h11.trailing_data
        self._h11 = self._new_protocol()
        if data:
            self._h11.receive_data(data)
        if closed:
            self._h11.receive_data(b"")

    async def _send_response(self, response: HttpResponse) -> None:
        if response.stream is None:
            await self._send_whole_response(response, closing=self._server.shutting_down)
        else:
            await self._send_streamed_response(response.status, response.headers, response.stream)

    async def _send_whole_response(self, response: HttpResponse, *, closing: bool) -> None:
        """A response whose body is all known, framed by this connection's h11; in one write unless the body is
        large, which is then sent as it is rather than copied."""
        pieces = self._server.whole_response_pieces(self._h11, response, closing=closing)
        if len(response.body) < JOIN_BODY_BELOW_BYTES:
            await self._send(b"".join(pieces))
        else:
            for piece in pieces:
                if piece:
                    await self._send(piece)

    async def _send(self, data: bytes) -> None:
        """Send `data`; a client that does not take it within the send timeout has stopped reading, and the
        server ends the connection (see `_Server.close_idle_connections`)."""
        sending_since = self._server.sending_since
        sending_since[self._scope] = trio.current_time()
        try:
            await self._stream.send_all(data)
        finally:
            del sending_since[self._scope]

    async def _send_streamed_response(self, status: int, headers: Headers, chunks: AsyncIterator[bytes]) -> None:
        """Send each chunk as it comes; h11 frames them (chunked, or close-delimited for HTTP/1.0).

        If the stream raises, or the client goes away, the exception propagates without an end of message,
        and the connection is closed: a client can tell that a chunked body stopped short. A client that goes
        away stops the stream at once, not at its next chunk (which may be long in coming), see
        `_until_disconnected`. The stream is closed in every case, so that whatever it holds (an upstream
        connection) is released now.
        """
        if self._server.shutting_down:
            headers = [*headers, (b"connection", b"close")]
        connection = self._h11
        # The head goes out with the first chunk: one write fewer per response, and each write on loopback
        # wakes the client. A body that never starts still ends the connection without a head.
        unsent = connection.send(h11.Response(status_code=status, headers=headers))
        try:
            async with trio.open_nursery() as watch:
                with trio.CancelScope() as relaying:
                    watch.start_soon(self._until_disconnected, relaying)
                    async for chunk in chunks:
                        if chunk:
                            await self._send(unsent + connection.send(h11.Data(data=chunk)))
                            unsent = b""
                watch.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # The relay's own error (`_until_disconnected` raises none), as it would propagate without the watch.
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()
        if relaying.cancelled_caught:
            raise trio.BrokenResourceError("the client went away during a streamed response")
        await self._send(unsent + connection.send(h11.EndOfMessage()))

    async def _until_disconnected(self, relaying: trio.CancelScope) -> None:
        """Cancel `relaying` when the client closes or resets its connection.

        A client may instead send its next request before this response ends (pipelining): those bytes go to
        h11, which keeps them for the next exchange, and the watch ends there, since the server never reads
        ahead more than one buffer.
        """
        try:
            data = await self._stream.receive_some(RECEIVE_BUFFER_BYTES)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if data:
            self._h11.receive_data(data)
        else:
            relaying.cancel()

    def _may_continue(self) -> bool:
        """Whether this connection may carry another request.

        h11 says no after `Connection: close` (which every response sent during shutdown carries) or an
        HTTP/1.0 exchange. A connection that may continue but is idle at shutdown ends in its idle wait.
        """
        connection = self._h11
        return connection.our_state is h11.DONE and connection.their_state is h11.DONE

    async def _refuse(self, error: GateError) -> None:
        """Answer a refused request with `error` and `Connection: close`, then close lingeringly.

        Refusals happen only while a request is being received, before any response to it has started, so
        h11 can always still send one.
        """
        await self._send_whole_response(error_response(error), closing=True)
        await self._stream.send_eof()
        with self._server.interruptible_wait(LINGER_S):
            while await self._stream.receive_some(RECEIVE_BUFFER_BYTES):
                pass


def _asks_to_close(headers: Headers) -> bool:
    """Whether a request's `Connection` header has the `close` token, read as h11 reads it."""
    return any(
        name == b"connection" and b"close" in [token.strip().lower() for token in value.split(b",")]
        for name, value in headers
    )


def _content_length(headers: Headers) -> int | None:
    """The declared body length; h11 has already checked that it is a plain non-negative number."""
    for name, value in headers:
        if name == b"content-length":
            return int(value)
    return None


def _body_too_large(max_body_bytes: int) -> GateError:
    return GateError(
        413,
        f"The request body is larger than the gate's limit of {max_body_bytes} bytes.",
        code="body_too_large",
    )
