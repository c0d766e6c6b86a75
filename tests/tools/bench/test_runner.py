"""tools/bench/runner.py: `python -m tools.bench` is wired to the runner, and the header names each row's method."""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
from types import SimpleNamespace
from unittest.mock import patch

import pytest

from tools.bench.load import PythonLoad
from tools.bench.processes import REPO_ROOT, Cores
from tools.bench.profiles import FULL
from tools.bench.runner import ROWS, SHARED_ROWS, header_lines, rows_argument, run_all

COMMAND_TIMEOUT_S = 30.0


def test_python_dash_m_tools_bench_runs_the_runner() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "tools.bench", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "--quick" in completed.stdout


def test_the_header_says_how_each_family_of_rows_was_measured() -> None:
    lines = header_lines(FULL, False, 300.4, "Python x; " + Cores(0, 1).describe(), PythonLoad())
    assert lines[0] == "InferenceGate benchmark: 300 s"
    assert lines[1] == "Python x; servers on cpu 0, load generator on cpu 1"
    assert "32 keep-alive connections; best of 5 interleaved runs of 3 s, after a 1 s warm-up" in lines[3]
    assert lines[4].startswith("(j): best of 3 interleaved runs")


def test_rows_are_chosen_by_letter_and_an_unknown_one_is_refused() -> None:
    assert rows_argument("l,m") == frozenset("lm")
    assert rows_argument("bk") == frozenset("bk")
    for bad in ("", "z", "lz"):
        with pytest.raises(argparse.ArgumentTypeError):
            rows_argument(bad)
    assert frozenset(ROWS) > SHARED_ROWS


def test_only_the_rows_asked_for_run() -> None:
    ran: list[str] = []
    with patch.multiple(
        "tools.bench.runner",
        shared_rows=lambda run: ran.append("b-j"),
        websocket_sessions=lambda run: ran.append("m"),
        slow_readers=lambda run: ran.append("k"),
        startup=lambda run: ran.append("g"),
        listing=lambda run: ran.append("h"),
        suite_rows=lambda run: ran.append("l"),
    ):
        run_all(SimpleNamespace(servers=contextlib.ExitStack(), report="report"), frozenset("lm"))
        assert ran == ["m", "l"]
        ran.clear()
        run_all(SimpleNamespace(servers=contextlib.ExitStack(), report="report"), frozenset("j"))
        assert ran == ["b-j"]
