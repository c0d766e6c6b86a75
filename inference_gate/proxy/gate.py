"""The gate: the record/replay policy wired to the cassette store and the recorder.

One `Gate` owns everything a running proxy needs: the store, the in-memory table of prepared replies, the
recorder with its upstream pool and exchanges in flight (record modes only, recorder.py), and the nursery those
exchanges run in. The CLI and a Python user start the same object:

    gate = Gate(Settings(cache_dir=Path("cassettes")), Mode.REPLAY)
    trio.run(gate.run)

Identical requests are counted per gate process (`reset_take_counters` starts a new count, for example per
test), and apart for each test that a request names in its `x-inference-gate-test` header: the k-th one is
answered by the cassette's k-th take, recorded first if the cassette has fewer than the `takes` setting, and once
the takes run out the last one repeats. With a fault rate, the same count decides which hits fail on purpose
instead (faults.py).

With `replay_speed` set, a hit whose take has a recorded timing is paced (pacing.py): its parts are sent at their
scheduled times by `paced_parts`, and a client that goes away stops it at once (the server watches for that).
"""

from __future__ import annotations

import collections
import functools
import logging
import time
from collections.abc import AsyncGenerator, Callable
from datetime import UTC, datetime

import trio

from inference_gate.config.settings import SETTING_SPECS, Settings
from inference_gate.core.cassette import CassetteError
from inference_gate.core.chains import CHAIN_FIELD
from inference_gate.core.dialects import route_of
from inference_gate.core.errors import CacheMiss, GateError, error_outcome, error_response
from inference_gate.core.http_models import Headers, HttpRequest, HttpResponse
from inference_gate.core.key_rules import KeyRules
from inference_gate.core.keys import CanonicalRequest
from inference_gate.core.outcome import (
    CASSETTE_HEADER,
    OUTCOME_HEADER,
    REASON_HEADER,
    RECORDING,
    Answer,
    Outcome,
)
from inference_gate.core.pacing import ReplayPace, Schedule, Spread
from inference_gate.core.policy import Action, Lookup, Mode, decide
from inference_gate.core.request_form import canonical_request
from inference_gate.core.summary import describe_request
from inference_gate.http.descriptors import connection_limit, retrying_without_descriptors
from inference_gate.http.server import ServerLimits, serve_http
from inference_gate.http.websocket import WebSocketLimits, WebSocketUpgrade
from inference_gate.proxy.answer_report import AnswerReport, Verdict, test_of
from inference_gate.proxy.faults import FaultKind, fault_plan, fault_response
from inference_gate.proxy.inflight import InflightExchange
from inference_gate.proxy.recorder import Flight, Recorder, TurnToRecord
from inference_gate.proxy.replies import PreparedReply, PreparedTakes, ReplyCache
from inference_gate.store.cassette_store import CassetteStore, Slot
from inference_gate.store.nearest_index import NearestRequests
from inference_gate.store.response_chains import ResponseChains

logger = logging.getLogger("inference_gate")

# Worker threads that explain misses. Concurrent first misses in one folder wait for one index build; their own
# small pool keeps those waits from taking the threads that load cassettes for hits.
NEAREST_THREADS = 2


def utc_now() -> datetime:
    return datetime.now(UTC)


async def paced_parts(schedule: Schedule) -> AsyncGenerator[bytes, None]:
    """A paced reply's body: each part once its time, counted from the first read, has come."""
    started = trio.current_time()
    for at_s, part in schedule:
        await trio.sleep_until(started + at_s)
        yield part


def cli_record_command(settings: Settings) -> str:
    """`inference-gate start --cache-dir DIR`, with `--upstream URL` when the upstream is not the default one."""
    command = f"inference-gate start --cache-dir {settings.cache_dir.resolve()}"
    if settings.upstream != SETTING_SPECS["upstream"].default:
        command += f" --upstream {settings.upstream}"
    return command


CHAIN_FIELD_BYTES = f'"{CHAIN_FIELD}"'.encode()


