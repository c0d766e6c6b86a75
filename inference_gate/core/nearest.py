"""Why a replay missed: the recorded request closest to the one that found no cassette, and where they differ.

A miss in replay mode is nearly always a small change: a test edited a prompt, a library changed a default
`temperature`, a cassette was recorded before a tool was added. The key is a hash, so it cannot say which.
`closest` finds the cassette of the same endpoint whose request is closest to the missed one and names the
first place where the two differ, as a JSON path with both values, so that the error alone tells the user
whether to fix the test or record the cassette again.

Comparison is plain data. A JSON body is flattened into `{path: leaf value}` (`messages[1].content`,
`tools[0].function.name`, `["weird key"]`); the distance between two requests is the number of paths whose
values differ or exist on one side only, plus one for each of method, path and query that differs. A body that
is not JSON counts 0 when equal and 1 otherwise. Leaves are kept as sets so that comparing two bodies is two
set intersections done in C, which keeps a miss fast with thousands of cassettes in a folder. Candidates at
the same distance are ranked by how alike their differing strings are (in a suite whose cassettes differ only
in their prompts, an edited prompt is one difference away from all of them), then by name.

Both sides are compared as the key sees them, after the key rules (key_rules.py): a value an `ignore` rule
drops or a `normalize` rule rewrites does not count, so the message points at a difference that still does.
Where a rule hid a difference between the real requests, the message says so, since a rule that hides too
much (or a cassette recorded under other rules, which `cache rekey` mends) is then the thing to look at.

Values masked by the `redact` setting are stored as `<redacted>`; the real value is gone, so such a leaf
counts as present with an unknown value. It is never reported as a difference, which would be wrong and would
also echo the secret into the error message.

This module is the pure part: plain data in, a distance and an explanation out. `index.py` reads the folders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode

import orjson

from inference_gate.core.cassette import Cassette
from inference_gate.core.chains import CHAIN_FIELD, chained_response_id
from inference_gate.core.key_rules import KeyRules
from inference_gate.core.keys import CanonicalRequest
from inference_gate.core.multipart import stored_form
from inference_gate.core.redact import REDACTED
from inference_gate.core.summary import truncate

VALUE_PREVIEW_CHARS = 80
HIDDEN_PATHS_SHOWN = 3
CONTEXT_BEFORE_DIFFERENCE_CHARS = 30

ABSENT: Final = object()
ABSENT_TEXT = "<absent>"
BODY = "body"


# --- paths and flattening -----------------------------------------------------------------------------------


def _child_path(path: str, key: str) -> str:
    """`messages` + `content` -> `messages.content`; a key that is not an identifier is quoted: `a["x-y"]`."""
    if key.isidentifier():
        return f"{path}.{key}" if path else key
    return f"{path}[{orjson.dumps(key).decode()}]"


def _item_path(path: str, index: int) -> str:
    return f"{path}[{index}]"


def flatten_json(value: Any) -> dict[str, Any]:
    """Every leaf of `value` by its path, in document order.

    An empty object or list is a leaf itself, so that `"tools": []` differs from no `tools` at all. A scalar
    body is one leaf at the empty path.
    """
    flat: dict[str, Any] = {}
    _flatten_into(flat, value, "")
    return flat


def _flatten_into(flat: dict[str, Any], value: Any, path: str) -> None:
    if isinstance(value, dict) and value:
        for key, child in value.items():
            _flatten_into(flat, child, _child_path(path, key))
    elif isinstance(value, list) and value:
        for index, child in enumerate(value):
            _flatten_into(flat, child, _item_path(path, index))
    else:
        flat[path] = value


def _leaf(path: str, value: Any) -> tuple[str, type, Any]:
    """A hashable leaf; the type is part of it because `1`, `1.0` and `true` are different requests."""
    return path, type(value), None if isinstance(value, dict | list) else value


def _is_redacted(value: Any) -> bool:
    return isinstance(value, str) and value == REDACTED


@dataclass(frozen=True, slots=True)
class _FlatBody:
    """A JSON body's compared leaves by path, and the same as sets.

    `redacted_paths` are the recorded leaves the `redact` setting masked: present, but with a value unknown.
    """

    values: dict[str, Any]
    leaves: frozenset[tuple[str, type, Any]]
    paths: frozenset[str]
    redacted_paths: tuple[str, ...] = ()


def _flat_body(flat: dict[str, Any], redacted_paths: tuple[str, ...] = ()) -> _FlatBody:
    """The sets of a body whose leaves `flat` are all compared."""
    leaves = frozenset(_leaf(path, value) for path, value in flat.items())
    return _FlatBody(flat, leaves, frozenset(flat), redacted_paths)


def _recorded_flat_body(json_body: Any) -> _FlatBody:
    """The sets of a recorded body: its `<redacted>` leaves are set apart, since their value is unknown."""
    flat = flatten_json(json_body)
    redacted = tuple(path for path, value in flat.items() if _is_redacted(value))
    compared = {path: value for path, value in flat.items() if not _is_redacted(value)}
    return _flat_body(compared, redacted)


def _is_under(path: str, ancestor: str) -> bool:
    return path == ancestor or path.startswith((f"{ancestor}.", f"{ancestor}["))


def _mask_redacted(received: dict[str, Any], redacted_paths: tuple[str, ...]) -> tuple[_FlatBody, int]:
    """The received body without what the recorded one redacted, and how many redacted paths it lacks.

    A redacted path the received body has (at or below it) matches whatever the value; one it lacks differs.
    """
    kept = {
        path: value
        for path, value in received.items()
        if not any(_is_under(path, redacted) for redacted in redacted_paths)
    }
    lacking = sum(1 for redacted in redacted_paths if not any(_is_under(path, redacted) for path in received))
    return _flat_body(kept), lacking


def _body_distance(recorded: _FlatBody, received: _FlatBody) -> int:
    """How many paths hold different values or exist on one side only."""
    shared_paths = len(recorded.paths & received.paths)
    equal_leaves = len(recorded.leaves & received.leaves)
    return len(recorded.paths) + len(received.paths) - shared_paths - equal_leaves


# --- the requests compared ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IndexedRequest:
    """What the index keeps of a cassette: its name and the request it answers, flattened once.

    `query` and `json_body` are the key's copies, after the key rules; `stored_query` and `stored_json_body`
    the request as the cassette stores it, and `rule_changes` where the rules changed it. `raw_body` is kept
    only for a body that is not JSON.
    """

    name: str
    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    json_body: Any
    raw_body: bytes
    flat: _FlatBody | None
    stored_query: tuple[tuple[str, str], ...] = ()
    stored_json_body: Any = None
    rule_changes: tuple[str, ...] = ()

    @classmethod
    def from_cassette(cls, name: str, cassette: Cassette, rules: KeyRules | None = None) -> IndexedRequest:
        request = cassette.request
        stored_query = tuple((str(field), str(value)) for field, value in request.query)
        stored_json_body = request.json_body if request.is_json else None
        keyed = (rules or KeyRules.default()).apply(stored_json_body, stored_query)
        structured = request.is_json or request.form is not None
        body = keyed.json_body if request.form is None else _comparable_form(request.form)
        return cls(
            name=name,
            method=request.method,
            path=request.path,
            query=keyed.query,
            json_body=body,
            raw_body=b"" if structured else request.body,
            flat=_recorded_flat_body(body) if structured else None,
            stored_query=stored_query,
            stored_json_body=stored_json_body,
            rule_changes=keyed.changed_paths,
        )


def _comparable_form(form: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A stored form without file bytes: the hash stands for them, whether or not they were stored."""
    return [{name: value for name, value in entry.items() if name != "content_base64"} for entry in form]


