"""Which values of a cassette change on every recording of the same exchange, and the cassette without them.

Recording the same request twice against a real API gives two files that differ even when the answer is the
same: the response `id` is minted per call, `created` is the clock, `system_fingerprint` names the backend
build, `x-request-id` and the rate-limit headers describe the moment, `recorded_at` and `timing` are ours. Those values
are volatile: `cache diff` leaves them out when it says what changed, and `start --refresh` leaves them out
when it decides whether a re-recording is worth rewriting the file. Text, tool calls, finish reasons and usage
are material.

The volatile values are:
- the top-level `recorded_at`, and each take's in a cassette of several takes;
- each response's `timing` (how long the upstream took; see cassette.py);
- the response headers `x-request-id`, `request-id`, `openai-processing-ms` and every rate-limit header
  (`x-ratelimit-*`, `anthropic-ratelimit-*`);
- in a response body and in the `data` of every stream event, at any depth: `id`, `item_id`, `call_id`,
  `created`, `created_at`, `system_fingerprint`, `obfuscation` (random padding OpenAI adds to stream
  chunks to hide token lengths) and Gemini's `responseId`; ids are minted per call at every level
  (`chatcmpl-`, `call_`, `resp_`, `msg_`), not only at the top. A model object (`"object": "model"` or
  `"type": "model"`, as in a models listing) is the exception: its `id` is the model's name;
- the SSE `id` field of every stream event;
- in a WebSocket session (session_cassette.py), each frame's `at_ms`, and in its `data` the keys above and
  `event_id` (minted per event, as `id` is per response);
- in the stored request, what the key does not see either: what the key rules drop or rewrite (tool-call ids,
  numbered in order of appearance, and the user's `ignore` and `normalize` rules), the random `boundary` of a
  multipart `content-type`, and a Responses `previous_response_id`, which names the answer it chains to by an id
  minted per call (the key names that answer by its cassette instead, see keys.py).

So a refreshed conversation whose ids are new in every turn keeps its files byte for byte.
"""

from __future__ import annotations

import re
from typing import Any

from inference_gate.core.key_rules import KeyRules

VOLATILE_RESPONSE_HEADERS = frozenset({"x-request-id", "request-id", "openai-processing-ms"})
VOLATILE_RESPONSE_HEADER_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-")
VOLATILE_BODY_KEYS = frozenset(
    {
        "id",
        "item_id",
        "call_id",
        "created",
        "created_at",
        "system_fingerprint",
        "obfuscation",
        "responseId",
        "previous_response_id",
    }
)
VOLATILE_EVENT_FIELDS = frozenset({"id"})
VOLATILE_TOP_LEVEL = frozenset({"recorded_at"})
VOLATILE_REQUEST_BODY_KEYS = frozenset({"previous_response_id"})
_MULTIPART_BOUNDARY = re.compile(r";\s*boundary=(?:\"[^\"]*\"|[^;]*)", re.IGNORECASE)
VOLATILE_RESPONSE_FIELDS = frozenset({"timing"})
VOLATILE_FRAME_FIELDS = frozenset({"at_ms"})


def is_volatile_header(name: str) -> bool:
    lowered = name.lower()
    return lowered in VOLATILE_RESPONSE_HEADERS or lowered.startswith(VOLATILE_RESPONSE_HEADER_PREFIXES)


def material_view(document: dict[str, Any], rules: KeyRules | None = None) -> dict[str, Any]:
    """A cassette's plain JSON document (see `cassette_document`) without its volatile values; a new object.

    Two recordings of the same exchange have equal material views exactly when nothing that matters changed.
    The request is compared as the key sees it, under `rules` (the built-in ones when None).
    """
    view = {name: value for name, value in document.items() if name not in VOLATILE_TOP_LEVEL}
    request = document.get("request")
    if isinstance(request, dict):
        view["request"] = _material_request(request, KeyRules.default() if rules is None else rules)
    response = document.get("response")
    if isinstance(response, dict):
        view["response"] = _material_response(response)
    frames = document.get("frames")
    if isinstance(frames, list):  # a WebSocket session's: when each frame came, and the ids in it, are volatile
        view["frames"] = [_material_frame(frame) for frame in frames]
    takes = document.get("takes")
    if isinstance(takes, list):  # each take has the top level's shape: `recorded_at` and `response`
        view["takes"] = [material_view(take, rules) if isinstance(take, dict) else take for take in takes]
    return view


def _material_request(request: dict[str, Any], rules: KeyRules) -> dict[str, Any]:
    material = dict(request)
    headers = request.get("headers")
    if isinstance(headers, dict) and isinstance(headers.get("content-type"), str):
        material["headers"] = {**headers, "content-type": _MULTIPART_BOUNDARY.sub("", headers["content-type"])}
    body = request.get("body")
    if isinstance(body, dict):
        body = {name: value for name, value in body.items() if name not in VOLATILE_REQUEST_BODY_KEYS}
    query = request.get("query")
    pairs = [tuple(pair) for pair in query if _is_pair(pair)] if isinstance(query, list) else []
    keyed = rules.apply(body, pairs)
    if "body" in request:
        material["body"] = keyed.json_body
    if pairs:
        material["query"] = [list(pair) for pair in keyed.query]
    return material


def _is_pair(pair: Any) -> bool:
    return isinstance(pair, list) and len(pair) == 2 and all(isinstance(part, str) for part in pair)


def _material_response(response: dict[str, Any]) -> dict[str, Any]:
    material = {name: value for name, value in response.items() if name not in VOLATILE_RESPONSE_FIELDS}
    headers = response.get("headers")
    if isinstance(headers, dict):
        material["headers"] = {name: value for name, value in headers.items() if not is_volatile_header(name)}
    if "body" in response:
        material["body"] = without_volatile_keys(response["body"])
    events = response.get("events")
    if isinstance(events, list):
        material["events"] = [_material_event(event) for event in events]
    return material


def _material_frame(frame: Any) -> Any:
    if not isinstance(frame, dict):
        return frame
    material = {name: value for name, value in frame.items() if name not in VOLATILE_FRAME_FIELDS}
    if "data" in frame:
        material["data"] = without_volatile_keys(frame["data"])
    return material


def _material_event(event: Any) -> Any:
    if not isinstance(event, dict):
        return event
    material = {name: value for name, value in event.items() if name not in VOLATILE_EVENT_FIELDS}
    if "data" in event:
        material["data"] = without_volatile_keys(event["data"])
    return material


def without_volatile_keys(value: Any) -> Any:
    """`value` with the volatile body keys removed at every depth, except from model objects."""
    if isinstance(value, dict):
        is_model = value.get("object") == "model" or value.get("type") == "model"
        return {
            key: without_volatile_keys(child)
            for key, child in value.items()
            if is_model or key not in VOLATILE_BODY_KEYS
        }
    if isinstance(value, list):
        return [without_volatile_keys(child) for child in value]
    return value
