import pytest

from inference_gate.core.outcome import Answer, Outcome
from inference_gate.proxy.ledger import (
    OUTSIDE_TESTS,
    DiscardPlan,
    Ledger,
    LedgerError,
    Miss,
    PrunePlan,
    RunState,
    discard_plan,
    prune_plan,
)

CHAT = "/v1/chat/completions"


def hit(cassette: str) -> Answer:
    return Answer("POST", CHAT, 200, Outcome.HIT, cassette=cassette)


def recorded(cassette: str, *, new: bool = True) -> Answer:
    return Answer("POST", CHAT, 200, Outcome.RECORDED, cassette=cassette, new_cassette=new)


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
    ledger.add("t::c", recorded("y.json"))
    again = Ledger.from_json(ledger.as_json())
    assert again.as_json() == ledger.as_json()
    assert again.misses() == ledger.misses()
    assert again.tests["t::c"].created == {"y.json"}


def test_a_ledger_written_before_created_cassettes_were_kept_still_reads() -> None:
    old = {"version": 1, "tests": {"t::a": {"counts": {"hit": 1}, "cassettes": ["x.json"], "misses": []}}}
    assert Ledger.from_json(old).tests["t::a"].created == set()


def test_only_a_recording_that_made_the_file_counts_as_created() -> None:
    ledger = Ledger()
    ledger.add("t::a", recorded("new.json"))
    ledger.add("t::a", recorded("more-takes.json", new=False))
    ledger.add("t::a", hit("old.json"))
    assert ledger.tests["t::a"].created == {"new.json"}


def test_cassettes_created_by_tests_that_did_not_pass_are_discarded() -> None:
    ledger = Ledger()
    ledger.add("t::fails", recorded("only-failing.json"))
    ledger.add("t::fails", recorded("took-a-take.json", new=False))
    ledger.add("t::passes", recorded("passing.json"))
    ledger.add("t::unfinished", recorded("unfinished.json"))
    plan = discard_plan(ledger, passed={"t::passes"})
    assert plan == DiscardPlan(
        discard={"only-failing.json": ["t::fails"], "unfinished.json": ["t::unfinished"]}, kept={}
    )


def test_a_cassette_a_passing_test_used_too_is_kept_and_says_which() -> None:
    ledger = Ledger()
    ledger.add("t::fails", recorded("shared.json"))
    ledger.add("t::passes", hit("shared.json"))
    ledger.add("t::other_fails", recorded("same-moment.json"))
    ledger.add("t::other_passes", recorded("same-moment.json"))  # another xdist worker, the same request
    ledger.add(OUTSIDE_TESTS, hit("collected.json"))
    ledger.add("t::late", recorded("collected.json"))
    plan = discard_plan(ledger, passed={"t::passes", "t::other_passes"})
    assert plan == DiscardPlan(
        discard={},
        kept={"collected.json": [OUTSIDE_TESTS], "same-moment.json": ["t::other_passes"], "shared.json": ["t::passes"]},
    )


def test_requests_outside_tests_are_never_discarded() -> None:
    ledger = Ledger()
    ledger.add(OUTSIDE_TESTS, recorded("at-collection.json"))
    assert discard_plan(ledger, passed=set()) == DiscardPlan(discard={}, kept={})


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
