import hashlib

import orjson
import pytest

from inference_gate.core.cassette import (
    FORMAT_VERSION,
    BodyTiming,
    Cassette,
    CassetteError,
    RecordedRequest,
    RecordedResponse,
    StreamTiming,
    Take,
    cassette_from_bytes,
    cassette_to_bytes,
    event_data_value,
    record_exchange,
)
from inference_gate.core.keys import MAX_JSON_DEPTH, canonicalize
from inference_gate.core.multipart import FormField
from inference_gate.core.sse import SSEEvent, SSEParser
from tests.cassettes import EXAMPLES
from tests.forms import content_type_for, form_body

REQUEST_BODY = {"model": "gpt-4o-mini", "temperature": 0, "messages": [{"role": "user", "content": "Say hé"}]}


def chat_cassette(**response_fields) -> Cassette:
    response = RecordedResponse(status=200, headers={"content-type": "application/json"}, **response_fields)
    return Cassette(
        key="ab" * 32,
        request=RecordedRequest(
            method="POST",
            path="/v1/chat/completions",
            query=[],
            headers={"openai-beta": "x"},
            body=orjson.dumps(REQUEST_BODY),
            json_body=REQUEST_BODY,
            is_json=True,
        ),
        takes=[Take("2026-11-27T10:00:00Z", response)],
    ).with_summary()


def stream_events() -> list[SSEEvent]:
    chunks = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
        {"choices": [{"index": 0, "delta": {"content": "Bonjour "}}]},
        {"choices": [{"index": 0, "delta": {"content": "à tous 🌍"}}]},
    ]
    return [SSEEvent(data=orjson.dumps(chunk).decode()) for chunk in chunks] + [SSEEvent(data="[DONE]")]


def test_bytes_are_pretty_sorted_utf8_with_a_trailing_newline():
    body = orjson.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": "Salut à toi"}}]})
    data = cassette_to_bytes(chat_cassette(body=body))
    assert data.endswith(b"}\n")
    assert "Salut à toi".encode() in data  # readable, not \u-escaped
    assert b'\n  "format_version": 1,\n' in data
    stored = orjson.loads(data)
    assert list(stored) == sorted(stored)
    assert stored["request"]["body"] == REQUEST_BODY  # a JSON object, not an escaped string
    assert stored["response"]["body"]["choices"][0]["message"]["content"] == "Salut à toi"


def test_serialising_twice_gives_the_same_bytes():
    body = orjson.dumps({"z": 1, "a": [1, 2]})
    assert cassette_to_bytes(chat_cassette(body=body)) == cassette_to_bytes(chat_cassette(body=body))


def test_round_trip_of_a_json_response():
    body = orjson.dumps({"id": "x", "choices": []})
    cassette = chat_cassette(body=body)
    loaded = cassette_from_bytes(cassette_to_bytes(cassette))
    assert loaded.key == cassette.key
    assert loaded.request.json_body == REQUEST_BODY
    assert loaded.request.headers == {"openai-beta": "x"}
    assert orjson.loads(loaded.takes[0].response_body_bytes()) == orjson.loads(body)
    assert loaded.summary == cassette.summary


def test_a_stream_is_stored_as_events_with_parsed_data_and_replays_the_same_events():
    cassette = chat_cassette(events=stream_events())
    stored = orjson.loads(cassette_to_bytes(cassette))
    assert stored["response"]["events"][1] == {"data": {"choices": [{"delta": {"content": "Bonjour "}, "index": 0}]}}
    assert stored["response"]["events"][-1] == {"data": "[DONE]"}
    replayed = SSEParser().feed(cassette_from_bytes(cassette_to_bytes(cassette)).takes[0].response_body_bytes())
    assert [orjson.loads(e.data) for e in replayed[:-1]] == [orjson.loads(e.data) for e in stream_events()[:-1]]
    assert replayed[-1].data == "[DONE]"
    assert cassette.summary["reply"] == "Bonjour à tous 🌍"
    assert cassette.summary["stream"] is True


def test_named_events_keep_their_names():
    events = [SSEEvent(data='{"type":"response.created"}', event="response.created")]
    loaded = cassette_from_bytes(cassette_to_bytes(chat_cassette(events=events)))
    assert loaded.response.events == [SSEEvent(data='{"type":"response.created"}', event="response.created")]


