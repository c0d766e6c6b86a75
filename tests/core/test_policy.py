import pytest

from inference_gate.core.policy import Action, Lookup, Mode, decide, is_recordable


@pytest.mark.parametrize("mode", [Mode.RECORD, Mode.REPLAY])
def test_a_recorded_answer_wins_outside_refresh(mode):
    assert decide(mode, Lookup.FOUND) is Action.REPLAY_CASSETTE


@pytest.mark.parametrize("lookup", list(Lookup))
def test_refresh_mode_forwards_every_request(lookup):
    assert decide(Mode.REFRESH, lookup) is Action.FORWARD_AND_RECORD
    assert decide(Mode.REFRESH, lookup, take_index=5, takes_found=1, takes_wanted=1) is Action.FORWARD_AND_RECORD


def test_record_mode_records_the_next_take_while_the_cassette_has_fewer_than_wanted():
    def record(take_index, takes_found):
        return decide(Mode.RECORD, Lookup.FOUND, take_index=take_index, takes_found=takes_found, takes_wanted=3)

    assert record(0, 1) is Action.REPLAY_CASSETTE  # take 0 is on disk
    assert record(1, 1) is Action.FORWARD_AND_RECORD  # take 1 is not, and 1 < 3
    assert record(2, 2) is Action.FORWARD_AND_RECORD
    assert record(3, 3) is Action.REPLAY_CASSETTE  # full: the last take repeats
    assert record(7, 3) is Action.REPLAY_CASSETTE


def test_replay_mode_serves_the_takes_there_are_whatever_the_setting():
    assert decide(Mode.REPLAY, Lookup.FOUND, take_index=4, takes_found=1, takes_wanted=3) is Action.REPLAY_CASSETTE


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
