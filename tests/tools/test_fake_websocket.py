"""The fake WebSocket upstream, driven by the official SDK directly (no gate): the handshake, the three APIs' event
flows, the credential checks a gate's tests rely on, permessage-deflate, ephemeral keys, id minting and faults."""

from __future__ import annotations

import base64
import http.client
from collections import Counter

import openai
import orjson
import pytest
import trio
import websockets.exceptions
import websockets.sync.client

from tests.sdk_sockets import (
    ASYNC,
    DEADLINE_S,
    FLAVOURS,
    SHORT_PCM,
    SYNC,
    chained_responses,
    live_turns,
    realtime_turns,
    receive_until,
    run_session,
)
from tests.servers import running_upstream
from tools.fake_websocket import FakeWebSocketUpstream

KEY = "sk-upstream-key-for-tests-0123456789"


def types(events: list[dict]) -> list[str]:
    return [event["type"] for event in events]


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_responses_connect_chains_a_second_response_to_the_first(flavour: str):
    upstream = FakeWebSocketUpstream(expected_api_key=KEY)
    async with running_upstream(upstream):
        events = await run_session(flavour, "responses", upstream.url + "/v1", KEY, chained_responses)

    completed = [event["response"] for event in events if event["type"] == "response.completed"]
    assert len(completed) == 2 and completed[0]["id"] != completed[1]["id"]
    assert completed[1]["previous_response_id"] == completed[0]["id"]
    assert completed[1]["output"][0]["content"][0]["text"].endswith(f"(continuing {completed[0]['id']})")
    first = events[: types(events).index("response.completed") + 1]
    assert types(first)[:2] == ["response.created", "response.in_progress"]
    assert [event["sequence_number"] for event in first] == list(range(len(first)))
    (session,) = upstream.sessions
    assert session.request.path == "/v1/responses" and session.request.headers["authorization"] == f"Bearer {KEY}"
    assert [event["type"] for event in session.client_events] == ["response.create", "response.create"]


async def refused_then_answered(connection) -> list[dict]:
    await connection.send(
        {"type": "response.create", "model": "gpt-4o-mini", "input": "x", "previous_response_id": "resp_nope"}
    )
    refused = await connection.recv()
    await connection.send({"type": "response.create", "model": "gpt-4o-mini", "input": "x", "stream_id": "lane-1"})
    return [refused, *await receive_until(connection, "response.completed")]


