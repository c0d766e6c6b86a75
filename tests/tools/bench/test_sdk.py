"""tools/bench/sdk.py: what a run of tools/sdk_calls.py printed, read. tools/sdk_calls.py itself runs only in the
bench's own virtualenv (it needs vcrpy), so `python -m tools.bench --quick` exercises it, not this file."""

from __future__ import annotations

import pytest

from tools.bench.processes import BenchError
from tools.bench.sdk import SdkRun


def test_an_sdk_run_is_read_from_its_last_line() -> None:
    output = 'a warning\n{"calls": 500, "elapsed_s": 0.5, "content": "Echo", "sdk_version": "2.54.0"}\n'
    run = SdkRun.parse(output)
    assert run == SdkRun(500, 0.5, "Echo", "2.54.0")
    assert run.calls_per_s == 1000.0
    assert run.text() == "1,000 calls/s"


@pytest.mark.parametrize("output", ["", "Traceback ...", '{"calls": 500}', '{"calls": "x", "elapsed_s": 1}'])
def test_an_sdk_run_that_printed_something_else_is_a_bench_error(output: str) -> None:
    with pytest.raises(BenchError, match=r"cannot read tools/sdk_calls\.py's output"):
        SdkRun.parse(output)
