"""Anthropic Messages through the gate with the official `anthropic` SDK: record, then replay with the upstream
stopped; the SDK sees the same messages and events. A replay miss is an Anthropic-shaped error it does not retry."""

from __future__ import annotations

import logging
from typing import Any

import anthropic
import pytest
import trio

from inference_gate import Mode, Settings
from inference_gate.core.dialects import Dialect
from tests.e2e.conftest import running_gate
from tests.e2e.dialects import cache_list, cassettes, record_then_replay, root_url, routed, sdk_exercise
from tests.plain_http import post_json
from tests.servers import running_upstream
from tools.fake_anthropic import FakeAnthropic

PLACEHOLDER_KEY = "sk-ant-placeholder-for-tests-0123456789"
PROMPT = "Décris le cache en une phrase 🌍"
REQUEST = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 256,
    "system": "Be brief.",
    "stop_sequences": ["\n\nHuman:"],
    "messages": [{"role": "user", "content": [{"type": "text", "text": PROMPT}]}],
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
}
REPLY = f"[thinking] The user wants an echo. Je réponds.\nEcho: {PROMPT} — héllo wörld 你好 🌍"
REPLY += '\n[tool call] get_weather({"city":"Paris"})'


def sync_exercise(base_url: str, stream: bool) -> Any:
    with anthropic.Anthropic(base_url=base_url, api_key=PLACEHOLDER_KEY, max_retries=0) as client:
        if stream:
            return [event.model_dump() for event in client.messages.create(**REQUEST, stream=True)]
        count = client.messages.count_tokens(model=REQUEST["model"], messages=REQUEST["messages"])
        return [client.messages.create(**REQUEST).model_dump(), count.input_tokens]


async def async_exercise(base_url: str, stream: bool) -> Any:
    async with anthropic.AsyncAnthropic(base_url=base_url, api_key=PLACEHOLDER_KEY, max_retries=0) as client:
        if stream:
            return [event.model_dump() async for event in await client.messages.create(**REQUEST, stream=True)]
        count = await client.messages.count_tokens(model=REQUEST["model"], messages=REQUEST["messages"])
        return [(await client.messages.create(**REQUEST)).model_dump(), count.input_tokens]


@pytest.mark.parametrize("client_kind", ["sync", "async"])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_record_then_replay_with_the_anthropic_sdk(record_settings: Settings, stream: bool, client_kind: str):
    upstream = FakeAnthropic(expected_api_key=record_settings.api_key)
    exercise = sdk_exercise(client_kind, sync_exercise, async_exercise, stream)
    recorded, replayed = await record_then_replay(upstream, record_settings, exercise, Dialect.ANTHROPIC)

    assert replayed == recorded
    if stream:
        kinds = [event["type"] for event in recorded]  # the SDK drops `ping` events
        assert kinds[:2] == ["message_start", "content_block_start"] and kinds[-2:] == ["message_delta", "message_stop"]
    else:
        assert [block["type"] for block in recorded[0]["content"]] == ["thinking", "text", "tool_use"]
    # The gate's key replaced the client's placeholder, in the scheme the client used.
    assert {request.headers["authorization"] for request in upstream.requests} == {f"Bearer {record_settings.api_key}"}
    stored = cassettes(record_settings.cache_dir)
    message = next(cassette for cassette in stored if cassette["name"].startswith("messages/"))
    assert message["request"]["headers"]["anthropic-version"]
    response_headers = message["response"]["headers"]
    assert response_headers["request-id"].startswith("req_")
    assert response_headers["anthropic-ratelimit-requests-remaining"] == "49"
    assert "cf-ray" not in response_headers
    rows = {row["endpoint"]: row for row in cache_list(record_settings.cache_dir)}
    assert (rows["messages"]["prompt"], rows["messages"]["reply"]) == (PROMPT, REPLY)
    assert rows["messages"]["model"] == "claude-sonnet-4-5" and rows["messages"]["stream"] is stream
    assert ("messages.count_tokens" in rows) is not stream


async def test_an_x_api_key_placeholder_is_replaced_by_the_gates_key(record_settings: Settings):
    upstream = FakeAnthropic(expected_api_key=record_settings.api_key)
    headers = {"x-api-key": PLACEHOLDER_KEY, "anthropic-version": "2023-06-01", "anthropic-beta": "tools-2024-05-16"}
    with trio.fail_after(20):
        async with running_upstream(upstream):
            settings = routed(record_settings, Dialect.ANTHROPIC, upstream.url)
            async with running_gate(settings, Mode.RECORD) as gate:
                response = await post_json(root_url(gate.port), "/v1/messages", REQUEST, headers)
    assert response.status == 200, response.body
    forwarded = upstream.requests[0].headers
    assert forwarded["x-api-key"] == record_settings.api_key and "authorization" not in forwarded
    assert forwarded["anthropic-beta"] == "tools-2024-05-16"
    [cassette] = cassettes(settings.cache_dir)
    assert cassette["request"]["headers"]["anthropic-beta"] == "tools-2024-05-16"


async def test_a_replay_miss_is_an_anthropic_error_the_sdk_does_not_retry(record_settings: Settings, caplog):
    caplog.set_level(logging.INFO, logger="inference_gate")
    with trio.fail_after(20):
        async with (
            running_gate(record_settings, Mode.REPLAY) as gate,
            anthropic.AsyncAnthropic(base_url=root_url(gate.port), api_key=PLACEHOLDER_KEY, max_retries=3) as client,
        ):
            with pytest.raises(anthropic.NotFoundError) as raised:
                await client.messages.create(**REQUEST)
    assert raised.value.body["type"] == "error"
    assert raised.value.body["error"]["type"] == "inference_gate_cache_miss"
    assert "No cassette for POST /v1/messages" in raised.value.body["error"]["message"]
    assert raised.value.response.headers["x-should-retry"] == "false"
    answered = [record for record in caplog.records if "/v1/messages" in record.getMessage()]
    assert len(answered) == 1  # max_retries=3, yet one request
