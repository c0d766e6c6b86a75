"""A small HTTP/1.1 load generator and client on trio + h11, for the benchmark.

The benchmark prefers wrk, which is written in C and costs the server's core nothing to outpace. This one is
what it falls back to where wrk is missing, and what it uses for the record path, which needs a different body
on every request (a wrk script sends one fixed body). Every connection is kept alive and sends its next
request as soon as the previous response has been read in full; a request's latency runs from just before its
first byte is sent to just after its last byte is received.

    python -m tools.loadgen http://127.0.0.1:8080/v1/chat/completions --body-file body.json \\
        --connections 32 --duration-s 5
"""

from __future__ import annotations

import argparse
import math
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import h11
import trio

RECEIVE_BUFFER_BYTES = 64 * 1024
SLOW_READ_BYTES = 16 * 1024
RUN_GRACE_S = 30.0  # how long past its duration the command-line run may take before it is called hung


@dataclass(frozen=True, slots=True)
class LoadRequest:
    """One request to send. `headers` must not hold Host or Content-Length; the client adds them."""

    method: str
    target: str
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class FetchedResponse:
    """A response read in full; `headers` are as h11 delivers them (lower-case names), framing included.
    `first_byte_at_s` is the `time.perf_counter()` at which the response's first bytes arrived."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    first_byte_at_s: float = 0.0

    def header(self, name: bytes) -> bytes | None:
        """The first value of the lower-case header `name`, or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(slots=True)
class LoadResult:
    """What a run measured: per completed request, its latency to the last byte of the response and to the first
    byte; and how many were not answered with 2xx."""

    latencies_s: list[float]
    elapsed_s: float
    failed_count: int = 0
    first_byte_latencies_s: list[float] = field(default_factory=list)

    @property
    def request_count(self) -> int:
        return len(self.latencies_s)

    @property
    def requests_per_s(self) -> float:
        return self.request_count / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def percentile_s(self, fraction: float) -> float:
        """The nearest-rank percentile of the latencies: `percentile_s(0.99)` is p99."""
        return nearest_rank(self.latencies_s, fraction)

    def first_byte_percentile_s(self, fraction: float) -> float:
        return nearest_rank(self.first_byte_latencies_s, fraction)


def nearest_rank(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


class HttpClient:
    """One keep-alive HTTP/1.1 connection, one request at a time."""

    def __init__(self, stream: trio.abc.Stream, host_header: bytes) -> None:
        self._stream = stream
        self._host_header = host_header
        self._h11 = h11.Connection(h11.CLIENT)

    async def send(self, request: LoadRequest) -> FetchedResponse:
        """Send `request` and read its response in full; raises if the server closes the connection early."""
        connection = self._h11
        if connection.our_state is h11.DONE and connection.their_state is h11.DONE:
            connection.start_next_cycle()
        await self._stream.send_all(request_bytes(connection, request, self._host_header))
        response: h11.Response | None = None
        parts: list[bytes] = []
        first_byte_at_s = 0.0
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                connection.receive_data(await self._stream.receive_some(RECEIVE_BUFFER_BYTES))
                first_byte_at_s = first_byte_at_s or time.perf_counter()
            elif type(event) is h11.Response:
                response = event
            elif type(event) is h11.Data:
                parts.append(event.data)
            elif type(event) is h11.EndOfMessage:
                assert response is not None  # h11 ends a message only after its head
                return FetchedResponse(response.status_code, list(response.headers), b"".join(parts), first_byte_at_s)
            elif type(event) is h11.ConnectionClosed:
                raise trio.BrokenResourceError("the server closed the connection before the response ended")


def request_bytes(connection: h11.Connection, request: LoadRequest, host_header: bytes) -> bytes:
    """The whole of `request` on the wire: head, body and end of message, for one `send_all`."""
    headers = [(b"host", host_header), *request.headers, (b"content-length", b"%d" % len(request.body))]
    head = h11.Request(method=request.method, target=request.target, headers=headers)
    return connection.send(head) + connection.send(h11.Data(data=request.body)) + connection.send(h11.EndOfMessage())


async def read_slowly(host: str, port: int, request: LoadRequest, *, bytes_per_s: int, duration_s: float) -> int:
    """Send `request`, read its response at about `bytes_per_s` for `duration_s`, then close the connection: a
    client that falls behind a large response. Returns how many bytes it read.

    Its receive buffer is kept small, so that the kernel does not read far ahead of it and the server really
    has to hold what this client has not read yet.
    """
    read_bytes = 0
    with trio.socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_READ_BYTES)
        await sock.connect((host, port))
        stream = trio.SocketStream(sock)
        await stream.send_all(request_bytes(h11.Connection(h11.CLIENT), request, f"{host}:{port}".encode()))
        started = trio.current_time()
        with trio.move_on_after(duration_s):
            while True:
                ahead_bytes = read_bytes + SLOW_READ_BYTES - bytes_per_s * (trio.current_time() - started)
                if ahead_bytes > 0:
                    await trio.sleep(ahead_bytes / bytes_per_s)
                data = await stream.receive_some(SLOW_READ_BYTES)
                if not data:
                    break
                read_bytes += len(data)
    return read_bytes


