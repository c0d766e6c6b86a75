"""How far today's answer to a recorded request has drifted from its cassette, in the terms a team acts on.

A cassette freezes an API as it was; `inference-gate verify` asks the live API the same question again and
compares the two answers by what would break a program, not by wording. Each comparison gives one level, the
worst of its differences, in this order:

- `same`: equal once the volatile values are left out (volatile.py: ids, timestamps, request ids, timings);
- `wording`: the same shape and behaviour, other values: reworded text, other token counts, another header value;
- `behaviour`: what a program branches on changed (reply_traits.py): the finish or stop reason, the tools called
  or their arguments' keys, a refusal, an empty reply where there was text;
- `shape`: the JSON changed under the program's parser: a field added, removed or retyped at a JSON path, a
  stream event type new or missing, a stream where there was a body or the other way round;
- `error`: the upstream answered with a status that is not 2xx (the runner also gives it when the connection
  failed, see `failed`).

Shapes are compared as skeletons: every JSON path, with list items merged into `[*]` and the JSON types seen
there (null is no type: `"content": null` beside a string is the same field). An object with a string `type` is
its own kind, `{kind}` in the path (`output[*]{function_call}`, `delta{text_delta}`), so that two kinds of item
in one list are not read as one item whose fields come and go. A stream's events are one list whose kinds are
the event types (the SSE `event:` name, else the data's `type` or `object`, else the text, as `[DONE]`).

Some fields come and go with the answer, not with the API: a tool call where there was text brings
`tool_calls`, a `function_call` item, a `tool_use` block, a `functionCall` part, and takes text fields away.
Such a field or kind appearing or vanishing (`ANSWER_FIELDS`, `ANSWER_KINDS`, and event types naming them)
is not a shape change; the behaviour comparison reports what it means. The values of tool arguments (`input`,
`args`) are the model's, never the API's shape, and are not walked.

Only the first differences of each level are kept (`MAX_DIFFERENCES_PER_LEVEL`), with a count of the rest.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from inference_gate.core.dialects import endpoint_name
from inference_gate.core.reply_traits import ReplyTraits, reply_traits, tool_call_text
from inference_gate.core.volatile import is_volatile_header, without_volatile_keys

MAX_DIFFERENCES_PER_LEVEL = 12
VALUE_PREVIEW_CHARS = 60

# Fields whose presence follows what the model answered, not the API's schema.
ANSWER_FIELDS = frozenset(
    {
        "content",
        "text",
        "tool_calls",
        "function_call",
        "refusal",
        "reasoning_content",
        "functionCall",
        "thought",
        "thoughtSignature",
        "partial_json",
        "thinking",
        "signature",
        "candidates",  # Gemini leaves them out of a blocked prompt's answer, and gives `promptFeedback`
        "promptFeedback",
    }
)
# Item, block and delta kinds that follow the answer.
ANSWER_KINDS = frozenset(
    {
        "message",
        "function_call",
        "output_text",
        "refusal",
        "text",
        "tool_use",
        "server_tool_use",
        "thinking",
        "redacted_thinking",
        "text_delta",
        "input_json_delta",
        "thinking_delta",
        "signature_delta",
    }
)
# Stream event types that follow the answer contain one of these: a tool-call stream has no text events.
ANSWER_EVENT_WORDS = ("output_text", "refusal", "function_call", "content_part", "reasoning")
ARGUMENT_FIELDS = frozenset({"input", "args"})
# Their values are what the behaviour comparison reads as the finish reason; wording does not repeat them.
FINISH_FIELDS = frozenset({"finish_reason", "stop_reason", "finishReason"})
# Minted per session by the Realtime and Live APIs: each event's id and the ids that point at other items.
SESSION_VOLATILE_KEYS = frozenset({"event_id", "previous_item_id", "response_id", "conversation_id", "expires_at"})
EVENTS = "events"
BODY = "body"


class Level(StrEnum):
    SAME = "same"
    WORDING = "wording"
    BEHAVIOUR = "behaviour"
    SHAPE = "shape"
    ERROR = "error"

    @property
    def rank(self) -> int:
        """Its place in the order above: a level fails a run set to fail on any level of lower or equal rank."""
        return _ORDER.index(self)


_ORDER = tuple(Level)


@dataclass(frozen=True, slots=True)
class Difference:
    """One thing that differs: `where` is a JSON path, an event type or a trait, `what` says how, in words."""

    level: Level
    where: str
    what: str


@dataclass(frozen=True, slots=True)
class Drift:
    level: Level
    differences: tuple[Difference, ...] = ()
    take: int = 0  # which recorded take the answer was compared with (the closest one)

    @classmethod
    def failed(cls, reason: str) -> Drift:
        """The drift of a request that got no answer at all (the connection failed, the upstream timed out)."""
        return cls(Level.ERROR, (Difference(Level.ERROR, "connection", reason),))


# --- the comparison -----------------------------------------------------------------------------------------


def compare_answers(recorded: dict[str, Any], fresh: dict[str, Any]) -> Drift:
    """The drift from a recorded cassette document (`cassette_document`) to a fresh one for the same request.

    A cassette of several takes is compared take by take with the fresh answer's first take, and the closest
    take counts: an answer that matches any recorded take has not drifted.
    """
    path = str(_dict(recorded.get("request")).get("path", ""))
    endpoint = endpoint_name(path)
    fresh_response = _dict(_takes(fresh)[0].get("response"))
    drifts = [
        _compare_responses(endpoint, _dict(take.get("response")), fresh_response) for take in _takes(recorded)
    ]
    best = min(range(len(drifts)), key=lambda index: (drifts[index].level.rank, len(drifts[index].differences)))
    drift = drifts[best]
    return Drift(drift.level, drift.differences, take=best)


def compare_sessions(path: str, recorded: Sequence[Any], fresh: Sequence[Any]) -> Drift:
    """The drift of a WebSocket session played again, from its server events' data, recorded and fresh: compared
    as a stream's events are (event types, shapes, values), without the ids a session mints on top of the
    volatile ones (`SESSION_VOLATILE_KEYS`). A Realtime session's behaviour is read from its `response.done`
    events (reply_traits.py); a Live session drifts by shape and wording only."""

    def as_response(events: Sequence[Any]) -> dict[str, Any]:
        data = [_without_keys(event, SESSION_VOLATILE_KEYS) for event in events]
        return {"status": 200, "headers": {}, "events": [{"data": event} for event in data]}

    return _compare_responses(endpoint_name(path), as_response(recorded), as_response(fresh))


def _without_keys(value: Any, keys: frozenset[str]) -> Any:
    if isinstance(value, dict):
        return {key: _without_keys(child, keys) for key, child in value.items() if key not in keys}
    if isinstance(value, list):
        return [_without_keys(child, keys) for child in value]
    return value


def _takes(document: dict[str, Any]) -> list[dict[str, Any]]:
    takes = document.get("takes")
    if isinstance(takes, list) and takes:
        return [_dict(take) for take in takes]
    return [document]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _compare_responses(endpoint: str, recorded: dict[str, Any], fresh: dict[str, Any]) -> Drift:
    status = fresh.get("status")
    if not (isinstance(status, int) and 200 <= status < 300):
        return Drift(Level.ERROR, (Difference(Level.ERROR, "status", _error_text(recorded, fresh)),))
    differences = _shape_differences(recorded, fresh)
    differences += _behaviour_differences(endpoint, recorded, fresh)
    differences += _wording_differences(recorded, fresh)
    if not differences:
        return Drift(Level.SAME)
    level = max((difference.level for difference in differences), key=lambda level: level.rank)
    return Drift(level, tuple(_capped(differences)))


def _error_text(recorded: dict[str, Any], fresh: dict[str, Any]) -> str:
    """`200 -> 500: <the upstream's message>`; every dialect's error has `error.message` (Anthropic's nests it
    the same way)."""
    message = _dict(_dict(fresh.get("body")).get("error")).get("message")
    text = f"{recorded.get('status')} -> {fresh.get('status')}"
    return f"{text}: {_preview(message)}" if isinstance(message, str) else text


def _capped(differences: list[Difference]) -> Iterator[Difference]:
    """The differences, worst level first, at most MAX_DIFFERENCES_PER_LEVEL of each, then how many more."""
    for level in reversed(_ORDER):
        of_level = [difference for difference in differences if difference.level is level]
        yield from of_level[:MAX_DIFFERENCES_PER_LEVEL]
        if len(of_level) > MAX_DIFFERENCES_PER_LEVEL:
            yield Difference(level, "…", f"{len(of_level) - MAX_DIFFERENCES_PER_LEVEL} more")


def _preview(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= VALUE_PREVIEW_CHARS else text[: VALUE_PREVIEW_CHARS - 1] + "…"


# --- shape ---------------------------------------------------------------------------------------------------

Path = tuple[str, ...]


def _content(response: dict[str, Any]) -> tuple[str, Any]:
    """The response's content, without volatile values: (`events`, each event's kind and data) or (`body`, body).

    A body stored as text (`body_text`) or bytes (`body_base64`) is a string here.
    """
    events = response.get("events")
    if isinstance(events, list):
        return EVENTS, [(event_type(_dict(event)), without_volatile_keys(_dict(event).get("data"))) for event in events]
    for name in ("body", "body_text", "body_base64"):
        if name in response:
            return BODY, without_volatile_keys(response[name])
    return BODY, None


def event_type(event: dict[str, Any]) -> str:
    """A stored stream event's type: its SSE `event:` name, else its data's `type` or `object`, else its text."""
    if isinstance(event.get("event"), str):
        return event["event"]
    data = event.get("data")
    if isinstance(data, dict):
        for name in ("type", "object"):
            if isinstance(data.get(name), str):
                return data[name]
        return "message"
    return data if isinstance(data, str) else "message"


def _json_type(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


class _Skeleton:
    """Every generalised path of a value with the JSON types seen there, and its leaves' values in order."""

    def __init__(self) -> None:
        self.types: dict[Path, set[str]] = {}
        self.values: dict[Path, list[Any]] = {}

    def add(self, value: Any, path: Path, *, root: bool = False) -> None:
        """Add `value` at `path`; a root (a body, an event's data) is not given its own kind: a body is the one
        answer to its request, and an event already sits under its event type."""
        kind = value.get("type") if isinstance(value, dict) else None
        if isinstance(kind, str) and not root:
            self._note(path, "object")
            path = (*path, f"{{{kind}}}")
        json_type = _json_type(value)
        self._note(path, json_type)
        if isinstance(value, dict):
            for key, child in value.items():
                if key == "type" and isinstance(child, str) and not root:
                    continue
                if key in ARGUMENT_FIELDS and isinstance(child, dict):
                    self._note((*path, key), "object")
                    self.values.setdefault((*path, key), []).append(child)
                    continue
                self.add(child, (*path, key))
        elif isinstance(value, list):
            for child in value:
                self.add(child, (*path, "[*]"))
        else:
            self.values.setdefault(path, []).append(value)

    def _note(self, path: Path, json_type: str | None) -> None:
        types = self.types.setdefault(path, set())
        if json_type is not None:
            types.add(json_type)


