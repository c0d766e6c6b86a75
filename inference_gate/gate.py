"""The gate: the record/replay policy wired to the cassette store and the upstream pool.

One `Gate` owns everything a running proxy needs: the store, the upstream pool (record mode only), the
in-memory table of prepared replies, the in-flight exchanges, and the nursery their upstream calls run in. The CLI
and a Python user start the same object:

    gate = Gate(Settings(cache_dir=Path("cassettes")), Mode.REPLAY)
    trio.run(gate.run)

Upstream calls run in the gate's own nursery, not in the client's connection task. A client that disconnects
midway therefore does not cancel the call: the exchange completes and is recorded, because the tokens are paid
for either way and the next run should not pay again. The call is still bounded by the upstream read timeout,
and on shutdown by the grace period.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson
import trio

from inference_gate.cassette import Cassette, CassetteError, RecordedRequest, RecordedResponse
from inference_gate.errors import CACHE_MISS_TYPE, GateError, error_response
from inference_gate.forwarding import client_response_headers, upstream_request_headers
from inference_gate.http.server import ServerLimits, serve_http
from inference_gate.http.upstream import UpstreamPool
from inference_gate.inflight import InflightExchange
from inference_gate.keys import CanonicalRequest, canonicalize
from inference_gate.messages import HttpRequest, HttpResponse
from inference_gate.nearest import NearestRequests
from inference_gate.outcome import Answer, Outcome
from inference_gate.policy import Action, Lookup, Mode, decide, is_recordable
from inference_gate.redact import (
    bearer_token,
    redact_request,
    stored_request_headers,
    stored_response_headers,
)
from inference_gate.replies import CASSETTE_HEADER, OUTCOME_HEADER, PreparedReply, ReplyCache
from inference_gate.settings import Settings
from inference_gate.sse import SSEEvent, SSEParser
from inference_gate.store import CassetteStore, SecretLeakError
from inference_gate.summary import endpoint_name, prompt_text, truncate

logger = logging.getLogger("inference_gate")

# How many bytes of request bodies the gate keeps to find repeated hits by their exact bytes (see
# `Gate._remember_hit`): the hot requests of a large test suite, and a bound on the memory they take.
HIT_BODIES_MAX_BYTES = 8 * 1024 * 1024


def utc_now() -> datetime:
    return datetime.now(UTC)


def _answer(request: HttpRequest, response: HttpResponse, canonical: CanonicalRequest | None) -> Answer:
    headers = dict(response.headers)
    outcome = Outcome(headers.get(OUTCOME_HEADER, b"error").decode())
    cassette = headers.get(CASSETTE_HEADER)
    described = closest = None
    if outcome is Outcome.MISS and canonical is not None:
        endpoint = endpoint_name(canonical.path)
        body = canonical.json_body if isinstance(canonical.json_body, dict) else {}
        described = f"{endpoint} {body.get('model', '-')} {truncate(prompt_text(endpoint, body), 60)!r}"
        if response.stream is None:  # a replay miss; a recording that upstream refused streams its error body
            message = orjson.loads(response.body)["error"]["message"]
            closest = message.partition("Closest recorded request: ")[2] or None
    return Answer(
        request.method,
        request.path,
        response.status,
        outcome,
        cassette=cassette.decode() if cassette and outcome in (Outcome.HIT, Outcome.RECORDED) else None,
        request=described,
        closest=closest,
    )


class Gate:
    def __init__(
        self,
        settings: Settings,
        mode: Mode,
        *,
        clock: Callable[[], datetime] = utc_now,
        on_answer: Callable[[Answer], None] | None = None,
    ) -> None:
        self.settings = settings
        self._on_answer = on_answer
        self.mode = mode
        self.store = CassetteStore(settings.cache_dir, redact_rules=settings.redact)
        self.upstream = (
            UpstreamPool(
                settings.upstream,
                connect_timeout_s=settings.upstream_connect_timeout_s,
                read_timeout_s=settings.upstream_read_timeout_s,
            )
            if mode is Mode.RECORD
            else None
        )
        self._clock = clock
        self._nearest = NearestRequests(self.store)
        self._replies = ReplyCache()
        self._hit_keys: dict[tuple[str, str, bytes], str] = {}
        self._hit_body_bytes = 0
        self._inflight: dict[str, InflightExchange] = {}
        self._exchanges: trio.Nursery | None = None

    async def run(
        self, *, shutdown: trio.Event | None = None, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until cancelled or until `shutdown` is set; reports the bound port through `task_status`.

        After the server has stopped, upstream exchanges still running get the grace period to finish and be
        recorded, then are cancelled; a cancelled exchange records nothing.
        """
        settings = self.settings
        limits = ServerLimits(
            max_head_bytes=settings.max_head_bytes,
            max_body_bytes=settings.max_body_bytes,
            request_timeout_s=settings.request_timeout_s,
            idle_timeout_s=settings.idle_timeout_s,
            shutdown_grace_s=settings.shutdown_grace_s,
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
            if self.upstream is not None:
                with trio.CancelScope(shield=True):
                    await self.upstream.aclose()

    async def handle(self, request: HttpRequest) -> HttpResponse:
        """Answer one request: from a cassette, from upstream while recording it, or with an error."""
        started = time.perf_counter()
        name = ""
        canonical: CanonicalRequest | None = None
        try:
            known_key = self._hit_keys.get((request.method, request.target, request.body))
            known_reply = self._replies.get(known_key) if known_key is not None else None
            if known_reply is not None:
                response = known_reply.response()
            else:
                canonical = self._canonicalize(request)
                reply = self._replies.get(canonical.key)
                if reply is not None:
                    self._remember_hit(request, canonical.key)
                    response = reply.response()
                elif canonical.key in self._inflight:
                    response = await self._join(self._inflight[canonical.key], outcome=b"recorded")
                else:
                    path = self.store.path_for(canonical)
                    name = path.relative_to(self.store.root).as_posix()
                    response = await self._answer_uncached(request, canonical, path, name)
        except GateError as error:
            response = error_response(error, outcome=b"miss" if error.error_type == CACHE_MISS_TYPE else b"error")
        if self._on_answer is not None:
            self._on_answer(_answer(request, response, canonical))
        if logger.isEnabledFor(logging.INFO):
            outcome = dict(response.headers).get(OUTCOME_HEADER, b"").decode()
            cassette = dict(response.headers).get(CASSETTE_HEADER, name.encode()).decode()
            elapsed_ms = (time.perf_counter() - started) * 1000
            logger.info(
                "%s %s %s %d %.1fms %s", request.method, request.path, outcome, response.status, elapsed_ms, cassette
            )
        return response

    def _remember_hit(self, request: HttpRequest, key: str) -> None:
        """Let the same method, target and body bytes find `key` directly next time.

        An SDK sends the same bytes for the same request, so parsing, re-serialising and hashing the body, the
        costliest part of a hit, is then done once per distinct request instead of once per request. Bodies are
        kept up to `HIT_BODIES_MAX_BYTES` in all; past that, hits are found through their key as before.
        """
        exact_request = (request.method, request.target, request.body)
        if exact_request not in self._hit_keys and self._hit_body_bytes + len(request.body) <= HIT_BODIES_MAX_BYTES:
            self._hit_keys[exact_request] = key
            self._hit_body_bytes += len(request.body)

    def _canonicalize(self, request: HttpRequest) -> CanonicalRequest:
        canonical = canonicalize(request.method, request.target, request.body)
        content_type = request.header(b"content-type") or b""
        if request.body and not canonical.is_json and content_type.startswith(b"application/json"):
            try:
                json.loads(request.body)
            except (ValueError, RecursionError) as error:  # RecursionError: nested deeper than the stack
                raise GateError(
                    400,
                    f"The request body is not valid JSON ({error}).",
                    code="invalid_json",
                    retryable=False,
                ) from None
        return canonical

    async def _answer_uncached(
        self, request: HttpRequest, canonical: CanonicalRequest, path: Path, name: str
    ) -> HttpResponse:
        try:
            cassette = self.store.load(path, canonical.key)
            lookup = Lookup.FOUND if cassette is not None else Lookup.MISSING
            problem = None
        except CassetteError as error:
            cassette, lookup, problem = None, Lookup.CORRUPT, str(error)
            logger.warning("corrupt cassette: %s", problem)
        action = decide(self.mode, lookup)
        if action is Action.REPLAY_CASSETTE:
            assert cassette is not None
            reply = PreparedReply.from_cassette(cassette, name)
            self._replies.put(canonical.key, reply)
            return reply.response()
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
            closest = await trio.to_thread.run_sync(self._nearest.describe, canonical)
            raise self._miss_error(canonical, closest)
        exchange = InflightExchange()
        self._inflight[canonical.key] = exchange
        assert self._exchanges is not None, "Gate.handle needs Gate.run"
        self._exchanges.start_soon(
            self._record, exchange, request, canonical, path, name, lookup is Lookup.CORRUPT
        )
        return await self._join(exchange, outcome=b"recorded")

    def _miss_error(self, canonical: CanonicalRequest, closest: str | None) -> GateError:
        cache_dir = self.store.root.resolve()
        message = (
            f"No cassette for {canonical.method} {canonical.path} (key {canonical.key[:16]}) in {cache_dir}. "
            f"Replay mode never calls OpenAI. To record it, run `inference-gate start --cache-dir {cache_dir}` "
            f"and send the request again."
        )
        if closest:
            message += f" Closest recorded request: {closest}"
        return GateError(404, message, code="cache_miss", error_type=CACHE_MISS_TYPE, retryable=False)

    async def _join(self, exchange: InflightExchange, *, outcome: bytes) -> HttpResponse:
        status, headers = await exchange.head()
        if not 200 <= status < 300:
            outcome = b"miss"
        return HttpResponse(status, [*headers, (OUTCOME_HEADER, outcome)], stream=exchange.body())

    async def _record(
        self,
        exchange: InflightExchange,
        request: HttpRequest,
        canonical: CanonicalRequest,
        path: Path,
        name: str,
        replace_corrupt: bool,
    ) -> None:
        """Run one upstream exchange, feed it to its readers, and record it if it completed cleanly.

        The readers' bodies end as soon as the upstream's does; the cassette is built and written after that,
        so neither the work nor the disk write (flushed, in a worker thread) adds to the client's latency. The
        prepared reply is served from memory at once, and a graceful shutdown waits for the write.
        """
        assert self.upstream is not None
        try:
            headers = upstream_request_headers(request.headers, api_key=self.settings.api_key)
            async with self.upstream.request(request.method, request.target, headers, request.body) as upstream:
                status = upstream.status
                client_headers = client_response_headers(upstream.headers)
                exchange.set_head(status, [*client_headers, (CASSETTE_HEADER, name.encode())])
                content_type = dict(upstream.headers).get(b"content-type", b"")
                parser = SSEParser() if content_type.startswith(b"text/event-stream") else None
                events: list[SSEEvent] = []
                async for chunk in upstream.body_chunks():
                    exchange.append(chunk)
                    if parser is not None:
                        events.extend(parser.feed(chunk))
            completed = parser is None or not parser.has_partial_event
            exchange.finish()
            if is_recordable(status, completed=completed):
                await trio.sleep(0)  # the readers send the end of their bodies before the recording work
                cassette = Cassette(
                    key=canonical.key,
                    recorded_at=self._clock().strftime("%Y-%m-%dT%H:%M:%SZ"),
                    request=self._stored_request(request, canonical),
                    response=RecordedResponse(
                        status=status,
                        headers=stored_response_headers(upstream.headers),
                        body=b"" if parser is not None else b"".join(exchange.chunks),
                        events=events if parser is not None else None,
                    ),
                ).with_summary()
                self._replies.put(canonical.key, PreparedReply.from_cassette(cassette, name))
                del self._inflight[canonical.key]
                await self._save(cassette, path, name, request, replace_corrupt)
        except GateError as error:
            logger.warning("%s %s: %s", request.method, request.path, error.message)
            exchange.fail(error)
        except Exception:
            logger.exception("recording %s %s failed", request.method, request.path)
            exchange.fail(GateError(502, "The gate failed while talking to the upstream.", code="gate_internal"))
        finally:
            self._inflight.pop(canonical.key, None)
            exchange.finish()

    def _stored_request(self, request: HttpRequest, canonical: CanonicalRequest) -> RecordedRequest:
        headers, json_body = redact_request(
            stored_request_headers(request.headers), canonical.json_body, self.settings.redact
        )
        return RecordedRequest(
            method=canonical.method,
            path=canonical.path,
            query=[list(pair) for pair in canonical.query],
            headers=headers,
            body=canonical.body,
            json_body=json_body,
            is_json=canonical.is_json,
        )

    async def _save(
        self, cassette: Cassette, path: Path, name: str, request: HttpRequest, replace_corrupt: bool
    ) -> None:
        secrets = [secret for secret in (self.settings.api_key, bearer_token(request.headers)) if secret]
        save = functools.partial(self.store.save, cassette, path, replace=replace_corrupt, secrets=secrets)
        try:
            written = await trio.to_thread.run_sync(save)
        except SecretLeakError as error:
            logger.error("%s; the exchange was answered but not recorded", error)
            self._replies.discard(cassette.key)
            return
        if not written:
            logger.info("%s was recorded by another writer first; kept that one", name)
            winner = self.store.load(path, cassette.key)
            if winner is not None:
                self._replies.put(cassette.key, PreparedReply.from_cassette(winner, name))
