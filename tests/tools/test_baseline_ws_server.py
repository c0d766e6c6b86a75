"""The bare WebSocket server plays its canned session, whatever the client says."""

import functools

import trio

from tools.baseline_ws_server import CannedSession, serve_canned_session
from tools.ws_loadgen import ScriptTurn, SessionScript, play_session

DEADLINE_S = 20
SESSION = CannedSession(
    opening=['{"type": "hello"}'],
    answers=[['{"type": "a"}', '{"type": "a.done"}'], ['{"type": "b.done"}']],
)
SCRIPT = SessionScript(
    "/v1/realtime?model=x",
    [],
    [ScriptTurn(None, "hello"), ScriptTurn("anything", "a.done"), ScriptTurn("else", "b.done")],
)


async def test_the_canned_session_is_played_turn_by_turn():
    async with trio.open_nursery() as nursery:
        port = await nursery.start(functools.partial(serve_canned_session, SESSION))
        with trio.fail_after(DEADLINE_S):
            first = await play_session("127.0.0.1", port, SCRIPT)
            second = await play_session("127.0.0.1", port, SCRIPT)
        nursery.cancel_scope.cancel()

    assert first == second == SESSION.opening + SESSION.answers[0] + SESSION.answers[1]


def test_a_canned_session_survives_its_json_form():
    assert CannedSession.from_json(SESSION.to_json()) == SESSION
