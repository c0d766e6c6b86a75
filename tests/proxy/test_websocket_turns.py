"""The Responses API's WebSocket mode through the gate: recorded turn by turn as streamed HTTP cassettes, replayed
with the upstream gone, and a changed turn refused with the `error` event and a close."""

from __future__ import annotations

from pathlib import Path

import orjson
import trio

from inference_gate import Mode, Settings
from inference_gate.core.outcome import Answer
from tests.e2e.conftest import running_gate
from tests.plain_http import post_json
from tests.websocket_client import WebSocketTestClient
from tests.websocket_upstream import TinyUpstream, running_tiny_upstream

DEADLINE_S = 10
KEY = "sk-test-client-key-0123456789abcdef"


def create(text: str, previous: str | None = None) -> str:
    event = {"type": "response.create", "model": "gpt-5", "input": text}
    if previous is not None:
        event["previous_response_id"] = previous
    return orjson.dumps(event).decode()


async def converse(port: int, turns: list[tuple[str, bool]]) -> tuple[WebSocketTestClient, list[list[dict]]]:
    """Send each turn (`chained` ones name the previous response) and read its events to the last one."""
    authorization = [(b"authorization", b"Bearer " + KEY.encode())]
    client = await WebSocketTestClient.connect(port, "/v1/responses", headers=authorization)
    answers: list[list[dict]] = []
    previous = None
    for text, chained in turns:
        await client.send(create(text, previous if chained else None))
        events: list[dict] = []
        while True:
            message = await client.receive()
            if message is None:
                answers.append(events)
                return client, answers
            events.append(orjson.loads(message))
            if events[-1]["type"] in ("response.completed", "error"):
                break
        previous = events[-1].get("response", {}).get("id")
        answers.append(events)
    return client, answers


async def test_turns_are_recorded_then_replayed_equal_with_the_upstream_gone(tmp_path: Path) -> None:
    answers: list[Answer] = []
    turns = [("hello", False), ("and again", True)]
    with trio.fail_after(DEADLINE_S):
        async with running_tiny_upstream(TinyUpstream()) as upstream:
            settings = Settings(cache_dir=tmp_path, upstream=f"http://127.0.0.1:{upstream.port}")
            async with running_gate(settings, Mode.RECORD, on_answer=answers.append) as gate:
                client, recorded = await converse(gate.port, turns)
                assert client.headers[b"x-inference-gate"] == b"recording"
                await client.close()
            forwarded = upstream.upgrades[0]
            assert dict(forwarded.headers)[b"authorization"] == b"Bearer " + KEY.encode()
        assert [answer.outcome.value for answer in answers] == ["recorded", "recorded"]
        assert [event["type"] for event in recorded[1]] == [
            "response.created", "response.output_text.delta", "response.completed"
        ]
        assert recorded[1][0]["response"]["previous_response_id"] == "resp_1"
        files = sorted((tmp_path / "responses").glob("*.json"))
        assert len(files) == 2
        stored = orjson.loads(files[0].read_bytes())
        assert stored["request"]["body"]["stream"] is True
        assert KEY not in files[0].read_text() + files[1].read_text()

        answers.clear()
        async with running_gate(Settings(cache_dir=tmp_path), Mode.REPLAY, on_answer=answers.append) as gate:
            client, replayed = await converse(gate.port, turns)
            assert client.headers[b"x-inference-gate"] == b"replaying"
            await client.close()
        assert replayed == recorded
        assert [answer.outcome.value for answer in answers] == ["hit", "hit"]


async def test_one_cassette_answers_the_websocket_and_the_streamed_http_call(tmp_path: Path) -> None:
    with trio.fail_after(DEADLINE_S):
        async with running_tiny_upstream(TinyUpstream()) as upstream:
            settings = Settings(cache_dir=tmp_path, upstream=f"http://127.0.0.1:{upstream.port}")
            async with running_gate(settings, Mode.RECORD) as gate:
                client, recorded = await converse(gate.port, [("hello", False)])
                await client.close()
        async with running_gate(Settings(cache_dir=tmp_path), Mode.REPLAY) as gate:
            body = {"model": "gpt-5", "input": "hello", "stream": True}
            response = await post_json(f"http://127.0.0.1:{gate.port}", "/v1/responses", body)
        assert response.headers["x-inference-gate"] == "hit"
        data = [line[len("data: "):] for line in response.body.decode().splitlines() if line.startswith("data: ")]
        assert [orjson.loads(item) for item in data] == recorded[0]


