"""One `inference-gate start` for every provider: a fake OpenAI and a fake Anthropic behind one port, each with
its own key, driven by both official SDKs, recorded and then replayed by `inference-gate replay` with no key and
no upstream; a named route reaches an OpenAI-compatible server through its prefix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic
import openai
import orjson
import pytest
import trio
from cleo.testers.application_tester import ApplicationTester

from inference_gate.cli.app import GateApplication
from tests.e2e.cli_gates import cli_gate
from tests.servers import running_upstream
from tools.fake_anthropic import FakeAnthropic
from tools.fake_upstream import FakeUpstream

DEADLINE_S = 90
OPENAI_KEY = "sk-openai-gate-key-for-tests-0123456789"
ANTHROPIC_KEY = "sk-ant-gate-key-for-tests-0123456789"
COMPATIBLE_CLIENT_KEY = "sk-compatible-client-key-0123456789"
PLACEHOLDER = "placeholder"


def ask_openai(base_url: str, stream: bool, *, api_key: str = PLACEHOLDER) -> str:
    with openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0) as client:
        messages = [{"role": "user", "content": f"Say hello (stream={stream})"}]
        if stream:
            chunks = client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True)
            return "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
        return client.chat.completions.create(model="gpt-4o-mini", messages=messages).choices[0].message.content


def ask_anthropic(base_url: str, stream: bool) -> str:
    with anthropic.Anthropic(base_url=base_url, api_key=PLACEHOLDER, max_retries=0) as client:
        request: dict[str, Any] = {
            "model": "claude-sonnet-4-5",
            "max_tokens": 64,
            "messages": [{"role": "user", "content": f"Bonjour (stream={stream})"}],
        }
        if stream:
            with client.messages.stream(**request) as events:
                return events.get_final_text()
        return "".join(block.text for block in client.messages.create(**request).content if block.type == "text")


async def both_sdks(gate_url: str) -> list[str]:
    """What the two SDKs read through one gate, streamed and not; the sync clients run in worker threads."""
    answers = []
    for stream in (False, True):
        answers.append(await trio.to_thread.run_sync(ask_openai, f"{gate_url}/v1", stream))
        answers.append(await trio.to_thread.run_sync(ask_anthropic, gate_url, stream))
    return answers


def listed(cache_dir: Path) -> list[dict[str, Any]]:
    tester = ApplicationTester(GateApplication())
    assert tester.execute(f"cache list --json --cache-dir {cache_dir}") == 0
    return orjson.loads(tester.io.fetch_output())


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "cassettes").mkdir(parents=True)
    return root


def home_in(tmp_path: Path, name: str) -> Path:
    home = tmp_path / name
    home.mkdir()
    return home


async def test_one_start_records_openai_and_anthropic_with_their_own_keys_and_replay_needs_neither(
    project: Path, tmp_path: Path
):
    fake_openai = FakeUpstream(expected_api_key=OPENAI_KEY)
    fake_anthropic = FakeAnthropic(expected_api_key=ANTHROPIC_KEY)
    keys = {"OPENAI_API_KEY": OPENAI_KEY, "ANTHROPIC_API_KEY": ANTHROPIC_KEY}
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(fake_openai), running_upstream(fake_anthropic):
            (project / "cassettes" / "inference-gate.yaml").write_text(
                f"upstreams:\n  openai: {fake_openai.url}\n  anthropic: {fake_anthropic.url}\n", encoding="utf-8"
            )
            home = home_in(tmp_path, "recorder")
            async with cli_gate(["start", "-c", "cassettes"], home=home, cwd=project, environ=keys) as gate:
                recorded = await both_sdks(gate.url)
            banner = gate.stdout
        async with cli_gate(["replay", "-c", "cassettes"], home=home_in(tmp_path, "ci"), cwd=project) as gate:
            replayed = await both_sdks(gate.url)

    assert replayed == recorded
    assert all(recorded)
    assert f"  openai: /v1/..., /openai/... -> {fake_openai.url} (gate's key)" in banner
    assert f"  anthropic: /v1/messages... -> {fake_anthropic.url} (gate's key)" in banner
    # Each provider got its own key, in its own scheme, and nothing else.
    assert {request.headers["authorization"] for request in fake_openai.requests} == {f"Bearer {OPENAI_KEY}"}
    anthropic_credentials = {
        request.headers.get("x-api-key") or request.headers.get("authorization") for request in fake_anthropic.requests
    }
    assert anthropic_credentials <= {ANTHROPIC_KEY, f"Bearer {ANTHROPIC_KEY}"} and anthropic_credentials
    rows = listed(project / "cassettes")
    assert sorted((row["endpoint"], row["route"]) for row in rows) == [
        ("chat.completions", "openai"),
        ("chat.completions", "openai"),
        ("messages", "anthropic"),
        ("messages", "anthropic"),
    ]
    for path in (project / "cassettes").rglob("*.json"):
        text = path.read_text(encoding="utf-8")
        assert OPENAI_KEY not in text and ANTHROPIC_KEY not in text
        assert '"route"' not in text  # a dialect's own route is not written: the path says it


async def test_a_suite_that_calls_only_anthropic_records_without_an_openai_key(project: Path, tmp_path: Path):
    fake_anthropic = FakeAnthropic(expected_api_key=ANTHROPIC_KEY)
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(fake_anthropic):
            (project / "cassettes" / "inference-gate.yaml").write_text(
                f"upstreams: {{anthropic: '{fake_anthropic.url}'}}\n", encoding="utf-8"
            )
            environ = {"ANTHROPIC_API_KEY": ANTHROPIC_KEY}
            home = home_in(tmp_path, "home")
            async with cli_gate(["start", "-c", "cassettes"], home=home, cwd=project, environ=environ) as gate:
                answer = await trio.to_thread.run_sync(ask_anthropic, gate.url, False)
            banner = gate.stdout
    assert answer
    assert "  openai: /v1/..., /openai/... -> https://api.openai.com (client's credential passed through)" in banner
    assert [row["route"] for row in listed(project / "cassettes")] == ["anthropic"]


async def test_a_named_route_reaches_a_compatible_server_through_its_prefix_with_the_clients_key(
    project: Path, tmp_path: Path
):
    compatible = FakeUpstream(expected_api_key=COMPATIBLE_CLIENT_KEY)
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(compatible):
            (project / "cassettes" / "inference-gate.yaml").write_text(
                f"upstreams:\n  local: {{url: '{compatible.url}', prefix: /local}}\n", encoding="utf-8"
            )
            home = home_in(tmp_path, "home")
            environ = {"OPENAI_API_KEY": OPENAI_KEY}  # the OpenAI route's key never goes to the named route
            async with cli_gate(["start", "-c", "cassettes"], home=home, cwd=project, environ=environ) as gate:
                base_url = f"{gate.url}/local/v1"
                recorded = await trio.to_thread.run_sync(
                    lambda: ask_openai(base_url, False, api_key=COMPATIBLE_CLIENT_KEY)
                )
            banner = gate.stdout
        async with cli_gate(["replay", "-c", "cassettes"], home=home, cwd=project) as gate:
            replayed = await trio.to_thread.run_sync(ask_openai, f"{gate.url}/local/v1", False)
            with pytest.raises(openai.NotFoundError):  # the same request to OpenAI's own route is another cassette
                await trio.to_thread.run_sync(ask_openai, f"{gate.url}/v1", False)

    assert replayed == recorded
    assert f"  local: /local/... -> {compatible.url} (client's credential passed through)" in banner
    assert [request.path for request in compatible.requests] == ["/v1/chat/completions"]
    assert compatible.requests[0].headers["authorization"] == f"Bearer {COMPATIBLE_CLIENT_KEY}"
    [row] = listed(project / "cassettes")
    assert (row["route"], row["endpoint"]) == ("local", "chat.completions")
    [cassette] = (project / "cassettes").rglob("*.json")
    stored = orjson.loads(cassette.read_bytes())
    assert (stored["request"]["route"], stored["request"]["path"]) == ("local", "/local/v1/chat/completions")
    assert COMPATIBLE_CLIENT_KEY not in cassette.read_text(encoding="utf-8")