def test_scalar_event_data_stays_text_so_the_mapping_is_one_to_one():
    assert event_data_value("[DONE]") == "[DONE]"
    assert event_data_value('"quoted"') == '"quoted"'
    assert event_data_value("42") == "42"
    assert event_data_value("{not json") == "{not json"
    assert event_data_value('{"a": 1}') == {"a": 1}


def test_binary_and_text_bodies_round_trip():
    for body in (b"\x00\xffbinary", "plain text é".encode()):
        cassette = chat_cassette(body=body)
        assert cassette_from_bytes(cassette_to_bytes(cassette)).response.body == body


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"format_version": 99}', "unknown format_version 99"),
        (orjson.dumps({"format_version": FORMAT_VERSION, "key": "k"}), "malformed cassette"),
        (
            orjson.dumps({"format_version": FORMAT_VERSION, "key": "k", "request": {}, "response": {"status": 200}}),
            "malformed cassette",
        ),
    ],
)
def test_bad_files_raise_a_readable_error(data, message):
    with pytest.raises(CassetteError, match=message):
        cassette_from_bytes(data)


def test_record_exchange_keeps_the_canonical_request_and_the_stored_headers_and_body():
    body = orjson.dumps(REQUEST_BODY)
    request = canonicalize("POST", "/v1/chat/completions?api-version=1", body)
    response = RecordedResponse(status=200, headers={}, body=b'{"choices": []}')
    stored_body = {**REQUEST_BODY, "messages": "[redacted]"}
    cassette = record_exchange(
        request,
        response,
        recorded_at="2026-11-27T10:00:00Z",
        headers={"openai-beta": "x"},
        query=request.query,
        json_body=stored_body,
    )
    assert cassette.key == request.key
    assert cassette.request == RecordedRequest(
        method="POST",
        path="/v1/chat/completions",
        query=[["api-version", "1"]],
        headers={"openai-beta": "x"},
        body=body,
        json_body=stored_body,
        is_json=True,
    )
    assert cassette.response is response
    assert cassette.summary["model"] == "gpt-4o-mini"


def edited(cassette: Cassette, **response_fields) -> bytes:
    """The cassette's bytes after a hand edit of its stored response."""
    document = orjson.loads(cassette_to_bytes(cassette))
    document["response"].update(response_fields)
    return orjson.dumps(document)


@pytest.mark.parametrize(
    ("response_fields", "field"),
    [
        ({"status": 204}, "response.status 204"),
        ({"status": 304}, "response.status 304"),
        ({"status": 99}, "response.status 99"),
        ({"status": 199}, "response.status 199"),
        ({"status": 600}, "response.status 600"),
        ({"headers": {"x-request-id": "abc\r\nset-cookie: a=b"}}, "response.headers.x-request-id"),
        ({"headers": {"x-request-id": "abc\x00"}}, "response.headers.x-request-id"),
        ({"headers": {"x-bad\nname": "1"}}, "response.headers: 'x-bad\\nname'"),
        ({"headers": {"": "1"}}, "response.headers: ''"),
    ],
)
def test_a_response_that_cannot_go_back_on_the_wire_is_a_corrupt_cassette_naming_the_field(response_fields, field):
    with pytest.raises(CassetteError) as raised:
        cassette_from_bytes(edited(chat_cassette(body=b'{"ok": true}'), **response_fields))
    assert str(raised.value).startswith(field)


def test_a_bodyless_status_with_no_body_and_a_tab_in_a_header_value_are_fine():
    cassette = cassette_from_bytes(edited(chat_cassette(), status=204, headers={"x-request-id": "a\tb"}))
    assert cassette.response.status == 204 and cassette.response.headers == {"x-request-id": "a\tb"}


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ("a string", "response.events must be a list of events, not str"),
        ({"data": "x"}, "response.events must be a list of events, not dict"),
        (["x"], "response.events holds str 'x', not an event object with data"),
        ([{"event": "ping"}], "response.events holds dict"),
    ],
)
def test_events_of_the_wrong_type_say_so(events, message):
    with pytest.raises(CassetteError) as raised:
        cassette_from_bytes(edited(chat_cassette(events=[]), events=events))
    assert message in str(raised.value) and "nests too deep" not in str(raised.value)


