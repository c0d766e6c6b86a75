"""`inference-gate verify` end to end: cassettes recorded through the gate with the openai SDK, then checked
against a fake OpenAI API that has drifted in each way (tools/fake_drift.py), through the real CLI.

The CLI runs `trio.run` of its own, so it runs in a worker thread while the fake serves in the test's loop.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import replace
from pathlib import Path

import anthropic
import openai
import orjson
import pytest
import trio
from cleo.testers.application_tester import ApplicationTester

from inference_gate import Mode, Settings
from inference_gate.cli.app import GateApplication
from tests.e2e.conftest import running_gate
from tests.e2e.processes import files_under
from tests.e2e.websocket_sessions import record_session
from tests.sdk_sockets import ASYNC, receive_until
from tests.servers import running_upstream
from tools.fake_anthropic import FakeAnthropic
from tools.fake_drift import NEW_FIELD_NAME, REWORDING, Drift, DriftingUpstream
from tools.fake_socket_session import Turn
from tools.fake_websocket import FakeWebSocketUpstream

DEADLINE_S = 60
API_KEY = "sk-gate-key-for-tests-0123456789"
CHATS = {
    "Say hello": (Drift.NEW_IDS, "same"),
    "Name a colour": (Drift.REWORDED, "wording"),
    "Name a fruit": (Drift.NEW_FIELD, "shape"),
    "Name a river": (Drift.SERVER_ERROR, "error"),
}
STREAMED_CHAT = {"Name a planet": (Drift.FINISH_REASON, "behaviour")}
STREAMED_RESPONSE = {"Tell me a joke": (Drift.DROPPED_EVENT_TYPE, "shape")}
SCENARIO = {**CHATS, **STREAMED_CHAT, **STREAMED_RESPONSE}
EXIT_CODES = {"same": 0, "wording": 0, "behaviour": 0, "shape": 1, "error": 1}  # --fail-on shape, the default


async def record(base_url: str) -> None:
    async with openai.AsyncOpenAI(base_url=base_url, api_key="sk-placeholder", max_retries=0) as client:
        for prompt in CHATS:
            await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
        for prompt in STREAMED_CHAT:
            stream = await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}], stream=True
            )
            async for _ in stream:
                pass
        for prompt in STREAMED_RESPONSE:
            stream = await client.responses.create(model="gpt-4o-mini", input=prompt, stream=True)
            async for _ in stream:
                pass


def run_verify(command: str) -> ApplicationTester:
    tester = ApplicationTester(GateApplication())
    tester.execute(command)
    return tester


async def verify(cache_dir: Path, upstream: str, *options: str) -> ApplicationTester:
    """`inference-gate verify` run through the application, in a worker thread."""
    command = f"verify -c {cache_dir} --upstream {upstream} --api-key {API_KEY} {' '.join(options)}"
    return await trio.to_thread.run_sync(run_verify, command)


def snapshot(cache_dir: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in files_under(cache_dir)}


def cassette_of(prompt: str, cache_dir: Path) -> Path:
    (found,) = [path for path in files_under(cache_dir) if prompt.lower().replace(" ", "-") in path.name]
    return found


@pytest.fixture
async def recorded(tmp_path: Path, record_settings: Settings, home: Path) -> Path:
    """The scenario's six cassettes, recorded from the fake before it drifted."""
    upstream = DriftingUpstream()
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url)
            async with running_gate(settings, Mode.RECORD) as gate:
                await record(gate.base_url)
    assert len(files_under(settings.cache_dir)) == len(SCENARIO)
    return settings.cache_dir


