"""The Responses API's WebSocket mode: a `response.create` answers the events of the streamed HTTP call, and a
connection chains only responses it produced."""

import orjson

from tools.fake_replies import response_events
from tools.fake_responses_socket import ResponsesSocketSession


def create(**fields) -> str:
    return orjson.dumps(
        {"type": "response.create", "model": "gpt-4o-mini", "input": "Name a colour", **fields}
    ).decode()


def test_the_events_are_the_streamed_http_calls():
    session = ResponsesSocketSession()
    events = session.receive(create()).events
    http_events = response_events({"model": "gpt-4o-mini", "input": "Name a colour"}, session.seed)
    assert events == http_events
    assert session.response_ids == [events[0]["response"]["id"]]


def test_a_chained_response_names_the_one_it_continues():
    session = ResponsesSocketSession()
    first = session.receive(create()).events[-1]["response"]["id"]
    completed = session.receive(create(previous_response_id=first)).events[-1]["response"]
    assert completed["previous_response_id"] == first
    assert completed["output"][0]["content"][0]["text"].endswith(f"(continuing {first})")


def test_refusals_are_error_events_with_a_status():
    session = ResponsesSocketSession()
    (unknown,) = session.receive(create(previous_response_id="resp_other")).events
    assert (unknown["status"], unknown["error"]["code"]) == (400, "previous_response_not_found")
    (missing,) = session.receive('{"type": "response.create", "input": "x"}').events
    assert (missing["status"], missing["error"]["param"]) == (400, "model")
    (not_found,) = session.receive(create(model="does-not-exist")).events
    assert (not_found["status"], not_found["error"]["code"]) == (404, "model_not_found")
    (wrong_type,) = session.receive('{"type": "response.cancel"}').events
    assert wrong_type["error"]["param"] == "type"


def test_a_stream_id_is_carried_by_every_answering_event():
    events = ResponsesSocketSession().receive(create(stream_id="lane-7")).events
    assert {event["stream_id"] for event in events} == {"lane-7"}


def test_the_reset_fault_drops_the_connection_halfway():
    turn = ResponsesSocketSession().receive(create(model="fault-reset-midstream"))
    assert turn.drop_after == len(turn.events) // 2 and turn.close is None