def _skeleton(content: tuple[str, Any]) -> _Skeleton:
    skeleton = _Skeleton()
    name, value = content
    if name == EVENTS:
        skeleton._note((EVENTS,), "array")
        for kind, data in value:
            skeleton.add(data, (EVENTS, f"{{{kind}}}"), root=True)
    else:
        skeleton.add(value, (BODY,), root=True)
    return skeleton


def render_path(path: Path) -> str:
    """`("body", "choices", "[*]", "message")` -> `body.choices[*].message`; a key that is not a name is quoted."""
    text = ""
    for segment in path:
        if segment == "[*]" or (segment.startswith("{") and segment.endswith("}")):
            text += segment
        elif segment.isidentifier():
            text += f".{segment}" if text else segment
        else:
            text += f'["{segment}"]'
    return text


def _retyped(old_types: set[str], new_types: set[str]) -> bool:
    """Whether a path holds other JSON types; a null on either side (no type) is not a retype."""
    return bool(old_types and new_types and old_types != new_types)


def _follows_the_answer(path: Path) -> bool:
    last = path[-1]
    if last.startswith("{") and last.endswith("}"):
        kind = last[1:-1]
        return kind in ANSWER_KINDS or (path[:-1] == (EVENTS,) and any(word in kind for word in ANSWER_EVENT_WORDS))
    return last in ANSWER_FIELDS


