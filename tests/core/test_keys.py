import hashlib

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from inference_gate.core.key_rules import KeyRules
from inference_gate.core.keys import (
    KEY_SCHEME,
    MAX_JSON_DEPTH,
    JsonTooDeepError,
    canonicalize,
    multipart_key,
    nests_deeper_than,
    parsed_nests_deeper_than,
)
from inference_gate.core.multipart import FormField, MultipartError, key_form, key_form_of_stored, stored_form
from tests.forms import content_type_for, form_body

RULES_LINE = b'rules:{"ignore":[],"normalize":[],"tool_call_ids":true,"version":1}\n'
CHAT_PATH = "/v1/chat/completions"
TRANSCRIPTIONS = "/v1/audio/transcriptions"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "temperature": 0.2}


def key_of(body: object, method: str = "POST", target: str = "/v1/chat/completions") -> str:
    return canonicalize(method, target, orjson.dumps(body)).key


def test_key_order_and_whitespace_do_not_change_the_key():
    reordered = b'{ "temperature" : 0.2,\n "messages": [{"content": "Hi", "role": "user"}], "model": "gpt-4o-mini" }'
    assert canonicalize("POST", "/v1/chat/completions", reordered).key == key_of(CHAT)


@pytest.mark.parametrize(
    "changed",
    [
        {**CHAT, "temperature": 0.3},
        {**CHAT, "model": "gpt-4o"},
        {**CHAT, "stream": True},
        {**CHAT, "messages": [{"role": "user", "content": "Hi!"}]},
    ],
)
def test_every_value_changes_the_key(changed):
    assert key_of(changed) != key_of(CHAT)


def test_method_path_and_query_are_in_the_key():
    assert key_of(CHAT, target="/v1/responses") != key_of(CHAT)
    assert key_of(CHAT, method="PUT") != key_of(CHAT)
    assert key_of(CHAT, target="/v1/chat/completions?x=1") != key_of(CHAT)


def test_query_order_does_not_change_the_key():
    first = canonicalize("GET", "/v1/models?b=2&a=1", b"")
    second = canonicalize("GET", "/v1/models?a=1&b=2", b"")
    assert first.key == second.key
    assert first.query == (("a", "1"), ("b", "2"))


def test_the_key_is_a_documented_sha256_so_it_is_the_same_everywhere():
    body = b'{"b": 1, "a": [1.5, "\xc3\xa9"]}'
    expected = hashlib.sha256(
        KEY_SCHEME + RULES_LINE + b"POST /v1/embeddings\n\n" + b'json:{"a":[1.5,"\xc3\xa9"],"b":1}'
    ).hexdigest()
    assert canonicalize("post", "/v1/embeddings", body).key == expected
    assert expected == "e7aa42d16789fe337b7d852f80c0b6804b3ff423e248138547a574a37a5e145a"


def test_a_body_that_is_not_json_is_keyed_by_its_bytes():
    first = canonicalize("POST", "/v1/audio/transcriptions", b"--boundary\r\nabc")
    second = canonicalize("POST", "/v1/audio/transcriptions", b"--boundary\r\nabd")
    assert not first.is_json and first.json_body is None
    assert first.key != second.key
    expected = hashlib.sha256(
        KEY_SCHEME + RULES_LINE + b"POST /v1/audio/transcriptions\n\nbytes:--boundary\r\nabc"
    ).hexdigest()
    assert first.key == expected


def test_json_text_and_bytes_of_the_same_text_get_different_keys():
    as_json = canonicalize("POST", "/x", b"[1]")
    assert as_json.is_json and as_json.json_body == [1]
    assert as_json.key != canonicalize("POST", "/x", b"[1").key


def test_an_empty_body_is_not_json():
    request = canonicalize("GET", "/v1/models", b"")
    assert not request.is_json
    assert request.path == "/v1/models"