async def test_each_drift_gets_its_level_and_the_run_writes_nothing(recorded: Path, tmp_path: Path):
    upstream = DriftingUpstream({prompt: drift for prompt, (drift, _) in SCENARIO.items()})
    before = snapshot(recorded)
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            as_json = await verify(recorded, upstream.url, "--format json")
            markdown = await verify(recorded, upstream.url, "--format markdown")

    report = orjson.loads(as_json.io.fetch_output())
    levels = {cassette_of(prompt, recorded).relative_to(recorded).as_posix(): level
              for prompt, (_, level) in SCENARIO.items()}  # fmt: skip
    assert {verdict["name"]: verdict["level"] for verdict in report["verdicts"]} == levels
    assert report["counts"] == {"same": 1, "wording": 1, "behaviour": 1, "shape": 2, "error": 1}
    assert as_json.status_code == 1  # shape and error reach the default --fail-on shape
    assert as_json.io.fetch_error().startswith("verify: sending 6 request(s) for 6 of 6 cassette(s)")
    assert len(upstream.requests) == 2 * len(SCENARIO)  # each run sent what it said, no more
    assert snapshot(recorded) == before  # nothing is written without --refresh

    differences = {verdict["name"]: verdict["differences"] for verdict in report["verdicts"]}

    def differences_of(prompt: str) -> list[dict[str, str]]:
        return differences[cassette_of(prompt, recorded).relative_to(recorded).as_posix()]

    assert differences_of("Say hello") == []
    reworded = differences_of("Name a colour")[0]
    assert (reworded["level"], reworded["where"]) == ("wording", "body.choices[*].message.content")
    assert REWORDING in reworded["what"]
    assert differences_of("Name a fruit") == [{"level": "shape", "where": f"body.{NEW_FIELD_NAME}", "what": "added"}]
    assert {"level": "behaviour", "where": "finish reason", "what": "stop -> length"} in differences_of("Name a planet")
    assert differences_of("Tell me a joke") == [
        {"level": "shape", "where": "event type response.in_progress", "what": "missing"}
    ]
    assert differences_of("Name a river")[0]["what"].startswith("200 -> 500: The server had an error")
    text = markdown.io.fetch_output()
    assert text.startswith("## inference-gate verify\n") and "| shape | 2 |" in text
    (tmp_path / "verify-report.md").write_text(text, encoding="utf-8")  # the closing note quotes it


async def test_each_level_gives_its_exit_code(recorded: Path, tmp_path: Path):
    upstream = DriftingUpstream({prompt: drift for prompt, (drift, _) in SCENARIO.items()})
    codes, fail_on_wording = {}, {}
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            for prompt, (_, level) in SCENARIO.items():
                alone = tmp_path / "alone" / prompt.replace(" ", "-")
                source = cassette_of(prompt, recorded)
                (alone / source.parent.name).mkdir(parents=True)
                shutil.copy(source, alone / source.parent.name / source.name)
                codes[level, prompt] = (await verify(alone, upstream.url)).status_code
                fail_on_wording[level] = (await verify(alone, upstream.url, "--fail-on wording")).status_code
    assert codes == {key: EXIT_CODES[key[0]] for key in codes}
    assert fail_on_wording == {"same": 0, "wording": 1, "behaviour": 1, "shape": 1, "error": 1}


async def test_a_sample_is_the_same_for_the_same_seed(recorded: Path):
    upstream = DriftingUpstream()
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            runs = [await verify(recorded, upstream.url, "--sample 3 --seed 7 --format json") for _ in range(2)]
    chosen = [sorted(v["name"] for v in orjson.loads(run.io.fetch_output())["verdicts"]) for run in runs]
    assert len(chosen[0]) == 3 and chosen[0] == chosen[1]
    assert all("sending 3 request(s) for 3 of 6 cassette(s)" in run.io.fetch_error() for run in runs)
    assert len(upstream.requests) == 6


async def test_refresh_rewrites_only_the_cassettes_that_changed(recorded: Path):
    upstream = DriftingUpstream({prompt: drift for prompt, (drift, _) in SCENARIO.items()})
    before = snapshot(recorded)
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            run = await verify(recorded, upstream.url, "--refresh --format json")
    after = snapshot(recorded)
    rewritten = {path for path in before if after[path] != before[path]}
    report = orjson.loads(run.io.fetch_output())
    assert {verdict["name"] for verdict in report["verdicts"] if verdict["rewritten"]} == {
        path.relative_to(recorded).as_posix() for path in rewritten
    }
    unchanged = {cassette_of(prompt, recorded) for prompt in ("Say hello", "Name a river")}
    assert len(rewritten) == 4 and not rewritten & unchanged  # same and error leave their files alone
    fruit = orjson.loads(after[cassette_of("Name a fruit", recorded)])
    assert fruit["response"]["body"][NEW_FIELD_NAME] == "low"


async def test_a_rate_limited_request_waits_and_is_sent_once_more(recorded: Path):
    upstream = DriftingUpstream({"Say hello": Drift.RATE_LIMITED_ONCE})
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            run = await verify(recorded, upstream.url, "--format json")
    report = orjson.loads(run.io.fetch_output())
    assert report["counts"]["same"] == len(SCENARIO) and run.status_code == 0
    assert upstream.calls("/chat/completions") == len(SCENARIO)  # five chats, one of them twice
    assert len(upstream.requests) == len(SCENARIO) + 1


# --- WebSocket sessions -----------------------------------------------------------------------------------------


async def text_turn(connection) -> list[dict]:
    """A Realtime text turn: no audio, so the session can be played again from its client frames."""
    events = [await connection.recv()]  # session.created
    await connection.send({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}})
    events += await receive_until(connection, "session.updated")
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Name a colour"}]}
    await connection.send({"type": "conversation.item.create", "item": item})
    events += await receive_until(connection, "conversation.item.done")
    await connection.send({"type": "response.create"})
    return events + await receive_until(connection, "response.done")


