"""Replay-only mode: cassettes answer, a miss explains itself and is never retried, and nothing is written."""

from __future__ import annotations

import logging
import os
from dataclasses import replace

import openai
import orjson
import pytest
import trio

from inference_gate import Mode
from tests.e2e.conftest import running_gate
from tests.servers import running_upstream
from tools.fake_upstream import FakeUpstream

CLIENT_KEY = "sk-client-key-for-tests-9876543210"


async def ask(base_url: str, content: str, *, max_retries: int = 0, model: str = "gpt-4o-mini"):
    async with openai.AsyncOpenAI(base_url=base_url, api_key=CLIENT_KEY, max_retries=max_retries) as sdk:
        return await sdk.chat.completions.create(
            model=model, messages=[{"role": "user", "content": content}], temperature=0
        )


def snapshot(directory) -> dict:
    """Every path below `directory` with its modification time and content (None for folders)."""
    if not directory.exists():
        return {}
    return {p: (p.stat().st_mtime_ns, p.is_file() and p.read_bytes()) for p in directory.rglob("*")}


async def record(settings, *contents: str) -> None:
    upstream = FakeUpstream()
    async with running_upstream(upstream), running_gate(replace(settings, upstream=upstream.url), Mode.RECORD) as gate:
        for content in contents:
            await ask(gate.base_url, content)


async def test_a_miss_is_a_clear_error_the_sdk_does_not_retry(record_settings, caplog):
    caplog.set_level(logging.INFO, logger="inference_gate")
    upstream = FakeUpstream()
    with trio.fail_after(20):
        await record(record_settings, "the quick brown fox", "hello world")
        before = snapshot(record_settings.cache_dir)
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url)
            async with running_gate(settings, Mode.REPLAY) as gate:
                caplog.clear()
                with pytest.raises(openai.NotFoundError) as raised:
                    await ask(gate.base_url, "the quick brown cat", max_retries=2)
    error = raised.value
    assert error.response.headers["x-should-retry"] == "false"
    assert error.response.headers["x-inference-gate"] == "miss"
    assert error.body["type"] == "inference_gate_cache_miss"
    assert error.body["code"] == "cache_miss"
    message = error.body["message"]
    assert str(settings.cache_dir.resolve()) in message
    assert "inference-gate start" in message
    assert 'messages[0].content: recorded "the quick brown fox", got "the quick brown cat"' in message
    assert len([r for r in caplog.records if "/v1/chat/completions" in r.getMessage()]) == 1  # one try, no retry
    assert upstream.requests == []  # replay never contacts the upstream
    assert snapshot(record_settings.cache_dir) == before  # and never writes


async def test_replay_never_creates_the_cache_directory(record_settings):
    missing = record_settings.cache_dir / "does-not-exist"
    with trio.fail_after(20):
        async with running_gate(replace(record_settings, cache_dir=missing), Mode.REPLAY) as gate:
            with pytest.raises(openai.NotFoundError):
                await ask(gate.base_url, "anything")
    assert not missing.exists()


async def test_a_corrupt_cassette_names_the_file_in_replay_and_others_keep_working(record_settings):
    with trio.fail_after(20):
        await record(record_settings, "first", "second")
        first, second = sorted(record_settings.cache_dir.rglob("*.json"))
        broken = first if "first" in first.name else second
        broken.write_text('{"format_version": 1, "key": ')
        async with running_gate(record_settings, Mode.REPLAY) as gate:
            with pytest.raises(openai.InternalServerError) as raised:
                await ask(gate.base_url, "first", max_retries=2)
            assert (await ask(gate.base_url, "second")).choices[0].message.content.startswith("Echo: second")
    assert raised.value.body["code"] == "corrupt_cassette"
    assert broken.name in raised.value.body["message"]
    assert raised.value.response.headers["x-should-retry"] == "false"


async def test_a_corrupt_cassette_is_recorded_again_in_record_mode(record_settings):
    with trio.fail_after(20):
        await record(record_settings, "first")
        (path,) = record_settings.cache_dir.rglob("*.json")
        good = path.read_bytes()
        path.write_text('{"format_version": 99}')
        await record(record_settings, "first")
    assert path.read_bytes() == good
    assert [p.name for p in path.parent.iterdir()] == [path.name]


HAND_EDITS = {
    "status-204": ({"status": 204}, "response.status 204"),
    "status-99": ({"status": 99}, "response.status 99"),
    "status-600": ({"status": 600}, "response.status 600"),
    "crlf-in-header": ({"headers": {"x-request-id": "req\r\nx-injected: 1"}}, "response.headers.x-request-id"),
    "deep-body": ({"body": [[[[]]]]}, "malformed cassette"),
}


def hand_edit(path, response_fields: dict) -> None:
    document = orjson.loads(path.read_bytes())
    document["response"].update(response_fields)
    data = orjson.dumps(document)
    path.write_bytes(data.replace(b"[[[[]]]]", b"[" * 600 + b"]" * 600))  # deeper than orjson writes


@pytest.mark.parametrize("edit", HAND_EDITS)
async def test_a_hand_edited_cassette_that_cannot_be_sent_is_reported_corrupt_then_recorded_again(
    record_settings, edit
):
    response_fields, field = HAND_EDITS[edit]
    with trio.fail_after(20):
        await record(record_settings, "first")
        (path,) = record_settings.cache_dir.rglob("*.json")
        good = path.read_bytes()
        hand_edit(path, response_fields)
        async with running_gate(record_settings, Mode.REPLAY) as gate:
            with pytest.raises(openai.InternalServerError) as raised:
                await ask(gate.base_url, "first")
        await record(record_settings, "first")
    assert raised.value.body["code"] == "corrupt_cassette"
    assert path.name in raised.value.body["message"] and field in raised.value.body["message"]
    assert path.read_bytes() == good


async def test_a_hit_says_so_and_names_its_cassette(record_settings):
    with trio.fail_after(20):
        await record(record_settings, "hello")
        async with (
            running_gate(record_settings, Mode.REPLAY) as gate,
            openai.AsyncOpenAI(base_url=gate.base_url, api_key=CLIENT_KEY, max_retries=0) as sdk,
        ):
            raw = await sdk.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}], temperature=0
            )
    (path,) = record_settings.cache_dir.rglob("*.json")
    assert raw.headers["x-inference-gate"] == "hit"
    assert raw.headers["x-inference-gate-cassette"] == path.relative_to(record_settings.cache_dir).as_posix()
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.parse().choices[0].message.content.startswith("Echo: hello")
    assert os.path.getsize(path) > 0
