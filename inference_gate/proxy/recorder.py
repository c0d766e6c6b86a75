"""Recording: the upstream exchanges in flight, each fed to its readers live and written as a cassette.

A request that no cassette answers starts one exchange (`Recorder.start`); identical requests that arrive while it
runs join it instead of calling the upstream again (inflight.py). Exchanges run in the gate's own nursery, not in
the client's connection task. A client that disconnects midway therefore does not cancel the call: the exchange
completes and is recorded, because the tokens are paid for either way and the next run should not pay again. The
call is still bounded by the upstream read timeout, and on shutdown by the grace period.

An answer is `recorded` only once its cassette is durable (written, fsynced, linked): the end of every reader's
body, and a stream's final event, wait for the write. The new takes go into the reply table, so the next identical
request is a hit without a look at the disk.
"""

from __future__ import annotations

import collections
import functools
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime

import trio

from inference_gate.config.settings import Settings, route_table
from inference_gate.core.cassette import (
    BodyTiming,
    Cassette,
    RecordedResponse,
    ResponseTiming,
    StreamTiming,
    record_exchange,
)
from inference_gate.core.dialects import route_of
from inference_gate.core.errors import GateError, internal_error
from inference_gate.core.forwarding import client_response_headers, upstream_request_headers, upstream_target
from inference_gate.core.http_models import HttpRequest
from inference_gate.core.keys import CanonicalRequest
from inference_gate.core.outcome import NOT_RECORDED_COMMENT, Outcome
from inference_gate.core.pacing import ReplayPace
from inference_gate.core.policy import Mode, is_recordable
from inference_gate.core.redact import (
    client_credentials,
    redact_request,
    stored_request_headers,
    stored_response_headers,
    without_ephemeral_keys,
)
from inference_gate.core.routes import UpstreamRoute
from inference_gate.core.sse import SSEEvent, SSEParser, comment_line
from inference_gate.http.descriptors import retrying_without_descriptors
from inference_gate.http.upstream import UpstreamPool, UpstreamResponse
from inference_gate.proxy.inflight import InflightExchange
from inference_gate.proxy.replies import PreparedTakes, ReplyCache
from inference_gate.store.cassette_store import CassetteStore, CassetteTooLargeError, SecretLeakError, Slot, TakeWrite
from inference_gate.store.response_chains import ResponseChains

logger = logging.getLogger("inference_gate")

LOST_RACE_REASON = "another writer recorded this take first; this answer was not kept"

# An exchange is identified by its request key and the take it records.
Flight = tuple[str, int]


@dataclass(frozen=True, slots=True)
class TurnToRecord:
    """A WebSocket turn (websocket_turns.py) no cassette answers, to be recorded at `slot` as its `take`-th take."""

    canonical: CanonicalRequest
    slot: Slot
    take: int
    replace_corrupt: bool

# What a cassette counts as in the refresh summary when several of its takes were refreshed: the strongest.
REFRESH_PRECEDENCE = (TakeWrite.UNCHANGED, TakeWrite.CHANGED, TakeWrite.NEW)


def elapsed_ms(since: float, until: float) -> int:
    return round((until - since) * 1000)


