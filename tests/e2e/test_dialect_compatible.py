"""OpenAI-compatible servers (OpenRouter's `/api/v1`, vLLM's and Ollama's `/v1`) through the gate with the
official `openai` SDK under a custom base path. Their extra fields, `reasoning_content` deltas and
OpenRouter's `usage.cost`, survive in replay: every event equal as JSON, each value's bytes as sent (a cassette
keeps JSON parsed, so replay writes the keys sorted)."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest

from inference_gate import Settings
from inference_gate.core.sse import SSEParser
from tests.e2e.dialects import cache_list, record_then_replay
from tools.fake_replies import REASONING_COST_USD, REASONING_TEXT
from tools.fake_upstream import FakeUpstream

CLIENT_KEY = "sk-or-placeholder-for-tests-0123456789"
PROMPT = "Think, then echo 🌍"


@pytest.mark.parametrize("base_path", ["/api/v1", "/v1"], ids=["openrouter", "vllm-ollama"])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_extra_fields_survive_byte_for_byte(record_settings: Settings, base_path: str, stream: bool):
    upstream = FakeUpstream(expected_api_key=record_settings.api_key)

    async def exercise(base_url: str) -> Any:
        async with openai.AsyncOpenAI(base_url=base_url + base_path, api_key=CLIENT_KEY, max_retries=0) as client:
            options = {"stream_options": {"include_usage": True}} if stream else {}
            async with client.chat.completions.with_streaming_response.create(
                model="reasoning-r1", messages=[{"role": "user", "content": PROMPT}], stream=stream, **options
            ) as response:
                return b"".join([chunk async for chunk in response.iter_bytes()])

    recorded, replayed = await record_then_replay(upstream, record_settings, exercise)

    assert json_values(replayed, stream) == json_values(recorded, stream)
    assert upstream.requests[0].path == f"{base_path}/chat/completions"
    [row] = cache_list(record_settings.cache_dir)
    assert (row["name"].split("/")[0], row["prompt"]) == ("chat.completions", PROMPT)
    assert row["reply"] == f"Echo: {PROMPT} — héllo wörld 你好 🌍"
    if stream:
        chunks = json_values(replayed, stream)[:-1]
        deltas = [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"]]
        assert "".join(delta.get("reasoning_content") or "" for delta in deltas) == REASONING_TEXT
        assert chunks[-1]["usage"]["cost"] == REASONING_COST_USD
        cost = f'"cost":{REASONING_COST_USD}'.encode()
        assert cost in recorded and cost in replayed  # the number as the server wrote it


def json_values(body: bytes, stream: bool) -> list[Any]:
    """The body as JSON, or each event's data as JSON (`[DONE]` as text)."""
    if not stream:
        return [orjson.loads(body)]
    return [orjson.loads(e.data) if e.data != "[DONE]" else e.data for e in SSEParser().feed(body)]


async def test_the_sdk_keeps_the_extra_fields_in_replay(record_settings: Settings):
    upstream = FakeUpstream(expected_api_key=record_settings.api_key)

    async def exercise(base_url: str) -> Any:
        async with openai.AsyncOpenAI(base_url=base_url + "/api/v1", api_key=CLIENT_KEY, max_retries=0) as client:
            stream = await client.chat.completions.create(
                model="reasoning-r1",
                messages=[{"role": "user", "content": PROMPT}],
                stream=True,
                stream_options={"include_usage": True},
            )
            return [chunk async for chunk in stream]

    recorded, replayed = await record_then_replay(upstream, record_settings, exercise)

    assert [c.model_dump() for c in replayed] == [c.model_dump() for c in recorded]
    thoughts = [c.choices[0].delta.model_extra.get("reasoning_content") for c in replayed if c.choices]
    assert "".join(thought or "" for thought in thoughts) == REASONING_TEXT
    assert replayed[-1].usage.model_extra["cost"] == REASONING_COST_USD
