"""Tests for the gate's wiring that no SDK test can see: blocking work stays off the event loop."""

from __future__ import annotations

import threading
from pathlib import Path

import orjson
import trio

from inference_gate import Mode, Settings
from inference_gate.cassette import RecordedResponse
from inference_gate.store import CassetteStore
from tests.cassettes import record
from tests.e2e.conftest import running_gate
from tests.plain_http import post_json

CHAT = "/v1/chat/completions"
DEADLINE_S = 10


def chat(prompt: str) -> dict:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]}


def answer(text: str) -> RecordedResponse:
    body = orjson.dumps({"reply": text})
    return RecordedResponse(status=200, headers={"content-type": "application/json"}, body=body)


async def test_a_cassette_being_loaded_does_not_stall_another_connections_hit(tmp_path: Path) -> None:
    store = CassetteStore(tmp_path)
    record(store, chat("warm"), answer("warm"), path=CHAT, recorded_at="2026-01-01T00:00:00Z")
    slow_file = record(store, chat("slow"), answer("slow"), path=CHAT, recorded_at="2026-01-01T00:00:00Z")
    loading, release = threading.Event(), threading.Event()

    with trio.fail_after(DEADLINE_S):
        async with running_gate(Settings(cache_dir=tmp_path), Mode.REPLAY) as running:
            url = f"http://127.0.0.1:{running.port}"
            assert (await post_json(url, CHAT, chat("warm"))).json() == {"reply": "warm"}
            real_load = running.gate.store.load

            def held_load(path: Path, key: str):
                if path == slow_file:
                    loading.set()
                    release.wait(DEADLINE_S)
                return real_load(path, key)

            running.gate.store.load = held_load
            slow_answers: list = []

            async def ask_slow() -> None:
                slow_answers.append(await post_json(url, CHAT, chat("slow")))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(ask_slow)
                await trio.to_thread.run_sync(loading.wait, DEADLINE_S)
                warm = await post_json(url, CHAT, chat("warm"))
                assert not slow_answers
                release.set()
            assert warm.headers["x-inference-gate"] == "hit"
            assert slow_answers[0].json() == {"reply": "slow"}
