"""The sessions' shared rules: a reply depends on every client event before it, bad JSON is an error event, and
audio must be base64."""

import base64

import pytest

from tools.fake_responses_socket import ResponsesSocketSession
from tools.fake_socket_session import ClientEventError, audio_description, decoded_audio, handler_for, synthetic_pcm

CREATE = '{"type": "response.create", "model": "gpt-4o-mini", "input": "hi"}'


def response_id(session: ResponsesSocketSession, message: str) -> str:
    return session.receive(message).events[0]["response"]["id"]


def test_the_same_conversation_gives_the_same_ids_and_another_history_other_ids():
    assert response_id(ResponsesSocketSession(), CREATE) == response_id(ResponsesSocketSession(), CREATE)
    after_history = ResponsesSocketSession()
    after_history.receive(CREATE)
    assert response_id(after_history, CREATE) != response_id(ResponsesSocketSession(), CREATE)


def test_a_salt_makes_ids_drift():
    assert response_id(ResponsesSocketSession(salt="a"), CREATE) != response_id(
        ResponsesSocketSession(salt="b"), CREATE
    )


@pytest.mark.parametrize("message", ["not json", "[1, 2]", '"text"'])
def test_a_message_that_is_not_a_json_object_is_an_error_event(message: str):
    (error,) = ResponsesSocketSession().receive(message).events
    assert error["type"] == "error" and error["error"]["code"] == "invalid_json"


def test_audio_must_be_base64_and_is_described_by_size_and_digest():
    assert decoded_audio(base64.b64encode(b"\x01\x02").decode(), param="audio") == b"\x01\x02"
    with pytest.raises(ClientEventError) as refused:
        decoded_audio("not base64!", param="audio")
    assert refused.value.param == "audio" and refused.value.code == "invalid_value"
    assert audio_description(b"\0" * 10).startswith("10 bytes of audio (")
    assert audio_description(b"\0" * 10) != audio_description(b"\1" * 10)


def test_synthetic_pcm_has_the_size_asked_and_depends_on_the_text():
    assert len(synthetic_pcm("a", 4800)) == 4800
    assert synthetic_pcm("a", 64) == synthetic_pcm("a", 64) != synthetic_pcm("b", 64)


def test_an_event_of_no_known_type_is_the_apis_invalid_value_naming_the_supported_ones():
    handlers = {"session.update": dict, "response.create": dict}
    assert handler_for(handlers, {"type": "response.create"}) is dict
    with pytest.raises(ClientEventError) as refused:
        handler_for(handlers, {"type": "response.explode"})
    assert (refused.value.code, refused.value.param) == ("invalid_value", "type")
    assert "'response.explode'" in refused.value.message
    assert "'session.update', 'response.create'" in refused.value.message
