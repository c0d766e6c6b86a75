"""How the gate talks to the upstream while recording: TLS, path prefixes, auth, encodings and upstream errors."""

from __future__ import annotations

from dataclasses import replace

import openai
import orjson
import pytest
import trio
import trustme

from inference_gate import Mode, Settings
from tests.e2e.conftest import running_gate
from tests.servers import running_upstream
from tools.fake_upstream import FakeUpstream, tls_server_context

CLIENT_KEY = "sk-client-key-for-tests-9876543210"
MESSAGES = [{"role": "user", "content": "Hello there"}]


def client(base_url: str, **options) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base_url, api_key=CLIENT_KEY, max_retries=0, **options)


async def chat(base_url: str, model: str = "gpt-4o-mini", **options):
    async with client(base_url, **options) as sdk:
        return await sdk.chat.completions.create(model=model, messages=MESSAGES)


def cassettes(settings: Settings) -> list:
    return sorted(settings.cache_dir.rglob("*.json")) if settings.cache_dir.exists() else []


@pytest.fixture
def certificate_authority(tmp_path, monkeypatch) -> trustme.CA:
    """A test CA that the gate trusts through SSL_CERT_FILE, as a company proxy's CA would be added."""
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    return ca


async def test_records_over_tls_verified_with_ssl_cert_file(record_settings, certificate_authority):
    upstream = FakeUpstream()
    with trio.fail_after(20):
        async with running_upstream(upstream, ssl_context=tls_server_context(certificate_authority)):
            assert upstream.url.startswith("https://")
            settings = replace(record_settings, upstream=upstream.url)
            async with running_gate(settings, Mode.RECORD) as gate:
                recorded = await chat(gate.base_url)
        async with running_gate(settings, Mode.REPLAY) as gate:
            replayed = await chat(gate.base_url)
    assert recorded.choices[0].message.content == replayed.choices[0].message.content
    assert len(cassettes(settings)) == 1


async def test_an_untrusted_certificate_is_a_502_that_says_so(record_settings, tmp_path):
    untrusted = trustme.CA()
    upstream = FakeUpstream()
    with trio.fail_after(20):
        async with running_upstream(upstream, ssl_context=tls_server_context(untrusted)):
            settings = replace(record_settings, upstream=upstream.url)
            async with running_gate(settings, Mode.RECORD) as gate:
                with pytest.raises(openai.APIStatusError) as raised:
                    await chat(gate.base_url)
    assert raised.value.status_code == 502
    assert raised.value.body["type"] == "inference_gate_error"
    assert "certificate" in raised.value.body["message"].lower()
    assert "verif" in raised.value.body["message"].lower()
    assert upstream.requests == []  # never downgraded to plain HTTP
    assert cassettes(settings) == []


async def test_an_upstream_path_prefix_is_kept(record_settings):
    upstream = FakeUpstream()
    with trio.fail_after(20):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url + "/openai")
            async with running_gate(settings, Mode.RECORD) as gate:
                await chat(gate.base_url)
    assert [r.target for r in upstream.requests] == ["/openai/v1/chat/completions"]


async def test_the_gate_key_replaces_the_client_key_and_headers_pass_through(record_settings):
    upstream = FakeUpstream(expected_api_key=record_settings.api_key)
    with trio.fail_after(20):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url)
            async with running_gate(settings, Mode.RECORD) as gate:
                await chat(gate.base_url, organization="org-123", project="proj-456",
                           default_headers={"OpenAI-Beta": "assistants=v2"})
    forwarded = upstream.requests[0].headers
    assert forwarded["authorization"] == f"Bearer {record_settings.api_key}"
    assert forwarded["openai-organization"] == "org-123"
    assert forwarded["openai-project"] == "proj-456"
    assert forwarded["openai-beta"] == "assistants=v2"
    assert forwarded["accept-encoding"] == "identity"
    assert forwarded["host"] == upstream.url.removeprefix("http://")
    stored = orjson.loads(cassettes(settings)[0].read_bytes())
    assert stored["request"]["headers"]["openai-beta"] == "assistants=v2"
    text = cassettes(settings)[0].read_text()
    assert CLIENT_KEY not in text and record_settings.api_key not in text


async def test_without_a_gate_key_the_client_key_passes_through(record_settings):
    upstream = FakeUpstream(expected_api_key=CLIENT_KEY)
    with trio.fail_after(20):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url, api_key=None)
            async with running_gate(settings, Mode.RECORD) as gate:
                await chat(gate.base_url)
    assert upstream.requests[0].headers["authorization"] == f"Bearer {CLIENT_KEY}"
    assert CLIENT_KEY not in cassettes(settings)[0].read_text()


@pytest.mark.parametrize("model", ["fault-gzip", "fault-deflate"])
async def test_compressed_upstream_bodies_are_stored_as_readable_text(record_settings, model):
    upstream = FakeUpstream()
    with trio.fail_after(20):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url)
            async with running_gate(settings, Mode.RECORD) as gate:
                live = await chat(gate.base_url, model=model)
        async with running_gate(settings, Mode.REPLAY) as gate:
            replayed = await chat(gate.base_url, model=model)
    assert live.choices[0].message.content == replayed.choices[0].message.content
    stored = orjson.loads(cassettes(settings)[0].read_bytes())
    assert stored["response"]["body"]["choices"][0]["message"]["content"].startswith("Echo: Hello there")
    assert "content-encoding" not in stored["response"]["headers"]


@pytest.mark.parametrize(
    ("model", "error", "code"),
    [
        ("fault-429", openai.RateLimitError, "rate_limit_exceeded"),
        ("fault-500", openai.InternalServerError, None),
        ("fault-401", openai.AuthenticationError, "invalid_api_key"),
        ("does-not-exist", openai.NotFoundError, "model_not_found"),
    ],
)
async def test_upstream_errors_pass_through_unchanged_and_are_not_recorded(record_settings, model, error, code):
    upstream = FakeUpstream()
    with trio.fail_after(20):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url)
            async with running_gate(settings, Mode.RECORD) as gate:
                with pytest.raises(error) as raised:
                    await chat(gate.base_url, model=model)
                with pytest.raises(error):
                    await chat(gate.base_url, model=model)
    assert upstream.calls("/v1/chat/completions") == 2  # not answered from a cache the second time
    assert raised.value.body["code"] == code
    assert raised.value.response.headers["x-inference-gate"] == "passthrough"
    assert raised.value.response.headers["x-inference-gate-reason"] == f"upstream status {raised.value.status_code}"
    if model == "fault-429":
        assert raised.value.response.headers["retry-after"] == "1"
        assert raised.value.response.headers["retry-after-ms"] == "1000"
    assert cassettes(settings) == []


async def test_a_stream_broken_upstream_breaks_the_client_stream_and_records_nothing(record_settings):
    upstream = FakeUpstream()
    with trio.fail_after(20):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url)
            async with running_gate(settings, Mode.RECORD) as gate, client(gate.base_url) as sdk:
                received = []
                with pytest.raises(openai.APIError):  # the SDK wraps the transport's incomplete-read error
                    stream = await sdk.chat.completions.create(
                        model="fault-reset-midstream", messages=MESSAGES, stream=True
                    )
                    async for chunk in stream:
                        received.append(chunk)
                assert received  # some events arrived before the break
                with pytest.raises(openai.APIError):
                    await sdk.chat.completions.create(model="fault-reset-midbody", messages=MESSAGES)
    assert cassettes(settings) == []
