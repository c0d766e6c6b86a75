"""Takes: identical requests recorded as several answers, replayed in order, the last one repeating.

Driven by the official SDK against `MintingUpstream`, whose every answer is numbered, so a reply names the upstream
call it came from.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import replace
from pathlib import Path

import openai
import orjson
import trio

from inference_gate import CassetteStore, Gate, Mode, Settings
from inference_gate.core.policy import Lookup
from tests.cassettes import read_all
from tests.e2e.conftest import running_gate
from tests.e2e.minting import NUMBERED, MintingUpstream
from tests.e2e.processes import assert_only_whole_cassettes, gate_process
from tests.servers import running_upstream

CLIENT_KEY = "sk-client-key-for-tests-9876543210"
DEADLINE_S = 30
POLL_INTERVAL_S = 0.02
PROMPT = "Roll a die"


def ask_sync(base_url: str) -> tuple[str, str]:
    """The outcome header and the answer's text, with the sync SDK (run it in a worker thread)."""
    with openai.OpenAI(base_url=base_url, api_key=CLIENT_KEY, max_retries=0, timeout=DEADLINE_S) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}]
        )
        return raw.headers["x-inference-gate"], raw.parse().choices[0].message.content


async def ask(base_url: str) -> tuple[str, str]:
    async with openai.AsyncOpenAI(base_url=base_url, api_key=CLIENT_KEY, max_retries=0, timeout=DEADLINE_S) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}]
        )
        return raw.headers["x-inference-gate"], raw.parse().choices[0].message.content


def stored_texts(cache_dir: Path) -> list[str]:
    [cassette] = read_all(CassetteStore(cache_dir))
    return [orjson.loads(take.response.body)["choices"][0]["message"]["content"] for take in cassette.takes]


async def test_three_takes_are_recorded_then_replayed_in_order_and_the_last_repeats(record_settings: Settings):
    upstream = MintingUpstream(text=NUMBERED)
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url, takes=3)
            async with running_gate(settings, Mode.RECORD) as gate:
                recorded = [await ask(gate.base_url) for _ in range(5)]
        texts = stored_texts(settings.cache_dir)
        async with running_gate(settings, Mode.REPLAY) as gate:
            replayed = [await trio.to_thread.run_sync(ask_sync, gate.base_url) for _ in range(4)]
            gate.gate.reset_take_counters()
            after_reset = await ask(gate.base_url)
        # A second run of the record gate replays the takes there are and calls upstream no more.
        async with running_upstream(upstream), running_gate(settings, Mode.RECORD) as gate:
            rerun = [await ask(gate.base_url) for _ in range(4)]

    assert len(upstream.requests) == 3
    assert [text.rsplit(" ", 2)[-2:] for text in texts] == [["(call", "1)"], ["(call", "2)"], ["(call", "3)"]]
    assert recorded == [*(("recorded", text) for text in texts), ("hit", texts[2]), ("hit", texts[2])]
    assert replayed == [("hit", texts[0]), ("hit", texts[1]), ("hit", texts[2]), ("hit", texts[2])]
    assert after_reset == ("hit", texts[0])
    assert rerun == replayed


async def test_concurrent_identical_requests_make_one_upstream_call_per_take(record_settings: Settings):
    upstream = MintingUpstream(text=NUMBERED)
    upstream.hold = trio.Event()
    answers: list[tuple[str, str]] = []

    async def collect(base_url: str) -> None:
        answers.append(await ask(base_url))

    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url, takes=3)
            async with running_gate(settings, Mode.RECORD) as gate, trio.open_nursery() as clients:
                for _ in range(6):
                    clients.start_soon(collect, gate.base_url)
                while len(upstream.requests) < 3:
                    await trio.sleep(POLL_INTERVAL_S)
                await trio.sleep(POLL_INTERVAL_S * 5)  # time for a fourth call, were the gate to make one
                upstream.hold.set()

    assert len(upstream.requests) == 3
    texts = stored_texts(settings.cache_dir)
    assert len(set(texts)) == 3
    assert {text for _, text in answers} == set(texts) and len(answers) == 6
    assert {outcome for outcome, _ in answers} == {"recorded"}


