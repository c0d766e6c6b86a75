"""Hostile and broken clients against a whole running gate, while a healthy SDK client keeps being served.

The server's own tests check each limit with a toy handler. These check the same limits through the gate, in
both modes: that every refusal is an OpenAI-shaped error an SDK can read (or a closed connection), that
nothing reaches the upstream or the cassette directory, that no traceback is logged, and above all that one
client's bad bytes never stall or break anyone else's requests.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import h11
import openai
import orjson
import pytest
import trio

from inference_gate import Mode, Settings
from inference_gate.errors import GATE_ERROR_TYPE
from tests.e2e.conftest import RunningGate, running_gate, running_upstream
from tools.fake_upstream import FakeUpstream

CLIENT_KEY = "sk-client-key-for-tests-9876543210"
TEST_TIMEOUT_S = 15.0
MAX_BODY_BYTES = 1024 * 1024
REQUEST_TIMEOUT_S = 0.5
# A chat call that was recorded before the bad input starts, and a streamed one, asked in turn.
HEALTHY_CALLS = (("Is the gate still up?", False), ("Is the gate still streaming?", True))
CHAT_TARGET = b"/v1/chat/completions"

BOTH_MODES = pytest.mark.parametrize("mode", [Mode.RECORD, Mode.REPLAY], ids=["record", "replay"])


class HealthyClient:
    """The official SDK asking `HEALTHY_CALLS` over and over; a single failed request fails the test."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.answered = 0
        self._answer = trio.Event()

    async def run(self) -> None:
        async with openai.AsyncOpenAI(base_url=self.base_url, api_key=CLIENT_KEY, max_retries=0) as sdk:
            while True:
                for prompt, stream in HEALTHY_CALLS:
                    assert (await healthy_call(sdk, prompt, stream)).startswith(f"Echo: {prompt}")
                    self.answered += 1
                    self._answer.set()
                    self._answer = trio.Event()

    async def wait_for_answers(self, count: int) -> None:
        target = self.answered + count
        while self.answered < target:
            await self._answer.wait()


async def healthy_call(sdk: openai.AsyncOpenAI, prompt: str, stream: bool) -> str:
    messages = [{"role": "user", "content": prompt}]
    if not stream:
        completion = await sdk.chat.completions.create(model="gpt-4o-mini", messages=messages)
        return completion.choices[0].message.content
    chunks = await sdk.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True)
    return "".join([chunk.choices[0].delta.content or "" async for chunk in chunks if chunk.choices])


@dataclass
class GateUnderTest:
    gate: RunningGate
    upstream: FakeUpstream
    healthy: HealthyClient
    cache_dir: Path

    def cassettes(self) -> set[Path]:
        return set(self.cache_dir.rglob("*.json"))


@asynccontextmanager
async def gate_with_healthy_client(settings: Settings, mode: Mode) -> AsyncIterator[GateUnderTest]:
    """A gate with small limits and a healthy client running against it for the whole block.

    In replay mode the healthy calls are recorded first by a record-mode gate. On entry the client has been
    answered a full round already (so its cassettes exist); on exit it must be answered two more times.
    """
    upstream = FakeUpstream()
    async with running_upstream(upstream):
        settings = replace(
            settings, upstream=upstream.url, max_body_bytes=MAX_BODY_BYTES, request_timeout_s=REQUEST_TIMEOUT_S
        )
        if mode is Mode.REPLAY:
            async with running_gate(settings, Mode.RECORD) as recorder:
                await HealthyClient(recorder.base_url).run_one_round()
        async with running_gate(settings, mode) as gate, trio.open_nursery() as nursery:
            healthy = HealthyClient(gate.base_url)
            nursery.start_soon(healthy.run)
            await healthy.wait_for_answers(len(HEALTHY_CALLS))
            yield GateUnderTest(gate, upstream, healthy, settings.cache_dir)
            await healthy.wait_for_answers(2)
            nursery.cancel_scope.cancel()
