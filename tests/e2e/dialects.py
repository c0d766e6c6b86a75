"""Shared steps of the dialect end-to-end tests: record through a gate, replay with the upstream stopped, and
read what `inference-gate cache list --json` shows."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import trio
from cleo.testers.application_tester import ApplicationTester

from inference_gate import Mode, Settings
from inference_gate.cli.app import GateApplication
from inference_gate.config.settings import DIALECT_KEY_SETTINGS
from inference_gate.core.dialects import Dialect
from tests.e2e.conftest import running_gate
from tests.servers import running_upstream
from tools.fake_upstream import FakeUpstream

DEADLINE_S = 30

Exercise = Callable[[str], Awaitable[Any]]  # given the gate's root URL, what the client saw


def sdk_exercise(
    client_kind: str,
    sync_exercise: Callable[[str, bool], Any],
    async_exercise: Callable[[str, bool], Awaitable[Any]],
    stream: bool,
) -> Exercise:
    """The exercise with the SDK's sync client (in a worker thread) or its async one, streamed or not."""

    async def exercise(base_url: str) -> Any:
        if client_kind == "sync":
            return await trio.to_thread.run_sync(sync_exercise, base_url, stream)
        return await async_exercise(base_url, stream)

    return exercise


def routed(settings: Settings, dialect: Dialect, url: str) -> Settings:
    """`settings` with `dialect`'s route at `url`, and the gate's key (`settings.api_key`) as that route's key."""
    if dialect is Dialect.OPENAI:
        return replace(settings, upstream=url)
    return replace(settings, upstreams={dialect.value: url}, **{DIALECT_KEY_SETTINGS[dialect]: settings.api_key})


async def record_then_replay(
    upstream: FakeUpstream, settings: Settings, exercise: Exercise, dialect: Dialect = Dialect.OPENAI
) -> tuple[Any, Any]:
    """What the client saw while recording through `dialect`'s route, and in replay mode once the upstream has
    stopped listening."""
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            settings = routed(settings, dialect, upstream.url)
            async with running_gate(settings, Mode.RECORD) as gate:
                recorded = await exercise(root_url(gate.port))
        async with running_gate(settings, Mode.REPLAY) as gate:
            replayed = await exercise(root_url(gate.port))
    return recorded, replayed


def root_url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def cache_list(cache_dir: Path) -> list[dict[str, Any]]:
    """The rows of `inference-gate cache list --json`, as a user would see them."""
    tester = ApplicationTester(GateApplication())
    assert tester.execute(f"cache list --json --cache-dir {cache_dir}") == 0
    return orjson.loads(tester.io.fetch_output())


def cassettes(cache_dir: Path) -> list[dict[str, Any]]:
    """Every cassette under `cache_dir`, parsed, in name order, each with its relative `name`."""
    paths = sorted(cache_dir.rglob("*.json"))
    return [{"name": p.relative_to(cache_dir).as_posix(), **orjson.loads(p.read_bytes())} for p in paths]
