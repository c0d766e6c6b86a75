"""A fake Anthropic Messages API for the end-to-end tests, built from Anthropic's published API reference.

It answers `POST /v1/messages` (a JSON Message, or with `"stream": true` the real event sequence:
`message_start`, then per content block `content_block_start`, its `content_block_delta`s and
`content_block_stop`, a `ping` after the first block starts, then `message_delta` and `message_stop`, each as
`event: <type>` plus `data: <json>`) and `POST /v1/messages/count_tokens`. It checks the key (`x-api-key`, or
`Authorization: Bearer`, which the `anthropic` SDK sends for `api_key`) and `anthropic-version` as the API does,
and every error has Anthropic's shape `{"type": "error", "error": {"type", "message"}}`.

A request with `tools` gets a `tool_use` block for the first tool (its input streamed as `input_json_delta`),
and one with `thinking` enabled gets a `thinking` block first (`thinking_delta`, then `signature_delta`). It
reuses the OpenAI fake's server, so bodies go out chunked and events are cut at awkward byte offsets; every byte
is derived from the request body, so recording twice gives identical cassettes.
"""

from __future__ import annotations

from typing import Any

import orjson

from tools.fake_replies import (
    JSON_CONTENT_TYPE,
    SSE_CONTENT_TYPE,
    ReceivedRequest,
    Reply,
    derived_hex,
    pieces,
    reply_text,
    text_of,
    token_count,
)
from tools.fake_upstream import FakeUpstream

MESSAGES = "/v1/messages"
COUNT_TOKENS = "/v1/messages/count_tokens"
TOOL_INPUT = {"city": "Paris"}
THINKING_TEXT = "The user wants an echo. Je réponds."
DELTA_CHARS = 4


class AnthropicError(Exception):
    """A request the API refuses: the HTTP status, Anthropic's error `type`, and its message."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


def _prompt(body: dict[str, Any]) -> str:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise AnthropicError(400, "invalid_request_error", "messages: at least one message is required")
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return text_of(message.get("content"))
    return ""


def _required(body: dict[str, Any], field: str) -> Any:
    if field not in body:
        raise AnthropicError(400, "invalid_request_error", f"{field}: Field required")
    return body[field]


def content_blocks(body: dict[str, Any], seed: bytes) -> list[dict[str, Any]]:
    """The content of the answer: a thinking block if asked for, the text, and a tool call if tools are given."""
    blocks: list[dict[str, Any]] = []
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        blocks.append({"type": "thinking", "thinking": THINKING_TEXT, "signature": derived_hex("signature", seed, 40)})
    blocks.append({"type": "text", "text": reply_text(_prompt(body))})
    tools = body.get("tools")
    if isinstance(tools, list) and tools and isinstance(tools[0], dict):
        tool_id = "toolu_01" + derived_hex("tool", seed, 22)
        blocks.append({"type": "tool_use", "id": tool_id, "name": tools[0].get("name"), "input": TOOL_INPUT})
    return blocks


def message(body: dict[str, Any], seed: bytes) -> dict[str, Any]:
    """The Message object of a non-streamed answer."""
    model = _required(body, "model")
    _required(body, "max_tokens")
    blocks = content_blocks(body, seed)
    output = "".join(block.get("text") or block.get("thinking") or "" for block in blocks)
    return {
        "id": "msg_01" + derived_hex("message", seed, 22),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": "tool_use" if blocks[-1]["type"] == "tool_use" else "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": token_count(_prompt(body)),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": token_count(output),
        },
    }


def _block_events(index: int, block: dict[str, Any]) -> list[dict[str, Any]]:
    """`content_block_start`, the deltas and `content_block_stop` of one block, as the API streams it."""
    if block["type"] == "thinking":
        start = {"type": "thinking", "thinking": "", "signature": ""}
        deltas = [{"type": "thinking_delta", "thinking": piece} for piece in pieces(block["thinking"], DELTA_CHARS)]
        deltas.append({"type": "signature_delta", "signature": block["signature"]})
    elif block["type"] == "tool_use":
        start = {**block, "input": {}}
        deltas = [
            {"type": "input_json_delta", "partial_json": piece}
            for piece in ["", *pieces(orjson.dumps(block["input"]).decode(), DELTA_CHARS)]
        ]
    else:
        start = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": piece} for piece in pieces(block["text"], DELTA_CHARS)]
    return [
        {"type": "content_block_start", "index": index, "content_block": start},
        *({"type": "content_block_delta", "index": index, "delta": delta} for delta in deltas),
        {"type": "content_block_stop", "index": index},
    ]


def stream_events(body: dict[str, Any], seed: bytes) -> list[dict[str, Any]]:
    """The events of a streamed answer, in the order the API sends them."""
    whole = message(body, seed)
    started = {**whole, "content": [], "stop_reason": None, "usage": {**whole["usage"], "output_tokens": 1}}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": started}]
    for index, block in enumerate(whole["content"]):
        block_events = _block_events(index, block)
        events += block_events[:1] + ([{"type": "ping"}] if index == 0 else []) + block_events[1:]
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": whole["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": whole["usage"]["output_tokens"]},
        }
    )
    events.append({"type": "message_stop"})
    return events


def anthropic_headers(seed: bytes, content_type: bytes) -> list[tuple[bytes, bytes]]:
    """The headers api.anthropic.com sends: a request id, rate limits, and CDN noise the gate must not store."""
    return [
        (b"content-type", content_type),
        (b"request-id", b"req_011" + derived_hex("request", seed, 21).encode()),
        (b"anthropic-organization-id", b"00000000-0000-4000-8000-000000000000"),
        (b"anthropic-ratelimit-requests-limit", b"50"),
        (b"anthropic-ratelimit-requests-remaining", b"49"),
        (b"anthropic-ratelimit-requests-reset", b"2026-01-01T00:00:01Z"),
        (b"anthropic-ratelimit-input-tokens-limit", b"40000"),
        (b"anthropic-ratelimit-input-tokens-remaining", b"39990"),
        (b"server", b"cloudflare"),
        (b"cf-ray", derived_hex("cf-ray", seed, 16).encode() + b"-AMS"),
    ]


def _client_key(request: ReceivedRequest) -> str | None:
    """The key from `x-api-key`, or from `Authorization: Bearer`, which the `anthropic` SDK sends for `api_key`."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return request.headers.get("x-api-key") or (token.strip() if scheme.lower() == "bearer" else None) or None


