"""What a program branches on in an answer, read alike from every dialect, streamed or not.

Code that calls a model rarely reads the reply's every field. It branches on a few things: why the model stopped,
which tools it called and with which arguments, whether it refused, and whether it said anything at all. When
one of those changes between a recording and today's answer, the program takes another path, even if the JSON
has the same shape; `verify` calls that a change of behaviour (see drift.py). The traits are:

- `finish_reasons`: Chat Completions' `finish_reason` per choice, the Responses API's final `status` (and
  `incomplete_details.reason`) and a Realtime session's per `response.done`, Anthropic's `stop_reason`,
  Gemini's `finishReason` per candidate (and a prompt's `blockReason`);
- `tool_calls`: each call's tool name and its arguments' keys (not their values, which vary with wording): Chat
  Completions `tool_calls`, Responses `function_call` items, Anthropic `tool_use` blocks, Gemini `functionCall`
  parts. A stream's pieces are put together first;
- `refused`: a Chat Completions `refusal`, a Responses `refusal` content part;
- `has_text`: whether the reply holds any text.

The input is a response as a cassette stores it: a JSON body, or the parsed `data` of each stream event (or of
each server event of a WebSocket session).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

ToolCallTrait = tuple[str, tuple[str, ...]]
UNREADABLE_ARGUMENTS = ("<arguments not JSON>",)
RESPONSES_FINAL_EVENTS = ("response.completed", "response.incomplete", "response.failed")


@dataclass(frozen=True, slots=True)
class ReplyTraits:
    finish_reasons: tuple[str, ...] = ()
    tool_calls: tuple[ToolCallTrait, ...] = ()
    refused: bool = False
    has_text: bool = False


def tool_call_text(call: ToolCallTrait) -> str:
    """`get_weather(city, unit)`: a tool call as a person reads it, without its arguments' values."""
    name, keys = call
    return f"{name}({', '.join(keys)})"


def reply_traits(endpoint: str, body: Any, stream_data: list[Any] | None) -> ReplyTraits:
    """The traits of a reply to `endpoint` (dialects.py's endpoint names) from its body or its events' data."""
    if endpoint == "responses":
        return _responses_traits(body, stream_data)
    if endpoint == "messages":
        return _anthropic_traits(body, stream_data)
    if endpoint in ("generateContent", "streamGenerateContent"):
        chunks = stream_data if stream_data is not None else body if isinstance(body, list) else [body]
        return _gemini_traits(chunks)
    if endpoint == "chat.completions":
        return _chat_traits(body, stream_data)
    if endpoint == "realtime":
        return _realtime_traits(stream_data or [])
    return ReplyTraits()


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _argument_keys(arguments: Any) -> tuple[str, ...]:
    """The keys of a call's arguments: an object, or the JSON text of one (as OpenAI and streams send them)."""
    if isinstance(arguments, str):
        try:
            arguments = orjson.loads(arguments) if arguments.strip() else {}
        except orjson.JSONDecodeError:
            return UNREADABLE_ARGUMENTS
    return tuple(sorted(arguments)) if isinstance(arguments, dict) else UNREADABLE_ARGUMENTS


def _text_of(value: Any) -> str:
    return value if isinstance(value, str) else ""


# --- Chat Completions (OpenAI, Azure and every compatible server) ---------------------------------------------


def _chat_traits(body: Any, stream_data: list[Any] | None) -> ReplyTraits:
    if stream_data is not None:
        return _chat_stream_traits(stream_data)
    finish, calls, refused, text = [], [], False, False
    for choice in _list(_dict(body).get("choices")):
        choice = _dict(choice)
        message = _dict(choice.get("message"))
        if isinstance(choice.get("finish_reason"), str):
            finish.append(choice["finish_reason"])
        for call in _list(message.get("tool_calls")):
            function = _dict(_dict(call).get("function"))
            calls.append((str(function.get("name")), _argument_keys(function.get("arguments"))))
        refused = refused or bool(message.get("refusal"))
        text = text or bool(_chat_content_text(message.get("content")))
    return ReplyTraits(tuple(finish), tuple(calls), refused, text)


def _chat_content_text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(_text_of(_dict(part).get("text")) for part in content)
    return _text_of(content)


def _chat_stream_traits(stream_data: list[Any]) -> ReplyTraits:
    finish: dict[int, str] = {}
    names: dict[tuple[int, int], str] = {}
    arguments: dict[tuple[int, int], list[str]] = {}
    refused = text = False
    for chunk in stream_data:
        for choice in _list(_dict(chunk).get("choices")):
            choice = _dict(choice)
            index = choice.get("index", 0) if isinstance(choice.get("index", 0), int) else 0
            if isinstance(choice.get("finish_reason"), str):
                finish[index] = choice["finish_reason"]
            delta = _dict(choice.get("delta"))
            refused = refused or bool(delta.get("refusal"))
            text = text or bool(_text_of(delta.get("content")))
            for call in _list(delta.get("tool_calls")):
                call = _dict(call)
                slot = (index, call.get("index", 0) if isinstance(call.get("index", 0), int) else 0)
                function = _dict(call.get("function"))
                if function.get("name"):
                    names[slot] = str(function["name"])
                arguments.setdefault(slot, []).append(_text_of(function.get("arguments")))
    calls = [(names.get(slot, "None"), _argument_keys("".join(arguments[slot]))) for slot in sorted(arguments)]
    return ReplyTraits(tuple(finish[index] for index in sorted(finish)), tuple(calls), refused, text)


