"""A key rule in the project's `inference-gate.yaml` travels with the cassettes: recorded by one `start`, replayed
by a `replay` whose HOME is empty, as on a CI machine that has never seen the recorder's per-user file."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
import trio

from tests.e2e.cli_gates import cli_gate
from tests.servers import running_upstream
from tools.fake_upstream import FakeUpstream

DEADLINE_S = 60
GATE_KEY = "sk-gate-key-for-tests-0123456789"
MESSAGES = [{"role": "user", "content": "Say hello"}]


def ask(base_url: str, user: str) -> str:
    with openai.OpenAI(base_url=f"{base_url}/v1", api_key="sk-placeholder", max_retries=0) as client:
        completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, user=user)
        return completion.choices[0].message.content


def empty_home(tmp_path: Path, name: str) -> Path:
    home = tmp_path / name
    home.mkdir()
    return home


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A repository whose cache directory holds the project settings: `body.user` is not part of the key."""
    root = tmp_path / "repo"
    (root / "cassettes").mkdir(parents=True)
    (root / "cassettes" / "inference-gate.yaml").write_text("ignore: [body.user]\n", encoding="utf-8")
    return root


async def test_a_key_rule_in_the_project_file_replays_from_a_clean_home(project: Path, tmp_path: Path):
    upstream = FakeUpstream(expected_api_key=GATE_KEY)
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            recorder_home = empty_home(tmp_path, "recorder-home")
            record = ["start", "-c", "cassettes", "--upstream", upstream.url]
            async with cli_gate(record, home=recorder_home, cwd=project, environ={"OPENAI_API_KEY": GATE_KEY}) as gate:
                recorded = await trio.to_thread.run_sync(ask, gate.url, "alice")
        ci_home = empty_home(tmp_path, "ci-home")
        async with cli_gate(["replay", "-c", "cassettes", "--verbose"], home=ci_home, cwd=project) as gate:
            replayed = await trio.to_thread.run_sync(ask, gate.url, "bob")
            log = gate.stderr()
    assert replayed == recorded
    assert upstream.calls("/chat/completions") == 1
    assert " hit 200 " in log
    assert "warning" not in log
    assert list(ci_home.iterdir()) == []  # nothing was read from it, and nothing written
    names = sorted(path.relative_to(project / "cassettes").as_posix() for path in (project / "cassettes").rglob("*"))
    assert "inference-gate.yaml" in names


async def test_without_the_project_file_the_same_replay_misses(project: Path, tmp_path: Path):
    """The rule is what makes the replay above hit: the same cassettes without it miss on another user."""
    upstream = FakeUpstream(expected_api_key=GATE_KEY)
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            record = ["start", "-c", "cassettes", "--upstream", upstream.url]
            home = empty_home(tmp_path, "home")
            async with cli_gate(record, home=home, cwd=project, environ={"OPENAI_API_KEY": GATE_KEY}) as gate:
                await trio.to_thread.run_sync(ask, gate.url, "alice")
        (project / "cassettes" / "inference-gate.yaml").unlink()
        async with cli_gate(["replay", "-c", "cassettes"], home=home, cwd=project) as gate:
            missed = r"No cassette .* differs at user: recorded \"alice\", got \"bob\""
            with pytest.raises(openai.NotFoundError, match=missed):
                await trio.to_thread.run_sync(ask, gate.url, "bob")


async def test_a_key_rule_only_in_the_personal_file_is_warned_about_at_start_up(project: Path, tmp_path: Path):
    (project / "cassettes" / "inference-gate.yaml").unlink()
    home = empty_home(tmp_path, "home")
    (home / ".InferenceGate").mkdir()
    (home / ".InferenceGate" / "config.yaml").write_text("normalize: [{path: body.user, pattern: '.*', replace: x}]\n")
    with trio.fail_after(DEADLINE_S):
        async with cli_gate(["replay", "-c", "cassettes"], home=home, cwd=project) as gate:
            log = gate.stderr()
    assert "warning: KEY RULE IN A PERSONAL FILE: " in log
    assert "move it to cassettes/inference-gate.yaml" in log
