"""The session cassette's frames and the replay that follows them: plain data in, frames or a miss out."""

from __future__ import annotations

import base64
import hashlib

import pytest

from inference_gate.core.key_rules import KeyRules
from inference_gate.core.websocket_session import (
    Followed,
    Miss,
    RecordedSession,
    Sender,
    SessionFollower,
    SessionFrame,
    match_form,
    miss_event,
    restore_audio,
    session_key,
    stored_frame,
)

RULES = KeyRules.default()


def client(at_ms: int, data: object) -> SessionFrame:
    return SessionFrame(Sender.CLIENT, at_ms, data=data)


def server(at_ms: int, data: object) -> SessionFrame:
    return SessionFrame(Sender.SERVER, at_ms, data=data)


HELLO = RecordedSession(
    "realtime/hello.json",
    (
        server(5, {"type": "session.created"}),
        client(10, {"type": "conversation.item.create", "item": {"text": "hello"}}),
        server(12, {"type": "conversation.item.created"}),
        client(20, {"type": "response.create"}),
        server(40, {"type": "response.output_text.delta", "delta": "Hi"}),
        server(50, {"type": "response.done"}),
    ),
)
BYE = RecordedSession(
    "realtime/bye.json",
    (
        server(3, {"type": "session.created"}),
        client(8, {"type": "conversation.item.create", "item": {"text": "bye"}}),
        server(9, {"type": "conversation.item.created", "n": 2}),
    ),
)


def test_a_frame_round_trips_through_its_record() -> None:
    for frame in (client(1, {"type": "x"}), SessionFrame(Sender.SERVER, 2, text="not json"),
                  SessionFrame(Sender.CLIENT, 3, binary=b"\x00\x01")):
        assert SessionFrame.from_record(frame.to_record()) == frame


def test_a_message_is_parsed_as_json_and_kept_as_text_otherwise() -> None:
    assert SessionFrame.of_message(Sender.CLIENT, 0, '{"type": "a"}').data == {"type": "a"}
    assert SessionFrame.of_message(Sender.CLIENT, 0, "plain").text == "plain"
    assert SessionFrame.of_message(Sender.CLIENT, 0, b"\x01").binary == b"\x01"


@pytest.mark.parametrize("record", [[], {"from": "both", "at_ms": 1, "data": 1}, {"from": "client", "at_ms": -1},
                                    {"from": "client", "at_ms": 1}])
def test_a_malformed_frame_record_is_refused(record: object) -> None:
    with pytest.raises(ValueError, match="frame"):
        SessionFrame.from_record(record)


def test_replay_sends_the_opening_then_what_followed_each_client_frame() -> None:
    follower = SessionFollower([HELLO], RULES)
    assert [frame.data["type"] for frame in follower.opening()] == ["session.created"]
    first = follower.follow(client(0, {"type": "conversation.item.create", "item": {"text": "hello"}}))
    assert isinstance(first, Followed)
    assert [frame.data["type"] for frame in first.frames] == ["conversation.item.created"]
    assert (first.after_ms, first.ended) == (10, False)
    second = follower.follow(client(0, {"type": "response.create", "event_id": "evt_random"}))
    assert isinstance(second, Followed)
    assert [frame.at_ms - second.after_ms for frame in second.frames] == [20, 30]
    assert second.ended


def test_a_recording_the_server_closed_replays_its_close_after_its_last_frames() -> None:
    closed_by_server = RecordedSession(HELLO.name, HELLO.frames, server_close=(1000, "session closed"))
    follower = SessionFollower([closed_by_server], RULES)
    follower.opening()
    first = follower.follow(client(0, {"type": "conversation.item.create", "item": {"text": "hello"}}))
    last = follower.follow(client(0, {"type": "response.create"}))
    assert isinstance(first, Followed) and first.close is None
    assert isinstance(last, Followed) and last.ended and last.close == (1000, "session closed")
    by_client = SessionFollower([HELLO], RULES)  # HELLO's client closed it
    by_client.opening()
    by_client.follow(HELLO.frames[1])
    assert by_client.follow(HELLO.frames[3]).close is None


