"""The diff engine on plain data: no store, no disk."""

from __future__ import annotations

import orjson

from inference_gate.cassette import RecordedResponse, record_exchange
from inference_gate.keys import canonicalize
from inference_gate.nearest.diff import (
    Difference,
    IndexedRequest,
    MissedRequest,
    closest,
    explain,
    flatten_json,
    json_differences,
    shared_prefix_length,
)

CHAT = "/v1/chat/completions"


def request_for(body: dict):
    return canonicalize("POST", CHAT, orjson.dumps(body))


def recorded(name: str, body: dict) -> IndexedRequest:
    response = RecordedResponse(status=200, headers={}, body=b"{}")
    cassette = record_exchange(
        request_for(body), response, recorded_at="2026-11-27T10:00:00Z", headers={}, query=(), json_body=body
    )
    return IndexedRequest.from_cassette(name, cassette)


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
