"""Ending well: a client that leaves mid-stream does not lose the recording, and a gate process stopped by
SIGTERM or SIGINT refuses new connections, lets the stream in flight finish and be recorded, and exits 0.

`gate_process` runs a gate in a child process through `inference_gate.serve.run_gate` on port 0, which the CLI
does not accept; test_shared_cache.py uses it too. The fake upstream stays in this test's trio loop.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
import trio

from inference_gate import CassetteStore, Mode, Settings
from tests.e2e.conftest import running_gate, running_upstream
from tools.fake_upstream import FakeUpstream

REPO_ROOT = Path(__file__).parents[2]
CLIENT_KEY = "sk-client-key-for-tests-9876543210"
MESSAGES = [{"role": "user", "content": "Keep streaming while I leave"}]
STARTUP_TIMEOUT_S = 15.0
EXIT_TIMEOUT_S = 5.0
CASSETTE_WAIT_S = 5.0
REFUSED_WITHIN_S = 2.0
EVENT_DELAY_S = 0.08  # about a dozen events: the stream takes about a second
POLL_INTERVAL_S = 0.02
DEADLINE_S = 30

# Runs one gate until SIGINT or SIGTERM, logging at INFO to stderr; prints the bound port once it listens.
RUNNER = """
import logging, sys
from pathlib import Path
import orjson
from inference_gate import Mode, Settings
from inference_gate.serve import run_gate

options = orjson.loads(sys.argv[1])
mode = Mode(options.pop("mode"))
options["cache_dir"] = Path(options["cache_dir"])
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
run_gate(Settings(**options), mode, on_started=lambda port: print(port, flush=True))
"""

posix_signals = pytest.mark.skipif(sys.platform == "win32", reason="sends POSIX signals")


@dataclass
class GateProcess:
    process: trio.Process
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8")

    async def wait_for_exit(self) -> int:
        with trio.fail_after(EXIT_TIMEOUT_S):
            return await self.process.wait()


@asynccontextmanager
async def gate_process(settings: Settings, mode: Mode, log_path: Path) -> AsyncIterator[GateProcess]:
    """A gate in a child process on a free port, with its log in `log_path`; killed if still running after."""
    options: dict[str, Any] = {field.name: getattr(settings, field.name) for field in fields(Settings)}
    options.update(mode=mode.value, host="127.0.0.1", port=0)
    arguments = [sys.executable, "-c", RUNNER, orjson.dumps(options, default=str).decode()]
    with log_path.open("wb") as log_file:
        process = await trio.lowlevel.open_process(arguments, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=log_file)
    try:
        printed = b""
        with trio.fail_after(STARTUP_TIMEOUT_S):
            while not printed.endswith(b"\n"):
                chunk = await process.stdout.receive_some()
                assert chunk, f"the gate exited before listening: {log_path.read_text(encoding='utf-8')}"
                printed += chunk
        yield GateProcess(process, int(printed), log_path)
    finally:
        if process.returncode is None:
            process.kill()
        with trio.move_on_after(EXIT_TIMEOUT_S, shield=True):
            await process.wait()
        await process.stdout.aclose()


def sdk(base_url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base_url, api_key=CLIENT_KEY, max_retries=0, timeout=DEADLINE_S)


async def whole_stream(base_url: str) -> list[dict]:
    async with sdk(base_url) as client:
        stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        return [event.model_dump() async for event in stream]


def files_under(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


def assert_only_whole_cassettes(cache_dir: Path, count: int) -> None:
    """`count` cassettes that read back, and no other file: no temporary or partial one."""
    store = CassetteStore(cache_dir)
    assert files_under(cache_dir) == store.cassette_paths()
    entries = list(store.entries())
    assert [entry.error for entry in entries] == [None] * count


async def wait_for_cassette(cache_dir: Path) -> None:
    with trio.fail_after(CASSETTE_WAIT_S):
        while not files_under(cache_dir):
            await trio.sleep(POLL_INTERVAL_S)


async def test_a_client_leaving_mid_stream_does_not_stop_the_recording(record_settings: Settings):
    upstream = FakeUpstream()
    upstream.hold = trio.Event()
    upstream.event_delay_s = EVENT_DELAY_S  # the gate has long noticed the client left when the stream ends
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url)
            async with running_gate(settings, Mode.RECORD) as gate:
                async with sdk(gate.base_url) as client:
                    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
                    await anext(aiter(stream))
                    await stream.close()
                upstream.hold.set()
                await wait_for_cassette(settings.cache_dir)
            upstream.event_delay_s = 0
            expected = await whole_stream(upstream.url + "/v1")
        async with running_gate(settings, Mode.REPLAY) as replay_gate:
            replayed = await whole_stream(replay_gate.base_url)
    assert upstream.calls("/v1/chat/completions") == 2  # the gate's call, and the direct one for `expected`
    assert replayed == expected
    assert_only_whole_cassettes(settings.cache_dir, 1)


async def wait_until_refused(port: int) -> None:
    """Return once connecting to `port` is refused, i.e. nothing listens there any more."""
    while True:
        try:
            connection = await trio.open_tcp_stream("127.0.0.1", port)
        except OSError:
            return
        await connection.aclose()
        await trio.sleep(POLL_INTERVAL_S)


@posix_signals
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_signal_refuses_new_connections_and_finishes_the_stream_in_flight(
    record_settings: Settings, tmp_path: Path, signum: int
):
    upstream = FakeUpstream()
    upstream.hold = trio.Event()  # the stream cannot end before the test has seen connections refused
    upstream.event_delay_s = EVENT_DELAY_S
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url)
            async with gate_process(settings, Mode.RECORD, tmp_path / "gate.log") as gate:
                async with sdk(gate.base_url) as client:
                    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
                    events = aiter(stream)
                    received = [(await anext(events)).model_dump()]
                    gate.process.send_signal(signum)
                    with trio.fail_after(REFUSED_WITHIN_S):
                        await wait_until_refused(gate.port)
                    assert gate.process.returncode is None  # still finishing the stream in flight
                    upstream.hold.set()
                    received += [event.model_dump() async for event in events]
                exit_code = await gate.wait_for_exit()
            upstream.event_delay_s = 0
            expected = await whole_stream(upstream.url + "/v1")
        async with running_gate(settings, Mode.REPLAY) as replay_gate:
            replayed = await whole_stream(replay_gate.base_url)
    assert exit_code == 0, gate.log()
    assert received == expected
    assert replayed == expected
    assert_only_whole_cassettes(settings.cache_dir, 1)
    assert "ERROR" not in gate.log() and "Traceback" not in gate.log()
