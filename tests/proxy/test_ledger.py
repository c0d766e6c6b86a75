import pytest

from inference_gate.core.outcome import Answer, Outcome
from inference_gate.proxy.ledger import Ledger, LedgerError, Miss, PrunePlan, RunState, prune_plan

CHAT = "/v1/chat/completions"


def hit(cassette: str) -> Answer:
    return Answer("POST", CHAT, 200, Outcome.HIT, cassette=cassette)


def recorded(cassette: str) -> Answer:
    return Answer("POST", CHAT, 200, Outcome.RECORDED, cassette=cassette)


MISS = Answer("POST", CHAT, 404, Outcome.MISS, request="chat.completions gpt-4o-mini 'Hi'", closest="a.json differs")


def test_answers_are_counted_per_outcome_and_cassettes_kept_per_test() -> None:
    ledger = Ledger()
    ledger.add("t::a", hit("x.json"))
    ledger.add("t::a", hit("x.json"))
    ledger.add("t::b", recorded("y.json"))
    ledger.add("t::b", Answer("POST", CHAT, 500, Outcome.PASSTHROUGH, reason="upstream said 500"))
    assert ledger.counts() == {Outcome.HIT: 2, Outcome.RECORDED: 1, Outcome.PASSTHROUGH: 1}
    assert ledger.cassettes_by_test() == {"t::a": ["x.json"], "t::b": ["y.json"]}
    assert ledger.used_cassettes() == {"x.json", "y.json"}


def test_a_miss_keeps_its_test_request_and_closest_cassette() -> None:
    ledger = Ledger()
    ledger.add("t::new", MISS)
    assert ledger.misses() == [Miss("t::new", "POST", CHAT, MISS.request, MISS.closest)]
    assert ledger.used_cassettes() == set()


def test_merging_worker_parts_adds_counts_cassettes_and_misses() -> None:
    first, second = Ledger(), Ledger()
    first.add("t::a", hit("x.json"))
    second.add("t::a", hit("z.json"))
    second.add("t::b", MISS)
    first.merge(second)
    assert first.counts() == {Outcome.HIT: 2, Outcome.MISS: 1}
    assert first.cassettes_by_test() == {"t::a": ["x.json", "z.json"], "t::b": []}
    assert [miss.test_id for miss in first.misses()] == ["t::b"]


def test_json_round_trip_keeps_everything() -> None:
    ledger = Ledger()
    ledger.add("t::a", hit("x.json"))
    ledger.add("t::b", MISS)
    again = Ledger.from_json(ledger.as_json())
    assert again.as_json() == ledger.as_json()
    assert again.misses() == ledger.misses()


@pytest.mark.parametrize(
    "document",
    [[], {"version": 99, "tests": {}}, {"version": 1}, {"version": 1, "tests": {"t": {"counts": {"nope": 1}}}}],
)
def test_a_document_that_is_not_a_ledger_is_refused(document: object) -> None:
    with pytest.raises(LedgerError):
        Ledger.from_json(document)


def used_ledger() -> Ledger:
    ledger = Ledger()
    ledger.add("t::a", hit("a.json"))
    return ledger


def test_a_complete_passing_run_prunes_the_cassettes_no_test_used() -> None:
    plan = prune_plan(["a.json", "b.json", "c.json"], used_ledger(), RunState())
    assert plan == PrunePlan(delete=["b.json", "c.json"], refusals=[])


@pytest.mark.parametrize(
    ("run", "reason"),
    [
        (RunState(keyword="hello", deselected=1), "tests were selected with -k 'hello'"),
        (RunState(markers="slow"), "tests were selected with -m 'slow'"),
        (RunState(node_ids=("tests/test_a.py::test_x",)), "only these tests were asked for: tests/test_a.py::test_x"),
        (RunState(last_failed=True), "--lf ran only the tests that failed last time"),
        (RunState(deselected=2), "tests were deselected: 2"),
        (RunState(stopped_early="stopping after 1 failures"), "the run stopped early (stopping after 1 failures)"),
        (RunState(failed=1), "tests failed: 1"),
        (RunState(errors=2), "errors: 2"),
        (RunState(skipped=1), "tests were skipped, and a skipped test may need a cassette: 1"),
        (RunState(unreported_workers=("gw1",)), "workers sent no ledger: gw1"),
    ],
)
def test_an_incomplete_or_failing_run_refuses_and_says_why(run: RunState, reason: str) -> None:
    assert prune_plan(["a.json", "b.json"], used_ledger(), run) == PrunePlan(delete=[], refusals=[reason])


def test_every_reason_that_applies_is_given() -> None:
    plan = prune_plan(["b.json"], used_ledger(), RunState(keyword="x", failed=1))
    assert plan.refusals == ["tests were selected with -k 'x'", "tests failed: 1"]


def test_a_ledger_with_no_request_refuses_rather_than_delete_everything() -> None:
    plan = prune_plan(["a.json"], Ledger(), RunState())
    assert plan == PrunePlan([], ["no request went through the gate, so every cassette would look unused"])
