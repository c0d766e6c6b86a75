"""Live sessions through the gate, driven by the official SDK's `live.connect()`, sync and async, against
tools/fake_websocket.py: a session that starts, speaks (short base64 PCM), takes an instruction, delegates a
Responses turn and closes (the server closes after `session.closed`), recorded, then replayed with the upstream
stopped; a changed command is a miss, told by Live's `error` event and a close."""

from __future__ import annotations

import base64

import pytest
import websockets.exceptions

from inference_gate import Settings
from tests.e2e.processes import files_under
from tests.e2e.websocket_sessions import CLIENT_KEY, audio_as_sizes, record_session, replay_session, server_audio
from tests.sdk_sockets import ASYNC, FLAVOURS, LIVE_MODEL, SHORT_PCM, live_turns, receive_until


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_a_live_session_is_recorded_then_replayed_with_the_upstream_stopped(
    record_settings: Settings, flavour: str
):
    recorded, recording, upstream = await record_session(record_settings, flavour, "live", live_turns)
    replayed, replaying = await replay_session(record_settings, flavour, "live", live_turns)

    assert audio_as_sizes(replayed) == audio_as_sizes(recorded)
    assert set(server_audio(replayed)) == {0} and len(server_audio(recorded)) > 0
    assert replayed[0]["type"] == "session.started" and replayed[-1]["type"] == "session.closed"
    nested = [event["event"]["type"] for event in replayed if event["type"] == "response.event"]
    assert nested[-1] == "response.completed"
    assert [answer.outcome.value for answer in recording] == ["recorded"]
    assert [answer.outcome.value for answer in replaying] == ["hit"]
    (session,) = upstream.sessions
    assert session.request.path == "/v1/live/sessions"
    assert session.request.headers["authorization"] == f"Bearer {record_settings.api_key}"
    (cassette,) = files_under(record_settings.cache_dir)
    stored = cassette.read_bytes()
    assert CLIENT_KEY.encode() not in stored and base64.b64encode(SHORT_PCM) not in stored


async def until_the_server_closes(connection) -> int | None:
    """The session of `live_turns`, then reading on until the server closes; the code of the server's close."""
    await live_turns(connection)
    with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
        await connection.recv()
    return None if closed.value.rcvd is None else closed.value.rcvd.code


async def test_the_replay_ends_with_the_servers_close_as_the_recording_did(record_settings: Settings):
    recorded_close, _, _ = await record_session(record_settings, ASYNC, "live", until_the_server_closes)
    replayed_close, answers = await replay_session(record_settings, ASYNC, "live", until_the_server_closes)

    assert recorded_close == replayed_close == 1000
    assert [answer.outcome.value for answer in answers] == ["hit"]


async def changed_start(connection) -> tuple[dict, websockets.exceptions.ConnectionClosed]:
    await connection.send({"type": "session.start", "session": {"model": LIVE_MODEL}, "event_id": "start-1"})
    error = (await receive_until(connection, "error"))[-1]
    with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
        await connection.recv()
    return error, closed.value


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_a_changed_command_gets_lives_error_event_then_a_close(record_settings: Settings, flavour: str):
    await record_session(record_settings, ASYNC, "live", live_turns)
    (error, closed), answers = await replay_session(record_settings, flavour, "live", changed_start)

    # The SDK's Live ErrorEvent: the error object, carrying the command's event_id.
    assert error["error"]["code"] == "inference_gate_miss" and error["error"]["client_event_id"] == "start-1"
    assert "delegation" in error["error"]["message"]  # the first difference from the closest recording
    assert closed.rcvd is not None and closed.rcvd.code == 1008
    assert [answer.outcome.value for answer in answers] == ["miss"]
