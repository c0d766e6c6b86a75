"""`inference-gate run -- CMD`, end to end: a plain script using the official `openai` SDK built with no arguments,
run under the CLI in a fresh process against the example cassettes; its exit code comes back, and the summary
lists what it asked and what missed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

import inference_gate

CHECKOUT = Path(inference_gate.__file__).parent.parent
EXAMPLES = CHECKOUT / "cassettes_example"
RUN_TIMEOUT_S = 60

SCRIPT = """
import sys

import openai

client = openai.OpenAI(max_retries=0)
reply = client.chat.completions.create(
    model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello in French"}], temperature=0
)
print("replayed:", reply.choices[0].message.content)
try:
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Say something new"}])
except openai.NotFoundError:
    print("missed")
sys.exit(int(sys.argv[1]))
"""


def run_gate_around(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {key: value for key, value in os.environ.items() if not key.startswith(("OPENAI_", "ANTHROPIC_"))}
    environ.update(HOME=str(tmp_path), PYTHONPATH=str(CHECKOUT))
    return subprocess.run(
        [sys.executable, "-m", "inference_gate", "run", *args],
        cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
    )  # fmt: skip


@pytest.mark.parametrize("exit_code", [0, 3])
def test_the_commands_exit_code_comes_back_with_the_summary_and_the_miss(tmp_path: Path, exit_code: int) -> None:
    (tmp_path / "script.py").write_text(SCRIPT)
    ledger = tmp_path / "ledger.json"
    done = run_gate_around(
        tmp_path, "-c", str(EXAMPLES), "--ledger", str(ledger), "--", sys.executable, "script.py", str(exit_code)
    )
    assert done.returncode == exit_code, done.stderr
    assert done.stdout.splitlines()[0].startswith("replayed: ")
    assert done.stdout.splitlines()[1] == "missed"
    lines = done.stderr.splitlines()
    assert lines[0].startswith("replay mode, listening on http://127.0.0.1:")
    assert lines[1:4] == [
        f"replay mode, cassettes in {EXAMPLES}: hits 1, recorded 0, misses 1",
        "MISS (outside tests): POST /v1/chat/completions chat.completions gpt-4o-mini 'Say something new'",
        lines[3],
    ]
    assert lines[3].startswith("    closest cassette: chat.completions/")
    counts = orjson.loads(ledger.read_bytes())["tests"]["(outside tests)"]["counts"]
    assert counts == {"hit": 1, "miss": 1}


def test_a_command_that_is_not_there_is_one_line_and_the_shells_code(tmp_path: Path) -> None:
    done = run_gate_around(tmp_path, "-c", str(EXAMPLES), "--", "no-such-command-here")
    assert done.returncode == 127
    assert done.stderr.splitlines()[-1] == "error: command not found: no-such-command-here"


def test_a_gate_that_cannot_start_runs_nothing_and_says_why_in_one_line(tmp_path: Path) -> None:
    done = run_gate_around(tmp_path, "-c", str(tmp_path / "missing"), "--", sys.executable, "-c", "print('ran')")
    assert done.returncode != 0
    assert "ran" not in done.stdout
    assert done.stderr.strip().splitlines() == [
        f"error: cache directory {tmp_path / 'missing'} does not exist (replay mode needs recorded cassettes)"
    ]


def test_a_command_ended_by_a_signal_exits_as_a_shell_reports_it(tmp_path: Path) -> None:
    kill_itself = "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"
    done = run_gate_around(tmp_path, "-c", str(EXAMPLES), "--", sys.executable, "-c", kill_itself)
    assert done.returncode == 128 + 15
