"""The Realtime API fake's rules, one client event at a time."""

import base64

import orjson

from tools.fake_realtime import RealtimeSession, merged


def send(fake: RealtimeSession, **event) -> list[dict]:
    return fake.receive(orjson.dumps(event).decode()).events


def types(events: list[dict]) -> list[str]:
    return [event["type"] for event in events]


def user_text(text: str) -> dict:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def test_the_session_opens_with_session_created_and_updates_merge_into_it():
    session = RealtimeSession("gpt-realtime")
    (created,) = session.opening()
    assert created["type"] == "session.created" and created["session"]["model"] == "gpt-realtime"
    (updated,) = send(
        session, type="session.update", session={"type": "realtime", "audio": {"output": {"voice": "cedar"}}}
    )
    assert updated["session"]["audio"]["output"] == {**created["session"]["audio"]["output"], "voice": "cedar"}
    (refused,) = send(session, type="session.update", session={"instructions": "x"})
    assert refused["type"] == "error" and refused["error"]["param"] == "session.type"


def test_a_text_response_streams_deltas_that_add_up_to_the_done_text():
    session = RealtimeSession("gpt-realtime")
    send(session, type="session.update", session={"type": "realtime", "output_modalities": ["text"]})
    assert types(send(session, type="conversation.item.create", item=user_text("Hi"))) == [
        "conversation.item.added",
        "conversation.item.done",
    ]
    events = send(session, type="response.create")
    assert types(events)[:3] == ["response.created", "response.output_item.added", "conversation.item.added"]
    assert types(events)[-1] == "response.done"
    text = "".join(event["delta"] for event in events if event["type"] == "response.output_text.delta")
    (done,) = [event for event in events if event["type"] == "response.output_text.done"]
    assert text == done["text"] == events[-1]["response"]["output"][0]["content"][0]["text"]
    assert events[-1]["response"]["usage"]["total_tokens"] > 0


def test_committed_audio_becomes_a_user_item_answered_in_audio_with_a_transcript():
    session = RealtimeSession("gpt-realtime")
    assert send(session, type="input_audio_buffer.append", audio=base64.b64encode(b"\0\1" * 100).decode()) == []
    committed, added, done = send(session, type="input_audio_buffer.commit")
    assert committed["item_id"] == added["item"]["id"] == done["item"]["id"]
    assert done["item"]["content"] == [{"type": "input_audio", "transcript": None}]
    events = send(session, type="response.create")
    transcript = "".join(e["delta"] for e in events if e["type"] == "response.output_audio_transcript.delta")
    assert transcript.startswith("Echo: 200 bytes of audio")
    assert any(event["type"] == "response.output_audio.delta" for event in events)
    (empty,) = send(session, type="input_audio_buffer.commit")
    assert empty["error"]["code"] == "input_audio_buffer_commit_empty"


def test_with_tools_the_user_turn_is_answered_by_a_call_and_the_output_by_text():
    session = RealtimeSession("gpt-realtime")
    tool = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
    send(session, type="session.update", session={"type": "realtime", "tools": [tool], "output_modalities": ["text"]})
    send(session, type="conversation.item.create", item=user_text("Weather?"))
    call = send(session, type="response.create")[-1]["response"]["output"][0]
    assert (call["type"], call["name"], orjson.loads(call["arguments"])) == (
        "function_call",
        "get_weather",
        {"city": "Paris"},
    )
    output = {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}
    send(session, type="conversation.item.create", item=output)
    answer = send(session, type="response.create")[-1]["response"]["output"][0]
    assert answer["content"][0]["text"].startswith("Echo: The tool returned sunny")


def test_unknown_and_refused_events_name_what_was_wrong():
    session = RealtimeSession("gpt-realtime")
    (unknown,) = send(session, type="session.frobnicate", event_id="evt_1")
    assert unknown["error"]["param"] == "type" and unknown["error"]["event_id"] == "evt_1"
    (cancel,) = send(session, type="response.cancel")
    assert cancel["error"]["code"] == "response_cancel_not_active"
    (delete,) = send(session, type="conversation.item.delete", item_id="item_none")
    assert delete["error"]["code"] == "item_delete_invalid_item_id"


def test_merged_lays_an_update_over_nested_objects():
    assert merged({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"b": 9}, "e": 4}) == {"a": {"b": 9, "c": 2}, "d": 3, "e": 4}
