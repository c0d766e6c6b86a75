"""The cassette: one recorded exchange, and its bytes on disk.

A cassette is committed to git and read in pull requests, so its bytes are chosen for people and for diffs:
pretty-printed UTF-8 JSON with sorted keys and a trailing newline, non-ASCII text as it is, JSON bodies as JSON
objects (not escaped strings) and a stream as a list of its events with their `data` parsed. Serialising the
same exchange always gives the same bytes.

Only `recorded_at` changes when the same request is recorded again; it sits on one line of its own, so a
re-recording that changed nothing shows up in a diff as that one line.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import orjson

from inference_gate.keys import CanonicalRequest
from inference_gate.multipart import stored_form
from inference_gate.sse import SSEEvent, serialize_events
from inference_gate.summary import summarize

FORMAT_VERSION = 1
CASSETTE_OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE


class CassetteError(ValueError):
    """A file that is not a cassette this version of the gate can read."""


@dataclass(slots=True)
class RecordedRequest:
    """The request as stored: `headers` holds only the non-secret headers that matter for replay review.

    A multipart/form-data request is stored as its `form` (multipart.stored_form: text fields as text, files by
    name, size and SHA-256) instead of its body, whose boundary is random and whose files are usually committed
    already; its `body` is then empty.
    """

    method: str
    path: str
    query: list[list[str]]
    headers: dict[str, str]
    body: bytes
    json_body: Any = None
    is_json: bool = False
    form: list[dict[str, Any]] | None = None


@dataclass(slots=True)
class RecordedResponse:
    """The response as stored: a body (decoded, never gzip) or, for a stream, its SSE events."""

    status: int
    headers: dict[str, str]
    body: bytes = b""
    events: list[SSEEvent] | None = None


@dataclass(slots=True)
class Cassette:
    key: str
    recorded_at: str
    request: RecordedRequest
    response: RecordedResponse
    summary: dict[str, Any] = field(default_factory=dict)

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

    def response_body_bytes(self) -> bytes:
        """The bytes to send back on replay: the SSE stream re-framed, or the body."""
        if self.response.events is not None:
            return serialize_events(self.response.events)
        return self.response.body


def record_exchange(
    request: CanonicalRequest,
    response: RecordedResponse,
    *,
    recorded_at: str,
    headers: dict[str, str],
    json_body: Any,
    store_file_contents: bool = False,
) -> Cassette:
    """The cassette of one exchange, with its summary. `headers` and `json_body` are the request's as stored
    (already filtered and redacted); everything else comes from the canonical request that named the cassette.
    An uploaded file's bytes are stored only with `store_file_contents`."""
    form = request.form
    stored_request = RecordedRequest(
        method=request.method,
        path=request.path,
        query=[list(pair) for pair in request.query],
        headers=headers,
        body=request.body if form is None else b"",
        json_body=json_body,
        is_json=request.is_json,
        form=None if form is None else stored_form(form, store_file_contents=store_file_contents),
    )
    return Cassette(key=request.key, recorded_at=recorded_at, request=stored_request, response=response).with_summary()


def parse_json_or_none(body: bytes) -> Any:
    """The parsed body, or None when it is not JSON."""
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None


def event_data_value(data: str) -> Any:
    """An event's `data` as stored: a JSON object or array is parsed, anything else stays text.

    Keeping scalars as text makes the mapping one-to-one: `[DONE]` and `"quoted"` are both stored as the
    exact string that was on the wire, and only objects and arrays, which are unambiguous, are parsed.
    """
    if data[:1] in ("{", "["):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            return data
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
    data = record["data"]
    return SSEEvent(
        data=data if isinstance(data, str) else orjson.dumps(data).decode("utf-8"),
        event=record.get("event"),
        id=record.get("id"),
        retry=record.get("retry"),
    )


def cassette_to_dict(cassette: Cassette) -> dict[str, Any]:
    request = cassette.request
    response = cassette.response
    stored_request: dict[str, Any] = {
        "method": request.method,
        "path": request.path,
        "query": request.query,
        "headers": request.headers,
        **_body_fields(request.body, request.json_body, request.is_json),
    }
    if request.form is not None:
        stored_request["form"] = request.form
    stored_response: dict[str, Any] = {"status": response.status, "headers": response.headers}
    if response.events is not None:
        stored_response["events"] = [_event_to_record(event) for event in response.events]
    else:
        is_json_body = parse_json_or_none(response.body)
        stored_response.update(_body_fields(response.body, is_json_body, is_json_body is not None))
    return {
        "format_version": FORMAT_VERSION,
        "key": cassette.key,
        "recorded_at": cassette.recorded_at,
        "request": stored_request,
        "response": stored_response,
        "summary": cassette.summary,
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


def cassette_from_bytes(data: bytes) -> Cassette:
    """Read a cassette file's content; CassetteError says what is wrong with a bad one."""
    stored = cassette_document(data)
    try:
        request = stored["request"]
        response = stored["response"]
        request_body, request_json, request_is_json = _body_from_fields(request)
        events = response.get("events")
        if events is not None:
            response_events: list[SSEEvent] | None = [_event_from_record(record) for record in events]
            response_body = b""
        else:
            response_events = None
            response_body = _body_from_fields(response)[0]
        return Cassette(
            key=str(stored["key"]),
            recorded_at=str(stored.get("recorded_at", "")),
            request=RecordedRequest(
                method=str(request["method"]),
                path=str(request["path"]),
                query=[list(pair) for pair in request.get("query", [])],
                headers=dict(request.get("headers", {})),
                body=request_body,
                json_body=request_json,
                is_json=request_is_json,
                form=request.get("form"),
            ),
            response=RecordedResponse(
                status=int(response["status"]),
                headers={str(name): str(value) for name, value in response.get("headers", {}).items()},
                body=response_body,
                events=response_events,
            ),
            summary=dict(stored.get("summary") or {}),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise CassetteError(f"malformed cassette ({type(error).__name__}: {error})") from None
