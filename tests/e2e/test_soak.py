"""A small run of the soak in tools/soak.py: a gate subprocess under keep-alive load gives back what it took."""

from __future__ import annotations

import trio

from tools.soak import soak


async def test_small_soak_has_no_errors_and_returns_its_file_descriptors():
    with trio.fail_after(60):
        report = await soak(requests=2000, connections=50)
    print(report.describe())
    assert report.problems() == []
    assert sum(report.tally.outcomes.values()) == 2000
    assert set(report.tally.outcomes) == {"hit", "recorded", "recording"}  # recording: a live stream's head
