"""proxy/verify_runner.py: the wait an upstream asks for, and what a run may cost. Sending is tested end to end
(tests/e2e/test_verify.py), through the real recorder against the fake upstream."""

from datetime import UTC, datetime
from email.utils import format_datetime

from inference_gate.core.websocket_session import Sender, SessionFrame
from inference_gate.proxy.verify_runner import most_requests, retry_after_s, session_turns

NOW_S = 1_800_000_000.0


def test_retry_after_ms_wins_over_retry_after():
    assert retry_after_s([(b"retry-after", b"7"), (b"retry-after-ms", b"250")]) == 0.25


def test_retry_after_in_seconds_and_as_a_date():
    assert retry_after_s([(b"Retry-After", b"3")]) == 3.0
    date = format_datetime(datetime.fromtimestamp(NOW_S + 20, UTC), usegmt=True).encode()
    assert retry_after_s([(b"retry-after", date)], now_s=NOW_S) == 20.0
    past = format_datetime(datetime.fromtimestamp(NOW_S - 20, UTC), usegmt=True).encode()
    assert retry_after_s([(b"retry-after", past)], now_s=NOW_S) == 0.0


def test_no_readable_wait_is_none():
    assert retry_after_s([]) is None
    assert retry_after_s([(b"retry-after", b"soon")]) is None
    assert retry_after_s([(b"retry-after-ms", b"")]) is None


def test_a_run_sends_at_most_each_request_and_one_retry_of_each():
    assert most_requests(6) == 12


def frame(sender: Sender, kind: str) -> SessionFrame:
    return SessionFrame(sender, 0, data={"type": kind})


def test_a_session_is_played_turn_by_turn_until_each_turn_s_last_event_type():
    frames = [
        frame(Sender.SERVER, "session.created"),
        frame(Sender.CLIENT, "session.update"),
        frame(Sender.SERVER, "session.updated"),
        frame(Sender.CLIENT, "input_audio_buffer.append"),
        frame(Sender.CLIENT, "response.create"),
        frame(Sender.SERVER, "response.output_text.delta"),
        frame(Sender.SERVER, "response.done"),
        frame(Sender.SERVER, "response.done"),
    ]
    assert session_turns(frames) == [
        (None, ("session.created", 1)),
        (frames[1], ("session.updated", 1)),
        (frames[3], None),
        (frames[4], ("response.done", 2)),
    ]
