"""Secrets never reach the cache directory: credentials are not stored, a cassette that would hold an API key is
refused (the client is still answered), and the `redact` setting masks what the user names while the key is
still computed from the real request."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import openai
import orjson
import pytest
import trio

from inference_gate import Mode, Settings
from inference_gate.core.redact import REDACTED
from tests.e2e.conftest import running_gate
from tests.plain_http import post_json
from tests.servers import running_upstream
from tools.fake_replies import JSON_CONTENT_TYPE, openai_headers
from tools.fake_upstream import FakeUpstream

CLIENT_KEY = "sk-client-key-for-tests-9876543210"
COOKIE_VALUE = "session-cookie-secret-4711"
X_API_KEY = "x-api-key-secret-0815"
AZURE_API_KEY = "azure-api-key-secret-1234"
DEADLINE_S = 20


def sdk(base_url: str, **options) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base_url, api_key=CLIENT_KEY, max_retries=0, timeout=DEADLINE_S, **options)


def cache_bytes(cache_dir: Path) -> list[bytes]:
    """Every file's path and content under the cache: what `grep -r` over the directory would search."""
    if not cache_dir.exists():
        return []
    return [
        path.relative_to(cache_dir).as_posix().encode() + b"\n" + (path.read_bytes() if path.is_file() else b"")
        for path in cache_dir.rglob("*")
    ]


def set_cookie_value(request_body: bytes) -> str:
    """The cookie the fake upstream sets on its answer to `request_body` (it derives it from the body)."""
    set_cookie = dict(openai_headers(request_body, JSON_CONTENT_TYPE))[b"set-cookie"].decode()
    return set_cookie.partition(";")[0].partition("=")[2]


async def test_no_credential_or_cookie_reaches_the_cache_directory(record_settings: Settings):
    # Without a key of its own the gate forwards every credential the client sends, so all are in play.
    upstream = FakeUpstream(expected_api_key=CLIENT_KEY)
    credential_headers = {"Cookie": f"session={COOKIE_VALUE}", "x-api-key": X_API_KEY, "api-key": AZURE_API_KEY}
    messages = [{"role": "user", "content": "Remember nothing secret"}]
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url, api_key=None)
            async with (
                running_gate(settings, Mode.RECORD) as gate,
                sdk(gate.base_url, default_headers=credential_headers) as client,
            ):
                await client.chat.completions.create(model="gpt-4o-mini", messages=messages)
                stream = await client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True)
                _ = [event async for event in stream]
                await client.responses.create(model="gpt-4o-mini", input="Remember nothing secret")
    assert len(upstream.requests) == 3
    for forwarded in upstream.requests:  # the secrets were really in play on both sides
        assert forwarded.headers["cookie"] == f"session={COOKIE_VALUE}"
        assert (forwarded.headers["x-api-key"], forwarded.headers["api-key"]) == (X_API_KEY, AZURE_API_KEY)
    secrets = [CLIENT_KEY, COOKIE_VALUE, X_API_KEY, AZURE_API_KEY]
    secrets += [set_cookie_value(forwarded.body) for forwarded in upstream.requests]
    stored = cache_bytes(settings.cache_dir)
    assert len(stored) == 5  # two endpoint folders, three cassettes
    for secret in secrets:
        assert not any(secret.encode() in data for data in stored), secret
    assert not any(b"__cf_bm" in data or b"cookie" in data.lower() for data in stored)


@pytest.mark.parametrize("whose", ["gate", "client"])
async def test_a_cassette_holding_an_api_key_is_refused_but_the_client_is_answered(
    record_settings: Settings, caplog, whose: str
):
    """The gate's key when it has one; the client's forwarded key when it has none (the upstream echoes it)."""
    caplog.set_level(logging.INFO, logger="inference_gate")
    secret = record_settings.api_key if whose == "gate" else CLIENT_KEY
    upstream = FakeUpstream()
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            gate_key = record_settings.api_key if whose == "gate" else None
            settings = replace(record_settings, upstream=upstream.url, api_key=gate_key)
            async with running_gate(settings, Mode.RECORD) as gate, sdk(gate.base_url) as client:
                raw = await client.chat.completions.with_raw_response.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": f"My key is {secret}"}]
                )
    assert raw.parse().choices[0].message.content.startswith(f"Echo: My key is {secret}")
    assert raw.headers["x-inference-gate"] == "passthrough"
    assert raw.headers["x-inference-gate-reason"] == "a credential is in the exchange"
    assert cache_bytes(settings.cache_dir) == []  # neither a cassette nor a temporary file
    [refusal] = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert "refused" in refusal.getMessage() and "API key" in refusal.getMessage()
    assert secret not in refusal.getMessage()


@pytest.mark.parametrize("placeholder", ["x", "test", "fake", "1", "gpt"])
@pytest.mark.parametrize("gate_has_a_key", [True, False])
async def test_a_placeholder_client_key_does_not_stop_recording(
    record_settings: Settings, placeholder: str, gate_has_a_key: bool
):
    """Every cassette holds an "x" somewhere: a placeholder key is not a credential to look for. With a key of
    its own the gate never forwards the client's, and without one a value that short is no real key."""
    upstream = FakeUpstream()
    gate_key = record_settings.api_key if gate_has_a_key else None
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url, api_key=gate_key)
            async with (
                running_gate(settings, Mode.RECORD) as gate,
                openai.AsyncOpenAI(base_url=gate.base_url, api_key=placeholder, max_retries=0) as client,
            ):
                question = f"Say {placeholder} for the test, please"
                raw = await client.chat.completions.with_raw_response.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": question}]
                )
    assert raw.headers["x-inference-gate"] == "recorded"
    assert (settings.cache_dir / raw.headers["x-inference-gate-cassette"]).is_file()