def _shape_differences(recorded: dict[str, Any], fresh: dict[str, Any]) -> list[Difference]:
    recorded_content, fresh_content = _content(recorded), _content(fresh)
    if recorded_content[0] != fresh_content[0]:
        was, now = ("a stream", "a body") if recorded_content[0] == EVENTS else ("a body", "a stream")
        return [Difference(Level.SHAPE, "response", f"{was} was recorded, {now} came")]
    old, new = _skeleton(recorded_content), _skeleton(fresh_content)
    differences = []
    for path in sorted(old.types.keys() | new.types.keys()):
        in_old, in_new = path in old.types, path in new.types
        if in_old and in_new:
            old_types, new_types = old.types[path], new.types[path]
            if _retyped(old_types, new_types):
                what = f"retyped: {'/'.join(sorted(old_types))} -> {'/'.join(sorted(new_types))}"
                differences.append(Difference(Level.SHAPE, render_path(path), what))
            continue
        parent = path[:-1]
        if not (parent in old.types and parent in new.types) or _follows_the_answer(path):
            continue  # only the topmost path of a new or missing subtree is named
        what = "added" if in_new else "missing"
        if path[:-1] == (EVENTS,):
            differences.append(Difference(Level.SHAPE, f"event type {path[-1][1:-1]}", what))
        else:
            differences.append(Difference(Level.SHAPE, render_path(path), what))
    content_types = [_content_type(recorded), _content_type(fresh)]
    if content_types[0] != content_types[1]:
        differences.append(Difference(Level.SHAPE, "headers.content-type", " -> ".join(map(str, content_types))))
    return differences


