"""Ending well: a client that leaves mid-stream does not lose the recording, and a gate process stopped by
SIGTERM or SIGINT refuses new connections, lets the stream in flight finish and be recorded, and exits 0.

The gate runs in a child process (see processes.py); the fake upstream stays in this test's trio loop.
"""

from __future__ import annotations

import signal
import sys
from dataclasses import replace
from pathlib import Path

import openai
import pytest
import trio

from inference_gate import Mode, Settings
from tests.e2e.conftest import running_gate
from tests.e2e.processes import assert_only_whole_cassettes, files_under, gate_process
from tests.servers import running_upstream
from tools.fake_upstream import FakeUpstream

CLIENT_KEY = "sk-client-key-for-tests-9876543210"
MESSAGES = [{"role": "user", "content": "Keep streaming while I leave"}]
CASSETTE_WAIT_S = 5.0
REFUSED_WITHIN_S = 2.0
EVENT_DELAY_S = 0.08  # about a dozen events: the stream takes about a second
POLL_INTERVAL_S = 0.02
DEADLINE_S = 30

posix_signals = pytest.mark.skipif(sys.platform == "win32", reason="sends POSIX signals")


def sdk(base_url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base_url, api_key=CLIENT_KEY, max_retries=0, timeout=DEADLINE_S)


async def whole_stream(base_url: str) -> list[dict]:
    async with sdk(base_url) as client:
        stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        return [event.model_dump() async for event in stream]


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
