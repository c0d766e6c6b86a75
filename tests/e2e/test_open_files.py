"""A gate short of file descriptors: under a low open files limit (`ulimit -n`), a burst of connections must not
turn hits into 500s. The default connection cap follows the limit, a cap set above it is warned about at
start-up, and a hit that finds no descriptor free waits for one.

The gates run as child processes whose limit is lowered before they start (`resource.setrlimit`, as `ulimit -n`
does), because the limit is per process.
"""

from __future__ import annotations

import collections
import resource
import signal
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
import trio

from inference_gate import Mode, Settings
from tests.e2e.processes import gate_process
from tests.servers import running_upstream
from tools.fake_upstream import FakeUpstream

OPEN_FILES = 64  # a gate needs about twenty for itself: what is left is a few dozen connections' worth
CONNECTIONS = 600
PROMPTS = [f"prompt number {number}" for number in range(10)]
DEADLINE_S = 60


def can_lower_the_open_files_limit() -> bool:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return hard == resource.RLIM_INFINITY or hard > OPEN_FILES


pytestmark = pytest.mark.skipif(
    not can_lower_the_open_files_limit(), reason=f"the open files limit is already {OPEN_FILES} or lower"
)


def raw_request(prompt: str) -> bytes:
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]})
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer sk-client-key-for-tests-9876543210\r\nconnection: close\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def status_of(port: int, prompt: str) -> str:
    """The status a connection's one request gets (the connection is closed after it)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(raw_request(prompt))
        received = b""
        while chunk := await stream.receive_some():
            received += chunk
    return received.split(b" ", 2)[1].decode() if received else "no answer"


async def record_prompts(settings: Settings, tmp_path: Path) -> None:
    upstream = FakeUpstream()
    async with running_upstream(upstream):
        recording = replace(settings, upstream=upstream.url)
        async with gate_process(recording, Mode.RECORD, tmp_path / "record.log") as gate:
            for prompt in PROMPTS:
                assert await status_of(gate.port, prompt) == "200"
            gate.process.send_signal(signal.SIGINT)
            assert await gate.wait_for_exit() == 0


async def burst(settings: Settings, tmp_path: Path) -> tuple[collections.Counter[str], str]:
    """The statuses of `CONNECTIONS` hits at once to a replay gate limited to `OPEN_FILES`, and its log."""
    statuses: collections.Counter[str] = collections.Counter()

    async def one(port: int, prompt: str) -> None:
        statuses[await status_of(port, prompt)] += 1

    async with gate_process(settings, Mode.REPLAY, tmp_path / "replay.log", open_files_limit=OPEN_FILES) as gate:
        async with trio.open_nursery() as clients:
            for number in range(CONNECTIONS):
                clients.start_soon(one, gate.port, PROMPTS[number % len(PROMPTS)])
        gate.process.send_signal(signal.SIGINT)
        assert await gate.wait_for_exit() == 0
    return statuses, gate.log()


async def test_a_burst_of_connections_under_a_low_open_files_limit_is_served_whole(
    record_settings: Settings, tmp_path: Path
):
    with trio.fail_after(DEADLINE_S):
        await record_prompts(record_settings, tmp_path)
        statuses, log = await burst(record_settings, tmp_path)
    assert statuses == {"200": CONNECTIONS}
    assert "Traceback" not in log and "max_connections" not in log


async def test_a_connection_cap_above_what_the_limit_affords_is_warned_about_and_never_answers_500(
    record_settings: Settings, tmp_path: Path
):
    settings = replace(record_settings, max_connections=1000)
    with trio.fail_after(DEADLINE_S):
        await record_prompts(settings, tmp_path)
        statuses, log = await burst(settings, tmp_path)
    assert f"max_connections is 1000, but the open files limit ({OPEN_FILES}) affords" in log
    # A hit short of a descriptor waits for one; only a shortage that outlasts the wait is a 503 to retry.
    assert set(statuses) <= {"200", "503"} and statuses["200"] > CONNECTIONS // 2
    assert "Traceback" not in log


async def test_a_burst_of_recordings_under_a_low_open_files_limit_records_every_one(
    record_settings: Settings, tmp_path: Path
):
    """Each recording holds its client's socket, the upstream's, and briefly a cassette's temporary file and its
    folder's lock: one short of a descriptor waits for one rather than failing."""
    upstream = FakeUpstream()
    prompts = [f"recorded at once {number}" for number in range(CONNECTIONS // 4)]
    statuses: collections.Counter[str] = collections.Counter()

    async def one(port: int, prompt: str) -> None:
        statuses[await status_of(port, prompt)] += 1

    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url)
            log_path = tmp_path / "record.log"
            async with gate_process(settings, Mode.RECORD, log_path, open_files_limit=OPEN_FILES) as gate:
                async with trio.open_nursery() as clients:
                    for prompt in prompts:
                        clients.start_soon(one, gate.port, prompt)
                gate.process.send_signal(signal.SIGINT)
                assert await gate.wait_for_exit() == 0
    assert statuses == {"200": len(prompts)}
    assert len(list(settings.cache_dir.rglob("*.json"))) == len(prompts)
    assert "Traceback" not in log_path.read_text(encoding="utf-8")
