"""Fixtures for end-to-end tests: the fake OpenAI upstream and gates, all in this test's trio loop on 127.0.0.1.

The official `openai` SDK drives the gate: `AsyncOpenAI` runs in the same trio loop, and the sync `OpenAI`
client runs in a worker thread, so both talk to the gate over real sockets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trio

from inference_gate import Gate, Mode, Settings
from inference_gate.core.outcome import Answer

FIXED_TIME = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@dataclass
class RunningGate:
    gate: Gate
    port: int
    shutdown: trio.Event

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


@asynccontextmanager
async def running_gate(
    settings: Settings,
    mode: Mode,
    *,
    on_answer: Callable[[Answer], None] | None = None,
    monotonic: Callable[[], float] = lambda: 0.0,
) -> AsyncIterator[RunningGate]:
    """A gate serving on a free port for the block's duration, then shut down gracefully.

    Its clocks stand still unless a test gives it one that moves: a recording is then the same bytes every time,
    its `timing` all zeros.
    """
    gate = Gate(
        replace(settings, host="127.0.0.1", port=0),
        mode,
        clock=lambda: FIXED_TIME,
        monotonic=monotonic,
        on_answer=on_answer,
    )
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        port = await nursery.start(lambda task_status: gate.run(shutdown=shutdown, task_status=task_status))
        try:
            yield RunningGate(gate, port, shutdown)
        finally:
            shutdown.set()


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def record_settings(cache_dir: Path) -> Settings:
    return Settings(cache_dir=cache_dir, api_key="sk-gate-key-for-tests-0123456789", upstream_read_timeout_s=10.0)
