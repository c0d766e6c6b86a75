"""The review summary: what a person reading a cassette in a pull request wants to see first.

A cassette holds the whole exchange, which for a stream can be hundreds of events. The summary pulls out the
endpoint, the model, the sampling settings, the prompt and the reply text reassembled from the body or from the
stream, so that a reviewer (and `inference-gate cache list`) can tell what was recorded without reading it all.
Only Chat Completions and the Responses API get a prompt and a reply; other endpoints get the endpoint and model.
"""

from __future__ import annotations

from typing import Any

import orjson

from inference_gate.core.dialects import route_of

PROMPT_PREVIEW_CHARS = 200
REPLY_PREVIEW_CHARS = 500

SAMPLING_SETTINGS = (
    "temperature",
    "top_p",
    "n",
    "seed",
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "presence_penalty",
    "frequency_penalty",
    "stop",
    "reasoning_effort",
    "reasoning",
    "tool_choice",
    "response_format",
    "top_k",  # Anthropic
    "stop_sequences",
    "thinking",
    "generationConfig",  # Gemini
)
ANTHROPIC_MESSAGES = "messages"
GEMINI_GENERATE = ("generateContent", "streamGenerateContent")


def truncate(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text_of_content(content: Any) -> str:
    """The text of a message's `content`, which is a string or a list of typed parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [part.get("text", "") for part in content if isinstance(part, dict)]
        return " ".join(text for text in texts if isinstance(text, str) and text)
    return ""


def prompt_text(endpoint: str, body: Any) -> str:
    """The prompt a person would recognise: the last user message, or the Responses API `input`."""
    if not isinstance(body, dict):
        return ""
    if endpoint in GEMINI_GENERATE:
        return _gemini_prompt(body)
    if endpoint == "responses":
        given = body.get("input")
        if isinstance(given, str):
            return given
        messages = given if isinstance(given, list) else []
    elif endpoint in ("chat.completions", ANTHROPIC_MESSAGES):
        messages = body.get("messages") if isinstance(body.get("messages"), list) else []
    else:
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role", "user") == "user":
            return _text_of_content(message.get("content"))
    return ""


def _tool_name(tool: dict[str, Any]) -> Any:
    """A tool's name in OpenAI's (`function.name`), the Responses API's and Anthropic's (`name`) shapes, or
    Gemini's declarations (`functionDeclarations[].name`, joined)."""
    if isinstance(tool.get("function"), dict):
        return tool["function"].get("name")
    if isinstance(tool.get("functionDeclarations"), list):
        return ",".join(str(d.get("name")) for d in tool["functionDeclarations"] if isinstance(d, dict))
    return tool.get("name") or tool.get("type")


def _tool_call_text(name: Any, arguments: Any) -> str:
    return f"[tool call] {name}({arguments})"


def _chat_reply(body: Any) -> str:
    choices = body.get("choices") if isinstance(body, dict) else None
    if not choices or not isinstance(choices[0], dict):
        return ""
    message = choices[0].get("message") or {}
    parts = [message.get("content") or ""]
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        parts.append(_tool_call_text(function.get("name"), function.get("arguments")))
    return "\n".join(part for part in parts if part)


def _chat_stream_reply(data: list[Any]) -> str:
    text: list[str] = []
    tool_calls: dict[int, list[str]] = {}
    tool_names: dict[int, str] = {}
    for chunk in data:
        for choice in chunk.get("choices") or [] if isinstance(chunk, dict) else []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text.append(delta.get("content") or "")
            for call in delta.get("tool_calls") or []:
                index = call.get("index", 0)
                function = call.get("function") or {}
                if function.get("name"):
                    tool_names[index] = function["name"]
                tool_calls.setdefault(index, []).append(function.get("arguments") or "")
    parts = ["".join(text)]
    parts += [_tool_call_text(tool_names.get(i), "".join(tool_calls[i])) for i in sorted(tool_calls)]
    return "\n".join(part for part in parts if part)


def _responses_reply(response: Any) -> str:
    parts: list[str] = []
    for item in response.get("output") or [] if isinstance(response, dict) else []:
        if item.get("type") == "message":
            parts.append(_text_of_content(item.get("content")))
        elif item.get("type") == "function_call":
            parts.append(_tool_call_text(item.get("name"), item.get("arguments")))
    return "\n".join(part for part in parts if part)


def _responses_stream_reply(data: list[Any]) -> str:
    deltas: list[str] = []
    for event in data:
        if not isinstance(event, dict):
            continue
        if event.get("type") == "response.completed":
            return _responses_reply(event.get("response"))
        if event.get("type") == "response.output_text.delta":
            deltas.append(event.get("delta") or "")
    return "".join(deltas)


def _text(value: Any) -> str:
    """`value` when it is text; a recorded body is whatever the upstream sent, so anything else reads as ""."""
    return value if isinstance(value, str) else ""


def _anthropic_reply(message: Any) -> str:
    blocks = message.get("content") if isinstance(message, dict) else None
    blocks = blocks if isinstance(blocks, list) else []
    return "\n".join(_anthropic_block_text(block) for block in blocks if isinstance(block, dict)).strip()


def _anthropic_block_text(block: dict[str, Any], streamed_input: str | None = None) -> str:
    """A content block as a reviewer reads it; a tool call shows its input as JSON text, as streamed."""
    if block.get("type") == "text":
        return _text(block.get("text"))
    if block.get("type") == "thinking":
        return f"[thinking] {_text(block.get('thinking'))}"
    if block.get("type") == "tool_use":
        arguments = streamed_input if streamed_input is not None else orjson.dumps(block.get("input")).decode()
        return _tool_call_text(block.get("name"), arguments)
    return ""


def _anthropic_stream_reply(data: list[Any]) -> str:
    """The content blocks rebuilt from `content_block_start` and the text, thinking and JSON deltas."""
    blocks: dict[int, dict[str, Any]] = {}
    inputs: dict[int, list[str]] = {}
    for event in data:
        if not isinstance(event, dict) or not isinstance(event.get("index"), int):
            continue
        index = event["index"]
        if event.get("type") == "content_block_start" and isinstance(event.get("content_block"), dict):
            blocks[index] = dict(event["content_block"])
        elif event.get("type") == "content_block_delta" and index in blocks:
            delta = event["delta"] if isinstance(event.get("delta"), dict) else {}
            if delta.get("type") == "text_delta":
                blocks[index]["text"] = _text(blocks[index].get("text")) + _text(delta.get("text"))
            elif delta.get("type") == "thinking_delta":
                blocks[index]["thinking"] = _text(blocks[index].get("thinking")) + _text(delta.get("thinking"))
            elif delta.get("type") == "input_json_delta":
                inputs.setdefault(index, []).append(_text(delta.get("partial_json")))
    texts = [_anthropic_block_text(blocks[i], "".join(inputs[i]) if i in inputs else None) for i in sorted(blocks)]
    return "\n".join(texts).strip()


def _gemini_prompt(body: dict[str, Any]) -> str:
    """The text parts of the last `user` turn of `contents` (a turn without a role is the user's)."""
    contents = body.get("contents") if isinstance(body.get("contents"), list) else []
    for turn in reversed(contents):
        if isinstance(turn, dict) and turn.get("role", "user") == "user":
            return _text_of_content(turn.get("parts"))
    return ""


def _gemini_reply(responses: list[Any]) -> str:
    """The text and function calls of the first candidate, over every chunk of a stream (one for a body)."""
    parts: list[str] = []
    for response in responses:
        candidates = response.get("candidates") if isinstance(response, dict) else None
        first = candidates[0] if isinstance(candidates, list) and candidates else None
        content = first.get("content") if isinstance(first, dict) else None
        given = content.get("parts") if isinstance(content, dict) else None
        for part in given if isinstance(given, list) else []:
            if isinstance(part, dict) and isinstance(part.get("functionCall"), dict):
                call = part["functionCall"]
                parts.append("\n" + _tool_call_text(call.get("name"), orjson.dumps(call.get("args")).decode()))
            elif isinstance(part, dict):
                parts.append(_text(part.get("text")))
    return "".join(parts).strip()


def reply_text(endpoint: str, body: Any, stream_data: list[Any] | None) -> str:
    """The reply reassembled from a JSON body or, for a stream, from its events' parsed `data`."""
    if endpoint in GEMINI_GENERATE:
        # streamGenerateContent without `alt=sse` answers one JSON array of the chunks.
        return _gemini_reply(stream_data if stream_data is not None else body if isinstance(body, list) else [body])
    if endpoint == ANTHROPIC_MESSAGES:
        return _anthropic_stream_reply(stream_data) if stream_data is not None else _anthropic_reply(body)
    if endpoint == "chat.completions":
        return _chat_stream_reply(stream_data) if stream_data is not None else _chat_reply(body)
    if endpoint == "responses":
        return _responses_stream_reply(stream_data) if stream_data is not None else _responses_reply(body)
    return ""


def form_text_fields(form: list[dict[str, Any]]) -> dict[str, str]:
    """The text fields of a stored multipart form (multipart.stored_form) by name, read like a JSON body's."""
    return {entry["name"]: entry["text"] for entry in form if "text" in entry}


def summarize(
    path: str,
    request_body: Any,
    response_body: Any,
    stream_data: list[Any] | None,
    *,
    form: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The `summary` block of a cassette; `stream_data` is the parsed data of each event of a stream, and `form`
    the stored fields of a multipart request (its model is a text field, its files are named)."""
    route = route_of(path)
    endpoint = route.endpoint
    request = request_body if isinstance(request_body, dict) else form_text_fields(form or [])
    summary: dict[str, Any] = {
        "endpoint": endpoint,
        "model": request.get("model") or route.path_model,
        "stream": stream_data is not None,
    }
    settings = {name: request[name] for name in SAMPLING_SETTINGS if name in request}
    if settings:
        summary["settings"] = settings
    if request.get("system"):
        summary["system"] = truncate(_text_of_content(request["system"]), PROMPT_PREVIEW_CHARS)
    given_tools = request.get("tools") if isinstance(request.get("tools"), list) else []
    tools = [_tool_name(tool) for tool in given_tools if isinstance(tool, dict)]
    if tools:
        summary["tools"] = tools
    files = [entry["filename"] for entry in form or [] if entry.get("filename")]
    if files:
        summary["files"] = files
    if endpoint in ("chat.completions", "responses", ANTHROPIC_MESSAGES, *GEMINI_GENERATE):
        summary["prompt"] = truncate(prompt_text(endpoint, request), PROMPT_PREVIEW_CHARS)
        summary["reply"] = truncate(reply_text(endpoint, response_body, stream_data), REPLY_PREVIEW_CHARS)
    return summary


def describe_request(path: str, request_body: Any) -> str:
    """One line that names a request for a person: endpoint, model and the start of the prompt."""
    route = route_of(path)
    request = request_body if isinstance(request_body, dict) else {}
    model = request.get("model") or route.path_model or "-"
    prompt = truncate(prompt_text(route.endpoint, request), PROMPT_PREVIEW_CHARS)
    return f"{route.endpoint} {model} {prompt!r}" if prompt else f"{route.endpoint} {model}"
