"""The ledger: which test made which request, what the gate did with it, and which cassettes are still used.

The pytest plugin (and `inference-gate start|replay --ledger FILE`) feeds every `Answer` into a `Ledger` under
the id of the test that was running when the request arrived. From it come the terminal summary (counts per
outcome, each miss with its request and closest cassette), the test -> cassettes map, and the prune decision.

Under pytest-xdist every worker keeps its own ledger and sends it to the controller as JSON (`as_json`), where
the parts are merged; the same JSON is the `--ledger FILE` format.

Recording only what passed: in record and refresh modes the plugin takes back the cassettes that tests which did
not pass created, once the run is over; `discard_plan` decides which, keeping every cassette a passing test used.

Pruning deletes cassettes that no test used, so it is only safe when every test ran and passed: a test that was
deselected, skipped, never reached or failed early may well need a cassette this run never asked for.
`prune_plan` therefore either names what to delete or says every reason it refuses, never both.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from inference_gate.core.outcome import Answer, Outcome

LEDGER_FORMAT_VERSION = 1
# The test id of requests made outside any test: by a CLI gate, or while pytest collects.
OUTSIDE_TESTS = "(outside tests)"


class LedgerError(Exception):
    """A ledger file that cannot be read back: not JSON, another format version, fields missing."""


@dataclass(frozen=True, slots=True)
class Miss:
    """A request that found no cassette, as the summary names it."""

    test_id: str
    method: str
    path: str
    request: str | None
    closest: str | None


@dataclass(slots=True)
class TestRecord:
    """What one test did through the gate."""

    counts: Counter[Outcome] = field(default_factory=Counter)
    cassettes: set[str] = field(default_factory=set)
    misses: list[Miss] = field(default_factory=list)
    created: set[str] = field(default_factory=set)  # the cassettes its recordings created (not takes added)


class Ledger:
    def __init__(self) -> None:
        self.tests: dict[str, TestRecord] = {}

    def add(self, test_id: str, answer: Answer) -> None:
        record = self.tests.setdefault(test_id, TestRecord())
        record.counts[answer.outcome] += 1
        if answer.cassette is not None:
            record.cassettes.add(answer.cassette)
            if answer.outcome is Outcome.RECORDED and answer.new_cassette:
                record.created.add(answer.cassette)
        if answer.outcome is Outcome.MISS:
            record.misses.append(Miss(test_id, answer.method, answer.path, answer.request, answer.closest))

    def add_under_its_test(self, answer: Answer) -> None:
        """File an answer under the test its `x-inference-gate-test` header named, else outside tests: for a gate
        that cannot see tests itself (the CLI's)."""
        self.add(answer.test_id or OUTSIDE_TESTS, answer)

    def merge(self, other: Ledger) -> None:
        """Add another process's ledger to this one (xdist: a worker's part into the controller's)."""
        for test_id, theirs in other.tests.items():
            ours = self.tests.setdefault(test_id, TestRecord())
            ours.counts.update(theirs.counts)
            ours.cassettes |= theirs.cassettes
            ours.misses.extend(theirs.misses)
            ours.created |= theirs.created

    def counts(self) -> Counter[Outcome]:
        total: Counter[Outcome] = Counter()
        for record in self.tests.values():
            total.update(record.counts)
        return total

    def misses(self) -> list[Miss]:
        return [miss for test_id in sorted(self.tests) for miss in self.tests[test_id].misses]

    def cassettes_by_test(self) -> dict[str, list[str]]:
        return {test_id: sorted(record.cassettes) for test_id, record in sorted(self.tests.items())}

    def used_cassettes(self) -> set[str]:
        return {name for record in self.tests.values() for name in record.cassettes}

    def as_json(self) -> dict[str, Any]:
        return {
            "version": LEDGER_FORMAT_VERSION,
            "tests": {
                test_id: {
                    "counts": {outcome.value: count for outcome, count in sorted(record.counts.items(), key=_value)},
                    "cassettes": sorted(record.cassettes),
                    "created": sorted(record.created),
                    "misses": [
                        {"method": m.method, "path": m.path, "request": m.request, "closest": m.closest}
                        for m in record.misses
                    ],
                }
                for test_id, record in sorted(self.tests.items())
            },
        }

    @classmethod
    def from_json(cls, document: Any) -> Ledger:
        if not isinstance(document, dict) or document.get("version") != LEDGER_FORMAT_VERSION:
            raise LedgerError(f"not an inference-gate ledger of format version {LEDGER_FORMAT_VERSION}")
        ledger = cls()
        try:
            for test_id, part in document["tests"].items():
                ledger.tests[test_id] = TestRecord(
                    counts=Counter({Outcome(name): int(count) for name, count in part["counts"].items()}),
                    cassettes=set(part["cassettes"]),
                    misses=[
                        Miss(test_id, m["method"], m["path"], m["request"], m["closest"]) for m in part["misses"]
                    ],
                    created=set(part.get("created", ())),  # absent from a ledger written before it was kept
                )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise LedgerError(f"malformed ledger: {error!r}") from None
        return ledger


def _value(item: tuple[Outcome, int]) -> str:
    return item[0].value


@dataclass(frozen=True, slots=True)
class RunState:
    """The facts about a pytest run that decide whether its ledger covers every test.

    The plugin fills it in from pytest's options and reports; the CLI, which cannot know, leaves it empty.
    """

    keyword: str | None = None
    markers: str | None = None
    node_ids: tuple[str, ...] = ()
    last_failed: bool = False
    deselected: int = 0
    stopped_early: str | None = None
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    unreported_workers: tuple[str, ...] = ()

    def refusals(self) -> list[str]:
        """Why this run's ledger may miss cassettes some test needs; empty for a complete, passing run."""
        reasons = []
        if self.keyword:
            reasons.append(f"tests were selected with -k {self.keyword!r}")
        if self.markers:
            reasons.append(f"tests were selected with -m {self.markers!r}")
        if self.node_ids:
            reasons.append(f"only these tests were asked for: {' '.join(self.node_ids)}")
        if self.last_failed:
            reasons.append("--lf ran only the tests that failed last time")
        if self.deselected and not (self.keyword or self.markers or self.last_failed):
            reasons.append(f"tests were deselected: {self.deselected}")
        if self.stopped_early:
            reasons.append(f"the run stopped early ({self.stopped_early})")
        if self.failed:
            reasons.append(f"tests failed: {self.failed}")
        if self.errors:
            reasons.append(f"errors: {self.errors}")
        if self.skipped:
            reasons.append(f"tests were skipped, and a skipped test may need a cassette: {self.skipped}")
        if self.unreported_workers:
            reasons.append(f"workers sent no ledger: {', '.join(self.unreported_workers)}")
        return reasons


@dataclass(frozen=True, slots=True)
class PrunePlan:
    """Either cassettes to delete (maybe none) or the reasons for deleting nothing."""

    delete: list[str]
    refusals: list[str]


def prune_plan(cassette_names: Iterable[str], ledger: Ledger, run: RunState) -> PrunePlan:
    """Which of the cache directory's cassettes no test used, unless the run cannot vouch for that.

    A ledger with no request at all is refused too: that is what a suite looks like whose client does not read
    `OPENAI_BASE_URL`, and pruning after it would delete every cassette.
    """
    refusals = run.refusals()
    if not ledger.tests:
        refusals.append("no request went through the gate, so every cassette would look unused")
    if refusals:
        return PrunePlan([], refusals)
    used = ledger.used_cassettes()
    return PrunePlan(sorted(name for name in cassette_names if name not in used), [])


@dataclass(frozen=True, slots=True)
class DiscardPlan:
    """What happens to the cassettes that tests which did not pass created: each one to delete, with those tests,
    and each one kept because a passing test used it too, with the passing tests."""

    discard: dict[str, list[str]]
    kept: dict[str, list[str]]


def discard_plan(ledger: Ledger, passed: Collection[str]) -> DiscardPlan:
    """Which cassettes to take back after a recording run whose passing tests are `passed`.

    A cassette created by a test that did not pass (it failed, errored, was skipped or never finished) is deleted,
    unless a passing test used it too (it replayed it, or recorded it at the same moment): no passing test loses
    a cassette. Requests made outside any test count as passing: nothing judged them. A take that a failing test
    added to a cassette already there stays: deleting the file would lose the takes before it.
    """
    passing = set(passed) | {OUTSIDE_TESTS}
    used_by_passing: dict[str, set[str]] = {}
    for test_id, record in ledger.tests.items():
        if test_id in passing:
            for name in record.cassettes:
                used_by_passing.setdefault(name, set()).add(test_id)
    discard: dict[str, list[str]] = {}
    kept: dict[str, list[str]] = {}
    for test_id in sorted(ledger.tests):
        if test_id in passing:
            continue
        for name in sorted(ledger.tests[test_id].created):
            if name in used_by_passing:
                kept[name] = sorted(used_by_passing[name] - {OUTSIDE_TESTS}) or [OUTSIDE_TESTS]
            else:
                discard.setdefault(name, []).append(test_id)
    return DiscardPlan(dict(sorted(discard.items())), dict(sorted(kept.items())))
