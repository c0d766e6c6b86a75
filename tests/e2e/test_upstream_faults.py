"""Upstream faults: each is answered promptly with an OpenAI-shaped error, or breaks the client's body visibly;
nothing is recorded, and the same gate goes on serving.

Statuses the upstream itself sends (429, 5xx) pass through unchanged and are tested in test_proxying.py, as is
an untrusted TLS certificate.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import openai
import pytest
import trio

from inference_gate import Mode, Settings
from tests.e2e.conftest import running_gate
from tests.servers import running_upstream
from tools.fake_upstream import FakeUpstream

CLIENT_KEY = "sk-client-key-for-tests-9876543210"
GOOD_PROMPT = "Hello there"
FAULT_BOUND_S = 3.0  # a fault must be reported well within this; the SDK's own timeout is longer
SDK_TIMEOUT_S = 10.0
DEADLINE_S = 20
BACKLOG_FILL_TIMEOUT_S = 0.2
MAX_BACKLOG_FILLERS = 16


def sdk(base_url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base_url, api_key=CLIENT_KEY, max_retries=0, timeout=SDK_TIMEOUT_S)


async def chat(base_url: str, model: str = "gpt-4o-mini"):
    """A non-streamed chat completion through the gate, with the gate's outcome header."""
    async with sdk(base_url) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": GOOD_PROMPT}]
        )
    return raw.headers["x-inference-gate"], raw.parse()


async def gate_error(base_url: str, model: str = "gpt-4o-mini") -> openai.APIStatusError:
    """The error the gate answers with, which must come within FAULT_BOUND_S."""
    with trio.fail_after(FAULT_BOUND_S), pytest.raises(openai.APIStatusError) as raised:
        await chat(base_url, model)
    return raised.value


def assert_gate_error(error: openai.APIStatusError, status: int, code: str) -> None:
    assert error.status_code == status
    assert error.body["type"] == "inference_gate_error"
    assert error.body["code"] == code
    assert error.body["message"]
    assert error.response.headers["x-inference-gate"] == "error"


def stored_files(cache_dir: Path) -> list[str]:
    """Every file under the cache, temporary ones included."""
    if not cache_dir.exists():
        return []
    return sorted(path.relative_to(cache_dir).as_posix() for path in cache_dir.rglob("*") if path.is_file())


@pytest.fixture
async def good_cassette(record_settings: Settings) -> list[str]:
    """The cache holds one recorded answer, so that a gate whose upstream is unusable can still serve a hit."""
    upstream = FakeUpstream()
    with trio.fail_after(DEADLINE_S):
        async with (
            running_upstream(upstream),
            running_gate(replace(record_settings, upstream=upstream.url), Mode.RECORD) as gate,
        ):
            await chat(gate.base_url)
    return stored_files(record_settings.cache_dir)


@pytest.fixture
def closed_port() -> int:
    """A loopback port that nothing listens on: connecting is refused."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        return unused.getsockname()[1]


@pytest.fixture
def full_backlog_port() -> Iterator[int]:
    """A listener that never accepts, with its backlog filled: a new connection's SYN goes unanswered."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        fillers: list[socket.socket] = []
        try:
            for _ in range(MAX_BACKLOG_FILLERS):
                filler = socket.socket()
                fillers.append(filler)
                try:
                    filler.settimeout(BACKLOG_FILL_TIMEOUT_S)
                    filler.connect(address)
                except TimeoutError:
                    break  # this connection hung: the backlog is full
            else:
                pytest.skip("this system completes loopback connections beyond a listener's backlog")
            yield address[1]
        finally:
            for filler in fillers:
                filler.close()


async def assert_unusable_upstream_fails_promptly(settings: Settings, status: int, code: str, good: list[str]):
    """A miss fails with `status` and `code` within the bound, records nothing, and a hit is still served."""
    with trio.fail_after(DEADLINE_S):
        async with running_gate(settings, Mode.RECORD) as gate:
            error = await gate_error(gate.base_url, model="gpt-4o")
            outcome, completion = await chat(gate.base_url)
    assert_gate_error(error, status, code)
    assert outcome == "hit"
    assert completion.choices[0].message.content.startswith(f"Echo: {GOOD_PROMPT}")
    assert stored_files(settings.cache_dir) == good


