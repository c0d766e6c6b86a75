import copy
from pathlib import Path

import orjson

from inference_gate.core.key_rules import KeyRules
from inference_gate.core.volatile import is_volatile_header, material_view
from tests.cassettes import EXAMPLES, example_name

STREAMED = EXAMPLES / example_name("chat.completions", "write-a-haiku-about-caching")
PLAIN = EXAMPLES / example_name("chat.completions", "what-is-the-weather-in-paris")


def example(path: Path) -> dict:
    return orjson.loads(path.read_bytes())


def rerecorded(document: dict) -> dict:
    """The same exchange recorded again: every volatile value is new."""
    again = copy.deepcopy(document)
    again["recorded_at"] = "2030-05-06T07:08:09Z"
    streamed = "events" in again["response"]
    again["response"]["timing"] = {"first_event_ms": 1, "last_event_ms": 2} if streamed else {"total_ms": 3}
    headers = again["response"]["headers"]
    headers["x-request-id"] = "req_new"
    headers["openai-processing-ms"] = "999"
    headers["x-ratelimit-remaining-tokens"] = "1"
    for event in again["response"].get("events", []):
        event["id"] = "42"
        if isinstance(event["data"], dict):
            event["data"].update(id="chatcmpl-new", created=2, system_fingerprint="fp_new", obfuscation="zz")
    body = again["response"].get("body")
    if isinstance(body, dict):
        body.update(id="chatcmpl-new", created=2, system_fingerprint="fp_new")
        for call in body["choices"][0]["message"].get("tool_calls") or []:
            call["id"] = "call_new"
    return again


def test_a_rerecording_with_new_volatile_values_has_the_same_material_view():
    for path in (STREAMED, PLAIN):
        document = example(path)
        assert material_view(rerecorded(document)) == material_view(document)


def test_text_usage_finish_reason_and_tool_calls_are_material():
    document = example(PLAIN)
    changes = [
        lambda body: body["choices"][0]["message"]["tool_calls"][0]["function"].update(arguments='{"city":"Rome"}'),
        lambda body: body["choices"][0].update(finish_reason="length"),
        lambda body: body["usage"].update(completion_tokens=99),
        lambda body: body.update(model="gpt-4o-2030-01-01"),
    ]
    for change in changes:
        changed = copy.deepcopy(document)
        change(changed["response"]["body"])
        assert material_view(changed) != material_view(document)
    streamed = example(STREAMED)
    streamed_changed = copy.deepcopy(streamed)
    streamed_changed["response"]["events"][1]["data"]["choices"][0]["delta"]["content"] = "Other"
    assert material_view(streamed_changed) != material_view(streamed)


def test_the_material_view_is_a_new_object_without_the_volatile_values():
    document = example(STREAMED)
    before = copy.deepcopy(document)
    view = material_view(document)
    assert document == before
    assert "recorded_at" not in view and view["key"] == document["key"]
    assert view["request"] == document["request"]
    first = view["response"]["events"][0]["data"]
    assert not {"id", "created", "system_fingerprint", "obfuscation"} & set(first)
    assert first["object"] == "chat.completion.chunk"
    assert view["response"]["headers"] == {
        name: value for name, value in document["response"]["headers"].items() if not is_volatile_header(name)
    }


def test_a_model_object_keeps_its_id_which_is_its_name():
    document = {"response": {"body": {"data": [{"id": "gpt-4o-mini", "object": "model", "created": 1}]}}}
    assert material_view(document) == document


def test_volatile_headers():
    assert all(
        is_volatile_header(name)
        for name in ("x-request-id", "X-Request-Id", "openai-processing-ms", "x-ratelimit-reset-tokens", "request-id")
    )
    assert not any(is_volatile_header(name) for name in ("content-type", "openai-version", "openai-organization"))


def as_takes(*documents: dict) -> dict:
    """A cassette of several takes whose takes are these one-take documents' answers."""
    several = {name: value for name, value in documents[0].items() if name not in ("recorded_at", "response")}
    several["takes"] = [{"recorded_at": doc["recorded_at"], "response": doc["response"]} for doc in documents]
    return several


def test_each_takes_volatile_values_are_left_out_and_its_text_is_kept():
    streamed, plain = example(STREAMED), example(PLAIN)
    assert material_view(as_takes(streamed, rerecorded(streamed))) == material_view(as_takes(streamed, streamed))
    changed = rerecorded(streamed)
    changed["response"]["events"][1]["data"]["choices"][0]["delta"]["content"] = "different words"
    assert material_view(as_takes(streamed, changed)) != material_view(as_takes(streamed, streamed))
    assert material_view(as_takes(plain, plain)) != material_view(as_takes(plain))


def with_request(body: dict, headers: dict | None = None) -> dict:
    document = example(PLAIN)
    document["request"]["body"] = body
    if headers is not None:
        document["request"]["headers"] = headers
    return document


def second_chat_turn(call_id: str) -> dict:
    return {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "tool_calls": [{"id": call_id, "type": "function", "function": {"name": "w"}}]},
            {"role": "tool", "tool_call_id": call_id, "content": "sunny"},
        ],
    }


def anthropic_tool_result(tool_use_id: str) -> dict:
    return {
        "model": "claude-x",
        "messages": [
            {"role": "assistant", "content": [{"type": "tool_use", "id": tool_use_id, "name": "w", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use_id, "content": "sunny"}]},
        ],
    }


def test_ids_minted_per_call_in_the_stored_request_are_volatile():
    pairs = [
        (second_chat_turn("call_aaa"), second_chat_turn("call_bbb")),
        (anthropic_tool_result("toolu_aaa"), anthropic_tool_result("toolu_bbb")),
        ({"model": "m", "input": "more", "previous_response_id": "resp_a"}, {"model": "m", "input": "more",
                                                                              "previous_response_id": "resp_b"}),
    ]
    for old, new in pairs:
        assert material_view(with_request(old)) == material_view(with_request(new)), old


def test_the_multipart_boundary_is_volatile_and_the_content_type_is_not():
    def form(content_type: str) -> dict:
        return material_view(with_request({}, {"content-type": content_type}))

    assert form("multipart/form-data; boundary=abc123") == form("multipart/form-data; boundary=\"x-y\"")
    assert form("multipart/form-data; boundary=abc123") != form("application/json")


def test_a_request_that_really_changed_still_counts():
    old, new = second_chat_turn("call_a"), second_chat_turn("call_a")
    new["messages"][2]["content"] = "raining"
    assert material_view(with_request(old)) != material_view(with_request(new))


def test_the_users_key_rules_apply_to_the_stored_request_too():
    rules = KeyRules.from_config(normalize=[{"path": "body.input", "pattern": r"\d{4}-\d{2}-\d{2}", "replace": "D"}])
    old, new = with_request({"input": "today is 2026-01-01"}), with_request({"input": "today is 2026-01-02"})
    assert material_view(old, rules) == material_view(new, rules)
    assert material_view(old) != material_view(new)
