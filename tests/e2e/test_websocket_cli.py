"""The three WebSocket APIs through `inference-gate start` and `inference-gate replay` as child processes, driven
by the official SDK: each session recorded from tools/fake_websocket.py, then replayed by a second process with
the upstream stopped, the events equal and each session's outcome in the `-v` log with its frame counts."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest
import trio

from tests.cli.test_serve_commands import gate_process
from tests.e2e.websocket_sessions import CLIENT_KEY, audio_as_sizes
from tests.sdk_sockets import SYNC, chained_responses, live_turns, realtime_turns, run_session
from tests.servers import running_upstream
from tools.fake_websocket import FakeWebSocketUpstream

GATE_KEY = "sk-proj-gate-key-for-the-cli-test-0123456789"
DEADLINE_S = 60
SESSIONS = (("responses", chained_responses), ("realtime", realtime_turns), ("live", live_turns))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


async def play_all(port: int) -> list[list[dict]]:
    base_url = f"http://127.0.0.1:{port}/v1"
    return [await run_session(SYNC, api, base_url, CLIENT_KEY, script) for api, script in SESSIONS]


async def test_start_records_the_three_apis_and_replay_plays_them_back_alone(home: Path, tmp_path: Path):
    cache_dir = tmp_path / "cache"
    upstream = FakeWebSocketUpstream(expected_api_key=GATE_KEY)
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            start = ["-v", "start", "--port", "0", "--cache-dir", str(cache_dir), "--upstream", upstream.url]
            async with gate_process(*start, home=home, api_key=GATE_KEY) as gate:
                _, port = await gate.banner()
                recorded = await play_all(port)
                start_code, _, start_log = await gate.stop(signal.SIGINT)
        replay = ["-v", "replay", "--port", "0", "--cache-dir", str(cache_dir)]
        async with gate_process(*replay, home=home) as gate:
            _, port = await gate.banner()
            replayed = await play_all(port)
            replay_code, _, replay_log = await gate.stop(signal.SIGINT)

    assert (start_code, replay_code) == (0, 0)
    assert [audio_as_sizes(events) for events in replayed] == [audio_as_sizes(events) for events in recorded]
    assert [session.request.path for session in upstream.sessions] == [
        "/v1/responses",
        "/v1/realtime",
        "/v1/live/sessions",
    ]
    assert {session.request.headers["authorization"] for session in upstream.sessions} == {f"Bearer {GATE_KEY}"}
    assert re.search(r"WS /v1/responses 2 recorded 2 client / \d+ server messages", start_log), start_log
    assert re.search(r"WS /v1/responses 2 hit 2 client / \d+ server messages", replay_log), replay_log
    for path in ("/v1/realtime", "/v1/live/sessions"):
        assert re.search(rf"WS {path} recorded: \d+ client / \d+ server frames", start_log), start_log
        assert re.search(rf"WS {path} hit: \d+ client / \d+ server frames", replay_log), replay_log
    stored = b"".join(path.read_bytes() for path in cache_dir.rglob("*.json"))
    assert CLIENT_KEY.encode() not in stored and GATE_KEY.encode() not in stored