class Gate:
    def __init__(
        self,
        settings: Settings,
        mode: Mode,
        *,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        on_answer: Callable[[Answer], None] | None = None,
        record_command: str | None = None,
    ) -> None:
        """`on_answer` is called once per request, on the gate's trio thread, once its outcome is decided (for a
        recording: once the cassette is on disk or known not to be). `clock` dates recordings; `monotonic`, in
        seconds, times them (the response's `timing`). `record_command` is what a miss or a corrupt cassette
        tells the user to run to record (the pytest plugin names its own option); by default the CLI's."""
        self.settings = settings
        self.record_command = record_command or cli_record_command(settings)
        self._report = AnswerReport(on_answer)
        self.mode = mode
        self.key_rules = KeyRules.from_config(settings.ignore, settings.normalize)
        self.store = CassetteStore(
            settings.cache_dir,
            redact_rules=settings.redact,
            max_cassette_bytes=settings.max_cassette_bytes,
            key_rules=self.key_rules,
        )
        self._pace = (
            ReplayPace(settings.replay_speed, Spread(settings.replay_spread)) if settings.replay_speed else None
        )
        self._replies = ReplyCache()
        self._clock = clock
        self.chains = ResponseChains(self.store)
        self._chains_loading = trio.Lock()
        self._recorder = (
            Recorder(
                settings,
                mode,
                self.store,
                self._replies,
                clock=clock,
                monotonic=monotonic,
                pace=self._pace,
                chains=self.chains,
            )
            if mode.calls_upstream
            else None
        )
        self._nearest = NearestRequests(self.store, self.key_rules)
        self._nearest_threads = trio.CapacityLimiter(NEAREST_THREADS)
        self._exchanges: trio.Nursery | None = None
        self._take_counts: collections.Counter[tuple[str | None, str]] = collections.Counter()
        self._faults = fault_plan(settings, mode)

    def reset_take_counters(self) -> None:
        """Start counting identical requests afresh: the next one is answered by the first take again.

        Safe from any thread, so that the pytest plugin can call it before each test without waking the gate's:
        the count is replaced, not cleared, and a request being counted at that moment counts in the old one.
        """
        self._take_counts = collections.Counter()

    def refresh_summary(self) -> str:
        """What refresh mode did so far (see `Recorder.refresh_summary`)."""
        if self._recorder is None:
            raise RuntimeError("only a gate that records refreshes")
        return self._recorder.refresh_summary()

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
            max_connections=connection_limit(settings.max_connections),
            websocket=WebSocketLimits(
                max_message_bytes=settings.max_body_bytes,
                idle_timeout_s=settings.websocket_idle_timeout_s,
                max_messages=settings.websocket_max_messages,
                send_timeout_s=settings.send_timeout_s,
            ),
        )
        try:
            async with trio.open_nursery() as exchanges:
                self._exchanges = exchanges
                await serve_http(
                    self.handle,
                    settings.host,
                    settings.port,
                    limits,
                    shutdown=shutdown,
                    websocket_handler=self.handle_websocket,
                    task_status=task_status,
                )
                exchanges.cancel_scope.deadline = trio.current_time() + settings.shutdown_grace_s
        finally:
            self._exchanges = None
            if self._recorder is not None:
                with trio.CancelScope(shield=True):
                    await self._recorder.aclose()

    async def handle_websocket(self, request: HttpRequest, upgrade: WebSocketUpgrade) -> HttpResponse | None:
        """Run a WebSocket session (websocket_routes.py); a path the gate does not record is refused."""
        # Imported here: the session modules import this one's types.
        from inference_gate.proxy.websocket_routes import run_websocket

        return await run_websocket(self, request, upgrade)

    async def plan_turn(self, request: HttpRequest) -> HttpResponse | TurnToRecord:
        """A request that stands for one turn of a WebSocket (a Responses `response.create`): the cassette's
        answer, as `handle` gives it, when the policy replays; else, in a recording mode, what to record it as.

        The take count advances exactly as for `handle`. Raises GateError for a request that cannot be keyed.
        """
        if self._recorder is None:
            return await self.handle(request)
        await self._know_chains(request)
        canonical = self._canonicalize(request)
        counted = (test_of(request), canonical.key)
        take_index = self._take_counts[counted]
        takes = self._replies.get(canonical.key)
        slot = self.store.locate(canonical)
        lookup = Lookup.FOUND
        if takes is None:
            lookup, takes, problem = await trio.to_thread.run_sync(self._load_takes, slot, canonical.key)
            if problem is not None:
                logger.warning("corrupt cassette: %s", problem)
        takes_found = len(takes) if takes is not None else 0
        action = decide(
            self.mode, lookup, take_index=take_index, takes_found=takes_found, takes_wanted=self.settings.takes
        )
        if action is Action.REPLAY_CASSETTE:
            return await self.handle(request)
        self._take_counts[counted] += 1
        return TurnToRecord(canonical, slot, self._flight_take(take_index), replace_corrupt=lookup is Lookup.CORRUPT)

    def report(
        self,
        request: HttpRequest,
        started: float,
        status: int,
        outcome: Outcome,
        *,
        cassette: str | None = None,
        reason: str | None = None,
        described: str | None = None,
        closest: str | None = None,
        new_cassette: bool = False,
    ) -> None:
        """Log an outcome the WebSocket sessions decided, and hand it to `on_answer`, as for a request; a miss
        says what was asked (`described`) and the closest recording, for the ledger's summary."""
        verdict = Verdict(outcome, cassette, reason, described, closest, new_cassette)
        self._report(request, started, status, verdict)

    @property
    def recorder(self) -> Recorder | None:
        return self._recorder

    def session_take(self, cassette: str) -> int:
        """Which take of the session cassette `cassette` its next replay plays: the n-th replay plays the n-th."""
        return self._take_counts[f"session-take:{cassette}"]

    def count_session(self, counted: str) -> int:
        """Count one more session of `counted` (a cassette replayed, or a key recorded); the count before."""
        counted = f"session-take:{counted}"
        before = self._take_counts[counted]
        self._take_counts[counted] += 1
        return before

    def session_fault(self, cassette: str) -> FaultKind | None:
        """How the replay of the recorded session `cassette` fails on purpose this time, if it does: the n-th
        replay of the same session is the n-th identical request of the fault plan (faults.py)."""
        if self._faults is None:
            return None
        counted = (None, f"session:{cassette}")
        occurrence = self._take_counts[counted]
        self._take_counts[counted] += 1
        return self._faults.fault_for(cassette, occurrence, streamed=True)

    @property
    def pace(self) -> ReplayPace | None:
        return self._pace

    def recorded_at(self) -> str:
        """Now, as a recording is dated."""
        return self._clock().strftime("%Y-%m-%dT%H:%M:%SZ")

    async def handle(self, request: HttpRequest) -> HttpResponse:
        """Answer one request: its key, then the memo, then an exchange in flight, then the store, and then the
        policy decides.

        What is decided here (a hit, an injected fault, a refusal) is reported here, once, at the end; a request
        that joins an upstream exchange is reported when the exchange's outcome is decided (`_join`), since only
        then is it known whether the answer reached the disk.
        """
        started = time.perf_counter()
        slot_name = ""  # for the log line of a miss
        try:
            await self._know_chains(request)
            key, canonical = self._key(request)
            take_counts = self._take_counts  # read once: `reset_take_counters` may replace it meanwhile
            counted = (test_of(request), key)
            take_index = take_counts[counted]
            take_counts[counted] = take_index + 1
            reply = self._memo(request, key, canonical, take_index)
            if reply is None:
                exchange = self._in_flight((key, self._flight_take(take_index)))
                if exchange is not None:
                    return await self._join(request, started, exchange, key, take_index)
                canonical = canonical or self._canonicalize(request)
                slot = self.store.locate(canonical)
                slot_name = slot.name
                reply, lookup = await self._stored(canonical, slot, take_index)
                if reply is None:
                    return await self._record(request, started, canonical, slot, take_index, lookup)
            response, verdict = self._replay(request, reply, key, take_index)
        except GateError as error:
            response = error_response(error, dialect=route_of(request.path).dialect)
            missed = error if isinstance(error, CacheMiss) else None
            verdict = Verdict(
                error_outcome(error), None, error.code, missed and missed.request, missed and missed.closest
            )
        self._report(request, started, response.status, verdict, slot=slot_name)
        return response

    def _key(self, request: HttpRequest) -> tuple[str, CanonicalRequest | None]:
        """The request's key: from the memo of exact requests already keyed, else computed (and the canonical
        request with it, for the store and the recorder)."""
        key = self._replies.key_of_exact_request((request.method, request.target, request.body))
        if key is not None:
            return key, None
        canonical = self._canonicalize(request)
        return canonical.key, canonical

    def _memo(
        self, request: HttpRequest, key: str, canonical: CanonicalRequest | None, take_index: int
    ) -> PreparedReply | None:
        """The take that prepared replies in memory give this request, if the policy lets them answer it."""
        takes = self._replies.get(key)
        if takes is None or not self._serves(takes, take_index):
            return None
        if canonical is not None:
            self._replies.remember_request((request.method, request.target, request.body), key)
        return takes.take(take_index)

    async def _stored(
        self, canonical: CanonicalRequest, slot: Slot, take_index: int
    ) -> tuple[PreparedReply | None, Lookup]:
        """The store's take for this request, or None with what the lookup found when the policy says to record;
        a miss and a corrupt cassette in replay raise the error the client gets."""
        # A cassette may be hundreds of MB: reading, parsing and preparing it stays off the event loop. Without a
        # file descriptor to open it, it waits a moment and tries again (descriptors.py), from memory if an
        # identical request has loaded it meanwhile.
        lookup, takes, problem = await retrying_without_descriptors(
            functools.partial(self._takes_in_memory_or_stored, slot, canonical.key, take_index), "to open a cassette"
        )
        if problem is not None:
            logger.warning("corrupt cassette: %s", problem)
        takes_found = len(takes) if takes is not None else 0
        action = decide(
            self.mode, lookup, take_index=take_index, takes_found=takes_found, takes_wanted=self.settings.takes
        )
        if action is Action.REPLAY_CASSETTE and takes is not None:
            self._replies.put(canonical.key, takes)
            return takes.take(take_index), lookup
        if action is Action.REPORT_CORRUPT:
            raise GateError(
                500,
                f"The cassette for this request is unreadable: {problem}. Delete it and record it again with "
                f"`{self.record_command}`.",
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
                record_command=self.record_command,
            )
        if action is not Action.FORWARD_AND_RECORD:
            raise GateError(500, f"the policy decided {action.value} with no cassette to replay", code="gate_bug")
        if takes is not None and self._recorder is not None:  # too few takes: what is there still counts (_record)
            self._recorder.remember(canonical.key, takes)
        return None, lookup

    async def _record(
        self,
        request: HttpRequest,
        started: float,
        canonical: CanonicalRequest,
        slot: Slot,
        take_index: int,
        lookup: Lookup,
    ) -> HttpResponse:
        """Answer from the upstream exchange that records this request's take, making one upstream call per take.

        While this request's cassette was looked for, identical requests may have started exchanges, or finished
        them. So, on the gate's thread, with no await between a look and what follows from it: takes in memory
        that answer it make it a hit; the exchange for its take in flight is joined. A request for the last take
        (which every request past it shares) may come after that take's exchange has ended but before earlier
        takes' have, since exchanges end in any order: in record mode, when the takes recorded and those being
        recorded already make every take wanted, it waits for one of them to end and looks again, and is answered
        by the last take (a hit). Only otherwise does it start an exchange.
        """
        recorder, exchanges = self._recorder, self._exchanges
        if recorder is None or exchanges is None:
            raise GateError(500, "recording needs a recorder and a running gate (Gate.run)", code="gate_bug")
        key = canonical.key
        flight = (key, self._flight_take(take_index))
        shares_the_last_take = self.mode is Mode.RECORD and flight[1] == self.settings.takes - 1
        while (exchange := recorder.exchange(flight)) is None:
            reply = self._memo(request, key, canonical, take_index)
            if reply is not None:
                response, verdict = self._replay(request, reply, key, take_index)
                self._report(request, started, response.status, verdict)
                return response
            recording = recorder.exchanges_of(key) if shares_the_last_take else []
            held = self._replies.get(key)
            if not recording or (len(held) if held is not None else 0) + len(recording) < self.settings.takes:
                corrupt = lookup is Lookup.CORRUPT
                exchange = recorder.start(exchanges, flight, request, canonical, slot, replace_corrupt=corrupt)
                break
            await recording[0].finished()
        return await self._join(request, started, exchange, key, take_index)

    def _replay(
        self, request: HttpRequest, reply: PreparedReply, key: str, take_index: int
    ) -> tuple[HttpResponse, Verdict]:
        """The response to a request that a cassette's take answers, from memory or just loaded; paced when the
        reply was prepared with a schedule; with a fault rate, the `take_index`-th request with `key` may fail on
        purpose instead (faults.py): an `error`, never a `hit`, naming the cassette that matched so that a ledger
        still counts that cassette as used."""
        if self._faults is not None:
            fault = self._faults.fault_for(key, take_index, streamed=reply.streamed)
            if fault is not None:
                response = fault_response(fault, reply, route_of(request.path).dialect, paced_parts)
                return response, Verdict(Outcome.ERROR, reply.name, fault.reason)
        if reply.paced is not None:
            response = HttpResponse(reply.status, reply.paced.headers, stream=paced_parts(reply.paced.schedule))
            return response, Verdict(Outcome.HIT, reply.name)
        return reply.response(), Verdict(Outcome.HIT, reply.name)

    def _serves(self, takes: PreparedTakes, take_index: int) -> bool:
        """Whether prepared takes answer the `take_index`-th identical request without a look at the disk."""
        decision = decide(
            self.mode, Lookup.FOUND, take_index=take_index, takes_found=len(takes), takes_wanted=self.settings.takes
        )
        return decision is Action.REPLAY_CASSETTE

    def _in_flight(self, flight: Flight) -> InflightExchange | None:
        return None if self._recorder is None else self._recorder.exchange(flight)

    def _flight_take(self, take_index: int) -> int:
        """The take an upstream exchange for the `take_index`-th identical request records: requests past the
        last wanted take join the exchange for that take, so identical requests make at most `takes` calls."""
        return min(take_index, self.settings.takes - 1)

    async def _know_chains(self, request: HttpRequest) -> None:
        """Read the store's Responses answers once, before the first request that may continue one is keyed
        (chains.py); the bytes test is cheap, and a false positive only loads the index early."""
        if not self.chains.loaded and CHAIN_FIELD_BYTES in request.body:
            async with self._chains_loading:
                if not self.chains.loaded:
                    await trio.to_thread.run_sync(self.chains.load)

    async def _takes_in_memory_or_stored(
        self, slot: Slot, key: str, take_index: int
    ) -> tuple[Lookup, PreparedTakes | None, str | None]:
        """The takes in memory if they answer the `take_index`-th request, else the slot's, loaded in a thread."""
        takes = self._replies.get(key)
        if takes is not None and self._serves(takes, take_index):
            return Lookup.FOUND, takes, None
        return await trio.to_thread.run_sync(self._load_takes, slot, key)

    def _load_takes(self, slot: Slot, key: str) -> tuple[Lookup, PreparedTakes | None, str | None]:
        """The slot's cassette as prepared takes, or why there is none (the problem of a corrupt one)."""
        try:
            cassette = self.store.load(slot.path, key)
        except CassetteError as error:
            return Lookup.CORRUPT, None, str(error)
        if cassette is None:
            return Lookup.MISSING, None, None
        return Lookup.FOUND, PreparedTakes.from_cassette(cassette, slot.name, self._pace), None

    async def _join(
        self, request: HttpRequest, started: float, exchange: InflightExchange, key: str, take_index: int
    ) -> HttpResponse:
        """A reader's response to an exchange; its answer is reported once the exchange's outcome is decided.

        A whole (non-SSE) body waits for that decision, so its outcome header is exact, unless the body grows past
        the recording cap: then it is streamed as it comes, as `passthrough`. When another writer's take was kept
        instead of the exchange's answer, a whole body is answered with that take, a hit, like any request that
        comes after it; a stream, already under way, ends as `passthrough` with the reason.

        A stream's head goes out before the body is known to be complete and recorded, so for a 2xx it says
        `recording`, a promise (see outcome.py); the log line and `on_answer` report the decided outcome, and the
        end of the body still waits for the write, ending with a comment when the cassette was not written.
        """
        body = exchange.body()  # before any await, so that the exchange keeps every chunk for this reader
        try:
            status, headers = await exchange.head()
            if not exchange.streamed:
                await exchange.over_cap_or_finished()
                if exchange.kept_instead is not None:
                    body.close()
                    response, verdict = self._replay(request, exchange.kept_instead.take(take_index), key, take_index)
                    self._report(request, started, response.status, verdict)
                    return response
            exchange.when_finished(
                lambda done: self._report(
                    request,
                    started,
                    status,
                    Verdict(
                        done.outcome,
                        done.cassette if done.outcome is Outcome.RECORDED else None,
                        done.reason,
                        new_cassette=done.new_cassette,
                    ),
                )
            )
            if not exchange.streamed and not exchange.over_cap and not exchange.broken:
                body.close()
                outcome_headers = self._outcome_headers(exchange.outcome, exchange.reason, exchange.cassette)
                return HttpResponse(status, [*headers, *outcome_headers], b"".join(exchange.chunks))
            if exchange.over_cap:
                headers = [*headers, *self._outcome_headers(Outcome.PASSTHROUGH, exchange.over_cap_reason, None)]
            elif 200 <= status < 300:
                headers = [*headers, (OUTCOME_HEADER, RECORDING)]
            else:
                headers = [*headers, *self._outcome_headers(Outcome.PASSTHROUGH, f"upstream status {status}", None)]
        except BaseException:
            body.close()
            raise
        return HttpResponse(status, headers, stream=body)

    @staticmethod
    def _outcome_headers(outcome: Outcome, reason: str | None, cassette: str | None) -> Headers:
        headers = [(OUTCOME_HEADER, outcome.header_value)]
        if outcome is Outcome.RECORDED and cassette is not None:
            headers.append((CASSETTE_HEADER, cassette.encode("utf-8", "replace")))
        if reason is not None:
            headers.append((REASON_HEADER, reason.encode("ascii", "replace")))
        return headers


    def _canonicalize(self, request: HttpRequest) -> CanonicalRequest:
        return canonical_request(request, self.key_rules, self.chains.producer_of)
