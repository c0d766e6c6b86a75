"""Azure OpenAI through the gate with the official `openai.AzureOpenAI` client: the deployment path and the
`api-key` header. Cassettes go in the same `chat.completions` folder as OpenAI's, the gate's key replaces the
client's placeholder `api-key`, and `api-version` stays in the cassette (and the key)."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from inference_gate import Settings
from tests.e2e.dialects import cache_list, cassettes, record_then_replay, sdk_exercise
from tools.fake_upstream import FakeUpstream

PLACEHOLDER_KEY = "azure-placeholder-key-for-tests-0123"
API_VERSION = "2024-10-21"
DEPLOYMENT = "gpt4o-mini-prod"
PROMPT = "Nenne eine Primzahl 🌍"


def create(client, stream: bool):
    return client.chat.completions.create(
        model=DEPLOYMENT,
        messages=[{"role": "user", "content": PROMPT}],
        temperature=0.1,
        stream=stream,
        **({"stream_options": {"include_usage": True}} if stream else {}),
    )


def azure_client(base_url: str, kind: str):
    client_class = openai.AzureOpenAI if kind == "sync" else openai.AsyncAzureOpenAI
    return client_class(azure_endpoint=base_url, api_key=PLACEHOLDER_KEY, api_version=API_VERSION, max_retries=0)


def sync_exercise(base_url: str, stream: bool) -> Any:
    with azure_client(base_url, "sync") as client:
        result = create(client, stream)
        return [chunk.model_dump() for chunk in result] if stream else result.model_dump()


async def async_exercise(base_url: str, stream: bool) -> Any:
    async with azure_client(base_url, "async") as client:
        result = await create(client, stream)
        return [chunk.model_dump() async for chunk in result] if stream else result.model_dump()


@pytest.mark.parametrize("client_kind", ["sync", "async"])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_record_then_replay_with_azure_openai(record_settings: Settings, stream: bool, client_kind: str):
    upstream = FakeUpstream(expected_api_key=record_settings.api_key)
    exercise = sdk_exercise(client_kind, sync_exercise, async_exercise, stream)
    recorded, replayed = await record_then_replay(upstream, record_settings, exercise)

    assert replayed == recorded
    [forwarded] = upstream.requests
    assert forwarded.target == f"/openai/deployments/{DEPLOYMENT}/chat/completions?api-version={API_VERSION}"
    assert forwarded.headers["api-key"] == record_settings.api_key and "authorization" not in forwarded.headers
    [cassette] = cassettes(record_settings.cache_dir)
    assert cassette["name"].startswith("chat.completions/")
    assert cassette["request"]["query"] == [["api-version", API_VERSION]]
    [row] = cache_list(record_settings.cache_dir)
    assert (row["endpoint"], row["model"], row["prompt"]) == ("chat.completions", DEPLOYMENT, PROMPT)
    assert row["reply"] == f"Echo: {PROMPT} — héllo wörld 你好 🌍"


async def test_the_v1_path_of_newer_resources_is_chat_completions_too(record_settings: Settings):
    upstream = FakeUpstream(expected_api_key=record_settings.api_key)

    async def exercise(base_url: str) -> Any:
        v1_url = f"{base_url}/openai/v1"
        async with openai.AsyncOpenAI(base_url=v1_url, api_key=PLACEHOLDER_KEY, max_retries=0) as client:
            return (await create(client, stream=False)).model_dump()

    recorded, replayed = await record_then_replay(upstream, record_settings, exercise)

    assert replayed == recorded
    assert upstream.requests[0].path == "/openai/v1/chat/completions"
    [row] = cache_list(record_settings.cache_dir)
    assert (row["name"].split("/")[0], row["endpoint"], row["prompt"]) == (
        "chat.completions",
        "chat.completions",
        PROMPT,
    )