def test_the_client_frames_choose_among_recordings() -> None:
    follower = SessionFollower([HELLO, BYE], RULES)
    follower.opening()
    followed = follower.follow(client(0, {"type": "conversation.item.create", "item": {"text": "bye"}}))
    assert isinstance(followed, Followed)
    assert followed.session == "realtime/bye.json"
    assert followed.frames[0].data == {"type": "conversation.item.created", "n": 2}


def test_a_changed_client_frame_is_a_miss_naming_the_closest_and_the_first_difference() -> None:
    follower = SessionFollower([HELLO], RULES)
    follower.opening()
    missed = follower.follow(client(0, {"type": "conversation.item.create", "item": {"text": "howdy"}}))
    assert isinstance(missed, Miss)
    assert missed.closest == "realtime/hello.json"
    assert missed.difference == 'item.text: recorded "hello", received "howdy"'
    assert "client event 1" in missed.message() and "realtime/hello.json" in missed.message()


def test_a_client_frame_past_the_recording_is_a_miss() -> None:
    follower = SessionFollower([BYE], RULES)
    follower.opening()
    follower.follow(client(0, {"type": "conversation.item.create", "item": {"text": "bye"}}))
    missed = follower.follow(client(0, {"type": "response.create"}))
    assert isinstance(missed, Miss)
    assert "no more client events" in missed.difference


def test_with_no_recording_every_client_frame_misses() -> None:
    follower = SessionFollower([], RULES)
    assert follower.opening() == ()
    missed = follower.follow(client(0, {"type": "session.update"}))
    assert isinstance(missed, Miss) and missed.closest is None


def test_key_rules_apply_to_client_frames_as_to_a_body() -> None:
    rules = KeyRules.from_config(["body.session.instructions"])
    a = match_form(client(0, {"type": "session.update", "session": {"instructions": "a"}}), rules)
    b = match_form(client(0, {"type": "session.update", "session": {"instructions": "b"}}), rules)
    assert a == b == {"type": "session.update", "session": {}}


def test_audio_is_stored_by_digest_and_still_matches_exactly() -> None:
    audio = base64.b64encode(b"\x01\x02" * 100).decode()
    frame = client(0, {"type": "input_audio_buffer.append", "audio": audio})
    stored = stored_frame(frame, keep_audio=False)
    assert stored.data["audio"] == {
        "omitted_audio": {"sha256": hashlib.sha256(b"\x01\x02" * 100).hexdigest(), "bytes": 200}
    }
    assert stored_frame(frame, keep_audio=True) == frame
    assert match_form(stored, RULES) == match_form(frame, RULES)
    other = client(0, {"type": "input_audio_buffer.append", "audio": base64.b64encode(b"\x01\x03" * 100).decode()})
    assert match_form(other, RULES) != match_form(frame, RULES)


def test_omitted_server_audio_replays_as_silence_of_the_recorded_size() -> None:
    delta = base64.b64encode(b"\x07" * 48).decode()
    stored = stored_frame(server(0, {"type": "response.output_audio.delta", "delta": delta}), keep_audio=False)
    assert base64.b64decode(restore_audio(stored.data)["delta"]) == bytes(48)
    plain = {"type": "response.output_audio.delta", "delta": delta}
    assert restore_audio(plain) is plain


def test_the_session_key_depends_on_the_client_frames_and_query_only() -> None:
    forms = [match_form(client(0, {"type": "session.update"}), RULES)]
    key = session_key("/v1/realtime", [("model", "m")], forms, RULES)
    assert key == session_key("/v1/realtime", [("model", "m")], forms, RULES)
    assert key != session_key("/v1/realtime", [("model", "n")], forms, RULES)
    assert key != session_key("/v1/realtime", [("model", "m")], [*forms, *forms], RULES)


def test_the_miss_event_has_each_apis_error_shape() -> None:
    realtime = miss_event("realtime", "no", client_event_id="evt_1")
    assert realtime["type"] == "error" and realtime["error"]["event_id"] == "evt_1"
    assert realtime["error"]["code"] == "inference_gate_miss"
    assert miss_event("live.sessions", "no")["error"]["message"] == "no"
