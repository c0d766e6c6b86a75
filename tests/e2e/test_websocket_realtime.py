"""The Realtime API through the gate, driven by the official SDK's `realtime.connect()`, sync and async, against
tools/fake_websocket.py: a text turn, an audio turn (short base64 PCM) and a function-call turn, recorded, then
replayed with the upstream stopped; a changed client event is a miss, told by the `error` event and a close; a
client that vanishes mid-answer leaves no cassette; a paced replay takes about as long as the recording."""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import replace

import orjson
import pytest
import trio
import websockets.asyncio.client
import websockets.exceptions

from inference_gate import Mode, Settings
from inference_gate.core.outcome import Answer
from tests.e2e.conftest import running_gate
from tests.e2e.processes import files_under
from tests.e2e.websocket_sessions import (
    CLIENT_KEY,
    DEADLINE_S,
    audio_as_sizes,
    record_session,
    replay_session,
    server_audio,
    settled,
)
from tests.sdk_sockets import ASYNC, FLAVOURS, SHORT_PCM, realtime_turns, receive_until, run_session
from tests.servers import running_upstream
from tools.fake_websocket import FakeWebSocketUpstream

PACE_DELAY_S = 0.04  # between the fake's events: a text turn then lasts about a second
MID_ANSWER_DELAY_S = 0.1


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_text_audio_and_function_call_turns_are_recorded_then_replayed_with_the_upstream_stopped(
    record_settings: Settings, flavour: str
):
    recorded, recording, upstream = await record_session(record_settings, flavour, "realtime", realtime_turns)
    replayed, replaying = await replay_session(record_settings, flavour, "realtime", realtime_turns)

    # The server's audio is stored by digest and size, so it replays as silence of the size recorded.
    assert audio_as_sizes(replayed) == audio_as_sizes(recorded)
    assert set(server_audio(replayed)) == {0} and len(server_audio(recorded)) > 0
    done = [event["response"]["output"][0] for event in replayed if event["type"] == "response.done"]
    assert [item["type"] for item in done] == ["message", "message", "function_call", "message"]
    assert [answer.outcome.value for answer in recording] == ["recorded"]
    assert [answer.outcome.value for answer in replaying] == ["hit"]
    (session,) = upstream.sessions
    assert session.request.headers["authorization"] == f"Bearer {record_settings.api_key}"
    (cassette,) = files_under(record_settings.cache_dir)
    stored = cassette.read_bytes()
    assert CLIENT_KEY.encode() not in stored and record_settings.api_key.encode() not in stored
    assert base64.b64encode(SHORT_PCM) not in stored  # the client's audio too is kept by digest


async def test_audio_replays_as_recorded_when_the_setting_keeps_it(record_settings: Settings):
    settings = replace(record_settings, store_session_audio=True)
    recorded, _, _ = await record_session(settings, ASYNC, "realtime", realtime_turns)
    replayed, _ = await replay_session(settings, ASYNC, "realtime", realtime_turns)

    assert replayed == recorded and set(server_audio(replayed)) != {0}


async def changed_item(connection) -> tuple[dict, websockets.exceptions.ConnectionClosed]:
    await connection.recv()  # session.created
    await connection.send({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}})
    await receive_until(connection, "session.updated")
    changed = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Name a color"}]}
    await connection.send({"type": "conversation.item.create", "item": changed})
    error = await connection.recv()
    with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
        await connection.recv()
    return error, closed.value


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_a_changed_client_event_gets_the_error_event_then_a_close(record_settings: Settings, flavour: str):
    await record_session(record_settings, ASYNC, "realtime", realtime_turns)
    (error, closed), answers = await replay_session(record_settings, flavour, "realtime", changed_item)

    # The SDK's RealtimeErrorEvent: the error object names the closest recording and the first difference.
    assert error["type"] == "error" and error["error"]["code"] == "inference_gate_miss"
    assert "Name a colo" in error["error"]["message"]
    assert closed.rcvd is not None and closed.rcvd.code == 1008 and closed.rcvd.reason
    assert [answer.outcome.value for answer in answers] == ["miss"]


async def vanish_mid_answer(url: str) -> None:
    """The SDK's own WebSocket library, which aborts the TCP connection once the answer has begun: no close."""
    headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
    async with websockets.asyncio.client.connect(url, additional_headers=headers) as connection:
        await connection.recv()  # session.created
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]}
        await connection.send(orjson.dumps({"type": "conversation.item.create", "item": item}).decode())
        await connection.send('{"type": "response.create"}')
        while orjson.loads(await connection.recv())["type"] != "response.created":
            pass
        connection.transport.abort()


async def test_a_client_that_disconnects_mid_session_while_recording_leaves_no_cassette(record_settings: Settings):
    upstream = FakeWebSocketUpstream(expected_api_key=record_settings.api_key)
    upstream.event_delay_s = MID_ANSWER_DELAY_S  # the answer is still coming when the client vanishes
    answers: list[Answer] = []
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url)
            async with running_gate(settings, Mode.RECORD, on_answer=answers.append) as gate:
                url = gate.base_url.replace("http", "ws") + "/realtime?model=gpt-realtime"
                await trio.to_thread.run_sync(asyncio.run, vanish_mid_answer(url))
                await settled(answers, 1)
                left = files_under(settings.cache_dir)
                upstream.event_delay_s = 0.0
                # The gate keeps serving: the next whole session is recorded.
                await run_session(ASYNC, "realtime", gate.base_url, CLIENT_KEY, realtime_turns)
                await settled(answers, 2)

    assert left == []
    assert answers[0].outcome.value == "passthrough" and "close handshake" in (answers[0].reason or "")
    assert answers[1].outcome.value == "recorded" and len(files_under(record_settings.cache_dir)) == 1


async def timed_text_turn(connection) -> float:
    """A text turn; the seconds from the first client event to the answer's last event."""
    await connection.recv()  # session.created
    started = time.perf_counter()
    await connection.send({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}})
    await receive_until(connection, "session.updated")
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Count to ten"}]}
    await connection.send({"type": "conversation.item.create", "item": item})
    await receive_until(connection, "conversation.item.done")
    await connection.send({"type": "response.create"})
    await receive_until(connection, "response.done")
    return time.perf_counter() - started


async def test_a_paced_replay_takes_as_long_as_the_recording(record_settings: Settings):
    upstream = FakeWebSocketUpstream(expected_api_key=record_settings.api_key)
    upstream.event_delay_s = PACE_DELAY_S
    answers: list[Answer] = []
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url)
            async with running_gate(settings, Mode.RECORD, on_answer=answers.append, monotonic=time.monotonic) as gate:
                await run_session(ASYNC, "realtime", gate.base_url, CLIENT_KEY, timed_text_turn)
                await settled(answers, 1)
    (cassette,) = files_under(record_settings.cache_dir)
    frames = orjson.loads(cassette.read_bytes())["frames"]
    first_client = next(frame for frame in frames if frame["from"] == "client")
    recorded_s = (frames[-1]["at_ms"] - first_client["at_ms"]) / 1000

    replayed_s, _ = await replay_session(replace(record_settings, replay_speed=1.0), ASYNC, "realtime", timed_text_turn)

    assert recorded_s > 0.5  # the fake's pace made it into the recording
    assert 0.8 * recorded_s <= replayed_s <= 1.25 * recorded_s
