"""Record with the official SDK through the gate, stop the upstream, and replay: the SDK must see the same thing."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import openai
import orjson
import pytest
import trio

from inference_gate import Mode, Settings
from tests.e2e.conftest import running_gate
from tests.servers import running_upstream
from tools.fake_upstream import FakeUpstream

CLIENT_KEY = "sk-client-key-for-tests-9876543210"
PROMPT = "Write a haiku about caching — in français, s'il vous plaît 🌍"


def chat_call(client, stream: bool):
    return client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": PROMPT}],
        temperature=0.2,
        stream=stream,
        **({"stream_options": {"include_usage": True}} if stream else {}),
    )


def responses_call(client, stream: bool):
    return client.responses.create(model="gpt-4o-mini", input=PROMPT, temperature=0.7, stream=stream)


CALLS = {"chat": chat_call, "responses": responses_call}
ENDPOINT_FOLDERS = {"chat": "chat.completions", "responses": "responses"}


def dump(result: Any) -> Any:
    """What the SDK handed the application: the parsed object, or every parsed event of a stream."""
    if isinstance(result, openai.Stream | list):
        return [event.model_dump() for event in result]
    return result.model_dump()


def sync_call(base_url: str, api: str, stream: bool) -> Any:
    with openai.OpenAI(base_url=base_url, api_key=CLIENT_KEY, max_retries=0) as client:
        return dump(CALLS[api](client, stream))


async def async_call(base_url: str, api: str, stream: bool) -> Any:
    async with openai.AsyncOpenAI(base_url=base_url, api_key=CLIENT_KEY, max_retries=0) as client:
        result = await CALLS[api](client, stream)
        if stream:
            return [event.model_dump() async for event in result]
        return result.model_dump()


async def call(client_kind: str, base_url: str, api: str, stream: bool) -> Any:
    if client_kind == "sync":
        return await trio.to_thread.run_sync(sync_call, base_url, api, stream)
    return await async_call(base_url, api, stream)


def reply_text(api: str, stream: bool, result: Any) -> str:
    if api == "chat" and not stream:
        return result["choices"][0]["message"]["content"]
    if api == "chat":
        return "".join(chunk["choices"][0]["delta"]["content"] or "" for chunk in result if chunk["choices"])
    if not stream:
        return result["output"][0]["content"][0]["text"]
    return "".join(event["delta"] for event in result if event["type"] == "response.output_text.delta")


@pytest.mark.parametrize("client_kind", ["sync", "async"])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_record_then_replay_without_upstream(record_settings: Settings, api, stream, client_kind):
    upstream = FakeUpstream(expected_api_key=record_settings.api_key)
    with trio.fail_after(30):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url)
            async with running_gate(settings, Mode.RECORD) as gate:
                recorded = await call(client_kind, gate.base_url, api, stream)
                again = await call(client_kind, gate.base_url, api, stream)
        assert upstream.calls("/v1/" + ("chat/completions" if api == "chat" else "responses")) == 1
        assert again == recorded

        async with running_gate(settings, Mode.REPLAY) as gate:
            replayed = await call(client_kind, gate.base_url, api, stream)

    assert replayed == recorded
    assert "— in français" in reply_text(api, stream, replayed) or "OK." in reply_text(api, stream, replayed)
    files = list(settings.cache_dir.rglob("*.json"))
    assert [f.parent.name for f in files] == [ENDPOINT_FOLDERS[api]]
    cassette = orjson.loads(files[0].read_bytes())
    assert cassette["summary"]["stream"] is stream
    assert cassette["summary"]["prompt"] == PROMPT
    assert cassette["summary"]["reply"] == reply_text(api, stream, replayed)
    text = files[0].read_text(encoding="utf-8")
    assert "français" in text and "🌍" in text  # readable, not escaped
    assert CLIENT_KEY not in text and record_settings.api_key not in text


async def test_the_stream_reaches_the_client_before_the_upstream_finishes(record_settings: Settings):
    upstream = FakeUpstream()
    upstream.hold = trio.Event()
    with trio.fail_after(20):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url)
            async with (
                running_gate(settings, Mode.RECORD) as gate,
                openai.AsyncOpenAI(base_url=gate.base_url, api_key=CLIENT_KEY, max_retries=0) as client,
            ):
                stream = await chat_call(client, stream=True)
                events = aiter(stream)
                first = await anext(events)
                assert first.choices[0].delta.role == "assistant"
                assert not upstream.hold.is_set()  # the upstream is still holding the rest back
                assert list(settings.cache_dir.rglob("*.json")) == []  # nothing recorded yet
                upstream.hold.set()
                rest = [event async for event in events]
    assert rest[-1].usage is not None
    assert len(list(settings.cache_dir.rglob("*.json"))) == 1


async def test_tool_calls_embeddings_and_models_round_trip(record_settings: Settings):
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]

    async def exercise(base_url: str) -> list[Any]:
        async with openai.AsyncOpenAI(base_url=base_url, api_key=CLIENT_KEY, max_retries=0) as client:
            chunks = await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "Weather?"}], tools=tools, stream=True
            )
            arguments = "".join(
                [c.choices[0].delta.tool_calls[0].function.arguments or "" async for c in chunks
                 if c.choices and c.choices[0].delta.tool_calls]
            )
            embedding = await client.embeddings.create(model="text-embedding-3-small", input="hello")
            models = await client.models.list()
            return [arguments, embedding.data[0].embedding, [m.id async for m in models]]

    upstream = FakeUpstream()
    with trio.fail_after(30):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url)
            async with running_gate(settings, Mode.RECORD) as gate:
                recorded = await exercise(gate.base_url)
        async with running_gate(settings, Mode.REPLAY) as gate:
            replayed = await exercise(gate.base_url)
    assert recorded == replayed
    assert orjson.loads(recorded[0]) == {"city": "Paris"}
    assert len(recorded[1]) == 8
    assert "gpt-4o-mini" in recorded[2]
    folders = sorted(p.parent.name for p in settings.cache_dir.rglob("*.json"))
    assert folders == ["chat.completions", "embeddings", "get.models"]
    tool_cassette = next(settings.cache_dir.glob("chat.completions/*.json")).read_text()
    assert '[tool call] get_weather({\\"city\\":\\"Paris\\"})' in tool_cassette


async def test_recording_the_same_request_in_two_directories_gives_the_same_bytes(record_settings: Settings, tmp_path):
    upstream = FakeUpstream()
    with trio.fail_after(30):
        async with running_upstream(upstream):
            for name in ("first", "second"):
                settings = replace(record_settings, upstream=upstream.url, cache_dir=tmp_path / name)
                async with running_gate(settings, Mode.RECORD) as gate:
                    for api in ("chat", "responses"):
                        for stream in (False, True):
                            await async_call(gate.base_url, api, stream)
    first = {p.relative_to(tmp_path / "first"): p.read_bytes() for p in (tmp_path / "first").rglob("*.json")}
    second = {p.relative_to(tmp_path / "second"): p.read_bytes() for p in (tmp_path / "second").rglob("*.json")}
    assert len(first) == 4
    assert first == second
