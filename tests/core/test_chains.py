import orjson

from inference_gate.core.cassette import RecordedResponse
from inference_gate.core.chains import CHAIN_REFERENCE, chained_response_id, produced_response_ids
from inference_gate.core.keys import canonicalize
from inference_gate.core.sse import SSEEvent

RESPONSES = "/v1/responses"


def continuing(previous_id: str) -> bytes:
    return orjson.dumps({"model": "gpt-4o-mini", "input": "And then?", "previous_response_id": previous_id})


def test_a_chained_request_is_keyed_by_the_cassette_that_produced_its_answer_not_by_the_id():
    producers = {"resp_first_take": "a" * 64, "resp_refreshed": "a" * 64}
    keyed = [canonicalize("POST", RESPONSES, continuing(i), chained=producers.get).key for i in producers]
    assert keyed[0] == keyed[1]
    [reference] = {
        canonicalize("POST", RESPONSES, continuing(i), chained=producers.get).key_json_body["previous_response_id"]
        for i in producers
    }
    assert reference == CHAIN_REFERENCE + "a" * 64


def test_an_id_no_cassette_produced_is_keyed_as_sent_and_a_request_that_does_not_chain_is_unchanged():
    unknown = canonicalize("POST", RESPONSES, continuing("resp_elsewhere"), chained={}.get)
    assert unknown.key == canonicalize("POST", RESPONSES, continuing("resp_elsewhere")).key
    assert unknown.key != canonicalize("POST", RESPONSES, continuing("resp_other"), chained={}.get).key
    plain = orjson.dumps({"model": "gpt-4o-mini", "input": "Hi"})
    assert canonicalize("POST", RESPONSES, plain, chained=lambda _: "b" * 64).key == canonicalize(
        "POST", RESPONSES, plain
    ).key


def test_the_stored_request_keeps_the_id_as_sent():
    canonical = canonicalize("POST", RESPONSES, continuing("resp_x"), chained=lambda _: "c" * 64)
    assert canonical.json_body["previous_response_id"] == "resp_x"
    assert chained_response_id(canonical.json_body) == "resp_x"


def test_produced_ids_come_from_a_body_or_from_a_streams_response_events():
    body = RecordedResponse(200, {}, body=orjson.dumps({"object": "response", "id": "resp_1", "output": []}))
    created = {"type": "response.created", "response": {"object": "response", "id": "resp_2"}}
    delta = {"type": "response.output_text.delta", "delta": "hi", "item_id": "msg_1"}
    completed = {"type": "response.completed", "response": {"object": "response", "id": "resp_2"}}
    events = [SSEEvent(orjson.dumps(data).decode(), event=data["type"]) for data in (created, delta, completed)]
    stream = RecordedResponse(200, {}, events=events)
    chat = RecordedResponse(200, {}, body=orjson.dumps({"object": "chat.completion", "id": "chatcmpl-1"}))
    assert (produced_response_ids(body), produced_response_ids(stream), produced_response_ids(chat)) == (
        ["resp_1"],
        ["resp_2"],
        [],
    )