@pytest.mark.parametrize(("depth", "message"), [(300, "nests too deep to be sent again"), (2000, "not valid JSON")])
def test_a_body_nested_deeper_than_orjson_writes_is_a_corrupt_cassette(depth, message):
    deep = b"[" * depth + b"]" * depth
    data = edited(chat_cassette(body=b"{}")).replace(b'"body":{}', b'"body":' + deep)
    with pytest.raises(CassetteError, match=message):
        cassette_from_bytes(data)


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 300])
def test_a_response_body_too_deep_to_store_as_json_is_stored_as_text(depth):
    deep = b"[" * depth + b"]" * depth
    for cassette in (chat_cassette(body=deep), chat_cassette(events=[SSEEvent(data=deep.decode())])):
        replayed = cassette_from_bytes(cassette_to_bytes(cassette)).takes[0]
        assert replayed.response_body_bytes() == cassette.takes[0].response_body_bytes()
def chat_body(text: str, *, response_id: str = "chatcmpl-1") -> bytes:
    return orjson.dumps({"id": response_id, "choices": [{"index": 0, "message": {"content": text}}]})


def three_takes() -> Cassette:
    first = chat_cassette(body=chat_body("one"))
    later = [
        Take(f"2026-11-27T10:00:0{second}Z", RecordedResponse(200, {"content-type": "application/json"}, body))
        for second, body in ((1, chat_body("two")), (2, chat_body("three")))
    ]
    return first.with_takes([*first.takes, *later])


def test_a_one_take_file_keeps_the_shape_without_a_takes_list():
    stored = orjson.loads(cassette_to_bytes(chat_cassette(body=chat_body("one"))))
    assert "takes" not in stored
    assert stored["recorded_at"] == "2026-11-27T10:00:00Z" and stored["response"]["status"] == 200


def test_several_takes_round_trip_in_order_each_with_its_recorded_at():
    data = cassette_to_bytes(three_takes())
    stored = orjson.loads(data)
    assert "response" not in stored and "recorded_at" not in stored
    assert [take["recorded_at"] for take in stored["takes"]] == [
        "2026-11-27T10:00:00Z",
        "2026-11-27T10:00:01Z",
        "2026-11-27T10:00:02Z",
    ]
    loaded = cassette_from_bytes(data)
    texts = [orjson.loads(take.response_body_bytes())["choices"][0]["message"]["content"] for take in loaded.takes]
    assert texts == ["one", "two", "three"]
    assert cassette_to_bytes(loaded) == data


def test_a_version_1_file_written_before_takes_reads_as_one_take():
    (file,) = (EXAMPLES / "chat.completions").glob("say-hello-in-french.*.json")
    data = file.read_bytes()
    cassette = cassette_from_bytes(data)
    assert len(cassette.takes) == 1 and cassette.takes[0].recorded_at == orjson.loads(data)["recorded_at"]
    assert cassette_to_bytes(cassette) == data


def test_an_empty_takes_list_is_a_malformed_cassette():
    stored = orjson.loads(cassette_to_bytes(three_takes()))
    stored["takes"] = []
    with pytest.raises(CassetteError, match="takes"):
        cassette_from_bytes(orjson.dumps(stored))


# multipart uploads


WAV_BYTES = b"RIFF\x00\x01wave"


def upload_cassette(*, store_file_contents: bool = False) -> Cassette:
    fields = [
        FormField("file", "hello.wav", "audio/wav", WAV_BYTES),
        FormField("model", None, None, b"whisper-1"),
    ]
    canonical = canonicalize(
        "POST", "/v1/audio/transcriptions", form_body(fields, "b0und"), content_type=content_type_for("b0und")
    )
    response = RecordedResponse(status=200, headers={"content-type": "application/json"}, body=b'{"text":"hi"}')
    return record_exchange(
        canonical,
        response,
        recorded_at="2026-11-27T10:00:00Z",
        headers={"content-type": "multipart/form-data"},
        query=canonical.query,
        json_body=None,
        store_file_contents=store_file_contents,
    )


def test_an_upload_is_stored_as_its_fields_not_its_body():
    stored = orjson.loads(cassette_to_bytes(upload_cassette()))["request"]
    assert "body_text" not in stored and "body_base64" not in stored
    assert stored["form"] == [
        {
            "name": "file",
            "filename": "hello.wav",
            "content_type": "audio/wav",
            "size_bytes": 10,
            "sha256": hashlib.sha256(WAV_BYTES).hexdigest(),
        },
        {"name": "model", "text": "whisper-1"},
    ]


def test_an_uploads_file_bytes_are_stored_only_when_asked():
    stored = orjson.loads(cassette_to_bytes(upload_cassette(store_file_contents=True)))["request"]
    assert stored["form"][0]["content_base64"] == "UklGRgABd2F2ZQ=="


