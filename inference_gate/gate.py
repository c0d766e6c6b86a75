"""The gate: the record/replay policy wired to the cassette store and the upstream pool.

One `Gate` owns everything a running proxy needs: the store, the upstream pool (record mode only), the
in-memory table of prepared replies, the in-flight exchanges, and the nursery their upstream calls run in. The CLI
and a Python user start the same object:

    gate = Gate(Settings(cache_dir=Path("cassettes")), Mode.REPLAY)
    trio.run(gate.run)

Identical requests are counted per gate process (`reset_take_counters` starts a new count, for example per
test): the k-th one is answered by the cassette's k-th take, recorded first if the cassette has fewer than the
`takes` setting, and once the takes run out the last one repeats. With a fault rate, the same count decides which
hits fail on purpose instead (faults.py).

Upstream calls run in the gate's own nursery, not in the client's connection task. A client that disconnects
midway therefore does not cancel the call: the exchange completes and is recorded, because the tokens are paid
for either way and the next run should not pay again. The call is still bounded by the upstream read timeout,
and on shutdown by the grace period.

With `replay_speed` set, a hit whose take has a recorded timing is paced (pacing.py): its parts are sent at their
scheduled times by `paced_parts`, and a client that goes away stops it at once (the server watches for that).
"""

from __future__ import annotations

import collections
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import orjson
import trio

from inference_gate.cassette import (
    BodyTiming,
    Cassette,
    CassetteError,
    RecordedResponse,
    ResponseTiming,
    StreamTiming,
    record_exchange,
)
from inference_gate.dialects import route_of
from inference_gate.errors import CacheMiss, GateError, error_outcome, error_response, internal_error
from inference_gate.faults import FaultKind, fault_plan, fault_response
from inference_gate.forwarding import client_response_headers, upstream_request_headers, upstream_target
from inference_gate.http.server import ServerLimits, serve_http
from inference_gate.http.upstream import UpstreamPool
from inference_gate.inflight import InflightExchange
from inference_gate.key_rules import KeyRules
from inference_gate.keys import CanonicalRequest, JsonTooDeepError, canonicalize
from inference_gate.messages import Headers, HttpRequest, HttpResponse
from inference_gate.multipart import MultipartError
from inference_gate.nearest.index import NearestRequests
from inference_gate.outcome import (
    CASSETTE_HEADER,
    NOT_RECORDED_COMMENT,
    OUTCOME_HEADER,
    REASON_HEADER,
    RECORDING,
    Answer,
    Outcome,
)
from inference_gate.pacing import ReplayPace, Schedule, Spread
from inference_gate.policy import Action, Lookup, Mode, decide, is_recordable
from inference_gate.redact import (
    client_credentials,
    redact_request,
    stored_request_headers,
    stored_response_headers,
)
from inference_gate.replies import PreparedReply, PreparedTakes, ReplyCache
from inference_gate.settings import Settings
from inference_gate.sse import SSEEvent, SSEParser, comment_line
from inference_gate.store import CassetteStore, SecretLeakError, Slot, TakeWrite
from inference_gate.summary import describe_request

logger = logging.getLogger("inference_gate")

# Worker threads that explain misses. Concurrent first misses in one folder wait for one index build; their own
# small pool keeps those waits from taking the threads that load cassettes for hits.
NEAREST_THREADS = 2


# orjson's errors for numbers that are valid JSON but that it cannot represent (older orjson refuses integers wider
# than 64 bits; every version refuses a number beyond a double's range). Such a body is keyed by its bytes.
_UNREPRESENTABLE_NUMBER = ("64-bit", "infinity")


def json_problem(body: bytes) -> str | None:
    """Why a body sent as JSON that the key could not read as JSON is not valid JSON, in orjson's words; None
    when it is valid JSON that orjson only cannot represent. Read only for a body that already failed to parse."""
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError as error:
        return None if any(marker in str(error) for marker in _UNREPRESENTABLE_NUMBER) else str(error)
    return None


# What a cassette counts as in the refresh summary when several of its takes were refreshed: the strongest.
REFRESH_PRECEDENCE = (TakeWrite.UNCHANGED, TakeWrite.CHANGED, TakeWrite.NEW)


def utc_now() -> datetime:
    return datetime.now(UTC)


async def paced_parts(schedule: Schedule) -> AsyncIterator[bytes]:
    """A paced reply's body: each part once its time, counted from the first read, has come."""
    started = trio.current_time()
    for at_s, part in schedule:
        await trio.sleep_until(started + at_s)
        yield part


