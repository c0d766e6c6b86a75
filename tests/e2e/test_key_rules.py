"""Requests that change from run to run still match: uploads, normalize rules, tool-call ids, and `cache rekey`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
import trio
from cleo.testers.application_tester import ApplicationTester

from inference_gate import Mode, Settings
from inference_gate.cli.app import GateApplication
from inference_gate.core.outcome import Answer, Outcome
from tests.e2e.conftest import running_gate
from tests.servers import running_upstream
from tools.fake_upstream import FakeUpstream

CLIENT_KEY = "sk-client-key-for-tests-9876543210"
AUDIO = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(64))


def transcribe(base_url: str) -> str:
    with openai.OpenAI(base_url=base_url, api_key=CLIENT_KEY, max_retries=0) as client:
        return client.audio.transcriptions.create(file=("hello.wav", AUDIO, "audio/wav"), model="whisper-1").text


async def chat(base_url: str, messages: list[dict[str, Any]], **fields: Any) -> str:
    async with openai.AsyncOpenAI(base_url=base_url, api_key=CLIENT_KEY, max_retries=0) as client:
        completion = await client.chat.completions.create(model="gpt-4o-mini", messages=messages, **fields)
        return completion.choices[0].message.content or ""


def outcomes(answers: list[Answer]) -> list[Outcome]:
    return [answer.outcome for answer in answers]


def cassettes(cache_dir: Path) -> list[Path]:
    return sorted(cache_dir.rglob("*.json"))


async def test_the_same_upload_twice_is_one_cassette_that_replays(record_settings: Settings):
    upstream = FakeUpstream(expected_api_key=record_settings.api_key)
    answers: list[Answer] = []
    with trio.fail_after(30):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url)
            async with running_gate(settings, Mode.RECORD, on_answer=answers.append) as gate:
                first = await trio.to_thread.run_sync(transcribe, gate.base_url)
                second = await trio.to_thread.run_sync(transcribe, gate.base_url)
        async with running_gate(settings, Mode.REPLAY, on_answer=answers.append) as gate:
            replayed = await trio.to_thread.run_sync(transcribe, gate.base_url)

    assert first == second == replayed == f"Transcript of hello.wav ({len(AUDIO)} bytes)."
    assert upstream.calls("/v1/audio/transcriptions") == 1
    assert outcomes(answers) == [Outcome.RECORDED, Outcome.HIT, Outcome.HIT]
    (file,) = cassettes(settings.cache_dir)
    cassette = orjson.loads(file.read_bytes())
    assert cassette["summary"]["model"] == "whisper-1"
    assert cassette["summary"]["files"] == ["hello.wav"]
    fields = {field["name"]: field for field in cassette["request"]["form"]}
    assert fields["model"]["text"] == "whisper-1"
    assert fields["file"]["size_bytes"] == len(AUDIO) and "content_base64" not in fields["file"]


async def test_a_date_in_the_system_prompt_matches_under_a_normalize_rule(record_settings: Settings):
    date_rule = {"path": "body.messages[*].content", "pattern": r"\d{4}-\d{2}-\d{2}", "replace": "<date>"}
    upstream = FakeUpstream()
    answers: list[Answer] = []

    def messages(date: str) -> list[dict[str, Any]]:
        return [{"role": "system", "content": f"Today is {date}."}, {"role": "user", "content": "What day is it?"}]

    with trio.fail_after(30):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url, normalize=[date_rule])
            async with running_gate(settings, Mode.RECORD, on_answer=answers.append) as gate:
                recorded = await chat(gate.base_url, messages("2026-01-02"))
        async with running_gate(settings, Mode.REPLAY, on_answer=answers.append) as gate:
            replayed = await chat(gate.base_url, messages("2026-03-04"))
        async with running_gate(replace(settings, normalize=[]), Mode.REPLAY, on_answer=answers.append) as gate:
            with pytest.raises(openai.NotFoundError):
                await chat(gate.base_url, messages("2026-03-04"))
    assert replayed == recorded
    assert outcomes(answers) == [Outcome.RECORDED, Outcome.HIT, Outcome.MISS]
    (file,) = cassettes(settings.cache_dir)
    assert "Today is 2026-01-02." in file.read_text(encoding="utf-8")  # the cassette keeps the real request


async def test_a_tool_call_turn_with_new_ids_matches_by_default(record_settings: Settings):
    upstream = FakeUpstream()
    answers: list[Answer] = []

    def turn(call_id: str) -> list[dict[str, Any]]:
        call = {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
        return [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call_id, "content": "Sunny."},
        ]

    with trio.fail_after(30):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url)
            async with running_gate(settings, Mode.RECORD, on_answer=answers.append) as gate:
                recorded = await chat(gate.base_url, turn("call_abc123"))
        async with running_gate(settings, Mode.REPLAY, on_answer=answers.append) as gate:
            replayed = await chat(gate.base_url, turn("call_xyz789"))
    assert replayed == recorded
    assert outcomes(answers) == [Outcome.RECORDED, Outcome.HIT]


def rekey(config: Path, cache_dir: Path, *extra: str) -> tuple[int, str]:
    tester = ApplicationTester(GateApplication())
    status = tester.execute(" ".join(["--config", str(config), "cache rekey", "--cache-dir", str(cache_dir), *extra]))
    return status, tester.io.fetch_output()


async def test_rekey_after_adding_a_rule_makes_the_old_cassette_match(record_settings: Settings, tmp_path: Path):
    upstream = FakeUpstream()
    answers: list[Answer] = []
    config = tmp_path / "config.yaml"
    config.write_text("ignore: [body.user]\n", encoding="utf-8")
    with trio.fail_after(30):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url)
            async with running_gate(settings, Mode.RECORD, on_answer=answers.append) as gate:
                recorded = await chat(gate.base_url, [{"role": "user", "content": "Hi"}], user="trace-1")
        (old_file,) = cassettes(settings.cache_dir)
        ruled = replace(settings, ignore=["body.user"])
        async with running_gate(ruled, Mode.REPLAY, on_answer=answers.append) as gate:
            with pytest.raises(openai.NotFoundError):  # the rule is in force, the cassette not yet rekeyed
                await chat(gate.base_url, [{"role": "user", "content": "Hi"}], user="trace-2")

        status, dry_run = await trio.to_thread.run_sync(rekey, config, settings.cache_dir)
        assert status == 0
        assert f"chat.completions/{old_file.name} -> chat.completions/" in dry_run
        assert "1 cassette would move" in dry_run
        assert cassettes(settings.cache_dir) == [old_file]

        status, applied = await trio.to_thread.run_sync(rekey, config, settings.cache_dir, "--apply")
        assert status == 0 and "moved 1 cassette" in applied
        (new_file,) = cassettes(settings.cache_dir)
        assert new_file != old_file

        async with running_gate(ruled, Mode.REPLAY, on_answer=answers.append) as gate:
            replayed = await chat(gate.base_url, [{"role": "user", "content": "Hi"}], user="trace-2")
    assert replayed == recorded
    assert outcomes(answers) == [Outcome.RECORDED, Outcome.MISS, Outcome.HIT]
