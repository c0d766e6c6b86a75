"""Realtime and Live sessions through the gate: recorded whole, replayed by following the client, a changed event
refused with the `error` event and a close, a dropped session never half-written, and a paced replay."""

from __future__ import annotations

import base64
from dataclasses import replace
from pathlib import Path

import orjson
import trio

from inference_gate import Mode, Settings
from inference_gate.core.outcome import Answer
from tests.e2e.conftest import running_gate
from tests.websocket_client import WebSocketTestClient
from tests.websocket_upstream import TinyUpstream, running_tiny_upstream

DEADLINE_S = 10
CLIENT_KEY = "sk-client-key-0123456789abcdefghijkl"
GATE_KEY = "sk-gate-key-0123456789abcdefghijklmn"
AUDIO = base64.b64encode(bytes(range(200))).decode()
REALTIME = "/v1/realtime?model=gpt-realtime"


def conversation(text: str = "What is the capital of France?") -> list[dict]:
    return [
        {"type": "session.update", "session": {"type": "realtime", "instructions": "Be brief."}},
        {"type": "conversation.item.create", "event_id": "evt_client_random_1",
         "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}},
        {"type": "input_audio_buffer.append", "audio": AUDIO},
        {"type": "response.create"},
    ]


async def talk(
    port: int, events: list[dict], target: str = REALTIME, *, times: list[float] | None = None, **connect
) -> tuple[WebSocketTestClient, list]:
    """Open a session, read `session.created`, send each event and read what answers it (one message, or a whole
    response up to `response.done`); stops at a close. `times` gets when each message arrived."""
    client = await WebSocketTestClient.connect(port, target, **connect)
    received = [orjson.loads(await client.receive())]
    if times is not None:
        times.append(trio.current_time())
    for event in events:
        await client.send(orjson.dumps(event).decode())
        while True:
            message = await client.receive()
            if message is None:
                return client, received
            received.append(orjson.loads(message))
            if times is not None:
                times.append(trio.current_time())
            if received[-1]["type"] != "response.created" and not received[-1]["type"].startswith("response.output"):
                break
    return client, received


async def record_session(tmp_path: Path, upstream: TinyUpstream, events: list[dict], **settings) -> list:
    async with running_tiny_upstream(upstream):
        base = Settings(cache_dir=tmp_path, upstream=f"http://127.0.0.1:{upstream.port}")
        async with running_gate(replace(base, **settings), Mode.RECORD) as gate:
            authorization = [(b"authorization", f"Bearer {CLIENT_KEY}".encode())]
            client, received = await talk(gate.port, events, headers=authorization)
            assert client.headers[b"x-inference-gate"] == b"recording"
            await client.close()
    return received


async def test_a_session_is_recorded_and_replayed_with_the_upstream_gone(tmp_path: Path) -> None:
    answers: list[Answer] = []
    with trio.fail_after(DEADLINE_S):
        async with running_tiny_upstream(TinyUpstream()) as upstream:
            settings = Settings(cache_dir=tmp_path, upstream=f"http://127.0.0.1:{upstream.port}")
            async with running_gate(settings, Mode.RECORD, on_answer=answers.append) as gate:
                client, recorded = await talk(
                    gate.port, conversation(), headers=[(b"authorization", f"Bearer {CLIENT_KEY}".encode())]
                )
                await client.close()  # returns once the gate has answered the close frame
                assert len(list((tmp_path / "realtime").glob("*.json"))) == 1  # on disk by then: `recorded` holds
        assert [(answer.outcome.value, answer.status) for answer in answers] == [("recorded", 101)]
        (cassette_file,) = (tmp_path / "realtime").glob("*.json")
        assert answers[0].cassette == f"realtime/{cassette_file.name}"
        assert cassette_file.name.startswith("be-brief.") or cassette_file.name.startswith("what-is-the-capital")
        stored = orjson.loads(cassette_file.read_bytes())
        assert stored["kind"] == "websocket_session"
        assert stored["request"]["query"] == [["model", "gpt-realtime"]]
        assert stored["closed"] == {"by": "client", "code": 1000, "reason": ""}
        assert stored["summary"]["client_frames"] == 4
        (append,) = [frame for frame in stored["frames"] if frame["data"]["type"] == "input_audio_buffer.append"]
        assert append["data"]["audio"]["omitted_audio"]["bytes"] == 200
        assert CLIENT_KEY not in cassette_file.read_text()

        answers.clear()
        async with running_gate(Settings(cache_dir=tmp_path), Mode.REPLAY, on_answer=answers.append) as gate:
            client, replayed = await talk(gate.port, conversation())
            assert client.headers[b"x-inference-gate"] == b"replaying"
            await client.close()
        assert [(answer.outcome.value, answer.cassette) for answer in answers] == [
            ("hit", f"realtime/{cassette_file.name}")
        ]
        silence = base64.b64encode(bytes(len(base64.b64decode("AAECAwQFBgc=")))).decode()
        expected = [
            {**event, "delta": silence} if event["type"] == "response.output_audio.delta" else event
            for event in recorded
        ]
        assert replayed == expected


async def test_audio_is_kept_when_the_setting_says_so(tmp_path: Path) -> None:
    with trio.fail_after(DEADLINE_S):
        recorded = await record_session(tmp_path, TinyUpstream(), conversation(), store_session_audio=True)
        async with running_gate(Settings(cache_dir=tmp_path), Mode.REPLAY) as gate:
            client, replayed = await talk(gate.port, conversation())
            await client.close()
    assert replayed == recorded


async def test_a_changed_client_event_gets_the_error_event_and_a_close(tmp_path: Path) -> None:
    with trio.fail_after(DEADLINE_S):
        await record_session(tmp_path, TinyUpstream(), conversation())
        async with running_gate(Settings(cache_dir=tmp_path), Mode.REPLAY) as gate:
            client, received = await talk(gate.port, conversation("What is the capital of Spain?"))
    error = received[-1]
    assert error["type"] == "error"
    assert error["error"]["code"] == "inference_gate_miss"
    assert error["error"]["event_id"] == "evt_client_random_1"
    message = error["error"]["message"]
    assert "client event 2" in message and "realtime/" in message
    assert 'item.content[0].text: recorded "What is the capital of France?"' in message
    assert (client.close_code, client.close_reason) == (1008, "inference-gate: no recorded session answers this event")


async def test_replay_with_no_recording_misses_at_the_first_event(tmp_path: Path) -> None:
    answers: list[Answer] = []
    with trio.fail_after(DEADLINE_S):
        async with running_gate(Settings(cache_dir=tmp_path), Mode.REPLAY, on_answer=answers.append) as gate:
            client = await WebSocketTestClient.connect(gate.port, "/v1/live/sessions")
            await client.send('{"type": "session.start", "session": {}}')
            error = orjson.loads(await client.receive())
            assert await client.receive() is None
    assert error["type"] == "error" and "no recorded session" in error["error"]["message"]
    assert client.close_code == 1008
    assert [answer.outcome.value for answer in answers] == ["miss"]


async def test_a_client_that_drops_mid_session_leaves_no_cassette(tmp_path: Path) -> None:
    answers: list[Answer] = []
    with trio.fail_after(DEADLINE_S):
        async with running_tiny_upstream(TinyUpstream()) as upstream:
            settings = Settings(cache_dir=tmp_path, upstream=f"http://127.0.0.1:{upstream.port}")
            async with running_gate(settings, Mode.RECORD, on_answer=answers.append) as gate:
                client, _ = await talk(gate.port, conversation()[:2])
                await client.stream.aclose()  # no close frame
                with trio.fail_after(2):
                    while not answers:
                        await trio.sleep(0.01)
    assert [answer.outcome.value for answer in answers] == ["passthrough"]
    assert "without a close handshake" in (answers[0].reason or "")
    assert not list(tmp_path.glob("**/*.json"))


async def test_a_key_offered_as_a_subprotocol_reaches_neither_upstream_nor_disk(tmp_path: Path) -> None:
    with trio.fail_after(DEADLINE_S):
        async with running_tiny_upstream(TinyUpstream()) as upstream:
            settings = Settings(cache_dir=tmp_path, upstream=f"http://127.0.0.1:{upstream.port}", api_key=GATE_KEY)
            async with running_gate(settings, Mode.RECORD) as gate:
                client, _ = await talk(
                    gate.port, conversation(), subprotocols=["realtime", f"openai-insecure-api-key.{CLIENT_KEY}"]
                )
                assert client.subprotocol == "realtime"
                await client.close()
        (upgrade,) = upstream.upgrades
        sent = dict(upgrade.headers)
        assert sent[b"authorization"] == f"Bearer {GATE_KEY}".encode()
        assert CLIENT_KEY.encode() not in b"".join(value for _, value in upgrade.headers)
    (cassette_file,) = (tmp_path / "realtime").glob("*.json")
    text = cassette_file.read_text()
    assert CLIENT_KEY not in text and GATE_KEY not in text
    assert orjson.loads(text)["request"]["subprotocol"] == "realtime"


async def test_a_paced_replay_takes_about_as_long_as_the_recording(tmp_path: Path) -> None:
    with trio.fail_after(DEADLINE_S):
        await record_session(tmp_path, TinyUpstream(delay_s=0.03), conversation())
        (cassette_file,) = (tmp_path / "realtime").glob("*.json")
        frames = orjson.loads(cassette_file.read_bytes())["frames"]
        recorded_s = (frames[-1]["at_ms"] - frames[0]["at_ms"]) / 1000
        async with running_gate(Settings(cache_dir=tmp_path, replay_speed=1.0), Mode.REPLAY) as gate:
            times: list[float] = []
            client, _ = await talk(gate.port, conversation(), times=times)
            replayed_s = times[-1] - times[0]  # from the first frame to the last, as `recorded_s` is measured
            await client.close()
    assert 0.8 * recorded_s <= replayed_s <= 1.25 * recorded_s + 0.05


async def test_with_a_fault_rate_a_replayed_session_fails_on_purpose_as_its_error(tmp_path: Path) -> None:
    answers: list[Answer] = []
    with trio.fail_after(DEADLINE_S):
        recorded = await record_session(tmp_path, TinyUpstream(), conversation())
        settings = Settings(cache_dir=tmp_path, fault_rate=1.0)
        seen = set()
        for seed in range(12):
            answers.clear()
            async with running_gate(replace(settings, fault_seed=seed), Mode.REPLAY, on_answer=answers.append) as gate:
                client, received = await talk(gate.port, conversation())
            ((outcome, reason),) = [(answer.outcome.value, answer.reason) for answer in answers]
            assert outcome == "error"
            seen.add(reason)
            assert received[0] == recorded[0]  # the opening is sent before the first answer, which fails
            if reason == "injected_fault: stream_cut":
                assert client.close_code == 1006
                assert len(received) < len(recorded)
            else:
                assert received[-1]["type"] == "error" and received[-1]["error"]["code"] == "injected_fault"
                assert client.close_code == (1013 if reason == "injected_fault: rate_limited" else 1011)
    assert seen == {"injected_fault: stream_cut", "injected_fault: rate_limited", "injected_fault: server_error"}


async def test_an_ephemeral_key_is_masked_in_its_cassette_and_kept_off_the_session_cassette(tmp_path: Path) -> None:
    from tests.plain_http import post_json
    from tests.servers import running_upstream
    from tools.fake_websocket import FakeWebSocketUpstream

    upstream = FakeWebSocketUpstream(expected_api_key=CLIENT_KEY)
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            settings = Settings(cache_dir=tmp_path, upstream=upstream.url)
            async with running_gate(settings, Mode.RECORD) as gate:
                minted = await post_json(
                    f"http://127.0.0.1:{gate.port}",
                    "/v1/realtime/client_secrets",
                    {"session": {"type": "realtime", "model": "gpt-realtime"}},
                    headers={"authorization": f"Bearer {CLIENT_KEY}"},
                )
                ephemeral = minted.json()["value"]
                assert ephemeral.startswith("ek_") and ephemeral != "ek_<redacted>"
                client = await WebSocketTestClient.connect(
                    gate.port, REALTIME, subprotocols=["realtime", f"openai-insecure-api-key.{ephemeral}"]
                )
                assert orjson.loads(await client.receive())["type"] == "session.created"
                await client.close()
    (secret_file,) = (tmp_path / "realtime.client_secrets").glob("*.json")
    assert orjson.loads(secret_file.read_bytes())["response"]["body"]["value"] == "ek_<redacted>"
    for cassette_file in tmp_path.glob("**/*.json"):
        assert ephemeral not in cassette_file.read_text() and CLIENT_KEY not in cassette_file.read_text()
    assert len(list((tmp_path / "realtime").glob("*.json"))) == 1


async def test_a_session_the_upstream_closes_is_recorded_and_its_close_passed_on(tmp_path: Path) -> None:
    answers: list[Answer] = []
    with trio.fail_after(DEADLINE_S):
        async with running_tiny_upstream(TinyUpstream(close_after=2)) as upstream:
            settings = Settings(cache_dir=tmp_path, upstream=f"http://127.0.0.1:{upstream.port}")
            async with running_gate(settings, Mode.RECORD, on_answer=answers.append) as gate:
                client, _ = await talk(gate.port, conversation())
    assert (client.close_code, client.close_reason) == (1000, "session over")
    assert [answer.outcome.value for answer in answers] == ["recorded"]
    (cassette_file,) = (tmp_path / "realtime").glob("*.json")
    stored = orjson.loads(cassette_file.read_bytes())
    assert stored["closed"] == {"by": "server", "code": 1000, "reason": "session over"}
    assert stored["summary"]["client_frames"] == 2


async def test_a_session_whose_upstream_vanishes_is_not_recorded(tmp_path: Path) -> None:
    answers: list[Answer] = []
    with trio.fail_after(DEADLINE_S):
        async with running_tiny_upstream(TinyUpstream(drop_after=2)) as upstream:
            settings = Settings(cache_dir=tmp_path, upstream=f"http://127.0.0.1:{upstream.port}")
            async with running_gate(settings, Mode.RECORD, on_answer=answers.append) as gate:
                client, _ = await talk(gate.port, conversation())
    assert client.close_code is not None
    assert [answer.outcome.value for answer in answers] == ["passthrough"]
    assert not list(tmp_path.glob("**/*.json"))


async def test_an_upstream_that_refuses_the_upgrade_is_answered_with_its_http_error(tmp_path: Path) -> None:
    from tests.servers import running_upstream
    from tests.websocket_client import Refused
    from tools.fake_websocket import FakeWebSocketUpstream

    with trio.fail_after(DEADLINE_S):
        async with running_upstream(FakeWebSocketUpstream(expected_api_key=GATE_KEY)) as upstream:
            settings = Settings(cache_dir=tmp_path, upstream=upstream.url)
            async with running_gate(settings, Mode.RECORD) as gate:
                try:
                    await WebSocketTestClient.connect(
                        gate.port, REALTIME, headers=[(b"authorization", f"Bearer {CLIENT_KEY}".encode())]
                    )
                except Refused as refused:
                    assert refused.status == 401
                    assert orjson.loads(refused.body)["error"]["code"] == "upstream_websocket_refused"
                else:
                    raise AssertionError("the upgrade was accepted")


async def test_with_two_takes_a_session_is_recorded_twice_and_replayed_in_order(tmp_path: Path) -> None:
    answers: list[Answer] = []
    with trio.fail_after(DEADLINE_S):
        async with running_tiny_upstream(TinyUpstream()) as upstream:
            settings = Settings(cache_dir=tmp_path, upstream=f"http://127.0.0.1:{upstream.port}", takes=2)
            async with running_gate(settings, Mode.RECORD, on_answer=answers.append) as gate:
                recordings = []
                for _ in range(3):
                    client, received = await talk(gate.port, conversation()[:2])
                    await client.close()
                    recordings.append(received)
        assert [answer.outcome.value for answer in answers] == ["recorded", "recorded", "passthrough"]
        assert "has its 2 take(s) already" in (answers[2].reason or "")
        (cassette_file,) = (tmp_path / "realtime").glob("*.json")
        assert len(orjson.loads(cassette_file.read_bytes())["takes"]) == 2
        async with running_gate(Settings(cache_dir=tmp_path), Mode.REPLAY) as gate:
            replays = []
            for _ in range(3):
                client, received = await talk(gate.port, conversation()[:2])
                await client.close()
                replays.append(received)
    assert recordings[0] != recordings[1]  # the tiny upstream numbers its sessions
    assert replays == [recordings[0], recordings[1], recordings[1]]


async def test_a_session_larger_than_the_recording_cap_is_relayed_whole_but_not_recorded(tmp_path: Path) -> None:
    answers: list[Answer] = []
    with trio.fail_after(DEADLINE_S):
        async with running_tiny_upstream(TinyUpstream()) as upstream:
            settings = Settings(
                cache_dir=tmp_path, upstream=f"http://127.0.0.1:{upstream.port}", max_recorded_bytes=400
            )
            async with running_gate(settings, Mode.RECORD, on_answer=answers.append) as gate:
                client, received = await talk(gate.port, conversation())
                await client.close()
    assert [event["type"] for event in received][-1] == "response.done"  # the client got it all
    assert [(answer.outcome.value, answer.reason) for answer in answers] == [
        ("passthrough", "the session outgrew max_recorded_bytes (400 bytes)")
    ]
    assert not list(tmp_path.glob("**/*.json"))
