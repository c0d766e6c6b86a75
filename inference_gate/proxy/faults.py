"""Fault injection: which answers from cassettes fail on purpose, and how, so that a client's retry logic can be
tested against replayed traffic.

With a fault rate R above 0, a share R of the answers the gate serves from cassettes fail instead, in one of three
ways, each in the error shape of the request's dialect (dialects.py):

- `rate_limited`: a 429 with `Retry-After` (whole seconds, the standard header) and `retry-after-ms` (which the
  OpenAI and Anthropic SDKs read first). Both are short (`RETRY_AFTER_S`, `RETRY_AFTER_MS`) so that a test suite's
  retries cost little time, yet long enough to be a real wait;
- `server_error`: a 500, which those SDKs retry after their own backoff;
- `stream_cut`: for a streamed reply only, the head and about half of the events, then the connection closes
  without the chunked body's terminator, so the client sees an incomplete body. The SDKs do not retry that.
  In a paced replay (pacing.py) the events before the cut keep their pace.

None of them carries `x-should-retry: false` (as a replay miss does): each is a failure a client should retry.

Whether the n-th identical request fails, and how, is a pure function of the seed, the request key and n (the
gate's count of identical requests, which the pytest plugin restarts per test), not a draw from a shared random
stream. A run is therefore repeatable even when requests arrive concurrently or in another order, as under
pytest-xdist, and a retry, being the next identical request, gets its own decision. The BLAKE2b digest of
(seed, key, n) gives two 64-bit numbers: the first, as a fraction of 2**64, fails the request when it is below R;
the second picks the kind among those the reply allows.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from enum import StrEnum

from inference_gate.config.settings import Settings
from inference_gate.core.dialects import Dialect
from inference_gate.core.errors import GateError, error_response
from inference_gate.core.http_models import HttpResponse
from inference_gate.core.outcome import CASSETTE_HEADER, OUTCOME_HEADER, REASON_HEADER, Outcome
from inference_gate.core.pacing import Schedule
from inference_gate.core.policy import Mode
from inference_gate.proxy.replies import PreparedReply

INJECTED_FAULT_TYPE = "inference_gate_injected_fault"
RETRY_AFTER_S = 1
RETRY_AFTER_MS = 100

_DIGEST_HALF_VALUES = 2**64  # how many values each 8-byte half of the digest can take
_EVENT_END = b"\n\n"


class FaultKind(StrEnum):
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    STREAM_CUT = "stream_cut"

    @property
    def reason(self) -> str:
        """What `x-inference-gate-reason`, the log line and the ledger say about a request failed this way."""
        return f"injected_fault: {self.value}"


WHOLE_BODY_FAULTS = (FaultKind.RATE_LIMITED, FaultKind.SERVER_ERROR)
STREAM_FAULTS = (*WHOLE_BODY_FAULTS, FaultKind.STREAM_CUT)


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """The share of answers that fail (`rate`, from 0 to 1) and the seed that decides which."""

    rate: float
    seed: int

    @property
    def description(self) -> str:
        """How the start-up banner and the pytest summary say that faults are on."""
        return f"fault injection on: {self.rate * 100:g}% of answers from cassettes fail on purpose (seed {self.seed})"

    def fault_for(self, key: str, occurrence: int, *, streamed: bool) -> FaultKind | None:
        """How the `occurrence`-th identical request (from 0) with request key `key` fails, or None when it does
        not; only a `streamed` reply can be cut."""
        digest = hashlib.blake2b(f"{self.seed}\0{key}\0{occurrence}".encode(), digest_size=16).digest()
        if int.from_bytes(digest[:8]) / _DIGEST_HALF_VALUES >= self.rate:
            return None
        kinds = STREAM_FAULTS if streamed else WHOLE_BODY_FAULTS
        return kinds[int.from_bytes(digest[8:]) % len(kinds)]


def fault_plan(settings: Settings, mode: Mode) -> FaultPlan | None:
    """The faults a gate in `mode` injects, or None when it injects none: the rate is 0, or the mode answers
    nothing from cassettes (refresh sends every request upstream)."""
    if settings.fault_rate > 0 and mode is not Mode.REFRESH:
        return FaultPlan(settings.fault_rate, settings.fault_seed)
    return None


# Sends a schedule's parts at their times: the gate's I/O shell (`gate.paced_parts`).
Play = Callable[[Schedule], AsyncGenerator[bytes, None]]


def fault_response(kind: FaultKind, reply: PreparedReply, dialect: Dialect, play: Play) -> HttpResponse:
    """The response that fails the request `reply` would answer, in the error shape of `dialect`; a cut stream's
    parts are sent by `play`, at the reply's pace when it is paced, else at once.

    Every one says `x-inference-gate: error` with the fault as its reason, and names the cassette that matched.
    """
    named = [(REASON_HEADER, kind.reason.encode("ascii")), (CASSETTE_HEADER, reply.name.encode("utf-8", "replace"))]
    if kind is FaultKind.STREAM_CUT:
        headers = [header for header in reply.headers if header[0] not in (OUTCOME_HEADER, CASSETTE_HEADER)]
        headers += [(OUTCOME_HEADER, Outcome.ERROR.header_value), *named]
        whole = reply.paced.schedule if reply.paced is not None else ((0.0, reply.body),)
        cut = cut_schedule(whole, len(stream_prefix(reply.body)))
        return HttpResponse(reply.status, headers, stream=_cut_stream(play(cut)))
    if kind is FaultKind.RATE_LIMITED:
        error = _injected_error(429, f"rate limited; retry after {RETRY_AFTER_MS} ms")
        response = error_response(error, dialect=dialect)
        response.headers += [
            (b"retry-after", str(RETRY_AFTER_S).encode("ascii")),
            (b"retry-after-ms", str(RETRY_AFTER_MS).encode("ascii")),
        ]
    else:
        response = error_response(_injected_error(500, "server error"), dialect=dialect)
    response.headers += named
    return response


def _injected_error(status: int, what: str) -> GateError:
    message = f"Injected fault ({what}): inference-gate fails a share of replayed answers on purpose (fault_rate)."
    return GateError(status, message, code="injected_fault", error_type=INJECTED_FAULT_TYPE)


def stream_prefix(body: bytes) -> bytes:
    """The part of a recorded stream a cut one sends: up to the event boundary nearest its middle, or half its
    bytes when no boundary falls strictly inside it (a stream of one event), so that something is always missing."""
    middle = len(body) // 2
    before = body.rfind(_EVENT_END, 0, middle)
    after = body.find(_EVENT_END, middle)
    boundaries = [index + len(_EVENT_END) for index in (before, after) if index != -1]
    inside = [boundary for boundary in boundaries if 0 < boundary < len(body)]
    if not inside:
        return body[:middle]
    return body[: min(inside, key=lambda boundary: abs(boundary - middle))]


def cut_schedule(schedule: Schedule, length: int) -> Schedule:
    """The parts of `schedule` that make up its first `length` bytes, at their times; the last one shortened when
    `length` falls inside it."""
    kept: list[tuple[float, bytes]] = []
    sent = 0
    for at_s, part in schedule:
        if sent >= length:
            break
        kept.append((at_s, part[: length - sent]))
        sent += len(part)
    return tuple(kept)


async def _cut_stream(parts: AsyncGenerator[bytes, None]) -> AsyncIterator[bytes]:
    """Send `parts`, then fail: the server then closes the connection without ending the chunked body."""
    async with aclosing(parts):
        async for part in parts:
            yield part
    raise GateError(502, "Injected fault: the stream was cut midway on purpose.", code="injected_fault")
