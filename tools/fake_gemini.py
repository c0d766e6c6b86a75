"""A fake Gemini REST API for the end-to-end tests, built from Google's published API reference.

It answers `POST /v1beta/models/{model}:generateContent` with one GenerateContentResponse, and
`:streamGenerateContent` with the same response cut into chunks: with `?alt=sse` as server-sent events
(`data: <json>` each, and no end marker: the stream simply ends), without it as one JSON array. The key comes in
`x-goog-api-key` or in the `key` query parameter, and every error has Google's shape
`{"error": {"code", "message", "status"}}`. It reuses the OpenAI fake's server, and every byte is derived from
the request body.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs

import orjson

from tools.fake_replies import ReceivedRequest, Reply, derived_hex, reply_text, token_count
from tools.fake_upstream import FakeUpstream

METHOD_PATH = re.compile(r"^/v1(?:beta)?/models/(?P<model>[^/:]+):(?P<method>generateContent|streamGenerateContent)$")
CHUNK_CHARS = 6
JSON_CONTENT_TYPE = b"application/json; charset=UTF-8"
SSE_CONTENT_TYPE = b"text/event-stream"


class GoogleError(Exception):
    """A request the API refuses: the HTTP status, Google's canonical status name, and its message."""

    def __init__(self, code: int, status: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message


def _prompt(body: dict[str, Any]) -> str:
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise GoogleError(400, "INVALID_ARGUMENT", "* GenerateContentRequest.contents: contents is not specified")
    for turn in reversed(contents):
        if isinstance(turn, dict) and turn.get("role", "user") == "user":
            parts = turn.get("parts") if isinstance(turn.get("parts"), list) else []
            return " ".join(p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def response_chunks(model: str, body: dict[str, Any], seed: bytes, *, chunked: bool) -> list[dict[str, Any]]:
    """The GenerateContentResponse objects of an answer: one, or a stream's chunks with the finish on the last."""
    prompt = _prompt(body)
    text = reply_text(prompt)
    pieces = [text[i : i + CHUNK_CHARS] for i in range(0, len(text), CHUNK_CHARS)] if chunked else [text]
    response_id = derived_hex("response", seed, 22)
    usage = {
        "promptTokenCount": token_count(prompt),
        "candidatesTokenCount": token_count(text),
        "totalTokenCount": token_count(prompt) + token_count(text),
    }
    chunks = []
    for number, piece in enumerate(pieces):
        candidate: dict[str, Any] = {"content": {"parts": [{"text": piece}], "role": "model"}, "index": 0}
        last = number == len(pieces) - 1
        if last:
            candidate["finishReason"] = "STOP"
        chunk = {"candidates": [candidate], "modelVersion": model, "responseId": response_id}
        chunk["usageMetadata"] = usage if last else {"promptTokenCount": usage["promptTokenCount"]}
        chunks.append(chunk)
    return chunks


def google_headers(content_type: bytes) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", content_type),
        (b"vary", b"Origin, X-Origin, Referer"),
        (b"server", b"scaffolding on HTTPServer2"),
        (b"server-timing", b"gfet4t7; dur=321"),
        (b"x-xss-protection", b"0"),
        (b"x-frame-options", b"SAMEORIGIN"),
    ]


def _json_reply(status: int, payload: Any) -> Reply:
    body = orjson.dumps(payload)
    middle = len(body) // 2
    return Reply(status=status, headers=google_headers(JSON_CONTENT_TYPE), parts=[body[:middle], body[middle:]])


def _client_key(request: ReceivedRequest) -> str | None:
    query = parse_qs(request.target.partition("?")[2])
    return request.headers.get("x-goog-api-key") or next(iter(query.get("key", [])), None)


def build_gemini_reply(request: ReceivedRequest, *, expected_api_key: str | None) -> Reply:
    """The whole reply: key check, routing, validation, then the answer."""
    try:
        key = _client_key(request)
        if not key:
            message = "Method doesn't allow unregistered callers (callers without established identity)."
            raise GoogleError(403, "PERMISSION_DENIED", message + " Please use API Key or other form of API consumer.")
        if expected_api_key is not None and key != expected_api_key:
            raise GoogleError(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.")
        route = METHOD_PATH.match(request.path)
        if request.method != "POST" or route is None:
            raise GoogleError(404, "NOT_FOUND", f"The requested URL {request.path} was not found on this server.")
        body = request.json
        if not isinstance(body, dict):
            raise GoogleError(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        if route["method"] == "generateContent":
            return _json_reply(200, response_chunks(route["model"], body, request.body, chunked=False)[0])
        chunks = response_chunks(route["model"], body, request.body, chunked=True)
        if "alt=sse" not in request.target.partition("?")[2].split("&"):
            return _json_reply(200, chunks)
        events = [b"data: " + orjson.dumps(chunk) + b"\r\n\r\n" for chunk in chunks]
        return Reply(status=200, headers=google_headers(SSE_CONTENT_TYPE), parts=events, is_event_stream=True)
    except GoogleError as error:
        payload = {"error": {"code": error.code, "message": error.message, "status": error.status}}
        return _json_reply(error.code, payload)


class FakeGemini(FakeUpstream):
    """The OpenAI fake's server, answering in the Gemini REST API's format."""

    def build_reply(self, request: ReceivedRequest) -> Reply:
        return build_gemini_reply(request, expected_api_key=self.expected_api_key)
