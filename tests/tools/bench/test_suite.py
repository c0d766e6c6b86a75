"""tools/bench/suite.py: each way runs with its own library only, a run counts only when every test passed, and
medians are taken field by field."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tools.bench.load import PythonLoad
from tools.bench.processes import BenchError, Cores
from tools.bench.profiles import QUICK
from tools.bench.run import BenchRun
from tools.bench.suite import WAYS, Timing, add_suite_rows, expect_passed
from tools.make_suite import SuiteShape


def test_each_way_disables_the_other_ways_plugins_and_keeps_its_own() -> None:
    disabled = {way.name: way.disabled_plugins() for way in WAYS}
    assert disabled["floor"] == ["-p", "no:inference_gate", "-p", "no:recording", "-p", "no:cassetter"]
    assert disabled["gate"] == ["-p", "no:recording", "-p", "no:cassetter"]
    assert disabled["vcrpy"] == ["-p", "no:inference_gate", "-p", "no:cassetter"]
    assert disabled["cassetter"] == ["-p", "no:inference_gate", "-p", "no:recording"]


def test_a_run_where_every_test_passed_counts() -> None:
    expect_passed(subprocess.CompletedProcess([], 0, "....\n4 passed in 0.10s\n", ""), 4, "replaying")


@pytest.mark.parametrize(
    ("returncode", "stdout"),
    [(1, "...F\n1 failed, 3 passed in 0.10s\n"), (0, "...\n14 passed in 0.10s\n"), (0, "")],
)
def test_a_run_with_a_failure_or_too_few_tests_is_a_bench_error(returncode: int, stdout: str) -> None:
    completed = subprocess.CompletedProcess([], returncode, stdout, "")
    with pytest.raises(BenchError, match=r"replaying: pytest exited \d, not all 4 tests passed"):
        expect_passed(completed, 4, "replaying")


def test_a_median_timing_takes_each_field_on_its_own() -> None:
    assert Timing.median([Timing(1.0, 9.0), Timing(3.0, 1.0), Timing(2.0, 5.0)]) == Timing(2.0, 5.0)


def test_suite_rows_give_each_ways_overhead_per_test_over_the_floor_and_judge_the_plugin(tmp_path: Path) -> None:
    run = BenchRun(QUICK, PythonLoad(), Cores(None, None), tmp_path)
    walls = {"floor": 10.0, "gate": 12.0, "vcrpy": 13.0, "cassetter": 11.0}
    medians = {(name, workers): Timing(wall_s, wall_s / 2) for name, wall_s in walls.items() for workers in (0, 2)}
    add_suite_rows(run, SuiteShape(1000, 2000, 667, 500, 1000), medians)
    gate_rows = [row for row in run.report.rows if "this plugin" in row.scenario]
    assert [row.comparison for row in gate_rows] == ["+2.00 ms per test over the floor (CPU +1.00 ms)"] * 2
    assert gate_rows[0].reference == "floor 10.00 s wall, 5.00 s CPU"
    verdicts = {target.name: (target.measured, target.passed) for target in run.report.targets}
    assert verdicts["(l) suite serial: plugin overhead per test vs vcrpy's"] == (
        "2.00 vs 3.00 ms (CPU 1.00 vs 1.50)",
        True,
    )
    assert verdicts["(l) suite -n 2: plugin overhead per test vs cassetter's"] == (
        "2.00 vs 1.00 ms (CPU 1.00 vs 0.50)",
        False,
    )
