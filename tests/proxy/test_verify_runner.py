"""proxy/verify_runner.py: the wait an upstream asks for, and what a run may cost. Sending is tested end to end
(tests/e2e/test_verify.py), through the real recorder against the fake upstream."""

from datetime import UTC, datetime
from email.utils import format_datetime

from inference_gate.proxy.verify_runner import most_requests, retry_after_s

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
