"""The cassette: one recorded exchange, and its bytes on disk.

A cassette is committed to git and read in pull requests, so its bytes are chosen for people and for diffs:
pretty-printed UTF-8 JSON with sorted keys and a trailing newline, non-ASCII text as it is, JSON bodies as JSON
objects (not escaped strings) and a stream as a list of its events with their `data` parsed. Serialising the
same exchange always gives the same bytes.

Only `recorded_at` and the response's `timing` change when the same request is recorded again; each sits on
lines of its own, so a re-recording that changed nothing shows up in a diff as those few lines. `timing` is how
long the upstream took, two numbers per response rather than one per event: for a stream, the milliseconds from
sending the request to its first event and to its last (`first_event_ms`, `last_event_ms`); for a whole body, to
its end (`total_ms`). A paced replay (pacing.py) spreads the answer over that time; a file without it replays
at once.

A cassette holds one or more takes: answers recorded for the same request, served in recorded order (see the
`takes` setting). A one-take file keeps today's shape, `recorded_at` and `response` at the top level, so the
common case reads as it always has and no existing file changes. A file of several takes holds them instead
as `takes: [{"recorded_at": ..., "response": ...}, ...]`. Both are format version 1: the version names what a
reader must understand, and a reader of either shape reads both; an older gate refuses a several-take file
as malformed rather than serving one take of it as if it were the only one.

A request answered through a named route (an OpenAI-compatible server at a path prefix, routes.py) records the
route's name as `request.route`. A dialect's own route is not written: the path already says it, and every
cassette recorded before routes existed keeps its bytes.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from inference_gate.core.keys import MAX_JSON_DEPTH, CanonicalRequest, parsed_nests_deeper_than
from inference_gate.core.multipart import stored_form
from inference_gate.core.sse import SSEEvent, serialize_events
from inference_gate.core.summary import summarize

FORMAT_VERSION = 1
NO_BODY_STATUSES = frozenset({204, 304})
# RFC 9110 section 5.6.2: a header name is a token; a value holds no control character but tab.
HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
HEADER_VALUE_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
CASSETTE_OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE


class CassetteError(ValueError):
    """A file that is not a cassette this version of the gate can read."""


@dataclass(slots=True)
class RecordedRequest:
    """The request as stored: `headers` holds only the non-secret headers that matter for replay review.

    A multipart/form-data request is stored as its `form` (multipart.stored_form: text fields as text, files by
    name, size and SHA-256) instead of its body, whose boundary is random and whose files are usually committed
    already; its `body` is then empty. `route` names the named route that answered, None for a dialect's own.
    """

    method: str
    path: str
    query: list[list[str]]
    headers: dict[str, str]
    body: bytes
    json_body: Any = None
    is_json: bool = False
    form: list[dict[str, Any]] | None = None
    route: str | None = None


@dataclass(frozen=True, slots=True)
class StreamTiming:
    """When a stream's first and last events arrived, in milliseconds after the request was sent."""

    first_event_ms: int
    last_event_ms: int


@dataclass(frozen=True, slots=True)
class BodyTiming:
    """When a whole body had arrived, in milliseconds after the request was sent."""

    total_ms: int


ResponseTiming = StreamTiming | BodyTiming


@dataclass(slots=True)
class RecordedResponse:
    """The response as stored: a body (decoded, never gzip) or, for a stream, its SSE events; and how long the
    upstream took, when it was measured (a cassette recorded before timings were kept has none)."""

    status: int
    headers: dict[str, str]
    body: bytes = b""
    events: list[SSEEvent] | None = None
    timing: ResponseTiming | None = None


@dataclass(slots=True)
class Take:
    """One recorded answer to a cassette's request."""

    recorded_at: str
    response: RecordedResponse

    def response_body_bytes(self) -> bytes:
        """The bytes to send back on replay: the SSE stream re-framed, or the body."""
        if self.response.events is not None:
            return serialize_events(self.response.events)
        return self.response.body


@dataclass(slots=True)
class Cassette:
    """A request and its takes, in recorded order (at least one). The first take names the cassette in reviews
    and summaries, so `recorded_at` and `response` read it."""

    key: str
    request: RecordedRequest
    takes: list[Take]
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def recorded_at(self) -> str:
        return self.takes[0].recorded_at

    @property
    def response(self) -> RecordedResponse:
        return self.takes[0].response

    def with_takes(self, takes: list[Take]) -> Cassette:
        """This cassette's request with `takes` (at least one) as its answers, its summary computed again."""
        return Cassette(self.key, self.request, list(takes)).with_summary()

    def with_summary(self) -> Cassette:
        """This cassette with its review summary computed from the exchange."""
        self.summary = summarize(
            self.request.path,
            self.request.json_body if self.request.is_json else None,
            parse_json_or_none(self.response.body) if self.response.events is None else None,
            [event_data_value(event.data) for event in self.response.events]
            if self.response.events is not None
            else None,
            form=self.request.form,
        )
        return self

