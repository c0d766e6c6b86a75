"""Row (h): `inference-gate cache list` and `cache info` over 10,000 cassettes, wall time."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from tools.bench.installs import cassette_set
from tools.bench.processes import REPO_ROOT, child_environment
from tools.bench.report import Row, Target
from tools.bench.requests import COMMAND_TIMEOUT_S
from tools.bench.run import BenchRun

LISTING_STORE = 10_000


def listing(run: BenchRun) -> None:
    """(h): median wall time of `cache list` and `cache info`, their output thrown away."""
    count = run.profile.listing_count
    cache_dir = str(cassette_set(count))
    for command in ("list", "info"):
        times_s = []
        for _ in range(run.profile.listing_runs):
            started = time.perf_counter()
            argv = [sys.executable, "-m", "inference_gate", "cache", command, "--cache-dir", cache_dir]
            subprocess.run(
                argv,
                stdout=subprocess.DEVNULL,
                check=True,
                cwd=REPO_ROOT,
                env=child_environment(),
                timeout=COMMAND_TIMEOUT_S,
            )
            times_s.append(time.perf_counter() - started)
        wall_s = statistics.median(times_s)
        run.report.rows.append(Row("(h)", f"cache {command}, {count:,} cassettes", f"{wall_s:.2f} s wall"))
        if command == "list":
            passed = wall_s <= 2.0 if count == LISTING_STORE else None
            measured = f"{wall_s:.2f} s" + ("" if passed is not None else f" for {count:,} (--quick)")
            run.report.targets.append(Target("(h) cache list, 10,000 cassettes", measured, "<= 2.00 s", passed))