def test_a_multipart_body_is_keyed_by_its_fields_whatever_its_boundary():
    fields = [FormField("model", None, None, b"whisper-1"), FormField("file", "a.wav", "audio/wav", b"RIFF")]
    first = canonicalize("POST", TRANSCRIPTIONS, form_body(fields, "one"), content_type=content_type_for("one"))
    second = canonicalize("POST", TRANSCRIPTIONS, form_body(fields, "two"), content_type=content_type_for("two"))
    assert first.key == second.key
    assert first.form == tuple(fields) and not first.is_json
    expected = hashlib.sha256(
        KEY_SCHEME + RULES_LINE + b"POST /v1/audio/transcriptions\n\nmultipart:" + orjson.dumps(key_form(first.form))
    ).hexdigest()
    assert first.key == expected


def test_every_field_of_a_multipart_body_counts():
    fields = [FormField("model", None, None, b"whisper-1"), FormField("file", "a.wav", "audio/wav", b"RIFF")]
    keys = {
        canonicalize("POST", TRANSCRIPTIONS, form_body(changed, "b"), content_type=content_type_for("b")).key
        for changed in (
            fields,
            fields[::-1],
            [fields[0], FormField("file", "b.wav", "audio/wav", b"RIFF")],
            [fields[0], FormField("file", "a.wav", "audio/x-wav", b"RIFF")],
            [fields[0], FormField("file", "a.wav", "audio/wav", b"RIFX")],
        )
    }
    assert len(keys) == 5


def test_bad_multipart_is_an_error_not_a_byte_key():
    with pytest.raises(MultipartError, match="no closing boundary"):
        canonicalize(
            "POST",
            TRANSCRIPTIONS,
            b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\nv",
            content_type=content_type_for("b"),
        )


@given(
    fields=st.lists(
        st.builds(
            FormField,
            st.text(alphabet="abc", max_size=3),
            st.none() | st.just("f.bin"),
            st.none(),
            st.binary(max_size=8),
        ),
        max_size=3,
    ),
    first=st.text(alphabet="xyz0123456789", min_size=8, max_size=20),
    second=st.text(alphabet="XYZ0123456789", min_size=8, max_size=20),
)
def test_the_boundary_never_changes_the_key(fields, first, second):
    bodies = [(form_body(fields, boundary), content_type_for(boundary)) for boundary in (first, second)]
    first_key, second_key = (canonicalize("POST", TRANSCRIPTIONS, body, content_type=ct).key for body, ct in bodies)
    assert first_key == second_key


def test_credential_query_parameters_are_out_of_the_key_and_kept_apart():
    with_key = canonicalize("POST", "/v1beta/models/gemini:generateContent?key=AIzaSECRET&alt=sse", b"{}")
    other_key = canonicalize("POST", "/v1beta/models/gemini:generateContent?alt=sse&key=other", b"{}")
    assert (
        with_key.key
        == other_key.key
        == canonicalize("POST", "/v1beta/models/gemini:generateContent?alt=sse", b"{}").key
    )
    assert with_key.query == with_key.key_query == (("alt", "sse"),)
    assert with_key.credentials == (("key", "AIzaSECRET"),)


@pytest.mark.parametrize(
    "name",
    [
        "key",
        "api-key",
        "API_KEY",
        "apikey",
        "access_token",
        "token",
        "sig",
        "signature",
        "client_secret",
        "password",
        "x-goog-api-key",
    ],
)
def test_each_credential_parameter_is_dropped(name):
    request = canonicalize("GET", f"/v1/models?{name}=s3cret&api-version=2024-10-21", b"")
    assert request.query == (("api-version", "2024-10-21"),)
    assert request.credentials == ((name, "s3cret"),)


def test_harmless_query_parameters_stay_in_the_key():
    assert (
        canonicalize("GET", "/v1/models?api-version=1", b"").key
        != canonicalize("GET", "/v1/models?api-version=2", b"").key
    )


@pytest.mark.parametrize("depth", [100, MAX_JSON_DEPTH])
def test_a_json_body_nested_up_to_the_limit_keys_fine(depth):
    request = canonicalize("POST", "/x", b"[" * depth + b"]" * depth)
    assert request.is_json


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 200, 254, 255, 500, 1000, 1024, 1025, 100_000])
def test_a_json_body_nested_deeper_than_the_limit_is_refused_with_the_limit(depth):
    with pytest.raises(JsonTooDeepError, match=f"more than {MAX_JSON_DEPTH} levels"):
        canonicalize("POST", "/x", b'{"a":' * depth + b"1" + b"}" * depth)


