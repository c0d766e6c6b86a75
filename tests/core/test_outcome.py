"""Outcomes: the words every report uses, and the header values they travel in."""

import pytest

from inference_gate.core.outcome import NOT_RECORDED_COMMENT, OUTCOME_HEADER, RECORDING, Answer, Outcome


@pytest.mark.parametrize("outcome", list(Outcome))
def test_an_outcome_travels_as_its_own_word(outcome):
    assert outcome.header_value == outcome.value.encode("ascii")


def test_the_promise_of_a_live_stream_is_no_outcome():
    assert RECORDING not in {outcome.header_value for outcome in Outcome}
    assert OUTCOME_HEADER == b"x-inference-gate"
    assert NOT_RECORDED_COMMENT.startswith("inference-gate: not recorded")


def test_an_answer_is_a_value_that_cannot_be_changed_after_the_fact():
    answer = Answer("POST", "/v1/chat/completions", 200, Outcome.HIT, cassette="chat.completions/x.json")
    assert answer == Answer("POST", "/v1/chat/completions", 200, Outcome.HIT, cassette="chat.completions/x.json")
    with pytest.raises(AttributeError):
        answer.outcome = Outcome.RECORDED  # type: ignore[misc]