async def fetch(host: str, port: int, request: LoadRequest) -> FetchedResponse:
    """One request on a fresh connection."""
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        return await HttpClient(stream, f"{host}:{port}".encode()).send(request)


async def run_load(
    host: str,
    port: int,
    next_request: Callable[[], LoadRequest],
    *,
    connections: int,
    duration_s: float | None = None,
    request_count: int | None = None,
) -> LoadResult:
    """Send requests from `next_request` over `connections` keep-alive connections, for `duration_s` or until
    `request_count` have been sent (give exactly one). Requests in flight when the time is up still complete.

    The caller bounds the whole run with a cancel scope if the server might hang.
    """
    if (duration_s is None) == (request_count is None):
        raise ValueError("give exactly one of duration_s and request_count")
    result = LoadResult(latencies_s=[], elapsed_s=0.0)
    deadline = math.inf if duration_s is None else trio.current_time() + duration_s
    remaining: float = math.inf if request_count is None else request_count

    def may_send() -> bool:
        nonlocal remaining
        if remaining <= 0 or trio.current_time() >= deadline:
            return False
        remaining -= 1
        return True

    async def one_connection() -> None:
        stream = await trio.open_tcp_stream(host, port)
        async with stream:
            client = HttpClient(stream, f"{host}:{port}".encode())
            while may_send():
                request = next_request()
                sent = time.perf_counter()
                response = await client.send(request)
                result.latencies_s.append(time.perf_counter() - sent)
                result.first_byte_latencies_s.append(response.first_byte_at_s - sent)
                if not 200 <= response.status < 300:
                    result.failed_count += 1

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(connections):
            nursery.start_soon(one_connection)
    result.elapsed_s = time.perf_counter() - started
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description="Send keep-alive HTTP/1.1 load to one URL and print figures.")
    parser.add_argument("url", help="http://host:port/path")
    parser.add_argument("--method", default="POST")
    parser.add_argument("--body-file", type=Path, help="request body, sent as application/json")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration-s", type=float, default=5.0)
    arguments = parser.parse_args()
    url = urlsplit(arguments.url)
    body = arguments.body_file.read_bytes() if arguments.body_file else b""
    headers = [(b"content-type", b"application/json")] if body else []
    request = LoadRequest(arguments.method, url.path or "/", headers, body)

    async def timed_run() -> LoadResult:
        with trio.fail_after(arguments.duration_s + RUN_GRACE_S):
            return await run_load(
                url.hostname or "127.0.0.1",
                url.port or 80,
                lambda: request,
                connections=arguments.connections,
                duration_s=arguments.duration_s,
            )

    result = trio.run(timed_run)
    print(
        f"{result.request_count} requests in {result.elapsed_s:.2f} s: {result.requests_per_s:,.0f} req/s, "
        f"p50 {result.percentile_s(0.5) * 1000:.2f} ms, p99 {result.percentile_s(0.99) * 1000:.2f} ms, "
        f"{result.failed_count} not 2xx"
    )


if __name__ == "__main__":
    main()