def record_exchange(
    request: CanonicalRequest,
    response: RecordedResponse,
    *,
    recorded_at: str,
    headers: dict[str, str],
    query: Sequence[tuple[str, str]],
    json_body: Any,
    store_file_contents: bool = False,
    route: str | None = None,
) -> Cassette:
    """The cassette of one exchange, with its summary. `headers`, `query` and `json_body` are the request's as
    stored (already filtered and redacted); everything else comes from the canonical request that named the
    cassette. An uploaded file's bytes are stored only with `store_file_contents`."""
    form = request.form
    stored_request = RecordedRequest(
        method=request.method,
        path=request.path,
        query=[list(pair) for pair in query],
        headers=headers,
        body=request.body if form is None else b"",
        json_body=json_body,
        is_json=request.is_json,
        form=None if form is None else stored_form(form, store_file_contents=store_file_contents),
        route=route,
    )
    return Cassette(key=request.key, request=stored_request, takes=[Take(recorded_at, response)]).with_summary()


def parse_json_or_none(body: bytes | str) -> Any:
    """The parsed body, or None when it is not JSON or nests deeper than MAX_JSON_DEPTH: such a body is stored
    as text, because orjson reads deeper JSON than it writes and a cassette must be writable and readable."""
    try:
        value = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None
    return None if parsed_nests_deeper_than(body, value, MAX_JSON_DEPTH) else value


def event_data_value(data: str) -> Any:
    """An event's `data` as stored: a JSON object or array is parsed, anything else stays text.

    Keeping scalars as text makes the mapping one-to-one: `[DONE]` and `"quoted"` are both stored as the
    exact string that was on the wire, and only objects and arrays, which are unambiguous, are parsed.
    """
    if data[:1] in ("{", "["):
        value = parse_json_or_none(data)
        return data if value is None else value
    return data


def _body_fields(body: bytes, json_body: Any, is_json: bool) -> dict[str, Any]:
    """A body as JSON when it is JSON, as text when it is UTF-8, else as base64; nothing when empty."""
    if not body:
        return {}
    if is_json:
        return {"body": json_body}
    try:
        return {"body_text": body.decode("utf-8")}
    except UnicodeDecodeError:
        return {"body_base64": base64.b64encode(body).decode("ascii")}


def _body_from_fields(fields: dict[str, Any]) -> tuple[bytes, Any, bool]:
    if "body" in fields:
        return orjson.dumps(fields["body"]), fields["body"], True
    if "body_text" in fields:
        return str(fields["body_text"]).encode("utf-8"), None, False
    if "body_base64" in fields:
        return base64.b64decode(fields["body_base64"]), None, False
    return b"", None, False


def _event_to_record(event: SSEEvent) -> dict[str, Any]:
    record: dict[str, Any] = {"data": event_data_value(event.data)}
    if event.event is not None:
        record["event"] = event.event
    if event.id is not None:
        record["id"] = event.id
    if event.retry is not None:
        record["retry"] = event.retry
    return record


def _event_from_record(record: dict[str, Any]) -> SSEEvent:
    if not isinstance(record, dict) or "data" not in record:
        raise ValueError(f"response.events holds {type(record).__name__} {record!r:.40}, not an event object with data")
    data = record["data"]
    return SSEEvent(
        data=data if isinstance(data, str) else orjson.dumps(data).decode("utf-8"),
        event=record.get("event"),
        id=record.get("id"),
        retry=record.get("retry"),
    )


def _response_to_dict(response: RecordedResponse) -> dict[str, Any]:
    stored_response: dict[str, Any] = {"status": response.status, "headers": response.headers}
    if response.events is not None:
        stored_response["events"] = [_event_to_record(event) for event in response.events]
    else:
        is_json_body = parse_json_or_none(response.body)
        stored_response.update(_body_fields(response.body, is_json_body, is_json_body is not None))
    if response.timing is not None:
        stored_response["timing"] = asdict(response.timing)
    return stored_response


def _timing_from_record(record: Any) -> ResponseTiming | None:
    """A stored `timing`, checked: whole non-negative milliseconds, the last event no earlier than the first."""
    if record is None:
        return None
    if not isinstance(record, dict):
        raise ValueError("response.timing must be an object")
    values = list(record.values())
    if not all(type(value) is int and value >= 0 for value in values):
        raise ValueError("response.timing holds whole non-negative milliseconds")
    if record.keys() == {"first_event_ms", "last_event_ms"}:
        if record["last_event_ms"] < record["first_event_ms"]:
            raise ValueError("response.timing: last_event_ms is before first_event_ms")
        return StreamTiming(record["first_event_ms"], record["last_event_ms"])
    if record.keys() == {"total_ms"}:
        return BodyTiming(record["total_ms"])
    raise ValueError("response.timing holds either first_event_ms and last_event_ms, or total_ms")


