"""Paced replay through the official `openai` SDK: a recorded answer arrives over the time it took live.

The cassettes are recorded through the gate with a monotonic clock that the test drives, so their timing is
exact: a stream's first event after FIRST_EVENT_S and its last after LAST_EVENT_S, a whole body after
LAST_EVENT_S. The bounds are the issue's: a paced replay takes 0.8 to 1.25 times the recorded duration, long
enough that loopback and thread start-up cannot move it out of them. These check behaviour, not speed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

import openai
import orjson
import pytest
import trio

from inference_gate import Mode, Settings
from tests.e2e.conftest import running_gate
from tests.servers import running_upstream
from tools.fake_upstream import FakeUpstream

CLIENT_KEY = "sk-client-key-for-tests-9876543210"
DEADLINE_S = 20
FIRST_EVENT_S = 0.2
LAST_EVENT_S = 1.0
MESSAGES = [{"role": "user", "content": "Count slowly to ten"}]


def timed_clock(*readings: float) -> Iterator[float]:
    """The readings a recording takes in order: request sent, first event (a stream only), end of the body."""
    return iter(readings)


async def record(settings: Settings, *, stream: bool) -> None:
    readings = (0.0, FIRST_EVENT_S, LAST_EVENT_S) if stream else (0.0, LAST_EVENT_S)
    upstream = FakeUpstream()
    async with (
        running_upstream(upstream),
        running_gate(
            replace(settings, upstream=upstream.url), Mode.RECORD, monotonic=timed_clock(*readings).__next__
        ) as gate,
    ):
        await ask_async(gate.base_url, stream=stream)


async def ask_async(base_url: str, *, stream: bool) -> tuple[str, list[float], float]:
    """The outcome header, when each streamed chunk arrived, and when the answer was complete, in seconds from
    the request."""
    async with openai.AsyncOpenAI(base_url=base_url, api_key=CLIENT_KEY, max_retries=0) as client:
        started = time.monotonic()
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=stream
        )
        parsed = raw.parse()
        arrivals = [time.monotonic() - started async for _ in parsed] if stream else []
        return raw.headers["x-inference-gate"], arrivals, time.monotonic() - started


def ask_sync(base_url: str, *, stream: bool) -> tuple[str, list[float], float]:
    with openai.OpenAI(base_url=base_url, api_key=CLIENT_KEY, max_retries=0) as client:
        started = time.monotonic()
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES, stream=stream)
        parsed = raw.parse()
        arrivals = [time.monotonic() - started for _ in parsed] if stream else []
        return raw.headers["x-inference-gate"], arrivals, time.monotonic() - started


async def replay(settings: Settings, client_kind: str, *, stream: bool) -> tuple[str, list[float], float]:
    async with running_gate(settings, Mode.REPLAY) as gate:
        if client_kind == "sync":
            return await trio.to_thread.run_sync(lambda: ask_sync(gate.base_url, stream=stream))
        return await ask_async(gate.base_url, stream=stream)


@pytest.mark.parametrize("client_kind", ["sync", "async"])
async def test_a_paced_stream_takes_its_recorded_time_with_its_chunks_spread_out(record_settings, client_kind):
    with trio.fail_after(DEADLINE_S):
        await record(record_settings, stream=True)
        outcome, arrivals, elapsed = await replay(
            replace(record_settings, replay_speed=1.0), client_kind, stream=True
        )
    assert outcome == "hit"
    assert 0.8 * LAST_EVENT_S <= elapsed <= 1.25 * LAST_EVENT_S
    assert len(arrivals) > 2
    assert arrivals[0] < 0.5 * LAST_EVENT_S  # the first chunk comes well before the last
    assert arrivals[-1] - arrivals[0] >= 0.5 * (LAST_EVENT_S - FIRST_EVENT_S)


@pytest.mark.parametrize("client_kind", ["sync", "async"])
async def test_a_paced_whole_body_waits_its_recorded_total(record_settings, client_kind):
    with trio.fail_after(DEADLINE_S):
        await record(record_settings, stream=False)
        outcome, _, elapsed = await replay(replace(record_settings, replay_speed=1.0), client_kind, stream=False)
    assert outcome == "hit"
    assert 0.8 * LAST_EVENT_S <= elapsed <= 1.25 * LAST_EVENT_S


async def test_at_speed_2_a_stream_takes_half_its_recorded_time(record_settings):
    with trio.fail_after(DEADLINE_S):
        await record(record_settings, stream=True)
        outcome, _, elapsed = await replay(replace(record_settings, replay_speed=2.0), "async", stream=True)
    assert outcome == "hit"
    assert 0.8 * LAST_EVENT_S / 2 <= elapsed <= 1.25 * LAST_EVENT_S / 2


async def test_without_a_speed_the_same_cassette_replays_at_once(record_settings):
    with trio.fail_after(DEADLINE_S):
        await record(record_settings, stream=True)
        outcome, _, elapsed = await replay(record_settings, "async", stream=True)
    assert outcome == "hit"
    assert elapsed < 0.5 * LAST_EVENT_S


async def test_a_stream_recorded_live_replays_at_its_measured_pace(record_settings):
    """The whole loop with real clocks: the upstream sends its events over time, the gate measures them, and a
    replay at speed 1 takes what the recording measured."""
    upstream = FakeUpstream()
    upstream.event_delay_s = 0.05
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url)
            async with running_gate(settings, Mode.RECORD, monotonic=time.monotonic) as gate:
                await ask_async(gate.base_url, stream=True)
        [path] = record_settings.cache_dir.rglob("*.json")
        timing = orjson.loads(path.read_bytes())["response"]["timing"]
        _, _, elapsed = await replay(replace(record_settings, replay_speed=1.0), "async", stream=True)
    recorded_s = timing["last_event_ms"] / 1000
    assert 0 < timing["first_event_ms"] < timing["last_event_ms"]
    assert 0.8 * recorded_s <= elapsed <= 1.25 * recorded_s
