"""core/drift.py: the level of every kind of drift, for every dialect, from plain cassette documents."""

from __future__ import annotations

from typing import Any

import pytest

from inference_gate.core.drift import (
    MAX_DIFFERENCES_PER_LEVEL,
    Difference,
    Drift,
    Level,
    compare_answers,
    compare_sessions,
)

TEXT = "Bonjour tout le monde"
REWORDED = "Salut à tous"
TOOL = ("get_weather", {"city": "Paris"})


def chat(text=TEXT, *, finish="stop", tool=None, ident="1", extra=None, refusal=None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": None if tool else text, "refusal": refusal}
    if tool:
        arguments = "{" + ",".join(f'"{key}":"{value}"' for key, value in tool[1].items()) + "}"
        message["tool_calls"] = [{"id": f"call_{ident}", "type": "function",
                                  "function": {"name": tool[0], "arguments": arguments}}]  # fmt: skip
    body = {
        "id": f"chatcmpl-{ident}",
        "created": int(ident),
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 5, "completion_tokens": len(text) // 4},
        **(extra or {}),
    }
    return body


def responses(text=TEXT, *, finish="completed", tool=None, ident="1", extra=None, refusal=None) -> dict[str, Any]:
    if tool:
        item = {"type": "function_call", "id": f"fc_{ident}", "call_id": f"call_{ident}", "name": tool[0],
                "arguments": "{" + ",".join(f'"{key}":"{value}"' for key, value in tool[1].items()) + "}"}  # fmt: skip
    else:
        part = {"type": "refusal", "refusal": refusal} if refusal else {"type": "output_text", "text": text}
        item = {"type": "message", "id": f"msg_{ident}", "role": "assistant", "content": [part]}
    return {
        "id": f"resp_{ident}",
        "object": "response",
        "created_at": int(ident),
        "status": finish,
        "model": "gpt-4o-mini",
        "output": [item],
        "usage": {"input_tokens": 5, "output_tokens": len(text) // 4},
        **(extra or {}),
    }


def anthropic(text=TEXT, *, finish="end_turn", tool=None, ident="1", extra=None, refusal=None) -> dict[str, Any]:
    block = {"type": "tool_use", "id": f"toolu_{ident}", "name": tool[0], "input": tool[1]} if tool else {
        "type": "text", "text": text}  # fmt: skip
    return {
        "id": f"msg_{ident}",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4",
        "content": [block],
        "stop_reason": "refusal" if refusal else finish,
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": len(text) // 4},
        **(extra or {}),
    }


def gemini(text=TEXT, *, finish="STOP", tool=None, ident="1", extra=None, refusal=None) -> dict[str, Any]:
    part = {"functionCall": {"name": tool[0], "args": tool[1]}} if tool else {"text": text}
    body = {
        "candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": finish, "index": 0}],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": len(text) // 4},
        "modelVersion": "gemini-2.0-flash",
        "responseId": f"resp-{ident}",
        **(extra or {}),
    }
    if refusal:
        body = {key: value for key, value in body.items() if key != "candidates"}
        body["promptFeedback"] = {"blockReason": "SAFETY"}
    return body


DIALECTS = {
    "openai chat": ("/v1/chat/completions", chat, "stop", "length"),
    "azure chat": ("/openai/deployments/gpt-4o/chat/completions", chat, "stop", "content_filter"),
    "openai responses": ("/v1/responses", responses, "completed", "incomplete"),
    "anthropic": ("/v1/messages", anthropic, "end_turn", "max_tokens"),
    "gemini": ("/v1beta/models/gemini-2.0-flash:generateContent", gemini, "STOP", "MAX_TOKENS"),
}


