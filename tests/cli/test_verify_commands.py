"""`inference-gate verify`'s options and errors, and the README's weekly GitHub Actions job that runs it.

Runs that send requests are end to end, in tests/e2e/test_verify.py.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml
from cleo.io.inputs.argv_input import ArgvInput
from cleo.testers.application_tester import ApplicationTester

from inference_gate.cli.app import GateApplication
from inference_gate.cli.verify_commands import VerifyCommand

README = Path(__file__).parents[2] / "README.md"


def run(args: str) -> ApplicationTester:
    tester = ApplicationTester(GateApplication())
    tester.execute(args)
    return tester


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("--format html", "--format must be one of text, markdown, json, not 'html'"),
        ("--fail-on never", "--fail-on must be one of same, wording, behaviour, shape, error, not 'never'"),
        ("--sample 2 --all", "--sample and --all exclude each other"),
        ("--sample two", "--sample must be a whole number, not 'two'"),
        ("--sample 0", "--sample must be at least 1, not 0"),
        ("--concurrency 0", "--concurrency must be at least 1"),
    ],
)
def test_a_bad_option_is_one_line_and_exit_2_before_anything_is_sent(home, tmp_path: Path, options, message):
    (tmp_path / "cache").mkdir()
    tester = run(f"verify -c {tmp_path / 'cache'} {options}")
    assert tester.status_code == 2
    assert tester.io.fetch_error() == f"error: {message}\n"
    assert tester.io.fetch_output() == ""


def test_a_missing_cache_directory_is_an_error(home, tmp_path: Path):
    tester = run(f"verify -c {tmp_path / 'cahce'}")
    assert tester.status_code == 2
    assert "does not exist" in tester.io.fetch_error()


def test_an_empty_cache_directory_has_nothing_to_verify(home, tmp_path: Path):
    (tmp_path / "cache").mkdir()
    tester = run(f"verify -c {tmp_path / 'cache'}")
    assert tester.status_code == 2
    assert tester.io.fetch_error().startswith("error: nothing to verify in ")


# --- the README's weekly job ------------------------------------------------------------------------------------


def weekly_job() -> dict:
    """The README's YAML block that runs on a schedule."""
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)
    (workflow,) = [yaml.safe_load(block) for block in blocks if "schedule" in block]
    return workflow


def test_the_readme_s_weekly_job_is_a_workflow_that_runs_once_a_week():
    workflow = weekly_job()
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    (schedule,) = triggers["schedule"]
    minute, hour, day_of_month, month, day_of_week = schedule["cron"].split()
    assert (day_of_month, month) == ("*", "*") and re.fullmatch(r"[0-6]", day_of_week)
    assert 0 <= int(minute) < 60 and 0 <= int(hour) < 24
    assert "workflow_dispatch" in triggers


def test_the_readme_s_weekly_job_posts_verify_s_markdown_to_the_summary():
    (job,) = weekly_job()["jobs"].values()
    steps = job["steps"]
    (verify,) = [step for step in steps if "inference-gate verify" in step.get("run", "")]
    assert steps.index(verify) > next(index for index, step in enumerate(steps) if "pip install" in step.get("run", ""))
    assert verify["env"]["OPENAI_API_KEY"] == "${{ secrets.OPENAI_API_KEY }}"
    command, redirect = verify["run"].split(" >> ")
    assert redirect == '"$GITHUB_STEP_SUMMARY"'
    words = shlex.split(command.replace('"$(date +%V)"', "49"))
    assert words[:2] == ["inference-gate", "verify"]
    given = ArgvInput(["inference-gate", *words[2:]])
    given.bind(VerifyCommand().definition)  # raises on an option verify does not have
    given.validate()
    assert given.option("format") == "markdown"
    assert int(given.option("sample")) > 0 and int(given.option("seed")) == 49