async def test_connection_refused_is_502_upstream_unreachable(record_settings, good_cassette, closed_port):
    settings = replace(record_settings, upstream=f"http://127.0.0.1:{closed_port}")
    await assert_unusable_upstream_fails_promptly(settings, 502, "upstream_unreachable", good_cassette)


async def test_an_unresolvable_host_is_502_upstream_dns_error(record_settings, good_cassette, offline_resolver):
    settings = replace(record_settings, upstream="http://nonexistent.invalid")
    await assert_unusable_upstream_fails_promptly(settings, 502, "upstream_dns_error", good_cassette)


async def test_tls_to_a_plain_http_server_is_502_upstream_tls_error(record_settings, good_cassette):
    plain = FakeUpstream()
    async with running_upstream(plain):
        settings = replace(record_settings, upstream=plain.url.replace("http://", "https://"))
        await assert_unusable_upstream_fails_promptly(settings, 502, "upstream_tls_error", good_cassette)
    assert plain.requests == []  # it never got a request, in plain text or otherwise


async def test_a_connect_timeout_is_504_upstream_timeout(record_settings, good_cassette, full_backlog_port):
    settings = replace(
        record_settings, upstream=f"http://127.0.0.1:{full_backlog_port}", upstream_connect_timeout_s=0.3
    )
    await assert_unusable_upstream_fails_promptly(settings, 504, "upstream_timeout", good_cassette)


async def test_a_read_timeout_is_504_upstream_timeout_and_the_next_request_is_served(record_settings):
    upstream = FakeUpstream()
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url, upstream_read_timeout_s=0.3)
            async with running_gate(settings, Mode.RECORD) as gate:
                error = await gate_error(gate.base_url, model="fault-slow")  # it would answer after 30 s
                outcome, completion = await chat(gate.base_url)
    assert_gate_error(error, 504, "upstream_timeout")
    assert "0.3 s" in error.body["message"]
    assert outcome == "recorded"
    assert completion.choices[0].message.content.startswith(f"Echo: {GOOD_PROMPT}")
    [cassette] = stored_files(settings.cache_dir)
    assert cassette.startswith("chat.completions/hello-there.")


def assert_broken_transfer(error: openai.APIConnectionError) -> None:
    """The client's HTTP layer saw the body stop short, which a cleanly ended (truncated) body would not show."""
    assert "incomplete chunked read" in str(error.__cause__)


async def test_a_body_reset_midway_reaches_the_client_as_an_incomplete_body(record_settings):
    upstream = FakeUpstream()
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url)
            async with running_gate(settings, Mode.RECORD) as gate:
                with trio.fail_after(FAULT_BOUND_S), pytest.raises(openai.APIConnectionError) as raised:
                    await chat(gate.base_url, model="fault-reset-midbody")
                outcome, _ = await chat(gate.base_url)
    assert_broken_transfer(raised.value)
    assert outcome == "recorded"
    [cassette] = stored_files(settings.cache_dir)
    assert cassette.startswith("chat.completions/hello-there.")


async def test_a_stream_reset_midway_reaches_the_client_as_a_broken_stream(record_settings):
    upstream = FakeUpstream()
    received = []
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url)
            async with running_gate(settings, Mode.RECORD) as gate, sdk(gate.base_url) as client:
                with trio.fail_after(FAULT_BOUND_S), pytest.raises(openai.APIConnectionError) as raised:
                    stream = await client.chat.completions.create(
                        model="fault-reset-midstream",
                        messages=[{"role": "user", "content": GOOD_PROMPT}],
                        stream=True,
                    )
                    async for chunk in stream:
                        received.append(chunk)
                outcome, _ = await chat(gate.base_url)
    assert_broken_transfer(raised.value)
    assert received  # the events before the reset did arrive...
    assert all(chunk.choices[0].finish_reason is None for chunk in received)  # ...but not the end
    assert outcome == "recorded"
    [cassette] = stored_files(settings.cache_dir)
    assert cassette.startswith("chat.completions/hello-there.")