def elapsed_ms(since: float, until: float) -> int:
    return round((until - since) * 1000)


def _log_subject(answer: Answer, slot: str) -> str:
    """What a request's log line ends with: the cassette, or for a miss the one that would answer (`slot`), else
    the reason; an error names both the cassette it concerns and why it failed (an injected fault, a corrupt
    cassette)."""
    named = answer.cassette or slot
    if answer.outcome is Outcome.ERROR and named and answer.reason:
        return f"{named} {answer.reason}"
    return named or answer.reason or ""


class Gate:
    def __init__(
        self,
        settings: Settings,
        mode: Mode,
        *,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        on_answer: Callable[[Answer], None] | None = None,
    ) -> None:
        """`on_answer` is called once per request, on the gate's trio thread, once its outcome is decided (for a
        recording: once the cassette is on disk or known not to be). `clock` dates recordings; `monotonic`, in
        seconds, times them (the response's `timing`)."""
        self.settings = settings
        self._on_answer = on_answer
        self.mode = mode
        self.store = CassetteStore(settings.cache_dir, redact_rules=settings.redact)
        self.key_rules = KeyRules.from_config(settings.ignore, settings.normalize)
        self.upstream = (
            UpstreamPool(
                settings.upstream,
                connect_timeout_s=settings.upstream_connect_timeout_s,
                read_timeout_s=settings.upstream_read_timeout_s,
            )
            if mode.calls_upstream
            else None
        )
        self._clock = clock
        self._monotonic = monotonic
        self._pace = (
            ReplayPace(settings.replay_speed, Spread(settings.replay_spread)) if settings.replay_speed else None
        )
        self._on_answer = on_answer
        self._nearest = NearestRequests(self.store, self.key_rules)
        self._nearest_threads = trio.CapacityLimiter(NEAREST_THREADS)
        self._replies = ReplyCache()
        self._inflight: dict[tuple[str, int], InflightExchange] = {}  # by request key and take index
        self._exchanges: trio.Nursery | None = None
        self._take_counts: collections.Counter[str] = collections.Counter()
        self._faults = fault_plan(settings, mode)
        self.refreshed: dict[str, TakeWrite] = {}  # refresh mode: each cassette's name and what was done to it

    def reset_take_counters(self) -> None:
        """Start counting identical requests afresh: the next one is answered by the first take again."""
        self._take_counts.clear()

    def refresh_summary(self) -> str:
        """What refresh mode did so far, per cassette: a cassette refreshed several times (takes) counts once,
        as `new` if it was created, else `changed` if any take changed."""
        counts = collections.Counter(self.refreshed.values())
        parts = [f"{counts[write]} {write.value}" for write in REFRESH_PRECEDENCE]
        return f"refreshed {len(self.refreshed)} cassette(s): {', '.join(parts)}"

    async def run(
        self, *, shutdown: trio.Event | None = None, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until cancelled or until `shutdown` is set; reports the bound port through `task_status`.

        After the server has stopped, upstream exchanges still running get the grace period to finish and be
        recorded, then are cancelled; a cancelled exchange records nothing.
        """
        settings = self.settings
        leftovers = await trio.to_thread.run_sync(self.store.remove_temp_files)
        if leftovers:
            logger.warning("removed %d temp file(s) left by an interrupted write in %s", leftovers, self.store.root)
        limits = ServerLimits(
            max_head_bytes=settings.max_head_bytes,
            max_body_bytes=settings.max_body_bytes,
            request_timeout_s=settings.request_timeout_s,
            idle_timeout_s=settings.idle_timeout_s,
            send_timeout_s=settings.send_timeout_s,
            shutdown_grace_s=settings.shutdown_grace_s,
            max_connections=settings.max_connections,
        )
        try:
            async with trio.open_nursery() as exchanges:
                self._exchanges = exchanges
                await serve_http(
                    self.handle, settings.host, settings.port, limits, shutdown=shutdown, task_status=task_status
                )
                exchanges.cancel_scope.deadline = trio.current_time() + settings.shutdown_grace_s
        finally:
            self._exchanges = None
            if self.mode is Mode.REFRESH:
                logger.info("%s", self.refresh_summary())
            if self.upstream is not None:
                with trio.CancelScope(shield=True):
                    await self.upstream.aclose()

    async def handle(self, request: HttpRequest) -> HttpResponse:
        """Answer one request: memo, then in flight, then store, then the policy decides."""
        started = time.perf_counter()
        exact_request = (request.method, request.target, request.body)
        slot_name = ""  # for the log line of a miss
        try:
            key = self._replies.key_of_exact_request(exact_request)
            canonical = self._canonicalize(request) if key is None else None
            key = key or canonical.key
            take_index = self._take_counts[key]
            self._take_counts[key] += 1
            takes = self._replies.get(key)
            if takes is not None and self._serves(takes, take_index):
                if canonical is not None:
                    self._replies.remember_request(exact_request, key)
                reply = takes.take(take_index)
            elif (flight := self._inflight.get((key, self._flight_take(take_index)))) is not None:
                return await self._join(request, started, flight)
            else:
                canonical = canonical or self._canonicalize(request)
                slot = self.store.locate(canonical)
                slot_name = slot.name
                return await self._answer_uncached(request, started, canonical, slot, take_index)
        except GateError as error:
            response = error_response(error, dialect=route_of(request.path).dialect)
            self._report(
                request,
                started,
                response.status,
                error_outcome(error),
                reason=error.code,
                slot=slot_name,
                described=error.request if isinstance(error, CacheMiss) else None,
                closest=error.closest if isinstance(error, CacheMiss) else None,
            )
            return response
        return self._hit(request, started, reply, key, take_index)

    def _hit(
        self, request: HttpRequest, started: float, reply: PreparedReply, key: str, take_index: int
    ) -> HttpResponse:
        """The response to a request that a cassette's take answers, from memory or just loaded; paced when the
        reply was prepared with a schedule; with a fault rate, the `take_index`-th request with `key` may fail on
        purpose instead (faults.py)."""
        if self._faults is not None:
            fault = self._faults.fault_for(key, take_index, streamed=reply.streamed)
            if fault is not None:
                return self._fail_on_purpose(request, started, reply, fault)
        self._report(request, started, reply.status, Outcome.HIT, cassette=reply.name)
        if reply.paced is not None:
            return HttpResponse(reply.status, reply.paced.headers, stream=paced_parts(reply.paced.schedule))
        return reply.response()

    def _fail_on_purpose(
        self, request: HttpRequest, started: float, reply: PreparedReply, fault: FaultKind
    ) -> HttpResponse:
        """An injected fault is an `error`, never a `hit`; it names the cassette that matched, so that a ledger
        still counts that cassette as used."""
        response = fault_response(fault, reply, route_of(request.path).dialect)
        self._report(request, started, response.status, Outcome.ERROR, cassette=reply.name, reason=fault.reason)
        return response

    def _serves(self, takes: PreparedTakes, take_index: int) -> bool:
        """Whether prepared takes answer the `take_index`-th identical request without a look at the disk."""
        decision = decide(
            self.mode, Lookup.FOUND, take_index=take_index, takes_found=len(takes), takes_wanted=self.settings.takes
        )
        return decision is Action.REPLAY_CASSETTE

    def _flight_take(self, take_index: int) -> int:
        """The take an upstream exchange for the `take_index`-th identical request records: requests past the
        last wanted take join the exchange for that take, so identical requests make at most `takes` calls."""
        return min(take_index, self.settings.takes - 1)

    def _report(
        self,
        request: HttpRequest,
        started: float,
        status: int,
        outcome: Outcome,
        *,
        cassette: str | None = None,
        reason: str | None = None,
        slot: str = "",
        described: str | None = None,
        closest: str | None = None,
    ) -> None:
        """Log the request's outcome and hand it to `on_answer`: both read the same `Answer`.

        The log names the cassette, or for a miss the one that would answer (`slot`), else the reason. When
        neither is listening, as in a plain replay, no `Answer` is built.
        """
        logging_answers = logger.isEnabledFor(logging.INFO)
        if not logging_answers and self._on_answer is None:
            return
        answer = Answer(
            request.method,
            request.path,
            status,
            outcome,
            cassette=cassette,
            reason=reason,
            request=described,
            closest=closest,
        )
        if logging_answers:
            elapsed_ms = (time.perf_counter() - started) * 1000
            logger.info(
                "%s %s %s %d %.1fms %s",
                answer.method,
                answer.path,
                answer.outcome.value,
                answer.status,
                elapsed_ms,
                _log_subject(answer, slot),
            )
        if self._on_answer is not None:
            self._on_answer(answer)

    def _canonicalize(self, request: HttpRequest) -> CanonicalRequest:
        content_type = request.header(b"content-type") or b""
        try:
            canonical = canonicalize(
                request.method,
                request.target,
                request.body,
                content_type=content_type.decode("latin-1"),
                rules=self.key_rules,
            )
        except JsonTooDeepError as error:
            raise GateError(400, str(error), code="json_too_deep", retryable=False) from None
        except MultipartError as error:
            raise GateError(400, str(error), code="invalid_multipart", retryable=False) from None
        if request.body and not canonical.is_json and content_type.startswith(b"application/json"):
            problem = json_problem(request.body)
            if problem is not None:
                raise GateError(
                    400, f"The request body is not valid JSON ({problem}).", code="invalid_json", retryable=False
                )
        return canonical

    async def _answer_uncached(
        self, request: HttpRequest, started: float, canonical: CanonicalRequest, slot: Slot, take_index: int
    ) -> HttpResponse:
        # A cassette may be hundreds of MB: reading, parsing and preparing it stays off the event loop.
        lookup, takes, problem = await trio.to_thread.run_sync(self._load_takes, slot, canonical.key)
        if problem is not None:
            logger.warning("corrupt cassette: %s", problem)
        takes_found = len(takes) if takes is not None else 0
        action = decide(
            self.mode, lookup, take_index=take_index, takes_found=takes_found, takes_wanted=self.settings.takes
        )
        if action is Action.REPLAY_CASSETTE:
            assert takes is not None
            self._replies.put(canonical.key, takes)
            return self._hit(request, started, takes.take(take_index), canonical.key, take_index)
        if action is Action.REPORT_CORRUPT:
            raise GateError(
                500,
                f"The cassette for this request is unreadable: {problem}. Delete it and record it again with "
                f"`inference-gate start`.",
                code="corrupt_cassette",
                retryable=False,
            )
        if action is Action.REPORT_MISS:
            # Finding the closest cassette reads the endpoint's folder once; keep that off the event loop.
            closest = await trio.to_thread.run_sync(self._nearest.describe, canonical, limiter=self._nearest_threads)
            raise CacheMiss(
                canonical.method,
                canonical.path,
                canonical.key,
                str(self.store.root.resolve()),
                request=describe_request(canonical.path, canonical.json_body),
                closest=closest,
            )
        # An identical request may have started its exchange while this one's cassette was looked for.
        flight = (canonical.key, self._flight_take(take_index))
        exchange = self._inflight.get(flight)
        if exchange is None:
            exchange = InflightExchange(self.settings.max_recorded_bytes)
            self._inflight[flight] = exchange
            assert self._exchanges is not None, "Gate.handle needs Gate.run"
            self._exchanges.start_soon(
                self._record, exchange, flight, request, canonical, slot, lookup is Lookup.CORRUPT
            )
        return await self._join(request, started, exchange)

    def _load_takes(self, slot: Slot, key: str) -> tuple[Lookup, PreparedTakes | None, str | None]:
        """The slot's cassette as prepared takes, or why there is none (the problem of a corrupt one)."""
        try:
            cassette = self.store.load(slot.path, key)
        except CassetteError as error:
            return Lookup.CORRUPT, None, str(error)
        if cassette is None:
            return Lookup.MISSING, None, None
        return Lookup.FOUND, PreparedTakes.from_cassette(cassette, slot.name, self._pace), None

    async def _join(self, request: HttpRequest, started: float, exchange: InflightExchange) -> HttpResponse:
        """A reader's response to an exchange; its answer is reported once the exchange's outcome is decided.

        A whole (non-SSE) body waits for that decision, so its outcome header is exact, unless the body grows past
        the recording cap: then it is streamed as it comes, as `passthrough`. A stream's head goes out before the
        body is known to be complete and recorded, so for a 2xx it says `recording`, a promise (see outcome.py);
        the log line and `on_answer` report the decided outcome, and the end of the body still waits for the
        write, ending with a comment when the cassette was not written.
        """
        body = exchange.body()  # before any await, so that the exchange keeps every chunk for this reader
        try:
            status, headers = await exchange.head()
            exchange.when_finished(
                lambda done: self._report(
                    request,
                    started,
                    status,
                    done.outcome,
                    cassette=done.cassette if done.outcome is Outcome.RECORDED else None,
                    reason=done.reason,
                )
            )
            if not exchange.streamed:
                await exchange.over_cap_or_finished()
                if not exchange.over_cap and not exchange.broken:
                    body.close()
                    outcome_headers = self._outcome_headers(exchange.outcome, exchange.reason, exchange.cassette)
                    return HttpResponse(status, [*headers, *outcome_headers], b"".join(exchange.chunks))
            if exchange.over_cap:
                headers = [*headers, *self._outcome_headers(Outcome.PASSTHROUGH, self._over_cap_reason, None)]
            elif 200 <= status < 300:
                headers = [*headers, (OUTCOME_HEADER, RECORDING)]
            else:
                headers = [*headers, *self._outcome_headers(Outcome.PASSTHROUGH, f"upstream status {status}", None)]
        except BaseException:
            body.close()
            raise
        return HttpResponse(status, headers, stream=body)

    @property
    def _over_cap_reason(self) -> str:
        return f"the response is larger than max_recorded_bytes ({self.settings.max_recorded_bytes} bytes)"

    @staticmethod
    def _outcome_headers(outcome: Outcome, reason: str | None, cassette: str | None) -> Headers:
        headers = [(OUTCOME_HEADER, outcome.header_value)]
        if outcome is Outcome.RECORDED and cassette is not None:
            headers.append((CASSETTE_HEADER, cassette.encode("utf-8", "replace")))
        if reason is not None:
            headers.append((REASON_HEADER, reason.encode("ascii", "replace")))
        return headers

    async def _record(
        self,
        exchange: InflightExchange,
        flight: tuple[str, int],
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
        assert self.upstream is not None
        try:
            dialect = route_of(request.path).dialect
            headers = upstream_request_headers(request.headers, api_key=self.settings.api_key, dialect=dialect)
            target = upstream_target(request.target, api_key=self.settings.api_key)
            sent_at = self._monotonic()
            first_event_at: float | None = None
            async with self.upstream.request(request.method, target, headers, request.body) as upstream:
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
                            self._over_cap_reason,
                        )
                ended_at = self._monotonic()
            if exchange.over_cap:
                exchange.finish(Outcome.PASSTHROUGH, self._over_cap_reason)
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
                    body=b"" if parser is not None else b"".join(exchange.chunks),
                    events=events if parser is not None else None,
                    timing=self._timing(sent_at, first_event_at, ended_at),
                ),
                recorded_at=self._clock().strftime("%Y-%m-%dT%H:%M:%SZ"),
                headers=stored_headers,
                query=stored_query,
                json_body=stored_json_body,
                store_file_contents=self.settings.store_file_contents,
            )
            recorded, how = await self._save(
                cassette, slot, self._secrets_in_play(request, canonical), replace_corrupt, take_index=flight[1]
            )
            if recorded:
                exchange.finish(Outcome.RECORDED, how)
                return
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
        if self.settings.api_key:
            return [self.settings.api_key]
        return client_credentials(request.headers, canonical.credentials)

    async def _save(
        self, cassette: Cassette, slot: Slot, secrets: list[str], replace_corrupt: bool, *, take_index: int
    ) -> tuple[bool, str | None]:
        """Write the cassette (or its new take) and keep its replies in memory; returns whether it is recorded,
        and why not or, in refresh mode, what the refresh did (`new`, `changed`, `unchanged`)."""
        refresh = self.mode is Mode.REFRESH
        try:
            if refresh or self.settings.takes > 1:
                put = functools.partial(
                    self.store.put_take,
                    cassette,
                    slot.path,
                    take_index=take_index,
                    takes_wanted=self.settings.takes,
                    refresh=refresh,
                    secrets=secrets,
                )
                write, on_disk = await trio.to_thread.run_sync(put)
            else:
                save = functools.partial(self.store.save, cassette, slot.path, replace=replace_corrupt, secrets=secrets)
                written = await trio.to_thread.run_sync(save)
                write = TakeWrite.NEW if written else TakeWrite.FULL
                on_disk = cassette if written else self.store.load(slot.path, cassette.key)
        except SecretLeakError as error:
            logger.error("%s; the exchange was answered but not recorded", error)
            return False, "a credential is in the exchange"
        except OSError as error:
            logger.error("writing %s failed (%s); the exchange was answered but not recorded", slot.name, error)
            return False, f"the cassette could not be written: {error.strerror or error}"
        if write is TakeWrite.FULL:
            logger.info("%s was recorded by another writer first; kept that one", slot.name)
        self._replies.put(cassette.key, PreparedTakes.from_cassette(on_disk or cassette, slot.name, self._pace))
        if refresh:
            self.refreshed[slot.name] = max(
                write, self.refreshed.get(slot.name, TakeWrite.UNCHANGED), key=REFRESH_PRECEDENCE.index
            )
            return True, write.value
        return True, None
