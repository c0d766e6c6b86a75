"""Fault injection through the official SDKs: against a replay gate with a recorded cassette, an injected fault is
the SDK's own error, the SDK's retries get past it, and a seed makes the sequence of faults repeatable."""

from __future__ import annotations

import functools
import logging
from dataclasses import replace
from typing import Any

import anthropic
import httpx2
import openai
import pytest
import trio

from inference_gate import Mode, Settings
from inference_gate.core.dialects import Dialect
from inference_gate.core.outcome import Answer, Outcome
from inference_gate.proxy.faults import FaultKind, FaultPlan
from tests.e2e.conftest import running_gate
from tests.e2e.dialects import cassettes, root_url, routed, sdk_exercise
from tests.servers import running_upstream
from tools.fake_anthropic import FakeAnthropic
from tools.fake_upstream import FakeUpstream

CLIENT_KEY = "sk-client-key-for-tests-9876543210"
ANTHROPIC_KEY = "sk-ant-placeholder-for-tests-0123456789"
DEADLINE_S = 30
MESSAGES = [{"role": "user", "content": "Say hi, slowly"}]
SEED_SEARCH = range(5000)  # enough seeds that each sequence these tests ask for is all but certain to be among them

SDK_ERROR = {
    FaultKind.RATE_LIMITED: openai.RateLimitError,
    FaultKind.SERVER_ERROR: openai.InternalServerError,
    # A cut stream: openai 3.0 lets the HTTP client's RemoteProtocolError through, later releases wrap it in
    # APIConnectionError. Either is the SDK's fair reading of the same cut, and pyproject's lower bound is tested.
    FaultKind.STREAM_CUT: (openai.APIConnectionError, httpx2.RemoteProtocolError),
}


def sync_chat(base_url: str, stream: bool, max_retries: int = 0) -> Any:
    with openai.OpenAI(base_url=base_url, api_key=CLIENT_KEY, max_retries=max_retries) as client:
        if stream:
            chunks = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
            return [chunk.model_dump() for chunk in chunks]
        return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).model_dump()


async def async_chat(base_url: str, stream: bool, max_retries: int = 0) -> Any:
    async with openai.AsyncOpenAI(base_url=base_url, api_key=CLIENT_KEY, max_retries=max_retries) as client:
        if stream:
            chunks = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
            return [chunk.model_dump() async for chunk in chunks]
        return (await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)).model_dump()


async def record_chat(settings: Settings, stream: bool) -> tuple[Any, str]:
    """Record the chat through a gate in record mode; what the SDK saw, and the new cassette's request key."""
    before = {cassette["key"] for cassette in cassettes(settings.cache_dir)} if settings.cache_dir.exists() else set()
    upstream = FakeUpstream()
    async with running_upstream(upstream), running_gate(replace(settings, upstream=upstream.url), Mode.RECORD) as gate:
        seen = await async_chat(gate.base_url, stream)
    [key] = {cassette["key"] for cassette in cassettes(settings.cache_dir)} - before
    return seen, key


def seed_for(key: str, rate: float, wanted: list[FaultKind | None], *, streamed: bool) -> int:
    """A seed whose first decisions for the request with `key` are `wanted`, so that a test knows what to expect."""
    for seed in SEED_SEARCH:
        plan = FaultPlan(rate, seed)
        if [plan.fault_for(key, occurrence, streamed=streamed) for occurrence in range(len(wanted))] == wanted:
            return seed
    raise AssertionError(f"no seed in {SEED_SEARCH} gives {wanted}")


