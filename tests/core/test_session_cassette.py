"""A session cassette's file: the same bytes for the same session, read back equal, a bad one refused."""

from dataclasses import replace

import orjson
import pytest

from inference_gate.core.cassette import CassetteError
from inference_gate.core.session_cassette import SessionClose, event_types, session_from_bytes, session_to_bytes
from inference_gate.core.websocket_session import Sender
from tests.sessions import realtime_session


def test_a_session_round_trips_through_its_bytes() -> None:
    session = realtime_session()
    data = session_to_bytes(session)
    assert session_from_bytes(data) == session
    assert session_to_bytes(session_from_bytes(data)) == data
    document = orjson.loads(data)
    assert document["kind"] == "websocket_session"
    assert document["summary"] == {
        "endpoint": "realtime", "model": "gpt-realtime", "client_frames": 2, "server_frames": 4,
        "duration_ms": 40, "prompt": "hello", "reply": "Hi there",
    }


def test_only_a_close_the_server_sent_is_replayed() -> None:
    session = realtime_session()
    assert session.replayable("a").server_close is None
    closed_by_server = replace(session, closed=SessionClose(Sender.SERVER, 1000, "session closed"))
    assert closed_by_server.replayable("a").server_close == (1000, "session closed")


def test_event_types_list_one_side() -> None:
    assert event_types(realtime_session(), Sender.CLIENT) == ["conversation.item.create", "response.create"]


@pytest.mark.parametrize(
    "data",
    [b"[]", b'{"format_version": 1}', b'{"format_version": 1, "kind": "websocket_session", "request": {}}',
     b'{"format_version": 1, "kind": "websocket_session", "key": "k", "request": {"path": "/v1/realtime"},'
     b' "frames": [{"from": "nobody", "at_ms": 0, "data": 1}]}'],
)
def test_a_malformed_session_file_is_refused(data: bytes) -> None:
    with pytest.raises(CassetteError):
        session_from_bytes(data)


def test_a_session_of_several_takes_keeps_them_in_order_and_replays_the_last_once_they_run_out() -> None:
    from inference_gate.core.session_cassette import SessionTake

    first, second = realtime_session(reply=("one",)), realtime_session(reply=("two",))
    both = first.with_takes([*first.takes, SessionTake("2026-01-02T00:00:00Z", second.frames, second.closed)])
    data = session_to_bytes(both)
    document = orjson.loads(data)
    assert "frames" not in document and [take["recorded_at"] for take in document["takes"]] == [
        "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"
    ]
    assert session_from_bytes(data) == both
    assert [both.replayable("x", index).frames for index in range(3)] == [first.frames, second.frames, second.frames]
    assert session_to_bytes(first).count(b'"takes"') == 0
