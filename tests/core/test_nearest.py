"""The diff engine on plain data: no store, no disk."""

from __future__ import annotations

import orjson

from inference_gate.core.cassette import Cassette, RecordedResponse, record_exchange
from inference_gate.core.key_rules import KeyRules
from inference_gate.core.keys import CanonicalRequest, canonicalize
from inference_gate.core.multipart import FormField
from inference_gate.core.nearest import (
    Difference,
    IndexedRequest,
    MissedRequest,
    closest,
    explain,
    flatten_json,
    json_differences,
    shared_prefix_length,
)
from tests.forms import content_type_for, form_body

CHAT = "/v1/chat/completions"
TRANSCRIPTIONS = "/v1/audio/transcriptions"


def request_for(body: dict):
    return canonicalize("POST", CHAT, orjson.dumps(body))


def recorded_cassette(body: dict) -> Cassette:
    response = RecordedResponse(status=200, headers={}, body=b"{}")
    return record_exchange(
        request_for(body), response, recorded_at="2026-11-27T10:00:00Z", headers={}, query=(), json_body=body
    )


def recorded(name: str, body: dict) -> IndexedRequest:
    return IndexedRequest.from_cassette(name, recorded_cassette(body))


def test_the_closest_candidate_is_the_one_with_fewest_differences():
    missed = request_for({"model": "gpt-4o-mini", "temperature": 0.5, "seed": 1})
    candidates = [
        recorded("chat.completions/far.json", {"model": "gpt-4o", "temperature": 1, "seed": 2}),
        recorded("chat.completions/near.json", {"model": "gpt-4o-mini", "temperature": 0.5, "seed": 2}),
    ]
    nearest = closest(candidates, MissedRequest(missed))
    assert nearest.name == "chat.completions/near.json"
    assert explain(nearest, missed) == "chat.completions/near.json differs at seed: recorded 2, got 1"


def test_json_differences_name_each_path_with_both_values():
    assert json_differences({"a": 1, "b": [1, 2]}, {"a": 2, "b": [1, 2]}) == [Difference("a", 1, 2)]
    assert json_differences({"a": 1}, {"a": 1}) == []


def test_flatten_json_paths_in_document_order():
    body = {"b": [1, {"c": None}], "a": {}, "odd key": {"x": []}, "e": []}
    assert list(flatten_json(body).items()) == [
        ("b[0]", 1),
        ("b[1].c", None),
        ("a", {}),
        ('["odd key"].x', []),
        ("e", []),
    ]
    assert flatten_json(5) == {"": 5}


def test_shared_prefix_length():
    assert shared_prefix_length("the quick brown fox", "the quick brown cat") == 16
    assert shared_prefix_length("abc", "abcdef") == 3
    assert shared_prefix_length("", "abc") == 0
    assert shared_prefix_length("x" * 10_000 + "a", "x" * 10_000 + "b") == 10_000


# key rules


IGNORE_USER = KeyRules.from_config(["body.user"])


def test_the_explanation_skips_what_a_rule_hid_and_says_it_did():
    missed = canonicalize(
        "POST", CHAT, orjson.dumps({"user": "trace-2", "model": "gpt-4o", "seed": 1}), rules=IGNORE_USER
    )
    cassette = IndexedRequest.from_cassette(
        "chat.completions/a.json", recorded_cassette({"user": "trace-1", "model": "gpt-4o", "seed": 2}), IGNORE_USER
    )
    assert explain(cassette, missed) == (
        "chat.completions/a.json differs at seed: recorded 2, got 1; a key rule hid the difference at user"
    )


def test_a_cassette_alike_but_for_hidden_values_was_keyed_under_other_rules():
    missed = canonicalize("POST", CHAT, orjson.dumps({"user": "trace-2", "model": "gpt-4o"}), rules=IGNORE_USER)
    cassette = IndexedRequest.from_cassette(
        "chat.completions/a.json", recorded_cassette({"user": "trace-1", "model": "gpt-4o"}), IGNORE_USER
    )
    assert explain(cassette, missed) == (
        "chat.completions/a.json, which differs only where a key rule hid the difference at user: it was keyed "
        "under other key rules; `inference-gate cache rekey --apply` renames it under the rules in force"
    )


def test_the_closest_candidate_is_found_after_the_rules():
    missed = canonicalize("POST", CHAT, orjson.dumps({"user": "u2", "model": "gpt-4o", "seed": 1}), rules=IGNORE_USER)
    candidates = [
        IndexedRequest.from_cassette(name, recorded_cassette(body), IGNORE_USER)
        for name, body in [
            ("chat.completions/same-user.json", {"user": "u2", "model": "gpt-4", "seed": 2}),
            ("chat.completions/other-user.json", {"user": "u1", "model": "gpt-4o", "seed": 1}),
        ]
    ]
    assert closest(candidates, MissedRequest(missed)).name == "chat.completions/other-user.json"


def test_an_upload_is_compared_by_its_fields():
    def upload(model: str, audio: bytes) -> CanonicalRequest:
        fields = [FormField("model", None, None, model.encode()), FormField("file", "a.wav", "audio/wav", audio)]
        return canonicalize("POST", TRANSCRIPTIONS, form_body(fields, "b1"), content_type=content_type_for("b1"))

    response = RecordedResponse(status=200, headers={}, body=b"{}")
    stored = record_exchange(
        upload("whisper-1", b"RIFF"), response, recorded_at="t", headers={}, query=(), json_body=None
    )
    cassette = IndexedRequest.from_cassette("audio.transcriptions/a.json", stored)
    assert explain(cassette, upload("whisper-2", b"RIFF")) == (
        'audio.transcriptions/a.json differs at [0].text: recorded "whisper-1", got "whisper-2"'
    )


def test_a_chained_request_is_compared_with_its_id_as_sent_not_its_chain_reference():
    recorded_body = {"model": "gpt-4o-mini", "input": "Go on", "previous_response_id": "resp_A"}
    missed_body = {**recorded_body, "input": "Go on, please"}
    missed = canonicalize("POST", CHAT, orjson.dumps(missed_body), chained={"resp_A": "a" * 64}.get)
    nearest = closest([recorded("responses/go-on.json", recorded_body)], MissedRequest(missed))
    assert explain(nearest, missed).startswith("responses/go-on.json differs at input:")
    assert "previous_response_id" not in explain(nearest, missed)