def _content_type(response: dict[str, Any]) -> str | None:
    """The media type, without parameters such as `charset`, which do not change how a body is read."""
    value = _dict(response.get("headers")).get("content-type")
    return value.split(";", 1)[0].strip().lower() if isinstance(value, str) else None


# --- behaviour -----------------------------------------------------------------------------------------------


def _traits(endpoint: str, response: dict[str, Any]) -> ReplyTraits:
    events = response.get("events")
    if isinstance(events, list):
        return reply_traits(endpoint, None, [_dict(event).get("data") for event in events])
    return reply_traits(endpoint, response.get("body"), None)


def _behaviour_differences(endpoint: str, recorded: dict[str, Any], fresh: dict[str, Any]) -> list[Difference]:
    old, new = _traits(endpoint, recorded), _traits(endpoint, fresh)
    differences = []
    if old.finish_reasons != new.finish_reasons:
        what = f"{', '.join(old.finish_reasons) or '-'} -> {', '.join(new.finish_reasons) or '-'}"
        differences.append(Difference(Level.BEHAVIOUR, "finish reason", what))
    if old.tool_calls != new.tool_calls:
        calls = [", ".join(map(tool_call_text, side.tool_calls)) or "none" for side in (old, new)]
        differences.append(Difference(Level.BEHAVIOUR, "tool calls", " -> ".join(calls)))
    if new.refused and not old.refused:
        differences.append(Difference(Level.BEHAVIOUR, "refusal", "the model refused"))
    if old.has_text and not new.has_text and not new.tool_calls:
        differences.append(Difference(Level.BEHAVIOUR, "reply", "empty where there was text"))
    return differences


# --- wording -------------------------------------------------------------------------------------------------


def _wording_differences(recorded: dict[str, Any], fresh: dict[str, Any]) -> list[Difference]:
    """Paths whose values differ (a stream's values joined over its events), and stored headers that differ.

    A path retyped (a shape difference) or holding the finish reason (a behaviour difference) is left to them.
    """
    old, new = _skeleton(_content(recorded)), _skeleton(_content(fresh))
    differences = [
        Difference(Level.WORDING, render_path(path), _value_change(old.values[path], new.values[path]))
        for path in sorted(old.values.keys() & new.values.keys())
        if old.values[path] != new.values[path]
        and not _retyped(old.types[path], new.types[path])
        and path[-1] not in FINISH_FIELDS
    ]
    old_headers, new_headers = _material_headers(recorded), _material_headers(fresh)
    for name in sorted(old_headers.keys() | new_headers.keys()):
        if name != "content-type" and old_headers.get(name) != new_headers.get(name):
            what = f"{_preview(old_headers.get(name, '-'))} -> {_preview(new_headers.get(name, '-'))}"
            differences.append(Difference(Level.WORDING, f"headers.{name}", what))
    return differences


def _value_change(old: list[Any], new: list[Any]) -> str:
    """Both sides of a value change, for one value; text pieces of a stream are joined first."""
    if all(isinstance(value, str) for value in old + new) and (len(old) > 1 or len(new) > 1):
        old, new = ["".join(old)], ["".join(new)]
    if len(old) == len(new) == 1:
        return f"{_quoted(old[0])} -> {_quoted(new[0])}"
    return f"{len(old)} values -> {len(new)} values"


def _quoted(value: Any) -> str:
    return f'"{_preview(value)}"' if isinstance(value, str) else _preview(value)


def _material_headers(response: dict[str, Any]) -> dict[str, Any]:
    headers = _dict(response.get("headers"))
    return {name.lower(): value for name, value in headers.items() if not is_volatile_header(name)}

