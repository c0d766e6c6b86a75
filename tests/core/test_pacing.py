import pytest

from inference_gate.core.cassette import BodyTiming, StreamTiming
from inference_gate.core.pacing import ReplayPace, Spread, schedule

AT_PACE = ReplayPace(1.0)
EVENTS = [b"a" * 10, b"b" * 10, b"c" * 30, b"d" * 60]


def times(planned) -> list[float]:
    return [round(at_s, 6) for at_s, _ in planned]


def test_a_stream_is_spread_evenly_from_its_first_event_to_its_last():
    planned = schedule(EVENTS, StreamTiming(first_event_ms=100, last_event_ms=700), AT_PACE)
    assert times(planned) == [0.1, 0.3, 0.5, 0.7]
    assert [part for _, part in planned] == EVENTS


def test_by_bytes_each_later_event_takes_time_in_proportion_to_its_size():
    planned = schedule(EVENTS, StreamTiming(100, 1100), ReplayPace(1.0, Spread.BYTES))
    assert times(planned) == [0.1, 0.2, 0.5, 1.1]  # 10, 30 and 60 of the 100 bytes after the first event


def test_speed_divides_every_time():
    timing = StreamTiming(100, 700)
    assert times(schedule(EVENTS, timing, ReplayPace(2.0))) == [0.05, 0.15, 0.25, 0.35]
    assert times(schedule(EVENTS, timing, ReplayPace(0.5))) == [0.2, 0.6, 1.0, 1.4]


def test_a_whole_body_is_one_part_at_its_total_time():
    assert schedule([b"{}"], BodyTiming(total_ms=830), ReplayPace(2.0)) == ((0.415, b"{}"),)


def test_a_stream_timed_as_a_body_arrives_whole_at_its_total():
    assert schedule(EVENTS, BodyTiming(500), AT_PACE) == ((0.5, b"".join(EVENTS)),)


@pytest.mark.parametrize("spread", list(Spread))
def test_a_single_event_comes_at_the_first_time(spread):
    assert schedule([b"only"], StreamTiming(250, 250), ReplayPace(1.0, spread)) == ((0.25, b"only"),)


@pytest.mark.parametrize("spread", list(Spread))
def test_no_event_comes_before_the_one_it_follows(spread):
    events = [b"x" * size for size in (5, 500, 1, 1, 80, 3)]
    at = times(schedule(events, StreamTiming(40, 2000), ReplayPace(1.5, spread)))
    assert at == sorted(at)
    assert (at[0], at[-1]) == (round(0.04 / 1.5, 6), round(2.0 / 1.5, 6))