# --- the Responses API --------------------------------------------------------------------------------------


def _responses_traits(body: Any, stream_data: list[Any] | None) -> ReplyTraits:
    response = _dict(body)
    if stream_data is not None:
        finals = [_dict(event) for event in stream_data if _dict(event).get("type") in RESPONSES_FINAL_EVENTS]
        response = _dict(finals[-1].get("response")) if finals else {}
    finish = [response["status"]] if isinstance(response.get("status"), str) else []
    reason = _dict(response.get("incomplete_details")).get("reason")
    if isinstance(reason, str):
        finish.append(reason)
    calls, refused, text = [], False, False
    for item in _list(response.get("output")):
        item = _dict(item)
        if item.get("type") == "function_call":
            calls.append((str(item.get("name")), _argument_keys(item.get("arguments"))))
        for part in _list(item.get("content")):
            part = _dict(part)
            refused = refused or part.get("type") == "refusal"
            text = text or bool(part.get("type") in ("output_text", "text") and _text_of(part.get("text")))
    return ReplyTraits(tuple(finish), tuple(calls), refused, text)


# --- Realtime sessions ---------------------------------------------------------------------------------------


def _realtime_traits(events: list[Any]) -> ReplyTraits:
    """A Realtime session's answers, read from each `response.done`, whose `response` has the Responses API's
    `status` and `output` items; the traits of all its responses, in order."""
    responses = [
        _responses_traits(_dict(event).get("response"), None)
        for event in events
        if _dict(event).get("type") == "response.done"
    ]
    return ReplyTraits(
        tuple(reason for traits in responses for reason in traits.finish_reasons),
        tuple(call for traits in responses for call in traits.tool_calls),
        any(traits.refused for traits in responses),
        any(traits.has_text for traits in responses),
    )


# --- Anthropic Messages -------------------------------------------------------------------------------------


def _anthropic_traits(body: Any, stream_data: list[Any] | None) -> ReplyTraits:
    if stream_data is None:
        message = _dict(body)
        blocks = [_dict(block) for block in _list(message.get("content"))]
        stop = message.get("stop_reason")
        inputs = {index: block.get("input") for index, block in enumerate(blocks)}
    else:
        blocks, stop, inputs = _anthropic_stream_blocks(stream_data)
    calls = [
        (str(block.get("name")), _argument_keys(inputs[index]))
        for index, block in enumerate(blocks)
        if block.get("type") in ("tool_use", "server_tool_use")
    ]
    text = any(block.get("type") == "text" and _text_of(block.get("text")) for block in blocks)
    finish = (stop,) if isinstance(stop, str) else ()
    return ReplyTraits(finish, tuple(calls), stop == "refusal", text)


def _anthropic_stream_blocks(stream_data: list[Any]) -> tuple[list[dict[str, Any]], Any, dict[int, Any]]:
    """The content blocks a stream builds (text put together, a tool's input as its JSON text) and the stop
    reason its `message_delta` gives."""
    blocks: dict[int, dict[str, Any]] = {}
    inputs: dict[int, list[str]] = {}
    stop = None
    for event in stream_data:
        event = _dict(event)
        delta = _dict(event.get("delta"))
        if event.get("type") == "message_delta" and "stop_reason" in delta:
            stop = delta["stop_reason"]
        index = event.get("index")
        if not isinstance(index, int):
            continue
        if event.get("type") == "content_block_start":
            blocks[index] = dict(_dict(event.get("content_block")))
        elif event.get("type") == "content_block_delta" and index in blocks:
            if delta.get("type") == "text_delta":
                blocks[index]["text"] = _text_of(blocks[index].get("text")) + _text_of(delta.get("text"))
            elif delta.get("type") == "input_json_delta":
                inputs.setdefault(index, []).append(_text_of(delta.get("partial_json")))
    ordered = [blocks[index] for index in sorted(blocks)]
    streamed_inputs = {
        position: "".join(inputs[index]) if index in inputs else blocks[index].get("input")
        for position, index in enumerate(sorted(blocks))
    }
    return ordered, stop, streamed_inputs


# --- Gemini -------------------------------------------------------------------------------------------------


def _gemini_traits(chunks: list[Any]) -> ReplyTraits:
    """A body is one chunk; a stream (SSE, or the JSON array without `alt=sse`) is many, each with candidates."""
    finish: dict[int, str] = {}
    calls, text = [], False
    blocked = None
    for chunk in chunks:
        chunk = _dict(chunk)
        blocked = _dict(chunk.get("promptFeedback")).get("blockReason") or blocked
        for position, candidate in enumerate(_list(chunk.get("candidates"))):
            candidate = _dict(candidate)
            index = candidate.get("index", position) if isinstance(candidate.get("index", position), int) else 0
            if isinstance(candidate.get("finishReason"), str):
                finish[index] = candidate["finishReason"]
            for part in _list(_dict(candidate.get("content")).get("parts")):
                part = _dict(part)
                call = _dict(part.get("functionCall"))
                if call:
                    calls.append((str(call.get("name")), _argument_keys(call.get("args", {}))))
                text = text or bool(_text_of(part.get("text")) and not part.get("thought"))
    reasons = tuple(finish[index] for index in sorted(finish))
    if isinstance(blocked, str):
        reasons = (*reasons, f"blocked: {blocked}")
    return ReplyTraits(reasons, tuple(calls), isinstance(blocked, str), text)