@pytest.mark.parametrize("client_kind", ["sync", "async"])
@pytest.mark.parametrize(
    ("kind", "stream"),
    [
        (FaultKind.RATE_LIMITED, False),
        (FaultKind.RATE_LIMITED, True),
        (FaultKind.SERVER_ERROR, False),
        (FaultKind.SERVER_ERROR, True),
        (FaultKind.STREAM_CUT, True),
    ],
)
async def test_without_retries_a_fault_is_the_sdks_own_error(
    record_settings: Settings, kind: FaultKind, stream: bool, client_kind: str, caplog
):
    caplog.set_level(logging.DEBUG, logger="inference_gate")
    answers: list[Answer] = []
    with trio.fail_after(DEADLINE_S):
        _, key = await record_chat(record_settings, stream)
        seed = seed_for(key, 1.0, [kind], streamed=stream)
        settings = replace(record_settings, fault_rate=1.0, fault_seed=seed)
        async with running_gate(settings, Mode.REPLAY, on_answer=answers.append) as gate:
            with pytest.raises(SDK_ERROR[kind]) as raised:
                await sdk_exercise(client_kind, sync_chat, async_chat, stream)(gate.base_url)
    [reported] = answers
    assert (reported.outcome, reported.reason) == (Outcome.ERROR, f"injected_fault: {kind}")
    if kind is not FaultKind.STREAM_CUT:
        assert raised.value.response.headers["x-inference-gate"] == "error"
        assert raised.value.body["type"] == "inference_gate_injected_fault"
    if kind is FaultKind.RATE_LIMITED:
        assert raised.value.response.headers["retry-after-ms"] == "100"
    # A cut stream is expected: the gate says so in its log line, with no warning and no traceback.
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING or record.exc_info]


@pytest.mark.parametrize("client_kind", ["sync", "async"])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_the_sdks_own_retries_get_past_a_fault(record_settings: Settings, stream: bool, client_kind: str):
    answers: list[Answer] = []
    with trio.fail_after(DEADLINE_S):
        recorded, key = await record_chat(record_settings, stream)
        # Two rate limits (their retry-after-ms keeps the SDK's waits short), then an answer: each retry is the next
        # identical request, with a decision of its own.
        wanted = [FaultKind.RATE_LIMITED, FaultKind.RATE_LIMITED, None]
        seed = seed_for(key, 0.5, wanted, streamed=stream)
        settings = replace(record_settings, fault_rate=0.5, fault_seed=seed)
        async with running_gate(settings, Mode.REPLAY, on_answer=answers.append) as gate:
            retrying_sync = functools.partial(sync_chat, max_retries=2)
            retrying_async = functools.partial(async_chat, max_retries=2)
            replayed = await sdk_exercise(client_kind, retrying_sync, retrying_async, stream)(gate.base_url)
    assert replayed == recorded
    assert [(answer.outcome, answer.status) for answer in answers] == [
        (Outcome.ERROR, 429),
        (Outcome.ERROR, 429),
        (Outcome.HIT, 200),
    ]


async def outcomes_of_a_run(settings: Settings, count: int) -> list[str]:
    """What the SDK made of `count` requests, alternately whole and streamed, each tried once, in a fresh gate."""
    outcomes = []
    async with (
        running_gate(settings, Mode.REPLAY) as gate,
        openai.AsyncOpenAI(base_url=gate.base_url, api_key=CLIENT_KEY, max_retries=0) as client,
    ):
        for number in range(count):
            try:
                if number % 2:
                    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
                    [chunk async for chunk in stream]
                else:
                    await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            except SDK_ERROR[FaultKind.STREAM_CUT]:
                outcomes.append("stream cut")
            except openai.APIError as error:
                outcomes.append(type(error).__name__)
            else:
                outcomes.append("answered")
    return outcomes


async def test_the_same_seed_fails_the_same_requests_in_a_fresh_gate_and_another_seed_differs(
    record_settings: Settings,
):
    with trio.fail_after(DEADLINE_S):
        await record_chat(record_settings, stream=False)
        await record_chat(record_settings, stream=True)
        settings = replace(record_settings, fault_rate=0.5, fault_seed=11)
        first = await outcomes_of_a_run(settings, 16)
        again = await outcomes_of_a_run(settings, 16)
        other = await outcomes_of_a_run(replace(settings, fault_seed=12), 16)
    assert first == again
    assert other != first
    assert {"answered", "RateLimitError", "InternalServerError", "stream cut"} <= set(first) | set(other)