def compared_body(request: CanonicalRequest) -> tuple[bool, Any]:
    """(True, what is compared) for a JSON body (the key's copy) or a form (its fields as stored), else
    (False, None): such a body is compared as bytes."""
    if request.is_json:
        return True, _with_chained_id_as_sent(request)
    if request.form is not None:
        return True, _comparable_form(stored_form(request.form))
    return False, None


def _with_chained_id_as_sent(request: CanonicalRequest) -> Any:
    """The key's copy of the body with `previous_response_id` as sent: a recorded request is read back with the id
    it was sent with, so the two compare alike, and a difference names ids a person can recognise (chains.py)."""
    chained_id = chained_response_id(request.json_body)
    if chained_id is None or not isinstance(request.key_json_body, dict):
        return request.key_json_body
    return {**request.key_json_body, CHAIN_FIELD: chained_id}


class MissedRequest:
    """The request that missed, flattened once per miss and compared with every candidate.

    Its body masked like a recorded one was redacted is computed once per set of redacted paths; with one
    `redact` setting for the whole store, that is once or twice per miss.
    """

    def __init__(self, request: CanonicalRequest) -> None:
        self.request = request
        self.structured, self.body = compared_body(request)
        self.flat = _flat_body(flatten_json(self.body)) if self.structured else None
        values = self.flat.values if self.flat is not None else {}
        self.strings = [(path, value) for path, value in values.items() if isinstance(value, str)]
        self._masked: dict[tuple[str, ...], tuple[_FlatBody, int]] = {}

    def masked_like(self, redacted_paths: tuple[str, ...]) -> tuple[_FlatBody, int]:
        if self.flat is None:
            raise ValueError("only a structured body is masked like a recorded one")
        if redacted_paths not in self._masked:
            self._masked[redacted_paths] = _mask_redacted(self.flat.values, redacted_paths)
        return self._masked[redacted_paths]


