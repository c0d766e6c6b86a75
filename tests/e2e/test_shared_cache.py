"""Two gate processes recording into one cache directory: every cassette is whole, each name is written once
(the first complete recording wins), and a miss in one process finds what the other one recorded.

The gates run as child processes (see `gate_process`) so that nothing in memory is shared: only the directory.
The fake upstream stays in this test's trio loop; each process sends its own `OpenAI-Project` header, which is
stored in the cassette but not part of the key, so a cassette shows which process recorded it.
"""

from __future__ import annotations

import signal
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import openai
import orjson
import trio

from inference_gate import CassetteStore, Mode, Settings
from tests.cassettes import read_all
from tests.e2e.conftest import running_gate
from tests.e2e.minting import NUMBERED, MintingUpstream
from tests.e2e.processes import assert_only_whole_cassettes, gate_process
from tests.servers import running_upstream
from tools.fake_upstream import FakeUpstream

CLIENT_KEY = "sk-client-key-for-tests-9876543210"
PROMPTS = ("one fish", "two fish", "red fish", "blue fish")
REQUESTS = [(prompt, stream) for prompt in PROMPTS for stream in (False, True)]
REPEATS_PER_GATE = 3
POLL_INTERVAL_S = 0.02
DEADLINE_S = 30
LOST_RACE = "was recorded by another writer first; kept that one"

Request = tuple[str, bool]


async def ask(base_url: str, request: Request, *, project: str = "proj-test") -> tuple[str, Any]:
    """The gate's outcome header and what the SDK parsed: the completion, or every event of the stream."""
    prompt, stream = request
    async with openai.AsyncOpenAI(
        base_url=base_url, api_key=CLIENT_KEY, project=project, max_retries=0, timeout=DEADLINE_S
    ) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}], stream=stream
        )
        parsed = raw.parse()
        value = [event.model_dump() async for event in parsed] if stream else parsed.model_dump()
    return raw.headers["x-inference-gate"], value


async def test_two_processes_hammering_one_directory_write_each_cassette_once(
    record_settings: Settings, tmp_path: Path
):
    upstream = FakeUpstream()
    upstream.hold = trio.Event()  # both processes have every request in flight before any is answered
    answers: dict[Request, list[tuple[str, Any]]] = defaultdict(list)

    async def collect(base_url: str, request: Request, project: str) -> None:
        answers[request].append(await ask(base_url, request, project=project))

    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url)
            async with (
                gate_process(settings, Mode.RECORD, tmp_path / "a.log") as gate_a,
                gate_process(settings, Mode.RECORD, tmp_path / "b.log") as gate_b,
            ):
                gates = {"proj-a": gate_a, "proj-b": gate_b}
                async with trio.open_nursery() as clients:
                    for _ in range(REPEATS_PER_GATE):
                        for project, gate in gates.items():
                            for request in REQUESTS:
                                clients.start_soon(collect, gate.base_url, request, project)
                    while len(upstream.requests) < len(gates) * len(REQUESTS):
                        await trio.sleep(POLL_INTERVAL_S)
                    upstream.hold.set()
                # Cassettes are written just after each answer ends; a graceful stop waits for those writes.
                for gate in gates.values():
                    gate.process.send_signal(signal.SIGTERM)
                    assert await gate.wait_for_exit() == 0
                logs = {project: gate.log() for project, gate in gates.items()}
        async with running_gate(settings, Mode.REPLAY) as replay_gate:
            replayed = {request: await ask(replay_gate.base_url, request) for request in REQUESTS}

    # Each process made one upstream call per distinct request (single-flight), and no more.
    assert len(upstream.requests) == len(gates) * len(REQUESTS)
    calls = sorted((r.body, r.headers["openai-project"]) for r in upstream.requests)
    assert calls == sorted({(r.body, project) for r in upstream.requests for project in gates})
    for request in REQUESTS:
        outcomes = [outcome for outcome, _ in answers[request]]
        assert len(outcomes) == len(gates) * REPEATS_PER_GATE
        assert set(outcomes) <= {"recording" if request[1] else "recorded", "hit"}  # request[1]: streamed
        assert all(value == answers[request][0][1] for _, value in answers[request])
        assert replayed[request] == ("hit", answers[request][0][1])

    assert_only_whole_cassettes(settings.cache_dir, len(REQUESTS))
    store = CassetteStore(settings.cache_dir)
    assert len({cassette.key for cassette in read_all(store)}) == len(REQUESTS)
    for path in store.cassette_paths():
        # Both processes wrote this name; exactly one lost the race and kept the winner's file as it was.
        name = path.relative_to(settings.cache_dir).as_posix()
        losers = [project for project, log in logs.items() if f"{name} {LOST_RACE}" in log]
        assert len(losers) == 1, (name, logs)
        [winner] = set(gates) - set(losers)
        assert orjson.loads(path.read_bytes())["request"]["headers"]["openai-project"] == winner


