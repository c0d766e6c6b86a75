"""Reporting an answer: the one place a request's outcome is logged and handed to `on_answer`.

The log line and the ledger read the same `Answer`, built here from what the gate decided (a `Verdict`), so the
two can never disagree. When neither is listening, as in a plain replay, no `Answer` is built at all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import NamedTuple

from inference_gate.core.http_models import HttpRequest
from inference_gate.core.outcome import TEST_HEADER, Answer, Outcome

logger = logging.getLogger("inference_gate")


class Verdict(NamedTuple):
    """What is said of an answer besides its status: the outcome, the cassette it names, why, and for a miss the
    request described and the closest recorded one."""

    outcome: Outcome
    cassette: str | None = None
    reason: str | None = None
    described: str | None = None
    closest: str | None = None
    new_cassette: bool = False  # a recording that created its cassette file (outcome.Answer)


def test_of(request: HttpRequest) -> str | None:
    """The test a request names in its `x-inference-gate-test` header, if it names one."""
    value = request.header(TEST_HEADER)
    return value.decode("utf-8", "replace") if value else None


def log_subject(answer: Answer, slot: str) -> str:
    """What a request's log line ends with: the cassette, or for a miss the one that would answer (`slot`), else
    the reason; an error names both the cassette it concerns and why it failed (an injected fault, a corrupt
    cassette), and a refreshed recording what the refresh did to its file."""
    named = answer.cassette or slot
    if answer.outcome in (Outcome.ERROR, Outcome.RECORDED) and named and answer.reason:
        return f"{named} {answer.reason}"  # a refresh says `unchanged`, `changed` or `new`
    return named or answer.reason or ""


class AnswerReport:
    """Logs each answer and hands it to `on_answer`, which is called on the gate's trio thread."""

    def __init__(self, on_answer: Callable[[Answer], None] | None) -> None:
        self._on_answer = on_answer

    def __call__(self, request: HttpRequest, started: float, status: int, verdict: Verdict, *, slot: str = "") -> None:
        """Report `request`'s answer; `started` is its `time.perf_counter()` on arrival, and `slot` the cassette
        a miss would have been answered by, for its log line."""
        logging_answers = logger.isEnabledFor(logging.INFO)
        if not logging_answers and self._on_answer is None:
            return
        answer = Answer(
            request.method,
            request.path,
            status,
            verdict.outcome,
            cassette=verdict.cassette,
            reason=verdict.reason,
            request=verdict.described,
            closest=verdict.closest,
            test_id=test_of(request),
            new_cassette=verdict.new_cassette,
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
                log_subject(answer, slot),
            )
        if self._on_answer is not None:
            self._on_answer(answer)
