"""`inference-gate run`'s options, and the README's CI recipe for other test runners, which is one `run` line."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml
from cleo.io.inputs.argv_input import ArgvInput
from cleo.testers.application_tester import ApplicationTester

from inference_gate.cli.app import GateApplication
from inference_gate.cli.run_commands import RunCommand

README = Path(__file__).parents[2] / "README.md"


def test_an_unknown_mode_is_one_line_and_runs_nothing(tmp_path: Path) -> None:
    tester = ApplicationTester(GateApplication())
    marker = tmp_path / "ran"
    tester.execute(f"run --mode fast -- touch {marker}")
    assert tester.status_code != 0
    assert tester.io.fetch_error() == "error: --mode: unknown mode 'fast'; choose one of replay, record, refresh\n"
    assert not marker.exists()


def run_steps() -> list[str]:
    """Every `run:` of the README's workflows that calls `inference-gate run`."""
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)
    workflows = [yaml.safe_load(block) for block in blocks if "inference-gate run" in block]
    return [
        step["run"]
        for workflow in workflows
        for job in workflow["jobs"].values()
        for step in job["steps"]
        if step.get("run", "").startswith("inference-gate run")
    ]


def test_the_readme_s_ci_recipe_for_other_runners_is_one_run_line_that_parses() -> None:
    (step,) = run_steps()
    words = shlex.split(step)
    assert words[:2] == ["inference-gate", "run"] and "--" in words
    command = RunCommand()
    given = ArgvInput(["inference-gate", *words[2:]])
    given.bind(command.definition)
    assert given.argument("cmd") == words[words.index("--") + 1 :] == ["npm", "test"]
    assert given.option("mode") == "replay"
    assert "/dev/tcp" not in README.read_text(encoding="utf-8")