async def test_a_miss_reads_the_disk_before_going_upstream(record_settings: Settings, tmp_path: Path):
    upstream = FakeUpstream()
    request = ("recorded by the other process", True)
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url)
            async with (
                gate_process(settings, Mode.RECORD, tmp_path / "a.log") as gate_a,
                gate_process(settings, Mode.RECORD, tmp_path / "b.log") as gate_b,
            ):
                recorded_by_a = await ask(gate_a.base_url, request)
                while not CassetteStore(settings.cache_dir).count():  # A writes it just after answering
                    await trio.sleep(POLL_INTERVAL_S)
                answered_by_b = await ask(gate_b.base_url, request)  # B started before A recorded it
    assert recorded_by_a[0] == "recording"  # a live stream's head promises; the cassette was then on disk
    assert answered_by_b == ("hit", recorded_by_a[1])
    assert upstream.calls("/v1/chat/completions") == 1
    assert_only_whole_cassettes(settings.cache_dir, 1)


async def race_two_gates(
    record_settings: Settings,
    upstream: FakeUpstream,
    request: tuple[str, bool],
    tmp_path: Path,
    *,
    stop_gates: bool,
) -> tuple[list[tuple[str, Any]], str]:
    """Two record gates on one directory each send `request` upstream, held until both calls have arrived, so that
    they race to the disk; each answer's outcome and body, and both gates' logs (after SIGTERM with `stop_gates`,
    which checks that each exits cleanly)."""
    upstream.hold = trio.Event()
    answers: list[tuple[str, Any]] = []

    async def collect(base_url: str) -> None:
        answers.append(await ask(base_url, request))

    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url)
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
                if stop_gates:
                    for gate in (gate_a, gate_b):
                        gate.process.send_signal(signal.SIGTERM)
                        assert await gate.wait_for_exit() == 0
                return answers, gate_a.log() + gate_b.log()


async def test_the_gate_that_loses_a_race_to_record_answers_with_the_winners_take(
    record_settings: Settings, tmp_path: Path
):
    """Both gates call the upstream for one request at once (neither can see the other's exchange); the upstream
    answers each differently. The first complete recording is kept, and the other gate must not say `recorded`
    of an answer that is in no file: it answers with the take on disk, a hit."""
    upstream = MintingUpstream(text=NUMBERED)
    request = ("a race to the disk", False)
    answers, logs = await race_two_gates(record_settings, upstream, request, tmp_path, stop_gates=False)

    [cassette] = read_all(CassetteStore(record_settings.cache_dir))
    kept = orjson.loads(cassette.response.body)["choices"][0]["message"]["content"]
    assert sorted(outcome for outcome, _ in answers) == ["hit", "recorded"]
    assert all(answer["choices"][0]["message"]["content"] == kept for _, answer in answers)
    assert LOST_RACE in logs and " hit 200 " in logs and logs.count(" recorded 200 ") == 1


async def test_the_gate_that_loses_a_race_to_record_a_stream_says_passthrough_with_the_reason(
    record_settings: Settings, tmp_path: Path
):
    """A stream is sent as it comes, so the gate that loses cannot answer with the winner's take: the end of its
    stream, and its log line, say the answer was not kept, and why; neither says `recorded`."""
    upstream = FakeUpstream()
    request = ("a streamed race to the disk", True)
    answers, logs = await race_two_gates(record_settings, upstream, request, tmp_path, stop_gates=True)

    assert [outcome for outcome, _ in answers] == ["recording", "recording"]  # the head's promise, as always
    assert logs.count(" recorded 200 ") == 1
    assert logs.count(" passthrough 200 ") == 1 and "this answer was not kept" in logs
    assert_only_whole_cassettes(record_settings.cache_dir, 1)