async def test_a_changed_turn_gets_the_error_event_naming_the_closest_then_a_close(tmp_path: Path) -> None:
    with trio.fail_after(DEADLINE_S):
        async with running_tiny_upstream(TinyUpstream()) as upstream:
            settings = Settings(cache_dir=tmp_path, upstream=f"http://127.0.0.1:{upstream.port}")
            async with running_gate(settings, Mode.RECORD) as gate:
                client, _ = await converse(gate.port, [("hello there", False)])
                await client.close()
        async with running_gate(Settings(cache_dir=tmp_path), Mode.REPLAY) as gate:
            client, answers = await converse(gate.port, [("hello their", False)])
            (error,) = answers[0]
            assert error["type"] == "error" and error["error"]["code"] == "cache_miss"
            assert "hello-there" in error["error"]["message"] and "input" in error["error"]["message"]
            assert await client.receive() is None
            assert client.close_code == 1008
            assert client.close_reason == "inference-gate: no cassette answers this response.create"


async def test_a_message_that_is_not_a_turn_gets_an_error_event_and_the_session_goes_on(tmp_path: Path) -> None:
    with trio.fail_after(DEADLINE_S):
        async with running_gate(Settings(cache_dir=tmp_path), Mode.REPLAY) as gate:
            client = await WebSocketTestClient.connect(gate.port, "/v1/responses")
            await client.send('{"type": "response.cancel"}')
            error = orjson.loads(await client.receive())
            assert error["type"] == "error" and error["error"]["code"] == "invalid_event"
            assert error["status"] == 400
            await client.send("not json")
            assert orjson.loads(await client.receive())["error"]["code"] == "invalid_event"
            await client.close()


async def test_an_upgrade_at_another_path_is_refused_with_a_404(tmp_path: Path) -> None:
    from tests.websocket_client import Refused

    with trio.fail_after(DEADLINE_S):
        async with running_gate(Settings(cache_dir=tmp_path), Mode.REPLAY) as gate:
            try:
                await WebSocketTestClient.connect(gate.port, "/v1/chat/completions")
            except Refused as refused:
                assert refused.status == 404
                assert orjson.loads(refused.body)["error"]["code"] == "websocket_not_recorded"
            else:
                raise AssertionError("the upgrade was accepted")


async def test_a_turn_larger_than_the_recording_cap_is_relayed_whole_but_not_recorded(tmp_path: Path) -> None:
    answers: list[Answer] = []
    with trio.fail_after(DEADLINE_S):
        async with running_tiny_upstream(TinyUpstream()) as upstream:
            settings = Settings(
                cache_dir=tmp_path, upstream=f"http://127.0.0.1:{upstream.port}", max_recorded_bytes=200
            )
            async with running_gate(settings, Mode.RECORD, on_answer=answers.append) as gate:
                client, turns = await converse(gate.port, [("hello", False)])
                await client.close()
    assert [event["type"] for event in turns[0]][-1] == "response.completed"
    assert [(answer.outcome.value, answer.reason) for answer in answers] == [
        ("passthrough", "the turn outgrew max_recorded_bytes (200 bytes)")
    ]
    assert not list(tmp_path.glob("**/*.json"))


async def test_a_client_that_vanishes_mid_turn_still_gets_the_whole_turn_recorded(tmp_path: Path) -> None:
    """As an HTTP exchange is: the tokens are paid for, and the cassette is whole or not there."""
    answers: list[Answer] = []
    with trio.fail_after(DEADLINE_S):
        async with running_tiny_upstream(TinyUpstream(delay_s=0.05)) as upstream:
            settings = Settings(cache_dir=tmp_path, upstream=f"http://127.0.0.1:{upstream.port}")
            async with running_gate(settings, Mode.RECORD, on_answer=answers.append) as gate:
                client = await WebSocketTestClient.connect(gate.port, "/v1/responses")
                await client.send(create("hello"))
                assert orjson.loads(await client.receive())["type"] == "response.created"
                await client.stream.aclose()  # gone, without a close frame, before the turn's end
                with trio.fail_after(2):
                    while not answers:
                        await trio.sleep(0.01)
    assert [answer.outcome.value for answer in answers] == ["recorded"]
    (cassette_file,) = (tmp_path / "responses").glob("*.json")
    events = orjson.loads(cassette_file.read_bytes())["response"]["events"]
    assert [event["event"] for event in events] == [
        "response.created", "response.output_text.delta", "response.completed"
    ]
