"""The OpenAI fake under other base paths: Azure OpenAI's routes and `api-key` auth, and a compatible server's
reasoning model with its extra stream fields."""

from __future__ import annotations

import orjson
import pytest

from inference_gate.core.sse import SSEParser
from tools.fake_replies import REASONING_COST_USD, REASONING_TEXT, ReceivedRequest, build_reply

KEY = "azure-fake-key-for-tests-0123456789"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}


def request(target: str, body, headers) -> ReceivedRequest:
    return ReceivedRequest("POST", target, headers, orjson.dumps(body), body)


@pytest.mark.parametrize(
    "target",
    [
        "/openai/deployments/my-gpt/chat/completions?api-version=2024-10-21",
        "/openai/v1/chat/completions",
        "/api/v1/chat/completions",
    ],
)
def test_chat_completions_under_any_base_path(target: str):
    reply = build_reply(request(target, CHAT, {"api-key": KEY}), expected_api_key=KEY)
    assert reply.status == 200
    assert orjson.loads(b"".join(reply.parts))["object"] == "chat.completion"


def test_a_wrong_azure_api_key_is_refused():
    target = "/openai/deployments/my-gpt/chat/completions?api-version=2024-10-21"
    assert build_reply(request(target, CHAT, {"api-key": "wrong"}), expected_api_key=KEY).status == 401


def test_a_reasoning_model_streams_reasoning_content_and_a_cost():
    body = {**CHAT, "model": "reasoning-r1", "stream": True, "stream_options": {"include_usage": True}}
    reply = build_reply(
        request("/api/v1/chat/completions", body, {"authorization": f"Bearer {KEY}"}), expected_api_key=KEY
    )
    parser = SSEParser()
    chunks = [orjson.loads(e.data) for part in reply.parts for e in parser.feed(part) if e.data != "[DONE]"]
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"]]
    assert "".join(delta.get("reasoning_content") or "" for delta in deltas) == REASONING_TEXT
    assert chunks[-1]["usage"]["cost"] == REASONING_COST_USD
