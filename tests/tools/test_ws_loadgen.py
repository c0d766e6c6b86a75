"""The WebSocket load generator plays a session script against the fake upstream, whole sessions at a time."""

import orjson
import pytest
import trio

from tests.servers import running_upstream
from tools.fake_websocket import FakeWebSocketUpstream
from tools.ws_loadgen import ScriptTurn, SessionFailed, SessionScript, play_session, run_session_load

DEADLINE_S = 20
KEY = "sk-loadgen-key-0123456789"
CREATE = orjson.dumps({"type": "response.create", "model": "gpt-4o-mini", "input": "Name a colour"}).decode()
SCRIPT = SessionScript(
    "/v1/responses", [("authorization", f"Bearer {KEY}")], [ScriptTurn(CREATE, "response.completed")]
)


async def test_a_session_is_played_to_the_end_of_each_turn_and_closed():
    upstream = FakeWebSocketUpstream(expected_api_key=KEY)
    async with running_upstream(upstream):
        with trio.fail_after(DEADLINE_S):
            messages = await play_session("127.0.0.1", upstream.port, SCRIPT)
            while upstream.sessions[0].close_code is None:
                await trio.sleep(0.01)

    events = [orjson.loads(message) for message in messages]
    assert events[0]["type"] == "response.created" and events[-1]["type"] == "response.completed"
    assert upstream.sessions[0].client_messages == [CREATE] and upstream.sessions[0].close_code == 1000


async def test_a_refused_upgrade_fails_the_session():
    upstream = FakeWebSocketUpstream(expected_api_key="sk-another-key-000000")
    async with running_upstream(upstream):
        with trio.fail_after(DEADLINE_S), pytest.raises(SessionFailed, match="401"):
            await play_session("127.0.0.1", upstream.port, SCRIPT)


async def test_under_load_every_session_counts_its_messages():
    upstream = FakeWebSocketUpstream(expected_api_key=KEY)
    async with running_upstream(upstream):
        with trio.fail_after(DEADLINE_S):
            per_session = len(await play_session("127.0.0.1", upstream.port, SCRIPT))
            result = await run_session_load("127.0.0.1", upstream.port, SCRIPT, connections=2, duration_s=0.3)

    assert result.failed == 0 and result.sessions > 0
    assert result.messages == result.sessions * per_session
    assert len(result.latencies_s) == result.sessions


def test_a_script_survives_its_json_form():
    assert SessionScript.from_json(SCRIPT.to_json()) == SCRIPT
