"""Single-flight: one upstream exchange, shared by every identical request that arrives while it runs.

The first request for a key starts the exchange; the others join it. Each reader gets the whole body from the
start, however late it joined, because every chunk is kept until the exchange ends (it is needed for the
cassette anyway). If the exchange fails before the response head, every reader gets the same error; if it breaks
midway, every reader's body breaks too. The end of every body waits for `finish`, which the gate calls only once
the outcome (recorded or not) is decided, so no reader holds a whole body before its cassette is on disk.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import trio

from inference_gate.errors import GateError
from inference_gate.messages import Headers
from inference_gate.outcome import Outcome


class InflightExchange:
    def __init__(self) -> None:
        self.status = 0
        self.headers: Headers = []
        self.chunks: list[bytes] = []
        self._head_ready = trio.Event()
        self._changed = trio.Event()
        self.streamed = False
        self.cassette: str | None = None
        self.outcome = Outcome.ERROR
        self.reason: str | None = None
        self._done = False
        self._error: GateError | None = None
        self._on_finish: list[Callable[[InflightExchange], None]] = []
        self._finished = trio.Event()

    def set_head(self, status: int, headers: Headers) -> None:
        self.status = status
        self.headers = headers
        self._head_ready.set()

    def append(self, chunk: bytes) -> None:
        self.chunks.append(chunk)
        self._wake_readers()

    def finish(self, outcome: Outcome | None = None, reason: str | None = None) -> None:
        """End the exchange; `outcome` and `reason` are what every reader's answer reports."""
        if self._done:
            return
        if outcome is not None:
            self.outcome, self.reason = outcome, reason
        self._done = True
        self._head_ready.set()
        self._wake_readers()
        self._finished.set()
        for callback in self._on_finish:
            callback(self)

    def when_finished(self, callback: Callable[[InflightExchange], None]) -> None:
        """Call `callback` once the outcome is decided: now if it is, else from `finish`."""
        if self._done:
            callback(self)
        else:
            self._on_finish.append(callback)

    async def finished(self) -> None:
        await self._finished.wait()

    @property
    def broken(self) -> bool:
        return self._error is not None

    def fail(self, error: GateError) -> None:
        """End the exchange with `error`; once the body has ended cleanly, readers keep that clean end."""
        if self._done:
            return
        self._error = error
        self.finish(Outcome.ERROR, error.code)

    def _wake_readers(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def head(self) -> tuple[int, Headers]:
        """The response status and headers; raises the exchange's error if it failed before them."""
        await self._head_ready.wait()
        if self.status == 0:
            assert self._error is not None
            raise self._error
        return self.status, self.headers

    async def body(self) -> AsyncIterator[bytes]:
        """Every chunk from the first, as they arrive; raises the error if the exchange broke midway.

        Chunks that arrived while this reader was busy writing are yielded joined, so a reader that falls behind
        catches up in one write instead of one write per upstream read (an SSE stream arrives in many small ones).
        """
        sent = 0
        while True:
            available = len(self.chunks)
            if sent < available:
                yield self.chunks[sent] if available - sent == 1 else b"".join(self.chunks[sent:available])
                sent = available
                continue
            if self._done:
                if self._error is not None:
                    raise self._error
                return
            await self._changed.wait()
