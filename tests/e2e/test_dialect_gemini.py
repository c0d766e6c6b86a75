"""Gemini's REST API through the gate with a plain HTTP client (no Google SDK): generateContent and
streamGenerateContent (`alt=sse`), with the key in `x-goog-api-key` or in `?key=`. The key never reaches the
cache directory: not in a cassette's query, not in a file name."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from inference_gate import Settings
from inference_gate.core.dialects import Dialect
from inference_gate.core.sse import SSEParser
from tests.e2e.dialects import cache_list, cassettes, record_then_replay
from tests.plain_http import post_json
from tools.fake_gemini import FakeGemini

CLIENT_KEY = "AIza-client-key-for-tests-0123456789abc"
MODEL_PATH = "/v1beta/models/gemini-2.0-flash"
PROMPT = "Nomme une couleur 🌍"
REQUEST = {
    "contents": [{"role": "user", "parts": [{"text": PROMPT}]}],
    "generationConfig": {"temperature": 0.2, "maxOutputTokens": 64},
}
REPLY = f"Echo: {PROMPT} — héllo wörld 你好 🌍"


def chunks_of(body: bytes) -> list[Any]:
    parser = SSEParser()
    return [orjson.loads(event.data) for event in parser.feed(body)]


def text_of(responses: list[Any]) -> str:
    return "".join(part["text"] for r in responses for part in r["candidates"][0]["content"]["parts"])


@pytest.mark.parametrize("key_in", ["header", "query"])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_record_then_replay_over_plain_http(record_settings: Settings, stream: bool, key_in: str):
    upstream = FakeGemini(expected_api_key=record_settings.api_key)
    target = f"{MODEL_PATH}:streamGenerateContent?alt=sse" if stream else f"{MODEL_PATH}:generateContent"
    headers = {"x-goog-api-key": CLIENT_KEY} if key_in == "header" else {}
    if key_in == "query":
        target += f"{'&' if '?' in target else '?'}key={CLIENT_KEY}"

    async def exercise(base_url: str) -> Any:
        response = await post_json(base_url, target, REQUEST, headers)
        assert response.status == 200, response.body
        return response.headers["content-type"], response.body

    recorded, replayed = await record_then_replay(upstream, record_settings, exercise, Dialect.GEMINI)

    # A cassette keeps JSON parsed, so replay re-serialises it (keys sorted, LF line ends): equal as JSON.
    (content_type, body), (replayed_type, replayed_body) = recorded, replayed
    assert replayed_type == content_type
    assert content_type.startswith("text/event-stream" if stream else "application/json")
    responses = chunks_of(body) if stream else [orjson.loads(body)]
    assert (chunks_of(replayed_body) if stream else [orjson.loads(replayed_body)]) == responses
    assert text_of(responses) == REPLY
    assert upstream.requests[0].headers["x-goog-api-key"] == record_settings.api_key
    assert CLIENT_KEY not in upstream.requests[0].target  # the placeholder is replaced, not sent beside
    [cassette] = cassettes(record_settings.cache_dir)
    endpoint = "streamGenerateContent" if stream else "generateContent"
    assert cassette["name"].startswith(f"{endpoint.lower()}/")
    assert ["alt", "sse"] in cassette["request"]["query"] or not stream
    assert all(name != "key" for name, _ in cassette["request"]["query"])
    for path in record_settings.cache_dir.rglob("*"):
        assert CLIENT_KEY not in path.as_posix()
        assert not path.is_file() or CLIENT_KEY.encode() not in path.read_bytes()
    [row] = cache_list(record_settings.cache_dir)
    assert (row["endpoint"], row["model"], row["prompt"], row["reply"]) == (
        endpoint,
        "gemini-2.0-flash",
        PROMPT,
        REPLY,
    )
    assert row["settings"] == {"generationConfig": REQUEST["generationConfig"]}