class NewFieldSockets(FakeWebSocketUpstream):
    """The fake Realtime API with a field its `response.done` events did not have before."""

    async def _send_turn(self, stream, websocket, turn: Turn, received, *, paced: bool) -> bool:
        events = [{**event, NEW_FIELD_NAME: "low"} if event["type"] == "response.done" else event
                  for event in turn.events]  # fmt: skip
        return await super()._send_turn(stream, websocket, dataclasses.replace(turn, events=events), received,
                                        paced=paced)  # fmt: skip


async def test_a_realtime_session_is_played_again_from_its_client_frames(record_settings: Settings, home: Path):
    await record_session(record_settings, ASYNC, "realtime", text_turn)
    (cassette,) = files_under(record_settings.cache_dir)
    before = cassette.read_bytes()
    minting, drifted = FakeWebSocketUpstream(mint_ids=True), NewFieldSockets()
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(minting):
            same = await verify(record_settings.cache_dir, minting.url, "--format json")
        async with running_upstream(drifted):
            shape = await verify(record_settings.cache_dir, drifted.url, "--format json --refresh")
        gone = await verify(record_settings.cache_dir, drifted.url, "--format json")

    (session,) = minting.sessions
    assert [event["type"] for event in session.client_events] == [
        "session.update", "conversation.item.create", "response.create"
    ]  # fmt: skip
    assert (orjson.loads(same.io.fetch_output())["counts"]["same"], same.status_code) == (1, 0)
    (verdict,) = orjson.loads(shape.io.fetch_output())["verdicts"]
    assert verdict["differences"] == [
        {"level": "shape", "where": f"events{{response.done}}.{NEW_FIELD_NAME}", "what": "added"}
    ]
    assert verdict["not_written"] == "verify does not rewrite WebSocket sessions" and shape.status_code == 1
    (failed,) = orjson.loads(gone.io.fetch_output())["verdicts"]
    assert failed["level"] == "error" and failed["differences"][0]["where"] == "connection"
    assert cassette.read_bytes() == before


# --- routes -----------------------------------------------------------------------------------------------------

OPENAI_KEY = "sk-openai-gate-key-for-tests-0123456789"
ANTHROPIC_KEY = "sk-ant-gate-key-for-tests-0123456789"


def ask_both(base_url: str) -> None:
    """One chat through the openai SDK and one message through the anthropic SDK, both to the gate."""
    with openai.OpenAI(base_url=f"{base_url}/v1", api_key="placeholder", max_retries=0) as client:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello"}])
    with anthropic.Anthropic(base_url=base_url, api_key="placeholder", max_retries=0) as client:
        client.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "Hi"}])


async def test_each_request_goes_to_its_route_with_its_key(tmp_path: Path, home: Path, monkeypatch):
    fake_openai = DriftingUpstream()
    fake_anthropic = FakeAnthropic(expected_api_key=ANTHROPIC_KEY)
    cache_dir = tmp_path / "cache"
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(fake_openai), running_upstream(fake_anthropic):
            upstreams = {"openai": fake_openai.url, "anthropic": fake_anthropic.url}
            settings = Settings(cache_dir=cache_dir, api_key=OPENAI_KEY, anthropic_api_key=ANTHROPIC_KEY,
                                upstreams=upstreams)  # fmt: skip
            async with running_gate(settings, Mode.RECORD) as gate:
                await trio.to_thread.run_sync(ask_both, gate.base_url.removesuffix("/v1"))
            (cache_dir / "inference-gate.yaml").write_text(
                f"upstreams:\n  openai: {fake_openai.url}\n  anthropic: {fake_anthropic.url}\n", encoding="utf-8"
            )
            monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
            monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
            recorded = (len(fake_openai.requests), len(fake_anthropic.requests))
            run = await trio.to_thread.run_sync(run_verify, f"verify -c {cache_dir} --format json")

    assert recorded == (1, 1) and run.status_code == 0
    assert orjson.loads(run.io.fetch_output())["counts"]["same"] == 2
    assert "no API key" not in run.io.fetch_error()
    assert (len(fake_openai.requests), len(fake_anthropic.requests)) == (2, 2)
    assert fake_openai.requests[-1].headers["authorization"] == f"Bearer {OPENAI_KEY}"
    sent = fake_anthropic.requests[-1].headers
    assert ANTHROPIC_KEY in (sent.get("x-api-key"), sent.get("authorization", "").removeprefix("Bearer "))