async def test_two_gate_processes_adding_takes_to_one_file_lose_none(record_settings: Settings, tmp_path: Path):
    upstream = MintingUpstream(text=NUMBERED)
    upstream.hold = trio.Event()  # both processes' requests are in flight before either is answered
    answers: list[tuple[str, str]] = []

    async def collect(base_url: str) -> None:
        answers.append(await ask(base_url))

    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url, takes=2)
            async with (
                gate_process(settings, Mode.RECORD, tmp_path / "a.log") as gate_a,
                gate_process(settings, Mode.RECORD, tmp_path / "b.log") as gate_b,
            ):
                async with trio.open_nursery() as clients:
                    for gate in (gate_a, gate_b):
                        clients.start_soon(collect, gate.base_url)
                    while len(upstream.requests) < 2:
                        await trio.sleep(POLL_INTERVAL_S)
                    upstream.hold.set()
                for gate in (gate_a, gate_b):
                    gate.process.send_signal(signal.SIGTERM)
                    assert await gate.wait_for_exit() == 0

    assert sorted(answers) == sorted(("recorded", text) for text in stored_texts(settings.cache_dir))
    assert len(set(stored_texts(settings.cache_dir))) == 2
    assert_only_whole_cassettes(settings.cache_dir, 1)


async def test_a_request_whose_look_at_the_disk_was_overtaken_gets_the_take_that_won(
    record_settings: Settings, monkeypatch
):
    """Two identical requests both look for the cassette before either exchange starts; the second look ends only
    after the first request's take is recorded and answered, so what it read is out of date. It must not call the
    upstream again and say `recorded` of an answer no file holds: it gets the take on disk, a hit."""
    upstream = MintingUpstream(text=NUMBERED)
    second_looking, first_answered = threading.Event(), threading.Event()
    real_load = Gate._load_takes
    loads: list[str] = []

    def overtaken_load(gate: Gate, slot, key: str):
        loads.append(key)
        if len(loads) == 1:
            second_looking.wait(DEADLINE_S)
            return real_load(gate, slot, key)
        second_looking.set()
        first_answered.wait(DEADLINE_S)
        return Lookup.MISSING, None, None  # as read before the first request's cassette was written

    monkeypatch.setattr(Gate, "_load_takes", overtaken_load)
    answers: list[tuple[str, str]] = []

    async def collect(base_url: str) -> None:
        answers.append(await ask(base_url))
        first_answered.set()  # the first answer can only be the first request's: the second waits for it

    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url)
            async with running_gate(settings, Mode.RECORD) as gate, trio.open_nursery() as clients:
                for _ in range(2):
                    clients.start_soon(collect, gate.base_url)

    [text] = stored_texts(settings.cache_dir)
    assert len(loads) == 2
    assert len(upstream.requests) == 1
    assert answers == [("recorded", text), ("hit", text)]


async def test_thirty_clients_asking_at_once_get_only_takes_on_disk_and_make_one_call_per_take(
    record_settings: Settings,
):
    """The issue's case, smaller: identical requests from many clients at once, with `takes: 5`."""
    upstream = MintingUpstream(text=NUMBERED)
    clients_at_once, requests_each = 30, 4
    answers: list[tuple[str, str]] = []

    async def client(sdk: openai.AsyncOpenAI) -> None:
        for _ in range(requests_each):
            raw = await sdk.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}]
            )
            answers.append((raw.headers["x-inference-gate"], raw.parse().choices[0].message.content))

    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url, takes=5)
            async with (
                running_gate(settings, Mode.RECORD) as gate,
                openai.AsyncOpenAI(base_url=gate.base_url, api_key=CLIENT_KEY, max_retries=0) as sdk,
                trio.open_nursery() as clients,
            ):
                for _ in range(clients_at_once):
                    clients.start_soon(client, sdk)

    texts = stored_texts(settings.cache_dir)
    assert len(texts) == 5 and len(upstream.requests) == 5
    assert len(answers) == clients_at_once * requests_each
    assert {outcome for outcome, _ in answers} <= {"recorded", "hit"}
    assert {text for _, text in answers} == set(texts)  # every answer, recorded or hit, is a take on disk
