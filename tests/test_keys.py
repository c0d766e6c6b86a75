import hashlib

import orjson
import pytest

from inference_gate.keys import KEY_SCHEME, canonicalize

RULES_LINE = b'rules:{"ignore":[],"normalize":[],"tool_call_ids":true,"version":1}\n'
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