def _response_from_dict(response: dict[str, Any]) -> RecordedResponse:
    events = response.get("events")
    if events is not None and not isinstance(events, list):
        raise ValueError(f"response.events must be a list of events, not {type(events).__name__}")
    return RecordedResponse(
        status=int(response["status"]),
        headers={str(name): str(value) for name, value in response.get("headers", {}).items()},
        body=b"" if events is not None else _body_from_fields(response)[0],
        events=[_event_from_record(record) for record in events] if events is not None else None,
        timing=_timing_from_record(response.get("timing")),
    )


def cassette_to_dict(cassette: Cassette) -> dict[str, Any]:
    request = cassette.request
    stored_request: dict[str, Any] = {
        "method": request.method,
        "path": request.path,
        "query": request.query,
        "headers": request.headers,
        **_body_fields(request.body, request.json_body, request.is_json),
    }
    if request.form is not None:
        stored_request["form"] = request.form
    if request.route is not None:
        stored_request["route"] = request.route
    takes = [{"recorded_at": take.recorded_at, "response": _response_to_dict(take.response)} for take in cassette.takes]
    answers = takes[0] if len(takes) == 1 else {"takes": takes}
    return {
        "format_version": FORMAT_VERSION,
        "key": cassette.key,
        "request": stored_request,
        "summary": cassette.summary,
        **answers,
    }


def cassette_to_bytes(cassette: Cassette) -> bytes:
    """The cassette's file content: stable, pretty, sorted, UTF-8, newline-terminated."""
    return orjson.dumps(cassette_to_dict(cassette), option=CASSETTE_OPTIONS)


def cassette_document(data: bytes) -> dict[str, Any]:
    """A cassette file's content as plain JSON, once it is known to be a cassette of this format version.

    Tools that only need a few fields (`cache list`) stop here instead of rebuilding every stream event.
    """
    try:
        stored = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise CassetteError(f"not valid JSON ({error})") from None
    if not isinstance(stored, dict):
        raise CassetteError("not a JSON object")
    version = stored.get("format_version")
    if version != FORMAT_VERSION:
        raise CassetteError(f"unknown format_version {version!r} (this gate reads {FORMAT_VERSION})")
    return stored


def document_takes(document: dict[str, Any]) -> list[dict[str, Any]]:
    """A cassette document's takes, each `{"recorded_at", "response"}`, in recorded order, whichever shape the
    file has. A `takes` list must hold at least one take; anything else raises ValueError."""
    takes = document.get("takes")
    if takes is None:
        return [{"recorded_at": document.get("recorded_at", ""), "response": document["response"]}]
    if not isinstance(takes, list) or not takes or not all(isinstance(take, dict) for take in takes):
        raise ValueError("`takes` must be a non-empty list of objects")
    return takes


ORJSON_TOO_DEEP = "Recursion limit reached"
"""orjson's message when it refuses to write a value nested deeper than it writes."""


def _route_from_record(route: object) -> str | None:
    """A stored `request.route`: the name of the named route that answered, absent for a dialect's own."""
    if route is not None and not isinstance(route, str):
        raise ValueError("request.route must be a route name")
    return route


def cassette_from_bytes(data: bytes) -> Cassette:
    """Read a cassette file's content; CassetteError says what is wrong with a bad one."""
    stored = cassette_document(data)
    try:
        request = stored["request"]
        request_body, request_json, request_is_json = _body_from_fields(request)
        takes = [
            Take(str(take.get("recorded_at", "")), _response_from_dict(take["response"]))
            for take in document_takes(stored)
        ]
        cassette = Cassette(
            key=str(stored["key"]),
            request=RecordedRequest(
                method=str(request["method"]),
                path=str(request["path"]),
                query=[list(pair) for pair in request.get("query", [])],
                headers=dict(request.get("headers", {})),
                body=request_body,
                json_body=request_json,
                is_json=request_is_json,
                form=request.get("form"),
                route=_route_from_record(request.get("route")),
            ),
            takes=takes,
            summary=dict(stored.get("summary") or {}),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        # orjson's encode error is a TypeError; this one: read, but nested deeper than orjson writes.
        if str(error) == ORJSON_TOO_DEEP:
            raise CassetteError("malformed cassette (a body nests too deep to be sent again)") from None
        raise CassetteError(f"malformed cassette ({type(error).__name__}: {error})") from None
    for take in cassette.takes:
        check_replayable(take.response)
    return cassette


def check_replayable(response: RecordedResponse) -> None:
    """Raise CassetteError, naming the field, for a response that cannot go back on the wire as stored.

    The gate never records one; a hand-edited cassette may hold one, and sending it would break the connection
    mid-response instead of reporting the cassette.
    """
    if not 200 <= response.status <= 599:
        raise CassetteError(f"response.status {response.status} is not a final HTTP status (200 to 599)")
    if response.status in NO_BODY_STATUSES and (response.body or response.events is not None):
        raise CassetteError(f"response.status {response.status} allows no body, but the cassette holds one")
    for name, value in response.headers.items():
        if not HEADER_NAME.match(name):
            raise CassetteError(f"response.headers: {name!r} is not a valid header name")
        if HEADER_VALUE_FORBIDDEN.search(value):
            raise CassetteError(f"response.headers.{name}: the value holds a control character")