class Recorder:
    """The upstream pool and the exchanges in flight of a gate that records (`start`, `start --refresh`).

    `clock` dates recordings; `monotonic`, in seconds, times them (the response's `timing`). Prepared takes of
    what it records go into `replies`, prepared for `pace`.
    """

    def __init__(
        self,
        settings: Settings,
        mode: Mode,
        store: CassetteStore,
        replies: ReplyCache,
        *,
        clock: Callable[[], datetime],
        monotonic: Callable[[], float] = time.monotonic,
        pace: ReplayPace | None = None,
        chains: ResponseChains | None = None,
    ) -> None:
        """`chains` learns the id of each Responses answer recorded, for the requests that continue it."""
        self.settings = settings
        self._chains = chains
        self.mode = mode
        self.store = store
        self.routes = route_table(settings)
        self._pools: dict[str, UpstreamPool] = {}  # by route name, opened at a route's first request
        self._replies = replies
        self._clock = clock
        self._monotonic = monotonic
        self._pace = pace
        self._inflight: dict[Flight, InflightExchange] = {}
        self.refreshed: dict[str, TakeWrite] = {}  # refresh mode: each cassette's name and what was done to it

    def exchange(self, flight: Flight) -> InflightExchange | None:
        """The exchange in flight for `flight` that a new reader may still join, if any."""
        return self._inflight.get(flight)

    def exchanges_of(self, key: str) -> list[InflightExchange]:
        """The exchanges in flight that are recording a take of `key`'s cassette."""
        return [exchange for (flight_key, _), exchange in self._inflight.items() if flight_key == key]

    def start(
        self,
        nursery: trio.Nursery,
        flight: Flight,
        request: HttpRequest,
        canonical: CanonicalRequest,
        slot: Slot,
        *,
        replace_corrupt: bool,
    ) -> InflightExchange:
        """The exchange for `flight`: the one in flight, or a new one started in `nursery` to record `request` at
        `slot` (over a corrupt cassette there when `replace_corrupt`)."""
        exchange = self._inflight.get(flight)
        if exchange is None:
            exchange = InflightExchange(self.settings.max_recorded_bytes)
            self._inflight[flight] = exchange
            nursery.start_soon(self._record, exchange, flight, request, canonical, slot, replace_corrupt)
        return exchange

    def route(self, target: str) -> tuple[UpstreamRoute, str, UpstreamPool]:
        """The route a request target takes (routes.py), the target to send it, and that route's pool."""
        route, routed_target = self.routes.route_for(target)
        pool = self._pools.get(route.name)
        if pool is None:
            pool = self._pools[route.name] = UpstreamPool(
                route.url,
                connect_timeout_s=self.settings.upstream_connect_timeout_s,
                read_timeout_s=self.settings.upstream_read_timeout_s,
            )
        return route, routed_target, pool

    def forward(self, request: HttpRequest) -> AbstractAsyncContextManager[UpstreamResponse]:
        """Send `request` upstream as a miss is sent: to the upstream its path routes to, with that route's key
        (if the gate has one) in the header the client (or its dialect) uses and the client's credentials dropped.
        The response's head has arrived when the block starts. `verify` sends recorded requests through here too,
        so that what it checks is what `start` would record."""
        route, routed_target, pool = self.route(request.target)
        dialect = route_of(request.path).dialect
        headers = upstream_request_headers(request.headers, api_key=route.api_key, dialect=dialect)
        target = upstream_target(routed_target, api_key=route.api_key)
        return pool.request(request.method, target, headers, request.body)

    def named_route(self, path: str) -> str | None:
        """The name a cassette records for the route that answers `path`: a named route's (the path's prefix
        says which), None for a dialect's own route, which the path already says (routes.py)."""
        route, _ = self.routes.route_for(path)
        return route.name if route.prefix else None

    def refresh_summary(self) -> str:
        """What refresh mode did so far, per cassette: a cassette refreshed several times (takes) counts once,
        as `new` if it was created, else `changed` if any take changed."""
        counts = collections.Counter(self.refreshed.values())
        parts = [f"{counts[write]} {write.value}" for write in REFRESH_PRECEDENCE]
        return f"refreshed {len(self.refreshed)} cassette(s): {', '.join(parts)}"

    async def aclose(self) -> None:
        for pool in self._pools.values():
            await pool.aclose()

    async def _record(
        self,
        exchange: InflightExchange,
        flight: Flight,
        request: HttpRequest,
        canonical: CanonicalRequest,
        slot: Slot,
        replace_corrupt: bool,
    ) -> None:
        """Run one upstream exchange, feed it to its readers live, record it, and only then end their bodies.

        The end of every reader's body, and a stream's final event (see `SSEEvent.is_final`), waits for the
        cassette to be durable (written, fsynced, linked), so a client that holds a whole response can rely on its
        cassette being on disk; a write that fails ends the bodies as `passthrough` with the reason, and nothing
        is kept in memory for it.

        The monotonic clock is read a fixed number of times per exchange (when the request goes, at the first
        event, when the body ends), so a test clock that steps on each read records exact timings. The last
        event's time is the body's end: a stream is known to have had its last event only when it ends.
        """
        try:
            sent_at = self._monotonic()
            first_event_at: float | None = None
            async with self.forward(request) as upstream:
                status = upstream.status
                content_type = dict(upstream.headers).get(b"content-type", b"")
                parser = SSEParser() if content_type.startswith(b"text/event-stream") else None
                exchange.streamed = parser is not None
                exchange.cassette = slot.name
                exchange.set_head(status, client_response_headers(upstream.headers))
                events: list[SSEEvent] = []
                async for chunk in upstream.body_chunks():
                    if parser is not None:
                        completed_events = parser.feed(chunk)
                        if any(event.is_final for event in completed_events):
                            exchange.hold_back()
                        events.extend(completed_events)
                        if first_event_at is None and events:
                            first_event_at = self._monotonic()
                    exchange.append(chunk)
                    if exchange.over_cap and self._inflight.get(flight) is exchange:
                        # Readers who join from now on could not get the start: they get their own exchange.
                        del self._inflight[flight]
                        parser, events = None, []
                        logger.warning(
                            "%s %s: %s; passing it through unrecorded",
                            request.method,
                            request.path,
                            exchange.over_cap_reason,
                        )
                ended_at = self._monotonic()
            if exchange.over_cap:
                exchange.finish(Outcome.PASSTHROUGH, exchange.over_cap_reason)
                return
            completed = parser is None or not parser.has_partial_event
            if not is_recordable(status, completed=completed):
                reason = f"upstream status {status}" if completed else "the upstream stream ended mid-event"
                exchange.finish(Outcome.PASSTHROUGH, reason)
                return
            stored_headers, stored_query, stored_json_body = redact_request(
                stored_request_headers(request.headers), canonical.query, canonical.json_body, self.settings.redact
            )
            cassette = record_exchange(
                canonical,
                RecordedResponse(
                    status=status,
                    headers=stored_response_headers(upstream.headers),
                    body=b"" if parser is not None else without_ephemeral_keys(b"".join(exchange.chunks)),
                    events=events if parser is not None else None,
                    timing=self._timing(sent_at, first_event_at, ended_at),
                ),
                recorded_at=self._clock().strftime("%Y-%m-%dT%H:%M:%SZ"),
                headers=stored_headers,
                query=stored_query,
                json_body=stored_json_body,
                store_file_contents=self.settings.store_file_contents,
                route=self.named_route(request.path),
            )
            write, how, kept_instead = await self._save(
                cassette, slot, self._secrets_in_play(request, canonical), replace_corrupt, take_index=flight[1]
            )
            if write is not None:
                exchange.new_cassette = write is TakeWrite.NEW
                exchange.finish(Outcome.RECORDED, how)
                return
            exchange.kept_instead = kept_instead
            if exchange.streamed:  # its head promised `recording`: say, inside the stream, that it was not kept
                exchange.append(comment_line(NOT_RECORDED_COMMENT + str(how)))
            exchange.finish(Outcome.PASSTHROUGH, how)
        except GateError as error:
            logger.warning("%s %s: %s", request.method, request.path, error.message)
            exchange.fail(error)
        except Exception as exc:
            logger.exception("recording %s %s failed", request.method, request.path)
            exchange.fail(internal_error(exc))
        finally:
            if self._inflight.get(flight) is exchange:
                del self._inflight[flight]
            # A no-op unless the exchange was cancelled (shutdown) before its outcome was decided.
            exchange.fail(GateError(502, "The upstream exchange was cancelled.", code="exchange_cancelled"))

    async def save_turn(
        self,
        request: HttpRequest,
        turn: TurnToRecord,
        events: list[SSEEvent],
        timing: ResponseTiming,
        *,
        more_secrets: Sequence[str] = (),
    ) -> tuple[TakeWrite | None, str | None]:
        """Record a WebSocket turn as the streamed HTTP exchange it is equivalent to: `request` is that HTTP
        request, `events` the server's messages as SSE events. Returns what the write did (None: not on disk), and
        why not (or in refresh mode what the refresh did), as for an HTTP exchange."""
        canonical = turn.canonical
        stored_headers, stored_query, stored_json_body = redact_request(
            stored_request_headers(request.headers), canonical.query, canonical.json_body, self.settings.redact
        )
        cassette = record_exchange(
            canonical,
            RecordedResponse(
                status=200,
                headers={"content-type": "text/event-stream; charset=utf-8"},
                events=events,
                timing=timing,
            ),
            recorded_at=self._clock().strftime("%Y-%m-%dT%H:%M:%SZ"),
            headers=stored_headers,
            query=stored_query,
            json_body=stored_json_body,
            route=self.named_route(request.path),
        )
        secrets = [*self._secrets_in_play(request, canonical), *more_secrets]
        write, how, _ = await self._save(cassette, turn.slot, secrets, turn.replace_corrupt, take_index=turn.take)
        return write, how

    def now_ms(self, since: float) -> int:
        """Milliseconds from `since` (a reading of this recorder's monotonic clock) to now."""
        return elapsed_ms(since, self._monotonic())

    def monotonic(self) -> float:
        return self._monotonic()

    @staticmethod
    def _timing(sent_at: float, first_event_at: float | None, ended_at: float) -> ResponseTiming:
        """A recorded response's timing; a stream without events is timed like a body."""
        if first_event_at is None:
            return BodyTiming(elapsed_ms(sent_at, ended_at))
        return StreamTiming(elapsed_ms(sent_at, first_event_at), elapsed_ms(sent_at, ended_at))

    def _secrets_in_play(self, request: HttpRequest, canonical: CanonicalRequest) -> list[str]:
        """The credentials that went upstream, which the last check before a write looks for.

        With a key of its own the gate forwards none of the client's credentials, so they are placeholders and
        only the gate's key is in play; without one, every credential the client sent is. The check itself skips
        values too short to be a real key (redact.MIN_CREDENTIAL_CHARS).
        """
        route, _ = self.routes.route_for(request.target)
        if route.api_key:
            return [route.api_key]
        return client_credentials(request.headers, canonical.credentials)

    async def _save(
        self, cassette: Cassette, slot: Slot, secrets: list[str], replace_corrupt: bool, *, take_index: int
    ) -> tuple[TakeWrite | None, str | None, PreparedTakes | None]:
        """Write the cassette (or its new take) and keep its replies in memory; returns what the write did (None:
        not recorded), why not or, in refresh mode, what the refresh did (`new`, `changed`, `unchanged`), and when
        another writer's take was kept instead of this one, the cassette on disk as prepared takes.

        Losing that race is not recorded: the answer in hand is in no file. Within one gate it happens only when
        prepared replies were evicted from memory; between gates sharing a directory, when both record the same
        take at once (the gate cannot see another process's exchanges)."""
        refresh = self.mode is Mode.REFRESH
        write_and_prepare = functools.partial(
            self._write_and_prepare, cassette, slot, secrets, replace_corrupt, take_index=take_index, refresh=refresh
        )
        try:
            # Writing, re-reading a cassette another writer got in first, and preparing replies stay off the loop.
            write, prepared = await retrying_without_descriptors(
                functools.partial(trio.to_thread.run_sync, write_and_prepare), "to write a cassette"
            )
        except SecretLeakError as error:
            logger.error("%s; the exchange was answered but not recorded", error)
            return None, "a credential is in the exchange", None
        except CassetteTooLargeError as error:
            logger.error("%s: %s; the exchange was answered but not recorded", slot.name, error)
            return None, str(error), None
        except OSError as error:
            logger.error("writing %s failed (%s); the exchange was answered but not recorded", slot.name, error)
            return None, f"the cassette could not be written: {error.strerror or error}", None
        except GateError as error:  # no file descriptor came free in time
            logger.error("writing %s failed (%s); the exchange was answered but not recorded", slot.name, error)
            return None, "the cassette could not be written: no file descriptor came free", None
        self.remember(cassette.key, prepared)
        if write is not TakeWrite.FULL and self._chains is not None:
            self._chains.learn(cassette)  # before the client can read the answer's id and chain to it
        if write is TakeWrite.FULL:
            logger.info("%s was recorded by another writer first; kept that one", slot.name)
            return None, LOST_RACE_REASON, prepared
        if refresh:
            self.refreshed[slot.name] = max(
                write, self.refreshed.get(slot.name, TakeWrite.UNCHANGED), key=REFRESH_PRECEDENCE.index
            )
            return write, write.value, None
        return write, None, None

    def remember(self, key: str, prepared: PreparedTakes) -> None:
        """Keep the takes on disk as prepared replies, unless memory already holds more of them: writes and reads
        end in worker threads, and one that ended first may be heard of last. (A refresh keeps the count, so its
        newest write is kept.)"""
        held = self._replies.get(key)
        if held is None or len(prepared) >= len(held):
            self._replies.put(key, prepared)

    def _write_and_prepare(
        self,
        cassette: Cassette,
        slot: Slot,
        secrets: list[str],
        replace_corrupt: bool,
        *,
        take_index: int,
        refresh: bool,
    ) -> tuple[TakeWrite, PreparedTakes]:
        """Write the cassette (or its new take), in a worker thread; what was done, and the cassette now on disk
        as prepared takes."""
        if refresh or self.settings.takes > 1:
            write, on_disk = self.store.put_take(
                cassette,
                slot.path,
                take_index=take_index,
                takes_wanted=self.settings.takes,
                refresh=refresh,
                secrets=secrets,
            )
        else:
            written = self.store.save(cassette, slot.path, replace=replace_corrupt, secrets=secrets)
            write = TakeWrite.NEW if written else TakeWrite.FULL
            on_disk = cassette if written else self.store.load(slot.path, cassette.key)
        return write, PreparedTakes.from_cassette(on_disk or cassette, slot.name, self._pace)
