"""Tests for the gate's wiring that no SDK test can see: blocking work stays off the event loop."""

from __future__ import annotations

import threading
from pathlib import Path

import orjson
import pytest
import trio
import trio.testing

from inference_gate import Mode, Settings
from inference_gate.cassette import RecordedResponse
from inference_gate.nearest import index
from inference_gate.store import CassetteStore
from tests.cassettes import record
from tests.e2e.conftest import running_gate
from tests.plain_http import post_json
from tests.servers import running_upstream
from tools.fake_upstream import FakeUpstream

CHAT = "/v1/chat/completions"
DEADLINE_S = 10
# More than trio's default worker threads, which the gate's cassette loads use.
CONCURRENT_MISSES = 48
SETTLE_S = 0.1


def chat(prompt: str) -> dict:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]}


def answer(text: str) -> RecordedResponse:
    body = orjson.dumps({"reply": text})
    return RecordedResponse(status=200, headers={"content-type": "application/json"}, body=body)


async def post_on_trio(port: int, body: dict) -> bytes:
    """POST `body` over a trio socket (not a worker thread, which the gate's own threads would compete with);
    the whole response, read until the server closes."""
    payload = orjson.dumps(body)
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(
            b"POST %s HTTP/1.1\r\nhost: gate\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (CHAT.encode(), len(payload), payload)
        )
        received = []
        while data := await stream.receive_some():
            received.append(data)
    return b"".join(received)


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


async def test_hits_are_answered_while_many_first_misses_wait_for_the_nearest_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = CassetteStore(tmp_path)
    record(store, chat("recorded"), answer("recorded"), path=CHAT, recorded_at="2026-01-01T00:00:00Z")
    building, release = threading.Event(), threading.Event()
    real_read_folder = index._read_folder

    def held_read_folder(folder, mtime_ns, previous, rules):
        building.set()
        release.wait(DEADLINE_S)
        return real_read_folder(folder, mtime_ns, previous, rules)

    monkeypatch.setattr(index, "_read_folder", held_read_folder)
    with trio.fail_after(DEADLINE_S):
        async with running_gate(Settings(cache_dir=tmp_path), Mode.REPLAY) as running:
            misses: list[bytes] = []

            async def miss(number: int) -> None:
                misses.append(await post_on_trio(running.port, chat(f"never recorded {number}")))

            async with trio.open_nursery() as nursery:
                for number in range(CONCURRENT_MISSES):
                    nursery.start_soon(miss, number)
                await trio.to_thread.run_sync(building.wait, DEADLINE_S)
                await trio.testing.wait_all_tasks_blocked(cushion=SETTLE_S)
                hit = await post_on_trio(running.port, chat("recorded"))
                assert not misses
                release.set()
    assert b"x-inference-gate: hit" in hit
    assert len(misses) == CONCURRENT_MISSES
    assert all(b"x-inference-gate: miss" in response for response in misses)


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
                assert (await post_json(url, CHAT, {**chat("how long?"), "stream": stream})).status == 200
    [path] = CassetteStore(tmp_path).cassette_paths()
    assert orjson.loads(path.read_bytes())["response"]["timing"] == timing
    assert next(clock, None) is None