REDACT_RULES = ["body.user", "body.messages[*].content", "headers.openai-project"]
SYSTEM_PROMPT = "system-prompt-secret-2718"
END_USER = "end-user-secret-3141"
PROJECT = "proj-secret-1618"


async def ask(client: openai.AsyncOpenAI, *, system_prompt: str = SYSTEM_PROMPT, end_user: str = END_USER):
    return await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": system_prompt}, {"role": "user", "content": "What is redacted?"}],
        user=end_user,
    )


async def test_redact_masks_the_stored_request_but_not_the_key(record_settings: Settings):
    upstream = FakeUpstream()
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url, redact=REDACT_RULES)
            async with running_gate(settings, Mode.RECORD) as gate, sdk(gate.base_url, project=PROJECT) as client:
                recorded = await ask(client)
        async with running_gate(settings, Mode.REPLAY) as gate, sdk(gate.base_url, project=PROJECT) as client:
            replayed = await ask(client)
            with pytest.raises(openai.NotFoundError):
                await ask(client, end_user="another-end-user")
            with pytest.raises(openai.NotFoundError):
                await ask(client, system_prompt="another system prompt")
    assert upstream.requests[0].json["user"] == END_USER  # the upstream got the real request
    assert replayed.model_dump() == recorded.model_dump()
    [path] = settings.cache_dir.rglob("*.json")
    cassette = orjson.loads(path.read_bytes())
    assert cassette["request"]["headers"]["openai-project"] == REDACTED
    assert cassette["request"]["body"]["user"] == REDACTED
    assert [message["content"] for message in cassette["request"]["body"]["messages"]] == [REDACTED, REDACTED]
    assert cassette["summary"]["prompt"] == REDACTED
    assert path.name.startswith("redacted.")  # the masked prompt is not in the file name either
    for secret in (SYSTEM_PROMPT, END_USER, PROJECT):
        assert secret.encode() not in path.read_bytes()


QUERY_KEY = "AIza-query-credential-for-tests-0123456789"


@pytest.mark.parametrize("gate_has_a_key", [True, False])
async def test_a_credential_query_parameter_reaches_neither_a_cassette_nor_a_log_line(
    record_settings: Settings, caplog, gate_has_a_key: bool
):
    caplog.set_level(logging.DEBUG, logger="inference_gate")
    upstream = FakeUpstream()
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Is my key safe?"}]}
    target = f"/v1/chat/completions?api-version=1&key={QUERY_KEY}&api_key={QUERY_KEY}"
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            gate_key = record_settings.api_key if gate_has_a_key else None
            settings = replace(record_settings, upstream=upstream.url, api_key=gate_key)
            headers = {"authorization": f"Bearer {CLIENT_KEY}"}
            async with running_gate(settings, Mode.RECORD) as gate:
                recorded = await post_json(f"http://127.0.0.1:{gate.port}", target, body, headers)
            async with running_gate(settings, Mode.REPLAY) as gate:
                replayed = await post_json(f"http://127.0.0.1:{gate.port}", target, body, headers)
                missed = await post_json(f"http://127.0.0.1:{gate.port}", f"/v1/embeddings?key={QUERY_KEY}", {})
        async with running_gate(settings, Mode.RECORD) as gate:  # the upstream has gone: a warning is logged
            unreachable = await post_json(f"http://127.0.0.1:{gate.port}", f"/v1/models?key={QUERY_KEY}", {})
    assert [reply.headers["x-inference-gate"] for reply in (recorded, replayed, missed, unreachable)] == [
        "recorded",
        "hit",
        "miss",
        "error",
    ]
    [cassette] = settings.cache_dir.rglob("*.json")
    assert orjson.loads(cassette.read_bytes())["request"]["query"] == [["api-version", "1"]]
    assert not any(QUERY_KEY.encode() in data for data in cache_bytes(settings.cache_dir))
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "?" not in logged and QUERY_KEY not in logged
    assert any(record.levelno == logging.WARNING for record in caplog.records)


async def test_a_refused_stream_says_recording_then_ends_with_a_comment_the_sdks_skip(record_settings: Settings):
    """The head of a live stream leaves before the cassette is written, so it promises (`recording`); when the
    write is then refused, the stream's last bytes say so in an SSE comment, which the openai SDK ignores."""
    secret = record_settings.api_key
    messages = [{"role": "user", "content": f"Stream my key {secret}"}]
    upstream = FakeUpstream()

    def ask_sync(base_url: str) -> str:
        with openai.OpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=DEADLINE_S) as client:
            stream = client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True)
            return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)

    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url)
            async with running_gate(settings, Mode.RECORD) as gate, sdk(gate.base_url) as client:
                async with client.chat.completions.with_streaming_response.create(
                    model="gpt-4o-mini", messages=messages, stream=True
                ) as raw:
                    header = raw.headers["x-inference-gate"]
                    wire = b"".join([chunk async for chunk in raw.iter_bytes()])
                stream = await client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True)
                async_text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
                sync_text = await trio.to_thread.run_sync(ask_sync, gate.base_url)
    assert header == "recording"
    assert wire.endswith(b"data: [DONE]\n\n: inference-gate: not recorded: a credential is in the exchange\n\n")
    assert async_text.startswith(f"Echo: Stream my key {secret}") and sync_text == async_text
    assert cache_bytes(settings.cache_dir) == []