def test_an_uploads_summary_names_its_model_and_files_and_the_form_reads_back():
    cassette = upload_cassette()
    assert cassette.summary["model"] == "whisper-1"
    assert cassette.summary["files"] == ["hello.wav"]
    again = cassette_from_bytes(cassette_to_bytes(cassette))
    assert again.request.form == cassette.request.form
    assert cassette_to_bytes(again) == cassette_to_bytes(cassette)


def test_a_streams_timing_is_two_numbers_and_a_bodys_one_and_both_round_trip():
    stream = chat_cassette(events=stream_events(), timing=StreamTiming(first_event_ms=412, last_event_ms=2210))
    body = chat_cassette(body=b"{}", timing=BodyTiming(total_ms=830))
    stored_timing = orjson.loads(cassette_to_bytes(stream))["response"]["timing"]
    assert stored_timing == {"first_event_ms": 412, "last_event_ms": 2210}
    assert orjson.loads(cassette_to_bytes(body))["response"]["timing"] == {"total_ms": 830}
    for cassette in (stream, body):
        assert cassette_from_bytes(cassette_to_bytes(cassette)).response.timing == cassette.response.timing


def test_a_cassette_without_timing_has_none_and_writes_none():
    cassette = chat_cassette(body=b"{}")
    assert "timing" not in orjson.loads(cassette_to_bytes(cassette))["response"]
    assert cassette_from_bytes(cassette_to_bytes(cassette)).response.timing is None


def test_each_take_keeps_its_own_timing():
    first = RecordedResponse(200, {}, b"{}", timing=BodyTiming(100))
    later = RecordedResponse(200, {}, b"{}", timing=BodyTiming(900))
    cassette = chat_cassette(body=b"{}").with_takes([Take("t1", first), Take("t2", later)])
    loaded = cassette_from_bytes(cassette_to_bytes(cassette))
    assert [take.response.timing for take in loaded.takes] == [BodyTiming(100), BodyTiming(900)]


@pytest.mark.parametrize(
    ("timing", "message"),
    [
        ([], "must be an object"),
        ({"total_ms": -1}, "whole non-negative milliseconds"),
        ({"total_ms": 1.5}, "whole non-negative milliseconds"),
        ({"total_ms": True}, "whole non-negative milliseconds"),
        ({"first_event_ms": 500, "last_event_ms": 100}, "last_event_ms is before first_event_ms"),
        ({"first_event_ms": 100}, "either first_event_ms and last_event_ms, or total_ms"),
        ({"total_ms": 1, "first_event_ms": 0, "last_event_ms": 1}, "either first_event_ms"),
    ],
)
def test_a_malformed_timing_is_a_malformed_cassette(timing, message):
    document = orjson.loads(cassette_to_bytes(chat_cassette(body=b"{}")))
    document["response"]["timing"] = timing
    with pytest.raises(CassetteError, match=message):
        cassette_from_bytes(orjson.dumps(document))


def test_a_cassette_holds_its_takes_so_a_take_added_to_them_is_kept():
    cassette = chat_cassette(body=b'{"reply":"one"}')
    cassette.takes.append(Take("2026-11-28T10:00:00Z", RecordedResponse(200, {}, b'{"reply":"two"}')))
    again = cassette_from_bytes(cassette_to_bytes(cassette))
    assert [take.response.body for take in again.takes] == [b'{"reply":"one"}', b'{"reply":"two"}']
    assert again.recorded_at == "2026-11-27T10:00:00Z"


def test_a_named_route_is_stored_with_the_request_and_a_dialects_own_is_not_written():
    body = orjson.dumps({"id": "x", "choices": []})
    plain = chat_cassette(body=body)
    assert b'"route"' not in cassette_to_bytes(plain)
    plain.request.route = "ollama"
    data = cassette_to_bytes(plain)
    assert orjson.loads(data)["request"]["route"] == "ollama"
    loaded = cassette_from_bytes(data)
    assert loaded.request.route == "ollama"
    assert loaded.with_takes(loaded.takes).request.route == "ollama"  # a new take keeps it


def test_a_route_that_is_not_a_name_is_a_malformed_cassette():
    stored = orjson.loads(cassette_to_bytes(chat_cassette(body=b"{}")))
    stored["request"]["route"] = 7
    with pytest.raises(CassetteError, match=r"request\.route must be a route name"):
        cassette_from_bytes(orjson.dumps(stored))
