"""A recorded WebSocket session's file: the upgrade request, the frames in order, and how the session closed.

    {
      "format_version": 1,
      "kind": "websocket_session",
      "key": "<sha256 of the endpoint, query, key rules and client frames (websocket_session.session_key)>",
      "recorded_at": "2026-12-06T23:00:00Z",
      "request": {"method": "GET", "path": "/v1/realtime", "query": [["model", "gpt-realtime"]],
                  "headers": {...}, "subprotocol": "realtime"},
      "summary": {"endpoint": "realtime", "model": "gpt-realtime", "client_frames": 4, "server_frames": 19,
                  "duration_ms": 2210, "prompt": "What is the capital of France?"},
      "frames": [{"from": "server", "at_ms": 3, "data": {...}}, {"from": "client", "at_ms": 40, "data": {...}}],
      "closed": {"by": "client", "code": 1000, "reason": ""}
    }

Like an HTTP cassette it is pretty, key-sorted JSON that reads well in a pull request, and `kind` tells the two
apart (an HTTP cassette has none). Headers are stored filtered and redacted as for HTTP; a key offered as a
subprotocol is never stored (`subprotocol` is only the one the server chose).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson

from inference_gate.core.cassette import CASSETTE_OPTIONS, FORMAT_VERSION, CassetteError
from inference_gate.core.dialects import endpoint_name
from inference_gate.core.summary import truncate
from inference_gate.core.websocket_session import SESSION_KIND, RecordedSession, Sender, SessionFrame, event_type

PROMPT_FIELDS = ("text", "transcript", "instructions")
# The server events whose `delta` is text: Realtime (GA and beta names) and Live.
TEXT_DELTA_EVENTS = frozenset(
    {
        "response.output_text.delta",
        "response.text.delta",
        "response.output_audio_transcript.delta",
        "response.audio_transcript.delta",
        "session.output_transcript.delta",
    }
)
REPLY_PREVIEW_CHARS = 200


@dataclass(frozen=True, slots=True)
class SessionClose:
    """Who closed the session, with which code and reason."""

    by: Sender
    code: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SessionTake:
    """One recording of a session: its frames and how it closed."""

    recorded_at: str
    frames: tuple[SessionFrame, ...]
    closed: SessionClose


@dataclass(frozen=True, slots=True)
class SessionCassette:
    """`recorded_at`, `frames` and `closed` are the first take, which names the cassette and its summary;
    `later_takes` are the ones recorded after it (the `takes` setting), in order."""

    key: str
    recorded_at: str
    path: str
    query: list[list[str]]
    headers: dict[str, str]
    subprotocol: str | None
    frames: tuple[SessionFrame, ...]
    closed: SessionClose
    later_takes: tuple[SessionTake, ...] = ()

    @property
    def takes(self) -> tuple[SessionTake, ...]:
        return (SessionTake(self.recorded_at, self.frames, self.closed), *self.later_takes)

    def with_takes(self, takes: Sequence[SessionTake]) -> SessionCassette:
        first, *later = takes
        return replace(
            self, recorded_at=first.recorded_at, frames=first.frames, closed=first.closed, later_takes=tuple(later)
        )

    def replayable(self, name: str, take_index: int = 0) -> RecordedSession:
        """The `take_index`-th take as a replay follows it; once the takes run out, the last one repeats."""
        take = self.takes[min(take_index, len(self.later_takes))]
        by_server = take.closed.by is Sender.SERVER
        return RecordedSession(name, take.frames, (take.closed.code, take.closed.reason) if by_server else None)

    @property
    def endpoint(self) -> str:
        return endpoint_name(self.path)

    def summary(self) -> dict[str, Any]:
        """What `cache list` shows of a session: endpoint, model, frame counts, duration, the first prompt."""
        model = next((value for name, value in self.query if name == "model"), None)
        summary: dict[str, Any] = {
            "endpoint": self.endpoint,
            "client_frames": sum(frame.sender is Sender.CLIENT for frame in self.frames),
            "server_frames": sum(frame.sender is Sender.SERVER for frame in self.frames),
            "duration_ms": self.frames[-1].at_ms if self.frames else 0,
        }
        if model is not None:
            summary["model"] = model
        prompt = first_prompt(self.frames)
        if prompt:
            summary["prompt"] = prompt
        reply = server_text(self.frames)
        if reply:
            summary["reply"] = truncate(reply, REPLY_PREVIEW_CHARS)
        return summary


def first_prompt(frames: tuple[SessionFrame, ...]) -> str:
    """The first text a client sent (an item's text, or instructions), for names and summaries."""
    for frame in frames:
        if frame.sender is Sender.CLIENT and frame.data is not None:
            text = _first_text(frame.data)
            if text:
                return text
    return ""


def server_text(frames: tuple[SessionFrame, ...]) -> str:
    """What the server said in text: its text and audio-transcript deltas, joined."""
    return "".join(
        frame.data["delta"]
        for frame in frames
        if frame.sender is Sender.SERVER
        and event_type(frame.data) in TEXT_DELTA_EVENTS
        and isinstance(frame.data.get("delta"), str)
    )


def _first_text(value: Any) -> str:
    if isinstance(value, dict):
        for name in PROMPT_FIELDS:
            if isinstance(value.get(name), str) and value[name].strip():
                return value[name]
        values = value.values()
    elif isinstance(value, list):
        values = value
    else:
        return ""
    for child in values:
        text = _first_text(child)
        if text:
            return text
    return ""


def is_session_document(document: dict[str, Any]) -> bool:
    return document.get("kind") == SESSION_KIND


def session_to_bytes(cassette: SessionCassette) -> bytes:
    document = {
        "format_version": FORMAT_VERSION,
        "kind": SESSION_KIND,
        "key": cassette.key,
        "recorded_at": cassette.recorded_at,
        "request": {
            "method": "GET",
            "path": cassette.path,
            "query": cassette.query,
            "headers": cassette.headers,
            "subprotocol": cassette.subprotocol,
        },
        "summary": cassette.summary(),
    }
    takes = [_take_to_record(take) for take in cassette.takes]
    if len(takes) == 1:  # one take keeps the plain shape, as an HTTP cassette does
        document.update(takes[0])
    else:
        del document["recorded_at"]
        document["takes"] = takes
    return orjson.dumps(document, option=CASSETTE_OPTIONS)


def _take_to_record(take: SessionTake) -> dict[str, Any]:
    return {
        "recorded_at": take.recorded_at,
        "frames": [frame.to_record() for frame in take.frames],
        "closed": {"by": take.closed.by.value, "code": take.closed.code, "reason": take.closed.reason},
    }


def _take_from_record(record: dict[str, Any]) -> SessionTake:
    closed = record.get("closed") or {"by": "client", "code": 1000}
    return SessionTake(
        recorded_at=str(record.get("recorded_at", "")),
        frames=tuple(SessionFrame.from_record(frame) for frame in record["frames"]),
        closed=SessionClose(Sender(closed["by"]), int(closed["code"]), str(closed.get("reason", ""))),
    )


def session_from_document(document: dict[str, Any]) -> SessionCassette:
    """A session cassette from its parsed file; CassetteError says what is wrong with a bad one."""
    if not is_session_document(document):
        raise CassetteError("not a WebSocket session cassette")
    try:
        request = document["request"]
        records = document.get("takes", [document])
        if not isinstance(records, list) or not records:
            raise ValueError("`takes` must be a non-empty list")
        first, *later = [_take_from_record(record) for record in records]
        return SessionCassette(
            key=str(document["key"]),
            recorded_at=first.recorded_at,
            path=str(request["path"]),
            query=[[str(name), str(value)] for name, value in request.get("query", [])],
            headers={str(name): str(value) for name, value in dict(request.get("headers", {})).items()},
            subprotocol=request.get("subprotocol"),
            frames=first.frames,
            closed=first.closed,
            later_takes=tuple(later),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise CassetteError(f"malformed session cassette ({type(error).__name__}: {error})") from None


def session_from_bytes(data: bytes) -> SessionCassette:
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise CassetteError(f"not valid JSON ({error})") from None
    if not isinstance(document, dict) or document.get("format_version") != FORMAT_VERSION:
        raise CassetteError(f"not a cassette of format version {FORMAT_VERSION}")
    return session_from_document(document)


def event_types(cassette: SessionCassette, sender: Sender) -> list[str]:
    """The event types one side sent, in order: what `cache show` lists of a session."""
    return [event_type(frame.data) or "?" for frame in cassette.frames if frame.sender is sender]