def document(path: str, body: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = {"status": status, "headers": headers or {"content-type": "application/json"}, "body": body}
    return {"format_version": 1, "request": {"method": "POST", "path": path}, "response": response}


def drift_of(dialect: str, recorded: dict[str, Any], fresh: dict[str, Any], **fresh_options: Any) -> Drift:
    path = DIALECTS[dialect][0]
    return compare_answers(document(path, recorded), document(path, fresh, **fresh_options))


def places(drift: Drift) -> set[str]:
    return {difference.where for difference in drift.differences}


@pytest.fixture(params=sorted(DIALECTS))
def dialect(request: pytest.FixtureRequest) -> str:
    return request.param


def test_new_ids_and_timestamps_are_the_same_answer(dialect: str):
    _, build, _, _ = DIALECTS[dialect]
    headers = {"content-type": "application/json", "x-request-id": "req_2", "openai-processing-ms": "99"}
    assert drift_of(dialect, build(ident="1"), build(ident="2"), headers=headers) == Drift(Level.SAME)


def test_reworded_text_is_wording_at_the_text_s_path(dialect: str):
    _, build, _, _ = DIALECTS[dialect]
    drift = drift_of(dialect, build(), build(REWORDED))
    text_paths = {
        "openai chat": "body.choices[*].message.content",
        "azure chat": "body.choices[*].message.content",
        "openai responses": "body.output[*]{message}.content[*]{output_text}.text",
        "anthropic": "body.content[*]{text}.text",
        "gemini": "body.candidates[*].content.parts[*].text",
    }
    assert drift.level is Level.WORDING
    assert Difference(Level.WORDING, text_paths[dialect], f'"{TEXT}" -> "{REWORDED}"') in drift.differences


def test_another_finish_reason_is_behaviour(dialect: str):
    _, build, finish, other = DIALECTS[dialect]
    drift = drift_of(dialect, build(finish=finish), build(finish=other))
    assert drift.level is Level.BEHAVIOUR
    assert Difference(Level.BEHAVIOUR, "finish reason", f"{finish} -> {other}") in drift.differences


def test_another_tool_or_other_argument_keys_is_behaviour(dialect: str):
    _, build, _, _ = DIALECTS[dialect]
    other_tool = drift_of(dialect, build(tool=TOOL), build(tool=("get_time", {"city": "Paris"})))
    other_keys = drift_of(dialect, build(tool=TOOL), build(tool=("get_weather", {"town": "Paris"})))
    other_values = drift_of(dialect, build(tool=TOOL), build(tool=("get_weather", {"city": "Lyon"})))
    assert other_tool.level is other_keys.level is Level.BEHAVIOUR
    assert Difference(Level.BEHAVIOUR, "tool calls", "get_weather(city) -> get_time(city)") in other_tool.differences
    assert Difference(Level.BEHAVIOUR, "tool calls", "get_weather(city) -> get_weather(town)") in other_keys.differences
    assert other_values.level is Level.WORDING  # the same call with other values: the model's wording


def test_a_tool_call_where_there_was_text_is_behaviour_not_shape(dialect: str):
    _, build, _, _ = DIALECTS[dialect]
    drift = drift_of(dialect, build(), build(tool=TOOL))
    assert drift.level is Level.BEHAVIOUR
    assert "tool calls" in places(drift)


def test_an_empty_reply_where_there_was_text_is_behaviour(dialect: str):
    _, build, _, _ = DIALECTS[dialect]
    drift = drift_of(dialect, build(), build(""))
    assert drift.level is Level.BEHAVIOUR
    assert Difference(Level.BEHAVIOUR, "reply", "empty where there was text") in drift.differences


def test_a_refusal_is_behaviour(dialect: str):
    _, build, _, _ = DIALECTS[dialect]
    drift = drift_of(dialect, build(), build(refusal="I can't help with that."))
    assert drift.level is Level.BEHAVIOUR
    assert "refusal" in places(drift) or "finish reason" in places(drift)


def test_a_new_field_is_shape_at_its_path(dialect: str):
    _, build, _, _ = DIALECTS[dialect]
    drift = drift_of(dialect, build(), build(extra={"service_tier": "default"}))
    assert drift.level is Level.SHAPE
    assert Difference(Level.SHAPE, "body.service_tier", "added") in drift.differences


def test_a_removed_field_is_shape_at_its_path(dialect: str):
    _, build, _, _ = DIALECTS[dialect]
    drift = drift_of(dialect, build(extra={"service_tier": "default"}), build())
    assert Difference(Level.SHAPE, "body.service_tier", "missing") in drift.differences
    assert drift.level is Level.SHAPE


def test_a_retyped_field_is_shape(dialect: str):
    _, build, _, _ = DIALECTS[dialect]
    drift = drift_of(dialect, build(extra={"tier": "default"}), build(extra={"tier": 2}))
    assert drift == Drift(Level.SHAPE, (Difference(Level.SHAPE, "body.tier", "retyped: string -> number"),))


def test_an_upstream_error_is_error_with_its_message(dialect: str):
    _, build, _, _ = DIALECTS[dialect]
    error = {"error": {"message": "The server had an error", "type": "server_error"}}
    drift = drift_of(dialect, build(), error, status=500)
    assert drift == Drift(Level.ERROR, (Difference(Level.ERROR, "status", "200 -> 500: The server had an error"),))


def test_a_connection_failure_is_error():
    assert Drift.failed("upstream unreachable").level is Level.ERROR


def test_null_beside_a_value_is_the_same_field():
    drift = drift_of("openai chat", chat(extra={"logprobs": None}), chat(extra={"logprobs": "x"}))
    assert drift.level is Level.WORDING


def test_a_changed_content_type_is_shape_and_a_charset_is_not():
    charset = {"content-type": "application/json; charset=utf-8"}
    assert drift_of("openai chat", chat(), chat(), headers=charset).level is Level.SAME
    drift = drift_of("openai chat", chat(), chat(), headers={"content-type": "text/plain"})
    assert Difference(Level.SHAPE, "headers.content-type", "application/json -> text/plain") in drift.differences


def test_a_changed_stored_header_is_wording():
    drift = drift_of("openai chat", chat(), chat(), headers={"content-type": "application/json", "openai-version": "2"})
    assert drift == Drift(Level.WORDING, (Difference(Level.WORDING, "headers.openai-version", "- -> 2"),))


def test_the_worst_level_wins_and_differences_are_listed_worst_first():
    drift = drift_of("openai chat", chat(), chat(REWORDED, finish="length", extra={"new": 1}))
    assert drift.level is Level.SHAPE
    assert [difference.level for difference in drift.differences] == [
        Level.SHAPE, Level.BEHAVIOUR, Level.WORDING, Level.WORDING
    ]  # fmt: skip


def test_many_differences_are_capped_per_level_with_a_count():
    many = {f"field_{number:02}": number for number in range(MAX_DIFFERENCES_PER_LEVEL + 3)}
    drift = drift_of("openai chat", chat(), chat(extra=many))
    assert len(drift.differences) == MAX_DIFFERENCES_PER_LEVEL + 1
    assert drift.differences[-1] == Difference(Level.SHAPE, "…", "3 more")


# --- streams ---------------------------------------------------------------------------------------------------


def events_document(path: str, events: list[dict[str, Any]], *, status: int = 200) -> dict[str, Any]:
    response = {"status": status, "headers": {"content-type": "text/event-stream"}, "events": events}
    return {"format_version": 1, "request": {"method": "POST", "path": path}, "response": response}


def chat_stream(pieces=("Bon", "jour"), *, finish="stop", ident="1", done=True) -> list[dict[str, Any]]:
    head = {"id": f"chatcmpl-{ident}", "object": "chat.completion.chunk", "created": int(ident), "obfuscation": ident}
    deltas = [{"role": "assistant", "content": ""}] + [{"content": piece} for piece in pieces] + [{}]
    finishes = [None] * (len(deltas) - 1) + [finish]
    events = [
        {"data": {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": reason}]}}
        for delta, reason in zip(deltas, finishes, strict=True)
    ]
    return events + ([{"data": "[DONE]"}] if done else [])


def responses_stream(text="Bonjour", *, finish="completed", ident="1", drop=()) -> list[dict[str, Any]]:
    final = responses(text, ident=ident, finish=finish)
    kinds = [
        ("response.created", {"response": {**final, "status": "in_progress", "output": []}}),
        ("response.output_text.delta", {"item_id": f"msg_{ident}", "delta": text}),
        ("response.output_text.done", {"item_id": f"msg_{ident}", "text": text}),
        ("response.completed", {"response": final}),
    ]
    return [
        {"event": kind, "data": {"type": kind, "sequence_number": number, **data}}
        for number, (kind, data) in enumerate(kinds)
        if kind not in drop
    ]


def anthropic_stream(text="Bonjour", *, stop="end_turn", ident="1", tool=None) -> list[dict[str, Any]]:
    block = {"type": "tool_use", "id": f"toolu_{ident}", "name": tool, "input": {}} if tool else {
        "type": "text", "text": ""}  # fmt: skip
    delta = {"type": "input_json_delta", "partial_json": '{"city": "Paris"}'} if tool else {
        "type": "text_delta", "text": text}  # fmt: skip
    kinds = [
        ("message_start", {"message": {"id": f"msg_{ident}", "type": "message", "content": []}}),
        ("content_block_start", {"index": 0, "content_block": block}),
        ("content_block_delta", {"index": 0, "delta": delta}),
        ("content_block_stop", {"index": 0}),
        ("message_delta", {"delta": {"stop_reason": stop, "stop_sequence": None}, "usage": {"output_tokens": 3}}),
        ("message_stop", {}),
    ]
    return [{"event": kind, "data": {"type": kind, **data}} for kind, data in kinds]


def gemini_stream(pieces=("Bon", "jour"), *, finish="STOP", ident="1") -> list[dict[str, Any]]:
    contents = [{"role": "model", "parts": [{"text": piece}]} for piece in pieces]
    chunks = [{"candidates": [{"content": content, "index": 0}]} for content in contents]
    chunks[-1]["candidates"][0]["finishReason"] = finish
    return [{"data": {**chunk, "responseId": f"resp-{ident}"}} for chunk in chunks]


STREAMS = {
    "openai chat": ("/v1/chat/completions", chat_stream),
    "azure chat": ("/openai/deployments/gpt-4o/chat/completions", chat_stream),
    "openai responses": ("/v1/responses", responses_stream),
    "anthropic": ("/v1/messages", anthropic_stream),
    "gemini": ("/v1beta/models/gemini-2.0-flash:streamGenerateContent", gemini_stream),
}


def stream_drift(dialect: str, recorded: list[dict[str, Any]], fresh: list[dict[str, Any]]) -> Drift:
    path = STREAMS[dialect][0]
    return compare_answers(events_document(path, recorded), events_document(path, fresh))


def test_a_stream_with_new_ids_is_the_same(dialect: str):
    _, build = STREAMS[dialect]
    assert stream_drift(dialect, build(ident="1"), build(ident="2")) == Drift(Level.SAME)


def test_a_stream_cut_into_other_pieces_with_other_text_is_wording():
    drift = stream_drift("openai chat", chat_stream(("Bon", "jour")), chat_stream(("Sa", "lut", " !")))
    assert drift.level is Level.WORDING
    text_path = "events{chat.completion.chunk}.choices[*].delta.content"
    assert Difference(Level.WORDING, text_path, '"Bonjour" -> "Salut !"') in drift.differences


def test_a_missing_stream_event_type_is_shape():
    drift = stream_drift("openai responses", responses_stream(), responses_stream(drop=("response.created",)))
    assert drift.level is Level.SHAPE
    assert Difference(Level.SHAPE, "event type response.created", "missing") in drift.differences
    no_done = stream_drift("openai chat", chat_stream(), chat_stream(done=False))
    assert Difference(Level.SHAPE, "event type [DONE]", "missing") in no_done.differences


def test_a_new_stream_event_type_is_shape():
    fresh = [*anthropic_stream(), {"event": "ping", "data": {"type": "ping"}}]
    drift = stream_drift("anthropic", anthropic_stream(), fresh)
    assert drift == Drift(Level.SHAPE, (Difference(Level.SHAPE, "event type ping", "added"),))


def test_a_text_stream_event_gone_with_the_text_is_behaviour_not_shape():
    drift = stream_drift("anthropic", anthropic_stream(), anthropic_stream(tool="get_weather"))
    assert drift.level is Level.BEHAVIOUR
    assert Difference(Level.BEHAVIOUR, "tool calls", "none -> get_weather(city)") in drift.differences


def test_a_stream_s_finish_reason_is_read_from_its_events(dialect: str):
    _, build = STREAMS[dialect]
    option = "stop" if dialect == "anthropic" else "finish"
    old, new = {"anthropic": ("end_turn", "max_tokens"), "openai responses": ("completed", "incomplete")}.get(
        dialect, ("stop", "length")
    )
    drift = stream_drift(dialect, build(**{option: old}), build(**{option: new}))
    assert Difference(Level.BEHAVIOUR, "finish reason", f"{old} -> {new}") in drift.differences


def test_a_body_where_a_stream_was_recorded_is_shape():
    path = "/v1/chat/completions"
    drift = compare_answers(events_document(path, chat_stream()), document(path, chat()))
    assert drift == Drift(Level.SHAPE, (Difference(Level.SHAPE, "response", "a stream was recorded, a body came"),))


# --- takes ----------------------------------------------------------------------------------------------------


def test_the_closest_recorded_take_counts():
    recorded = document("/v1/chat/completions", chat())
    takes = [{"recorded_at": "", "response": document("", chat(text))["response"]} for text in ("A", REWORDED)]
    del recorded["response"]
    recorded["takes"] = takes
    drift = compare_answers(recorded, document("/v1/chat/completions", chat(REWORDED, ident="9")))
    assert drift == Drift(Level.SAME, take=1)


# --- WebSocket sessions ---------------------------------------------------------------------------------------


def test_a_session_with_new_event_ids_is_the_same_and_a_new_event_type_is_shape():
    recorded = [{"type": "session.created", "event_id": "e1", "session": {"id": "s1"}},
                {"type": "response.done", "event_id": "e2", "response_id": "r1"}]  # fmt: skip
    renamed = [{**event, "event_id": event["event_id"] + "x"} for event in recorded]
    assert compare_sessions("/v1/realtime", recorded, renamed) == Drift(Level.SAME)
    more = [*renamed, {"type": "rate_limits.updated", "event_id": "e3"}]
    drift = compare_sessions("/v1/realtime", recorded, more)
    assert drift == Drift(Level.SHAPE, (Difference(Level.SHAPE, "event type rate_limits.updated", "added"),))
