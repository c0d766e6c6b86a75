"""The Live sessions fake's rules, one client command at a time."""

import base64

import orjson

from tools.fake_live import LiveSession

DELEGATION = {"type": "responses", "responses": {"model": "gpt-4o-mini"}}


def send(fake: LiveSession, **event):
    return fake.receive(orjson.dumps(event).decode())


def started(**config) -> LiveSession:
    session = LiveSession()
    send(session, type="session.start", session={"model": "gpt-live-1", **config})
    return session


def test_nothing_but_session_start_is_accepted_first_and_start_only_once():
    session = LiveSession()
    assert session.opening() == []
    (early,) = send(session, type="session.close", event_id="c1").events
    assert early["type"] == "error" and early["client_event_id"] == "c1"
    (ok,) = send(session, type="session.start", session={"model": "gpt-live-1"}).events
    assert ok["type"] == "session.started" and ok["session"]["status"] == "active"
    assert ok["session"]["audio"]["output"]["voice"] == "marin"
    (again,) = send(session, type="session.start", session={"model": "gpt-live-1"}).events
    assert again["error"]["code"] == "invalid_session_state"


def test_an_utterance_is_transcribed_and_answered_on_the_timeline():
    session = started()
    events = send(session, type="session.input_audio.append", audio=base64.b64encode(b"\0" * 4800).decode()).events
    heard, *reply = events
    assert heard["type"] == "session.input_transcript.delta" and (heard["start_ms"], heard["end_ms"]) == (0, 100)
    transcripts = [event for event in reply if event["type"] == "session.output_transcript.delta"]
    assert "".join(event["delta"] for event in transcripts).startswith("Echo: 4800 bytes of audio")
    assert transcripts[0]["start_ms"] == 100 and transcripts[-1]["end_ms"] == session.timeline_ms
    assert sum(event["type"] == "session.output_audio.delta" for event in reply) == len(transcripts)


def test_a_delegated_response_wraps_the_responses_stream():
    session = started(delegation=DELEGATION)
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Book"}]}
    assert send(session, type="response.item.create", item=item).events == []
    created, *wrapped = send(session, type="response.create").events
    assert created["type"] == "session.delegation.created"
    assert {event["delegation_id"] for event in wrapped} == {created["delegation"]["id"]}
    assert wrapped[-1]["event"]["response"]["id"] == created["delegation"]["response_id"]


def test_responses_commands_need_responses_delegation():
    (refused,) = send(started(), type="response.create").events
    assert refused["error"]["code"] == "delegation_required"


def test_the_startup_settings_cannot_change():
    (refused,) = send(started(), type="session.update", session={"model": "other"}).events
    assert refused["error"]["param"] == "session.model"


def test_close_answers_session_closed_and_a_normal_close_frame():
    turn = send(started(), type="session.close")
    (closed,) = turn.events
    assert closed["type"] == "session.closed" and closed["reason"] == "close_requested"
    assert turn.close is not None and turn.close.code == 1000