def _json_reply(request: ReceivedRequest, status: int, payload: Any) -> Reply:
    body = orjson.dumps(payload)
    middle = len(body) // 2
    headers = anthropic_headers(request.body, JSON_CONTENT_TYPE)
    return Reply(status=status, headers=headers, parts=[body[:middle], body[middle:]])


def _error_reply(request: ReceivedRequest, error: AnthropicError) -> Reply:
    payload = {"type": "error", "error": {"type": error.error_type, "message": error.message}}
    return _json_reply(request, error.status, payload)


def _sse(event: dict[str, Any]) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def build_anthropic_reply(request: ReceivedRequest, *, expected_api_key: str | None) -> Reply:
    """The whole reply: auth and version checks, routing, validation, then the answer."""
    try:
        key = _client_key(request)
        if not key:
            raise AnthropicError(401, "authentication_error", "x-api-key header is required")
        if expected_api_key is not None and key != expected_api_key:
            raise AnthropicError(401, "authentication_error", "invalid x-api-key")
        if "anthropic-version" not in request.headers:
            raise AnthropicError(400, "invalid_request_error", "anthropic-version: header is required")
        if request.method != "POST" or request.path not in (MESSAGES, COUNT_TOKENS):
            raise AnthropicError(404, "not_found_error", "Not Found")
        body = request.json
        if not isinstance(body, dict):
            raise AnthropicError(400, "invalid_request_error", "The request body is not valid JSON.")
        if request.path == COUNT_TOKENS:
            _required(body, "model")
            return _json_reply(request, 200, {"input_tokens": token_count(_prompt(body))})
        if body.get("stream") is True:
            events = [_sse(event) for event in stream_events(body, request.body)]
            headers = anthropic_headers(request.body, SSE_CONTENT_TYPE)
            return Reply(status=200, headers=headers, parts=events, is_event_stream=True)
        return _json_reply(request, 200, message(body, request.body))
    except AnthropicError as error:
        return _error_reply(request, error)


class FakeAnthropic(FakeUpstream):
    """The OpenAI fake's server, answering in the Anthropic Messages API's format."""

    def build_reply(self, request: ReceivedRequest) -> Reply:
        return build_anthropic_reply(request, expected_api_key=self.expected_api_key)
