"""Tests for what a recording keeps that no SDK test can see: how long the upstream took, by the gate's clock."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import trio

from inference_gate import Mode, Settings
from inference_gate.store.cassette_store import CassetteStore
from tests.e2e.conftest import running_gate
from tests.plain_http import post_json
from tests.servers import running_upstream
from tools.fake_upstream import FakeUpstream

CHAT = "/v1/chat/completions"
DEADLINE_S = 10
CHAT_REQUEST = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "how long?"}]}


@pytest.mark.parametrize(
    ("stream", "readings", "timing"),
    [
        (True, (10.0, 10.412, 12.21), {"first_event_ms": 412, "last_event_ms": 2210}),
        (False, (10.0, 10.83), {"total_ms": 830}),
    ],
)
async def test_a_recording_keeps_how_long_the_upstream_took_by_the_gates_monotonic_clock(
    tmp_path: Path, stream: bool, readings: tuple[float, ...], timing: dict
) -> None:
    """The clock is read when the request goes, at a stream's first event, and when the body ends; no more."""
    clock = iter(readings)
    upstream = FakeUpstream()
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            settings = Settings(cache_dir=tmp_path, upstream=upstream.url, api_key="sk-gate-key-for-tests-0123456789")
            async with running_gate(settings, Mode.RECORD, monotonic=clock.__next__) as running:
                url = f"http://127.0.0.1:{running.port}"
                assert (await post_json(url, CHAT, {**CHAT_REQUEST, "stream": stream})).status == 200
    [path] = CassetteStore(tmp_path).cassette_paths()
    assert orjson.loads(path.read_bytes())["response"]["timing"] == timing
    assert next(clock, None) is None
