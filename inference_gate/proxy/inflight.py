"""Single-flight: one upstream exchange, shared by every identical request that arrives while it runs.

The first request for a key starts the exchange; the others join it. Each reader gets the whole body from the
start, however late it joined, because every chunk is kept until the exchange ends (it is needed for the
cassette anyway). If the exchange fails before the response head, every reader gets the same error; if it breaks
midway, every reader's body breaks too. The end of every body waits for `finish`, which the recorder calls only
once the outcome (recorded or not) is decided, so no reader holds a whole body before its cassette is on disk.

Some clients stop reading a stream before its body ends: the openai SDK stops at `data: [DONE]`. From the chunk
that completes such a final event (`hold_back`), chunks are kept from readers until `finish`, so such a client
too gets its last event only once the cassette is on disk; the events before it still flow live.

A response larger than `max_kept_bytes` cannot be recorded, and keeping it whole would cost its size in memory.
From the chunk that crosses the cap the exchange is `over_cap`: it keeps a chunk only until every reader that
joined has taken it, so memory is bounded by the slowest reader rather than by the response. A reader that
has not joined by then could not get the start of the body, so the gate stops letting new readers join.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from inference_gate.core.errors import GateError
from inference_gate.core.http_models import Headers
from inference_gate.core.outcome import Outcome
from inference_gate.proxy.replies import PreparedTakes


class InflightExchange:
    def __init__(self, max_kept_bytes: int) -> None:
        self.status = 0
        self.headers: Headers = []
        # The kept chunks; once over the cap, the first ones every reader has taken are dropped.
        self.chunks: list[bytes] = []
        self._dropped_chunks = 0
        self._held_from: int | None = None  # the first chunk readers get only at `finish`, if any is held back
        self._received_bytes = 0
        self.max_kept_bytes = max_kept_bytes
        self.over_cap = False
        self._over_cap_or_finished = trio.Event()
        self._readers: set[ExchangeBody] = set()
        self._head_ready = trio.Event()
        self._changed = trio.Event()
        self.streamed = False
        self.cassette: str | None = None
        self.outcome = Outcome.ERROR
        self.reason: str | None = None
        self._done = False
        self._finished = trio.Event()
        # Another writer's take, kept on disk instead of this exchange's answer (recorder.py): readers of a whole
        # body are answered with it, a hit, rather than with an answer in no file.
        self.kept_instead: PreparedTakes | None = None
        self._error: GateError | None = None
        self._on_finish: list[Callable[[InflightExchange], None]] = []

    def set_head(self, status: int, headers: Headers) -> None:
        self.status = status
        self.headers = headers
        self._head_ready.set()

    def append(self, chunk: bytes) -> None:
        self.chunks.append(chunk)
        self._received_bytes += len(chunk)
        if not self.over_cap and self._received_bytes > self.max_kept_bytes:
            self.over_cap = True
            self._held_from = None  # it will not be recorded, so there is nothing to wait for
            self._over_cap_or_finished.set()
        self._drop_taken_chunks()
        self._wake_readers()

    def hold_back(self) -> None:
        """Keep the next chunk, and every one after it, from readers until `finish`."""
        if self._held_from is None and not self.over_cap:
            self._held_from = self.chunk_count

    def _drop_taken_chunks(self) -> None:
        if not self.over_cap:
            return
        taken = min((reader.position for reader in self._readers), default=self.chunk_count)
        del self.chunks[: taken - self._dropped_chunks]
        self._dropped_chunks = taken

    @property
    def chunk_count(self) -> int:
        """How many chunks have arrived, kept or not."""
        return self._dropped_chunks + len(self.chunks)

    @property
    def released_count(self) -> int:
        """How many chunks readers may take: all but the held-back ones, until `finish`."""
        if self._held_from is None or self._done:
            return self.chunk_count
        return self._held_from

    def finish(self, outcome: Outcome | None = None, reason: str | None = None) -> None:
        """End the exchange; `outcome` and `reason` are what every reader's answer reports."""
        if self._done:
            return
        if outcome is not None:
            self.outcome, self.reason = outcome, reason
        self._done = True
        self._finished.set()
        self._head_ready.set()
        self._over_cap_or_finished.set()
        self._wake_readers()
        for callback in self._on_finish:
            callback(self)

    def when_finished(self, callback: Callable[[InflightExchange], None]) -> None:
        """Call `callback` once the outcome is decided: now if it is, else from `finish`."""
        if self._done:
            callback(self)
        else:
            self._on_finish.append(callback)

    async def finished(self) -> None:
        """Wait until the outcome is decided (`finish`)."""
        await self._finished.wait()

    async def over_cap_or_finished(self) -> None:
        """Wait until the body is whole (`finish`) or will never be kept whole (`over_cap`)."""
        await self._over_cap_or_finished.wait()

    @property
    def over_cap_reason(self) -> str:
        """Why an exchange over the cap is passed through unrecorded, as the outcome's reason and the log say."""
        return f"the response is larger than max_recorded_bytes ({self.max_kept_bytes} bytes)"

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
            raise self._error or GateError(500, "The upstream exchange ended before its response.", code="gate_bug")
        return self.status, self.headers

    def body(self) -> ExchangeBody:
        """A reader of every chunk from the first; the chunks it has not taken are kept until it is closed.

        Call it when the reader joins, before any await, so that no chunk it needs can be dropped meanwhile.
        """
        if self._dropped_chunks:
            raise GateError(500, "A reader joined after the start of the body was dropped.", code="gate_bug")
        reader = ExchangeBody(self)
        self._readers.add(reader)
        return reader

    def _close_reader(self, reader: ExchangeBody) -> None:
        self._readers.discard(reader)
        self._drop_taken_chunks()


class ExchangeBody:
    """One reader's body of an exchange: every chunk from the first, as they arrive; raises the exchange's error if
    it broke midway.

    Chunks that arrived while this reader was busy writing are yielded joined, so a reader that falls behind
    catches up in one write instead of one write per upstream read (an SSE stream arrives in many small ones).
    """

    def __init__(self, exchange: InflightExchange) -> None:
        self._exchange = exchange
        self.position = 0  # the number of the next chunk to take

    def __aiter__(self) -> ExchangeBody:
        return self

    async def __anext__(self) -> bytes:
        exchange = self._exchange
        while True:
            available = exchange.released_count
            if self.position < available:
                dropped = exchange._dropped_chunks
                pending = exchange.chunks[self.position - dropped : available - dropped]
                self.position = available
                exchange._drop_taken_chunks()
                return pending[0] if len(pending) == 1 else b"".join(pending)
            if exchange._done:
                self.close()
                if exchange._error is not None:
                    raise exchange._error
                raise StopAsyncIteration
            await exchange._changed.wait()

    def close(self) -> None:
        """Stop reading; the exchange no longer keeps chunks for this reader."""
        self._exchange._close_reader(self)

    async def aclose(self) -> None:
        self.close()
