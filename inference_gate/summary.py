"""The review summary: what a person reading a cassette in a pull request wants to see first.

A cassette holds the whole exchange, which for a stream can be hundreds of events. The summary pulls out the
endpoint, the model, the sampling settings, the prompt and the reply text reassembled from the body or from the
stream, so that a reviewer (and `inference-gate cache list`) can tell what was recorded without reading it all.
Only Chat Completions and the Responses API get a prompt and a reply; other endpoints get the endpoint and model.
"""

from __future__ import annotations

from typing import Any

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
)


def endpoint_name(path: str) -> str:
    """`/v1/chat/completions` -> `chat.completions`; the name reviewers and `cache list` use."""
    parts = [part for part in path.strip("/").split("/") if part]
    if parts and parts[0] == "v1":
        parts = parts[1:]
    return ".".join(parts) or "root"


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
    if endpoint == "responses":
        given = body.get("input")
        if isinstance(given, str):
            return given
        messages = given if isinstance(given, list) else []
    elif endpoint == "chat.completions":
        messages = body.get("messages") if isinstance(body.get("messages"), list) else []
    else:
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role", "user") == "user":
            return _text_of_content(message.get("content"))
    return ""


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


def reply_text(endpoint: str, body: Any, stream_data: list[Any] | None) -> str:
    """The reply reassembled from a JSON body or, for a stream, from its events' parsed `data`."""
    if endpoint == "chat.completions":
        return _chat_stream_reply(stream_data) if stream_data is not None else _chat_reply(body)
    if endpoint == "responses":
        return _responses_stream_reply(stream_data) if stream_data is not None else _responses_reply(body)
    return ""


def summarize(path: str, request_body: Any, response_body: Any, stream_data: list[Any] | None) -> dict[str, Any]:
    """The `summary` block of a cassette; `stream_data` is the parsed data of each event of a stream."""
    endpoint = endpoint_name(path)
    request = request_body if isinstance(request_body, dict) else {}
    summary: dict[str, Any] = {
        "endpoint": endpoint,
        "model": request.get("model"),
        "stream": stream_data is not None,
    }
    settings = {name: request[name] for name in SAMPLING_SETTINGS if name in request}
    if settings:
        summary["settings"] = settings
    if endpoint in ("chat.completions", "responses"):
        summary["prompt"] = truncate(prompt_text(endpoint, request), PROMPT_PREVIEW_CHARS)
        summary["reply"] = truncate(reply_text(endpoint, response_body, stream_data), REPLY_PREVIEW_CHARS)
    return summary
