import pytest

from inference_gate.policy import Action, Lookup, Mode, decide, is_recordable


@pytest.mark.parametrize("mode", list(Mode))
def test_a_recorded_answer_always_wins(mode):
    assert decide(mode, Lookup.FOUND) is Action.REPLAY_CASSETTE


def test_record_mode_forwards_misses_and_corrupt_cassettes():
    assert decide(Mode.RECORD, Lookup.MISSING) is Action.FORWARD_AND_RECORD
    assert decide(Mode.RECORD, Lookup.CORRUPT) is Action.FORWARD_AND_RECORD


def test_replay_mode_never_forwards():
    assert decide(Mode.REPLAY, Lookup.MISSING) is Action.REPORT_MISS
    assert decide(Mode.REPLAY, Lookup.CORRUPT) is Action.REPORT_CORRUPT


@pytest.mark.parametrize(("status", "completed", "expected"), [
    (200, True, True),
    (201, True, True),
    (200, False, False),
    (400, True, False),
    (429, True, False),
    (500, True, False),
    (304, True, False),
])
def test_only_complete_2xx_exchanges_are_recorded(status, completed, expected):
    assert is_recordable(status, completed=completed) is expected