def _request_distance(recorded: IndexedRequest, missed: MissedRequest) -> int:
    request = missed.request
    distance = int(recorded.method != request.method) + int(recorded.path != request.path)
    distance += int(recorded.query != request.key_query)
    if recorded.flat is None or missed.flat is None:
        both_raw = recorded.flat is None and missed.flat is None
        return distance + int(not (both_raw and recorded.raw_body == request.body))
    if recorded.flat.redacted_paths:
        received, lacking = missed.masked_like(recorded.flat.redacted_paths)
        return distance + _body_distance(recorded.flat, received) + lacking
    return distance + _body_distance(recorded.flat, missed.flat)


def shared_prefix_length(first: str, second: str) -> int:
    """The index of the first character where the strings differ (the shorter length if one starts the other).

    A binary search over slice comparisons, which run in C: a long system prompt costs microseconds.
    """
    low, high = 0, min(len(first), len(second))
    while low < high:
        middle = (low + high + 1) // 2
        if first[:middle] == second[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def shared_suffix_length(first: str, second: str) -> int:
    """How many characters the strings share at their end; the same binary search as for the start."""
    low, high = 0, min(len(first), len(second))
    while low < high:
        middle = (low + high + 1) // 2
        if first[len(first) - middle :] == second[len(second) - middle :]:
            low = middle
        else:
            high = middle - 1
    return low


def _string_likeness(recorded: IndexedRequest, missed: MissedRequest) -> int:
    """How many characters the differing strings of the two bodies share at their start and at their end.

    Ranks candidates at equal distance. A test suite's cassettes often differ from each other only in the
    prompt, so an edited prompt is at distance 1 from all of them; this finds the one it was edited from.
    """
    if recorded.flat is None:
        return 0
    stored_values = recorded.flat.values
    shared = 0
    for path, received in missed.strings:
        stored = stored_values.get(path)
        if stored != received and isinstance(stored, str):
            start = shared_prefix_length(stored, received)
            shared += start + shared_suffix_length(stored[start:], received[start:])
    return shared


def closest(candidates: list[IndexedRequest], missed: MissedRequest) -> IndexedRequest:
    """The candidate at the smallest distance.

    Among equals, the one whose differing strings are most alike, then the first by name, so the answer never
    flickers.
    """
    distances = [_request_distance(candidate, missed) for candidate in candidates]
    smallest = min(distances)
    tied = [each for each, distance in zip(candidates, distances, strict=True) if distance == smallest]
    return min(tied, key=lambda candidate: (-_string_likeness(candidate, missed), candidate.name))


# --- the differences, in the order a person reads them ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Difference:
    """One place where the requests differ; `ABSENT` stands for a side that does not have it."""

    location: str
    recorded: Any
    received: Any


def _same_json(recorded: Any, received: Any) -> bool:
    return type(recorded) is type(received) and recorded == received


def json_differences(recorded: Any, received: Any) -> list[Difference]:
    """Every difference between two JSON bodies.

    First what differs along the received body in its document order (the order the user wrote it in: the
    recorded one was stored with sorted keys), then what only the recorded body has. A key or list item
    missing on one side is one difference, reported at its own path, not at each of its leaves.
    """
    found: list[Difference] = []
    _walk_received(recorded, received, "", found)
    _walk_recorded_only(recorded, received, "", found)
    return found


def _walk_received(recorded: Any, received: Any, path: str, found: list[Difference]) -> None:
    if _is_redacted(recorded):
        return
    if isinstance(recorded, dict) and isinstance(received, dict):
        for key, value in received.items():
            if key in recorded:
                _walk_received(recorded[key], value, _child_path(path, key), found)
            else:
                found.append(Difference(_child_path(path, key), ABSENT, value))
    elif isinstance(recorded, list) and isinstance(received, list):
        for index, value in enumerate(received):
            if index < len(recorded):
                _walk_received(recorded[index], value, _item_path(path, index), found)
            else:
                found.append(Difference(_item_path(path, index), ABSENT, value))
    elif not _same_json(recorded, received):
        found.append(Difference(path or BODY, recorded, received))


def _walk_recorded_only(recorded: Any, received: Any, path: str, found: list[Difference]) -> None:
    if isinstance(recorded, dict) and isinstance(received, dict):
        for key, value in recorded.items():
            if key in received:
                _walk_recorded_only(value, received[key], _child_path(path, key), found)
            else:
                found.append(Difference(_child_path(path, key), value, ABSENT))
    elif isinstance(recorded, list) and isinstance(received, list):
        for index, value in enumerate(recorded):
            if index < len(received):
                _walk_recorded_only(value, received[index], _item_path(path, index), found)
            else:
                found.append(Difference(_item_path(path, index), value, ABSENT))


def _body_as_text(body: bytes) -> str:
    return body.decode("utf-8", errors="replace")


def _request_differences(recorded: IndexedRequest, request: CanonicalRequest) -> list[Difference]:
    """Every difference between the key's copies, request line first (method, path, query), then the body."""
    found = [
        Difference(name, recorded_value, received_value)
        for name, recorded_value, received_value in (
            ("method", recorded.method, request.method),
            ("path", recorded.path, request.path),
            ("query", urlencode(recorded.query), urlencode(request.key_query)),
        )
        if recorded_value != received_value
    ]
    structured, body = compared_body(request)
    if recorded.flat is not None and structured:
        return found + json_differences(recorded.json_body, body)
    recorded_body = recorded.json_body if recorded.flat is not None else _body_as_text(recorded.raw_body)
    received_body = body if structured else _body_as_text(request.body)
    if recorded.flat is not None or structured or recorded.raw_body != request.body:
        found.append(Difference(BODY, recorded_body, received_body))
    return found


def _hidden_by_rules(recorded: IndexedRequest, request: CanonicalRequest, counted: list[Difference]) -> list[str]:
    """Where the real requests differ but a key rule made the key's copies alike."""
    changed = (*recorded.rule_changes, *request.rule_changes)
    if not changed:
        return []
    hidden = []
    if "query" not in {difference.location for difference in counted} and recorded.stored_query != request.query:
        hidden.append("query")
    if recorded.flat is not None and request.is_json:
        body_changes = [path.removeprefix("body.") for path in changed if path.startswith("body.")]
        counted_locations = {difference.location for difference in counted}
        hidden.extend(
            difference.location
            for difference in json_differences(recorded.stored_json_body, request.json_body)
            if difference.location not in counted_locations
            and any(_is_under(difference.location, path) for path in body_changes)
        )
    return hidden


def _hidden_note(hidden: list[str]) -> str:
    shown = ", ".join(hidden[:HIDDEN_PATHS_SHOWN]) + (", …" if len(hidden) > HIDDEN_PATHS_SHOWN else "")
    return f"a key rule hid the difference{'s' if len(hidden) > 1 else ''} at {shown}"


# --- the message --------------------------------------------------------------------------------------------


def _quoted_excerpt(text: str, start: int) -> str:
    """`text` from `start`, at most VALUE_PREVIEW_CHARS of it, quoted, with an ellipsis where it was cut."""
    end = start + VALUE_PREVIEW_CHARS
    shown = ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")
    return orjson.dumps(shown).decode()


def _format_value(value: Any) -> str:
    """Compact JSON, cut to VALUE_PREVIEW_CHARS; `<absent>` for a side that does not have the value."""
    if value is ABSENT:
        return ABSENT_TEXT
    if isinstance(value, str):
        return _quoted_excerpt(value, 0)
    return truncate(orjson.dumps(value).decode(), VALUE_PREVIEW_CHARS)


def _format_values(recorded: Any, received: Any) -> tuple[str, str]:
    """Both values as the message shows them.

    Two long strings that share a beginning are both shown from a little before their first differing
    character, so the difference is in view: `"…brown fox"` against `"…brown cat"`.
    """
    if isinstance(recorded, str) and isinstance(received, str):
        start = shared_prefix_length(recorded, received) - CONTEXT_BEFORE_DIFFERENCE_CHARS
        if start > 0 and max(len(recorded), len(received)) > VALUE_PREVIEW_CHARS:
            return _quoted_excerpt(recorded, start), _quoted_excerpt(received, start)
    return _format_value(recorded), _format_value(received)


def explain(recorded: IndexedRequest, request: CanonicalRequest) -> str:
    """`<cassette> differs at <path>: recorded <value>, got <value> (and N more differences)`."""
    found = _request_differences(recorded, request)
    hidden = _hidden_by_rules(recorded, request, found)
    if not found and hidden:
        return (
            f"{recorded.name}, which differs only where {_hidden_note(hidden)}: it was keyed under other key "
            f"rules; `inference-gate cache rekey --apply` renames it under the rules in force"
        )
    if not found:
        return (
            f"{recorded.name}, which shows no difference: the request differs from it only in values the "
            f"cassette does not store, such as redacted ones"
        )
    first = found[0]
    recorded_text, received_text = _format_values(first.recorded, first.received)
    message = f"{recorded.name} differs at {first.location}: recorded {recorded_text}, got {received_text}"
    more = len(found) - 1
    if more:
        message += f" (and {more} more difference{'s' if more > 1 else ''})"
    if hidden:
        message += f"; {_hidden_note(hidden)}"
    return message
