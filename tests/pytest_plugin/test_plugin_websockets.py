"""The pytest plugin with the SDK's three WebSocket APIs: a tiny project whose tests open `responses.connect()`,
`realtime.connect()` and `live.connect()` through `OPENAI_BASE_URL` (the SDK makes it ws://), recorded from
tools/fake_websocket.py in one run, then replayed in another with the upstream stopped; a changed session fails
its test with the gate's miss."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pytest_plugin.test_plugin import PYTHONPATH, RUN_TIMEOUT_S, TEST_KEY, fake_upstream, plugin_args
from tools.fake_websocket import FakeWebSocketUpstream

pytest_plugins = ["pytester"]

PROJECT = '''
import base64

from openai import OpenAI

AUDIO = base64.b64encode(bytes(range(256)) * 4).decode()


def client():
    return OpenAI(max_retries=0)


def test_responses_over_a_websocket():
    with client().responses.connect() as connection:
        connection.response.create(model="gpt-4o-mini", input="Say hello")
        for event in connection:
            assert event.type != "error", event
            if event.type == "response.completed":
                assert event.response.output_text.startswith("Echo: Say hello")
                break


def test_a_realtime_text_turn():
    with client().realtime.connect(model="gpt-realtime") as connection:
        connection.session.update(session={"type": "realtime", "output_modalities": ["text"]})
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "PROMPT"}]}
        connection.conversation.item.create(item=item)
        connection.response.create()
        text = ""
        for event in connection:
            assert event.type != "error", event
            if event.type == "response.output_text.delta":
                text += event.delta
            if event.type == "response.done":
                break
        assert text.startswith("Echo: PROMPT")


def test_a_live_utterance():
    with client().live.connect() as connection:
        connection.send({"type": "session.start", "session": {"model": "gpt-live-1"}})
        connection.send({"type": "session.input_audio.append", "audio": AUDIO})
        connection.send({"type": "session.close"})
        types = [event.type for event in connection]
        assert types[0] == "session.started" and types[-1] == "session.closed"
        assert "session.output_transcript.delta" in types
'''


def run_project(project: Path, *options: str) -> str:
    environ = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_", "OPENAI_"))}
    environ.update(HOME=str(project), OPENAI_API_KEY=TEST_KEY, PYTHONPATH=PYTHONPATH)
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", *plugin_args(), "-p", "no:cacheprovider", "-v", *options],
        cwd=project, env=environ, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    return completed.stdout + completed.stderr


@pytest.fixture(scope="module")
def recorded_project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(the project, its record run's output); the upstream is gone after."""
    project = tmp_path_factory.mktemp("websockets")
    (project / "test_sockets.py").write_text(PROJECT.replace("PROMPT", "Name a colour"))
    with fake_upstream(FakeWebSocketUpstream()) as upstream_url:
        output = run_project(project, "--inference-gate=record", f"--inference-gate-upstream={upstream_url}")
    return project, output


def test_the_three_apis_are_recorded_one_cassette_each(recorded_project: tuple[Path, str]) -> None:
    project, output = recorded_project
    assert "3 passed" in output, output
    assert "hits 0, recorded 3, misses 0" in output
    folders = sorted(path.parent.name for path in (project / ".inference_cache").glob("*/*.json"))
    assert len(folders) == 3 and folders[-1] == "responses"


def test_replay_with_the_upstream_stopped_passes_on_cassettes(recorded_project: tuple[Path, str]) -> None:
    project, _ = recorded_project
    output = run_project(project, "--inference-gate=replay")
    assert "3 passed" in output, output
    assert "hits 3, recorded 0, misses 0" in output


def test_a_changed_session_fails_its_test_with_the_miss(
    recorded_project: tuple[Path, str], pytester: pytest.Pytester
) -> None:
    project, _ = recorded_project
    changed = pytester.path
    (changed / "test_sockets.py").write_text(PROJECT.replace("PROMPT", "Name a fruit"))
    (changed / ".inference_cache").symlink_to(project / ".inference_cache", target_is_directory=True)
    output = run_project(changed, "--inference-gate=replay", "-k", "realtime")
    # The test fails on the error event or on the close that follows it, whichever its SDK calls meet first.
    assert "1 failed" in output and "misses 1" in output, output
    assert "MISS test_sockets.py::test_a_realtime_text_turn" in output
    assert 'closest cassette: realtime/name-a-colour' in output and 'received "Name a fruit"' in output
