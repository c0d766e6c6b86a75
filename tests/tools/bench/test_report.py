"""tools/bench/report.py: every row shown, in order, and a verdict per target."""

from __future__ import annotations

import pytest

from tools.bench.report import Report, Row, Target


def test_the_report_shows_every_row_and_a_verdict_per_target(capsys: pytest.CaptureFixture[str]) -> None:
    report = Report(
        rows=[
            Row("(c')", "other stream", "3 req/s"),
            Row("(c)", "streamed", "2 req/s"),
            Row("(b)", "plain", "1 req/s", "2 req/s (baseline)", "0.50"),
        ],
        targets=[
            Target("(c') met", "1", ">= 1", True),
            Target("(c) missed", "0", ">= 1", False),
            Target("(b) skipped", "not measured", ">= 1", None),
        ],
    )
    report.print(["header line"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "header line"
    rows = [line for line in lines if line.startswith("(") and "req/s" in line]
    assert [row.split()[0] for row in rows] == ["(b)", "(c)", "(c')"]
    targets = [line.split() for line in lines if line.startswith("(") and "req/s" not in line]
    assert [(target[1], target[-1]) for target in targets] == [("skipped", "SKIP"), ("missed", "FAIL"), ("met", "PASS")]