async def test_an_unknown_previous_response_is_an_error_event_and_the_connection_goes_on():
    upstream = FakeWebSocketUpstream()
    async with running_upstream(upstream):
        events = await run_session(ASYNC, "responses", upstream.url + "/v1", KEY, refused_then_answered)

    refused, *answered = events
    assert refused["type"] == "error" and refused["status"] == 400
    assert refused["error"]["code"] == "previous_response_not_found"
    assert refused["error"]["param"] == "previous_response_id"
    assert {event["stream_id"] for event in answered} == {"lane-1"}


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_realtime_answers_a_text_an_audio_and_a_function_call_turn(flavour: str):
    upstream = FakeWebSocketUpstream(expected_api_key=KEY)
    async with running_upstream(upstream):
        events = await run_session(flavour, "realtime", upstream.url + "/v1", KEY, realtime_turns)

    assert events[0]["type"] == "session.created" and events[0]["session"]["model"] == "gpt-realtime"
    assert "error" not in types(events)
    done = [event["response"] for event in events if event["type"] == "response.done"]
    assert [response["status"] for response in done] == ["completed"] * 4
    text, spoken, call, after_call = (response["output"][0] for response in done)
    assert text["content"][0]["text"].startswith("Echo: Name a colour")
    assert spoken["content"][0]["transcript"].startswith(f"Echo: {len(SHORT_PCM)} bytes of audio")
    audio = b"".join(base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta")
    assert len(audio) > 0 and len(audio) % 2 == 0  # 16-bit samples
    assert (call["type"], call["name"], orjson.loads(call["arguments"])) == (
        "function_call",
        "get_weather",
        {"city": "Paris"},
    )
    assert "The tool returned" in after_call["content"][0]["text"]
    counts = Counter(types(events))
    assert counts["input_audio_buffer.committed"] == 1 and counts["response.function_call_arguments.done"] == 1
    (session,) = upstream.sessions
    assert session.request.target == "/v1/realtime?model=gpt-realtime"


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_live_session_starts_speaks_delegates_and_closes(flavour: str):
    upstream = FakeWebSocketUpstream(expected_api_key=KEY)
    async with running_upstream(upstream):
        events = await run_session(flavour, "live", upstream.url + "/v1", KEY, live_turns)
        with trio.fail_after(DEADLINE_S):
            while upstream.sessions[0].close_code is None:
                await trio.sleep(0.01)

    assert events[0]["type"] == "session.started" and events[0]["session"]["model"] == "gpt-live-1"
    assert events[-1]["type"] == "session.closed" and events[-1]["reason"] == "close_requested"
    counts = Counter(types(events))
    assert counts["session.input_transcript.delta"] == 1
    assert counts["session.output_audio.delta"] == counts["session.output_transcript.delta"] > 0
    nested = [event["event"]["type"] for event in events if event["type"] == "response.event"]
    assert nested[0] == "response.created" and nested[-1] == "response.completed"
    assert "error" not in counts
    assert upstream.sessions[0].close_code == 1000


async def test_a_wrong_key_is_refused_with_401_before_the_upgrade():
    upstream = FakeWebSocketUpstream(expected_api_key=KEY)
    async with running_upstream(upstream):
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            await run_session(SYNC, "realtime", upstream.url + "/v1", "sk-wrong-key-000000000000", realtime_turns)

    assert refused.value.response.status_code == 401
    assert orjson.loads(refused.value.response.body)["error"]["code"] == "invalid_api_key"
    assert upstream.sessions == []


def open_with_subprotocol(url: str, key: str) -> tuple[str | None, dict]:
    """A browser's way in: no Authorization header, the key in a subprotocol beside `realtime`."""
    protocols = ["realtime", f"openai-insecure-api-key.{key}"]
    with websockets.sync.client.connect(url, subprotocols=protocols, open_timeout=DEADLINE_S) as connection:
        return connection.subprotocol, orjson.loads(connection.recv(timeout=DEADLINE_S))


async def test_the_key_may_come_in_the_insecure_api_key_subprotocol():
    upstream = FakeWebSocketUpstream(expected_api_key=KEY)
    async with running_upstream(upstream):
        url = upstream.url.replace("http", "ws") + "/v1/realtime?model=gpt-realtime"
        with trio.fail_after(DEADLINE_S):
            chosen, first = await trio.to_thread.run_sync(open_with_subprotocol, url, KEY, abandon_on_cancel=True)

    assert chosen == "realtime" and first["type"] == "session.created"
    assert "authorization" not in upstream.sessions[0].request.headers


async def test_an_ephemeral_key_from_client_secrets_opens_a_realtime_session():
    upstream = FakeWebSocketUpstream(expected_api_key=KEY)
    async with running_upstream(upstream):
        client = openai.AsyncOpenAI(base_url=upstream.url + "/v1", api_key=KEY, max_retries=0)
        with trio.fail_after(DEADLINE_S):
            async with client:
                secret = await client.realtime.client_secrets.create(
                    session={"type": "realtime", "model": "gpt-realtime"}
                )
        events = await run_session(SYNC, "realtime", upstream.url + "/v1", secret.value, realtime_turns)

    assert secret.value.startswith("ek_") and events[-1]["type"] == "response.done"
    assert upstream.sessions[0].request.headers["authorization"] == f"Bearer {secret.value}"


async def test_permessage_deflate_is_agreed_when_the_client_offers_it():
    upstream = FakeWebSocketUpstream()
    async with running_upstream(upstream):
        # The SDK offers compression once `max_size` is set, as Node's `ws` client always does.
        options = {"websocket_connection_options": {"max_size": 16 * 1024 * 1024}}
        events = await run_session(ASYNC, "realtime", upstream.url + "/v1", KEY, realtime_turns, **options)
        plain = await run_session(ASYNC, "realtime", upstream.url + "/v1", KEY, realtime_turns)

    assert upstream.sessions[0].extensions.startswith("permessage-deflate")
    assert upstream.sessions[1].extensions is None
    assert events == plain


async def test_sessions_are_deterministic_unless_ids_are_minted():
    steady, minting = FakeWebSocketUpstream(), FakeWebSocketUpstream(mint_ids=True)
    runs = {}
    for name, upstream in (("steady", steady), ("minting", minting)):
        async with running_upstream(upstream):
            base_url = upstream.url + "/v1"
            runs[name] = [await run_session(SYNC, "responses", base_url, KEY, chained_responses) for _ in range(2)]

    assert runs["steady"][0] == runs["steady"][1]
    first, second = runs["minting"]
    assert types(first) == types(second)
    assert first[-1]["response"]["id"] != second[-1]["response"]["id"]
    assert first[-1]["response"]["output"][0]["content"] != second[-1]["response"]["output"][0]["content"]


async def cut_short(connection) -> list[dict]:
    await connection.send({"type": "response.create", "model": "fault-reset-midstream", "input": "x"})
    return await receive_until(connection, "response.completed")


async def test_the_reset_fault_cuts_the_connection_mid_answer_without_a_close_frame():
    upstream = FakeWebSocketUpstream()
    async with running_upstream(upstream):
        with pytest.raises(websockets.exceptions.ConnectionClosedError) as cut:
            await run_session(ASYNC, "responses", upstream.url + "/v1", KEY, cut_short)

    assert cut.value.rcvd is None  # no close frame came


def plain_get(host: str, port: int, target: str) -> int:
    connection = http.client.HTTPConnection(host, port, timeout=DEADLINE_S)
    try:
        connection.request("GET", target, headers={"authorization": f"Bearer {KEY}"})
        return connection.getresponse().status
    finally:
        connection.close()


async def test_plain_http_still_works_on_the_same_port():
    upstream = FakeWebSocketUpstream()
    async with running_upstream(upstream):
        with trio.fail_after(DEADLINE_S):
            async with openai.AsyncOpenAI(base_url=upstream.url + "/v1", api_key=KEY, max_retries=0) as client:
                models = await client.models.list()
            not_upgraded = await trio.to_thread.run_sync(plain_get, "127.0.0.1", upstream.port, "/v1/realtime")

    assert models.data and not_upgraded == 404
    assert upstream.sessions == []
