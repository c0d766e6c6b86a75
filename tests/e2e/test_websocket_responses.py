"""The Responses API's WebSocket mode through the gate, driven by the official SDK's `responses.connect()`, sync
and async, against tools/fake_websocket.py: two `response.create` calls, the second chained to the first by
`previous_response_id`, recorded, then replayed with the upstream stopped; a changed call is a miss, told by the
`error` event and a close."""

from __future__ import annotations

from dataclasses import replace

import pytest
import trio
import websockets.exceptions

from inference_gate import Mode, Settings
from inference_gate.core.outcome import Answer
from tests.e2e.conftest import running_gate
from tests.e2e.processes import files_under
from tests.sdk_sockets import ASYNC, FLAVOURS, chained_responses, run_session
from tests.servers import running_upstream
from tools.fake_websocket import FakeWebSocketUpstream

CLIENT_KEY = "sk-client-key-for-tests-9876543210"
DEADLINE_S = 30


async def record(settings: Settings, flavour: str) -> tuple[list[dict], list[Answer], FakeWebSocketUpstream]:
    """The chained session recorded through the gate, from an upstream that takes only the gate's key."""
    upstream = FakeWebSocketUpstream(expected_api_key=settings.api_key)
    answers: list[Answer] = []
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            settings = replace(settings, upstream=upstream.url)
            async with running_gate(settings, Mode.RECORD, on_answer=answers.append) as gate:
                events = await run_session(flavour, "responses", gate.base_url, CLIENT_KEY, chained_responses)
    return events, answers, upstream


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_a_chained_session_is_recorded_then_replayed_equal_with_the_upstream_stopped(
    record_settings: Settings, flavour: str
):
    recorded, recording_answers, upstream = await record(record_settings, flavour)
    replay_answers: list[Answer] = []
    with trio.fail_after(DEADLINE_S):
        async with running_gate(record_settings, Mode.REPLAY, on_answer=replay_answers.append) as gate:
            replayed = await run_session(flavour, "responses", gate.base_url, CLIENT_KEY, chained_responses)

    assert replayed == recorded
    completed = [event["response"] for event in recorded if event["type"] == "response.completed"]
    assert completed[1]["previous_response_id"] == completed[0]["id"]
    assert [answer.outcome.value for answer in recording_answers] == ["recorded", "recorded"]
    assert [answer.outcome.value for answer in replay_answers] == ["hit", "hit"]
    (session,) = upstream.sessions  # one upstream WebSocket carried both calls
    assert session.request.headers["authorization"] == f"Bearer {record_settings.api_key}"
    assert [event["previous_response_id"] for event in session.client_events[1:]] == [completed[0]["id"]]
    cassettes = files_under(record_settings.cache_dir)
    assert len(cassettes) == 2
    assert not any(CLIENT_KEY.encode() in path.read_bytes() for path in cassettes)


async def changed_call(connection) -> tuple[dict, websockets.exceptions.ConnectionClosed]:
    await connection.send({"type": "response.create", "model": "gpt-4o-mini", "input": "Name a color"})
    error = await connection.recv()
    with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
        await connection.recv()
    return error, closed.value


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_a_changed_call_gets_the_error_event_naming_the_closest_then_a_close(
    record_settings: Settings, flavour: str
):
    await record(record_settings, ASYNC)
    before = {path: path.read_bytes() for path in files_under(record_settings.cache_dir)}
    with trio.fail_after(DEADLINE_S):
        async with running_gate(record_settings, Mode.REPLAY) as gate:
            error, closed = await run_session(flavour, "responses", gate.base_url, CLIENT_KEY, changed_call)

    # The SDK's `ResponseWsError`: the status the HTTP call would have had, and the error object in it.
    assert error["type"] == "error" and error["error"]["code"] == "cache_miss" and error["status"] >= 400
    assert "name-a-colour" in error["error"]["message"]  # the closest recording is named
    assert closed.rcvd is not None and closed.rcvd.code == 1008 and closed.rcvd.reason
    assert {path: path.read_bytes() for path in files_under(record_settings.cache_dir)} == before