def test_deep_nesting_is_counted_in_dicts_and_lists_alike():
    assert not nests_deeper_than({"a": [{"b": []}]}, 4)
    assert nests_deeper_than({"a": [{"b": [[]]}]}, 4)
    assert not nests_deeper_than("scalar", 0)


@pytest.mark.parametrize("source_type", [bytes, str])
def test_parsed_depth_is_walked_only_when_the_text_has_more_opening_brackets_than_the_limit(source_type):
    def source(value):
        text = orjson.dumps(value)
        return text if source_type is bytes else text.decode()

    deep = {"a": [{"b": [[]]}]}
    assert parsed_nests_deeper_than(source(deep), deep, 4)
    assert not parsed_nests_deeper_than(source(deep), deep, 5)
    # As many brackets as the limit cannot nest deeper, so the value is not looked at: a lie about it shows that.
    assert not parsed_nests_deeper_than(source({"a": [[]]}), deep, 3)
    brackets_in_strings = {"a": "[[[[{{{{"}
    assert not parsed_nests_deeper_than(source(brackets_in_strings), brackets_in_strings, 2)


def test_the_rules_in_force_are_part_of_the_key():
    body = orjson.dumps({**CHAT, "user": "trace-1"})
    ignoring_user = KeyRules.from_config(["body.user"])
    assert canonicalize("POST", CHAT_PATH, body, rules=ignoring_user).key != canonicalize("POST", CHAT_PATH, body).key
    assert (
        canonicalize("POST", CHAT_PATH, body, rules=ignoring_user).key
        == canonicalize("POST", CHAT_PATH, orjson.dumps({**CHAT, "user": "trace-2"}), rules=ignoring_user).key
    )


def test_the_key_is_computed_after_the_rules_while_the_request_stays_real():
    rules = KeyRules.from_config(
        ["query.request_id"], [{"path": "body.messages[*].content", "pattern": r"\d+", "replace": "N"}]
    )
    first = canonicalize(
        "POST",
        f"{CHAT_PATH}?request_id=1",
        orjson.dumps({**CHAT, "messages": [{"role": "user", "content": "day 1"}]}),
        rules=rules,
    )
    second = canonicalize(
        "POST",
        f"{CHAT_PATH}?request_id=2",
        orjson.dumps({**CHAT, "messages": [{"role": "user", "content": "day 2"}]}),
        rules=rules,
    )
    assert first.key == second.key
    assert first.query == (("request_id", "1"),) and first.key_query == ()
    assert first.json_body["messages"][0]["content"] == "day 1"
    assert first.key_json_body["messages"][0]["content"] == "day N"
    assert first.rule_changes == ("query.request_id", "body.messages[0].content")


def test_tool_call_ids_chosen_afresh_keep_the_key():
    def turn(call_id: str) -> bytes:
        return orjson.dumps(
            {
                **CHAT,
                "messages": [
                    {"role": "assistant", "tool_calls": [{"id": call_id, "type": "function"}]},
                    {"role": "tool", "tool_call_id": call_id, "content": "sun"},
                ],
            }
        )

    assert (
        canonicalize("POST", CHAT_PATH, turn("call_abc")).key == canonicalize("POST", CHAT_PATH, turn("call_xyz")).key
    )


def test_a_recorded_upload_is_rekeyed_from_its_stored_form_to_the_key_it_was_recorded_with():
    fields = [FormField("model", None, None, b"whisper-1"), FormField("file", "a.wav", "audio/wav", b"RIFF")]
    target = f"{TRANSCRIPTIONS}?api-key=secret&request_id=7"
    rules = KeyRules.from_config(["query.request_id"])
    recorded = canonicalize("POST", target, form_body(fields, "b"), content_type=content_type_for("b"), rules=rules)
    assert recorded.form is not None
    form_key = key_form_of_stored(stored_form(recorded.form))
    assert multipart_key("POST", target, form_key, rules=rules) == recorded.key
    assert multipart_key("POST", target, form_key) != recorded.key
