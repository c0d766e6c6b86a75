"""Tests for the gate's wiring that no SDK test can see: blocking work stays off the event loop, and an injected
fault is reported as the error it is."""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
import trio
import trio.testing

from inference_gate import Mode, Settings
from inference_gate.core.cassette import RecordedResponse
from inference_gate.core.keys import canonicalize
from inference_gate.core.outcome import Answer, Outcome
from inference_gate.core.sse import SSEEvent
from inference_gate.proxy.faults import FaultKind, FaultPlan
from inference_gate.proxy.gate import cli_record_command
from inference_gate.store import nearest_index
from inference_gate.store.cassette_store import CassetteStore
from tests.cassettes import record
from tests.e2e.conftest import running_gate
from tests.plain_http import post_json

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
    real_read_folder = nearest_index._read_folder

    def held_read_folder(store, folder, mtime_ns, previous, rules):
        building.set()
        release.wait(DEADLINE_S)
        return real_read_folder(store, folder, mtime_ns, previous, rules)

    monkeypatch.setattr(nearest_index, "_read_folder", held_read_folder)
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


async def test_an_injected_fault_is_an_error_that_names_its_cassette_and_the_fault(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="inference_gate")
    file = record(CassetteStore(tmp_path), chat("hi"), answer("hi"), path=CHAT, recorded_at="2026-01-01T00:00:00Z")
    name = file.relative_to(tmp_path).as_posix()
    answers: list[Answer] = []
    settings = Settings(cache_dir=tmp_path, fault_rate=1.0)
    with trio.fail_after(DEADLINE_S):
        async with running_gate(settings, Mode.REPLAY, on_answer=answers.append) as running:
            url = f"http://127.0.0.1:{running.port}"
            # The first is answered just after its cassette is loaded, the second from memory.
            responses = [await post_json(url, CHAT, chat("hi")) for _ in range(2)]
    for response, reported in zip(responses, answers, strict=True):
        assert response.status in (429, 500)
        assert response.headers["x-inference-gate"] == "error"
        assert response.headers["x-inference-gate-reason"] == reported.reason
        assert reported.reason in ("injected_fault: rate_limited", "injected_fault: server_error")
        assert (reported.outcome, reported.status, reported.cassette) == (Outcome.ERROR, response.status, name)
    logged = [record.getMessage() for record in caplog.records if CHAT in record.getMessage()]
    assert len(logged) == len(answers)
    for line, reported in zip(logged, answers, strict=True):
        pattern = rf"POST {CHAT} error {reported.status} [\d.]+ms {re.escape(name)} {re.escape(reported.reason)}"
        assert re.fullmatch(pattern, line), line


async def test_counting_identical_requests_afresh_repeats_the_same_faults(tmp_path: Path) -> None:
    record(CassetteStore(tmp_path), chat("hi"), answer("hi"), path=CHAT, recorded_at="2026-01-01T00:00:00Z")
    settings = Settings(cache_dir=tmp_path, fault_rate=0.5, fault_seed=3)
    with trio.fail_after(DEADLINE_S):
        async with running_gate(settings, Mode.REPLAY) as running:
            url = f"http://127.0.0.1:{running.port}"
            first = [(await post_json(url, CHAT, chat("hi"))).status for _ in range(10)]
            running.gate.reset_take_counters()
            again = [(await post_json(url, CHAT, chat("hi"))).status for _ in range(10)]
        async with running_gate(replace(settings, fault_rate=0.0), Mode.REPLAY) as running:
            url = f"http://127.0.0.1:{running.port}"
            unfaulted = [(await post_json(url, CHAT, chat("hi"))).status for _ in range(10)]
    assert first == again
    assert 200 in first and {429, 500} & set(first)
    assert unfaulted == [200] * 10


async def test_a_cut_stream_sends_its_head_and_some_events_then_closes_without_ending_the_body(tmp_path: Path) -> None:
    events = [SSEEvent(data=f"event {number}") for number in range(8)]
    streamed = RecordedResponse(status=200, headers={"content-type": "text/event-stream"}, events=events)
    record(CassetteStore(tmp_path), chat("hi"), streamed, path=CHAT, recorded_at="2026-01-01T00:00:00Z")
    key = canonicalize("POST", CHAT, orjson.dumps(chat("hi"))).key
    plans = (FaultPlan(1.0, seed) for seed in range(1000))
    seed = next(plan.seed for plan in plans if plan.fault_for(key, 0, streamed=True) is FaultKind.STREAM_CUT)
    with trio.fail_after(DEADLINE_S):
        async with running_gate(Settings(cache_dir=tmp_path, fault_rate=1.0, fault_seed=seed), Mode.REPLAY) as running:
            received = await post_on_trio(running.port, chat("hi"))
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and b"Transfer-Encoding: chunked" in head
    assert b"x-inference-gate: error" in head and b"x-inference-gate-reason: injected_fault: stream_cut" in head
    assert b"data: event 0\n\n" in body and b"data: event 7" not in body
    assert not body.endswith(b"0\r\n\r\n")  # no last chunk: the client can tell the body stopped short


@pytest.mark.parametrize(
    ("upstream", "suffix"),
    [("https://api.openai.com", ""), ("https://api.anthropic.com", " --upstream https://api.anthropic.com")],
)
def test_the_cli_record_command_keeps_a_non_default_upstream(tmp_path, upstream, suffix):
    settings = Settings(cache_dir=tmp_path, upstream=upstream)
    assert cli_record_command(settings) == f"inference-gate start --cache-dir {tmp_path.resolve()}{suffix}"