async def record_anthropic(settings: Settings, request: dict[str, Any]) -> tuple[Any, str]:
    """Record one Anthropic message, whole; what the SDK saw, and the cassette's request key."""
    upstream = FakeAnthropic(expected_api_key=settings.api_key)
    async with (
        running_upstream(upstream),
        running_gate(routed(settings, Dialect.ANTHROPIC, upstream.url), Mode.RECORD) as gate,
        anthropic.AsyncAnthropic(base_url=root_url(gate.port), api_key=ANTHROPIC_KEY, max_retries=0) as client,
    ):
        recorded = (await client.messages.create(**request)).model_dump()
    [cassette] = cassettes(settings.cache_dir)
    return recorded, cassette["key"]


async def test_an_anthropic_request_fails_in_anthropics_error_shape_and_its_sdk_retries(record_settings: Settings):
    request = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": MESSAGES}
    with trio.fail_after(DEADLINE_S):
        recorded, key = await record_anthropic(record_settings, request)
        seed = seed_for(key, 0.5, [FaultKind.RATE_LIMITED, None], streamed=False)
        settings = replace(record_settings, fault_rate=0.5, fault_seed=seed)
        async with running_gate(settings, Mode.REPLAY) as gate:
            url = root_url(gate.port)
            async with anthropic.AsyncAnthropic(base_url=url, api_key=ANTHROPIC_KEY, max_retries=0) as client:
                with pytest.raises(anthropic.RateLimitError) as raised:
                    await client.messages.create(**request)
            gate.gate.reset_take_counters()  # the same two decisions again: a rate limit, then the answer
            async with anthropic.AsyncAnthropic(base_url=url, api_key=ANTHROPIC_KEY, max_retries=1) as client:
                replayed = (await client.messages.create(**request)).model_dump()
    assert raised.value.body["type"] == "error"
    assert raised.value.body["error"]["type"] == "inference_gate_injected_fault"
    assert raised.value.response.headers["retry-after-ms"] == "100"
    assert replayed == recorded


async def test_a_cut_anthropic_stream_gives_the_first_events_then_an_error_of_the_http_client(
    record_settings: Settings,
):
    request = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": MESSAGES, "stream": True}
    with trio.fail_after(DEADLINE_S):
        upstream = FakeAnthropic(expected_api_key=record_settings.api_key)
        async with (
            running_upstream(upstream),
            running_gate(routed(record_settings, Dialect.ANTHROPIC, upstream.url), Mode.RECORD) as gate,
            anthropic.AsyncAnthropic(base_url=root_url(gate.port), api_key=ANTHROPIC_KEY, max_retries=0) as client,
        ):
            recorded = [event async for event in await client.messages.create(**request)]
        [cassette] = cassettes(record_settings.cache_dir)
        seed = seed_for(cassette["key"], 1.0, [FaultKind.STREAM_CUT], streamed=True)
        settings = replace(record_settings, fault_rate=1.0, fault_seed=seed)
        received = []
        async with (
            running_gate(settings, Mode.REPLAY) as gate,
            anthropic.AsyncAnthropic(base_url=root_url(gate.port), api_key=ANTHROPIC_KEY, max_retries=0) as client,
        ):
            # The gate cuts the body mid-stream. Older SDKs let the HTTP client's RemoteProtocolError through;
            # anthropic 2.x wraps it in APIConnectionError. Either is the SDK's fair reading of the same cut.
            with pytest.raises((httpx2.RemoteProtocolError, anthropic.APIConnectionError)) as raised:
                async for event in await client.messages.create(**request):
                    received.append(event.model_dump())
    cut = raised.value if isinstance(raised.value, httpx2.RemoteProtocolError) else raised.value.__cause__
    assert isinstance(cut, httpx2.RemoteProtocolError), raised.value
    assert 0 < len(received) < len(recorded)
    assert received == [event.model_dump() for event in recorded[: len(received)]]
