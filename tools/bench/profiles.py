"""How long and how large each step of a run is: the full run, and `--quick`, a smoke run of every step."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Profile:
    """How long and how large each step is."""

    load_duration_s: int  # wrk takes whole seconds
    load_rounds: int
    warmup_duration_s: int
    record_samples: int
    startup_counts: tuple[int, ...]
    startup_runs: int
    listing_count: int
    listing_runs: int
    sdk_calls: int
    sdk_rounds: int
    slow_read_s: float
    suite_tests: int
    suite_prompts: int
    suite_rounds: int
    empty_run_rounds: int


FULL = Profile(
    load_duration_s=3,
    load_rounds=5,
    warmup_duration_s=1,
    record_samples=400,
    startup_counts=(0, 10_000, 100_000),
    startup_runs=3,
    listing_count=10_000,
    listing_runs=3,
    sdk_calls=500,
    sdk_rounds=3,
    slow_read_s=5.0,
    suite_tests=2000,
    suite_prompts=500,
    suite_rounds=3,
    empty_run_rounds=7,
)
QUICK = Profile(
    load_duration_s=1,
    load_rounds=1,
    warmup_duration_s=0,
    record_samples=40,
    startup_counts=(0, 1_000),
    startup_runs=1,
    listing_count=1_000,
    listing_runs=1,
    sdk_calls=50,
    sdk_rounds=1,
    slow_read_s=2.0,
    suite_tests=100,
    suite_prompts=25,
    suite_rounds=1,
    empty_run_rounds=1,
)
