"""A WebSocket session as a cassette: its ordered frames, and how a replay follows them.

Realtime (`/v1/realtime`) and Live (`/v1/live/sessions`) are conversations: what the server says depends on
every client event before it. So a session is stored whole, as the ordered list of its frames, each with who
sent it, its parsed JSON `data` and its offset in milliseconds from the `101`:

    {"from": "client", "at_ms": 412, "data": {"type": "conversation.item.create", "item": {...}}}
    {"from": "server", "at_ms": 733, "data": {"type": "response.output_text.delta", "delta": "Hi"}}

A replay follows the client (`SessionFollower`): it sends the server frames recorded before the first client
frame, and after each client frame the server frames that followed it in the recording, up to the next client
frame. A client frame is compared in its *match form* (`match_form`): the volatile `event_id` a client may mint
per event is left out, audio is compared by its digest, and the key rules (`ignore`, `normalize`, with `body.`
naming the frame's data) apply as to an HTTP body. Every recording of the same endpoint is a candidate at first;
each client frame keeps those whose next client frame matches. When none does, that is a miss, explained by the
candidate that went furthest and the first difference (`Miss`).

Large base64 audio (`input_audio_buffer.append`, `response.output_audio.delta` and Live's counterparts) is
stored by SHA-256 and size, like an uploaded file (`omit_audio`), unless the setting to keep it is on: a session
of speech would otherwise be megabytes of noise in a diff. A client's audio still matches exactly, by digest. A
server's omitted audio replays as silence of the recorded size (zero bytes, which is silence in PCM), so a
client that counts or plays audio keeps working; a test that needs the real samples keeps them.

The session's key hashes its endpoint, its query without credentials, the key rules and the match forms of all
its client frames: two sessions whose client said the same things are the same session, and the file name says
so. It is known only when the session ends, which is why a recording is written then.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from inference_gate.core.key_rules import KeyRules
from inference_gate.core.nearest import ABSENT, json_differences
from inference_gate.core.summary import truncate

SESSION_KEY_VERSION = 1
SESSION_KIND = "websocket_session"

# Which field of which event carries base64 audio: Realtime (GA and beta names) and Live.
AUDIO_FIELDS: dict[str, str] = {
    "input_audio_buffer.append": "audio",
    "response.output_audio.delta": "delta",
    "response.audio.delta": "delta",
    "session.input_audio.append": "audio",
    "session.output_audio.delta": "delta",
}
# How an omitted audio field is stored: `{"omitted_audio": {"sha256": ..., "bytes": ...}}`.
OMITTED_AUDIO = "omitted_audio"
# Client fields that name an event rather than say anything: clients may mint them afresh on every run.
VOLATILE_CLIENT_FIELDS = frozenset({"event_id"})
VALUE_PREVIEW_CHARS = 80


class Sender(enum.StrEnum):
    CLIENT = "client"
    SERVER = "server"


@dataclass(frozen=True, slots=True)
class SessionFrame:
    """One message of a session. `data` is the parsed JSON of a text message; a text message that is not JSON
    is kept as `text`, a binary one as `binary`. Exactly one of the three is set."""

    sender: Sender
    at_ms: int
    data: Any = None
    text: str | None = None
    binary: bytes | None = None

    @classmethod
    def of_message(cls, sender: Sender, at_ms: int, message: str | bytes) -> SessionFrame:
        if isinstance(message, bytes):
            return cls(sender, at_ms, binary=message)
        try:
            return cls(sender, at_ms, data=orjson.loads(message))
        except orjson.JSONDecodeError:
            return cls(sender, at_ms, text=message)

    def message(self) -> str | bytes:
        """The frame as a WebSocket message again: compact JSON, the text, or the bytes."""
        if self.binary is not None:
            return self.binary
        if self.text is not None:
            return self.text
        return orjson.dumps(self.data).decode()

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"from": self.sender.value, "at_ms": self.at_ms}
        if self.binary is not None:
            record["binary_base64"] = base64.b64encode(self.binary).decode("ascii")
        elif self.text is not None:
            record["text"] = self.text
        else:
            record["data"] = self.data
        return record

    @classmethod
    def from_record(cls, record: Any) -> SessionFrame:
        """Raises ValueError naming what is wrong with a stored frame."""
        if not isinstance(record, dict):
            raise ValueError(f"a frame must be an object, not {record!r}")
        try:
            sender = Sender(record.get("from"))
        except ValueError:
            raise ValueError(f"a frame's `from` must be client or server, not {record.get('from')!r}") from None
        at_ms = record.get("at_ms")
        if not isinstance(at_ms, int) or at_ms < 0:
            raise ValueError(f"a frame's `at_ms` must be a non-negative integer, not {at_ms!r}")
        if "binary_base64" in record:
            return cls(sender, at_ms, binary=base64.b64decode(record["binary_base64"], validate=True))
        if "text" in record:
            return cls(sender, at_ms, text=str(record["text"]))
        if "data" not in record:
            raise ValueError("a frame has none of `data`, `text` or `binary_base64`")
        return cls(sender, at_ms, data=record["data"])


def event_type(data: Any) -> str | None:
    """The `type` of a JSON event, when it has one."""
    if isinstance(data, dict) and isinstance(data.get("type"), str):
        return data["type"]
    return None


def _audio_field(data: Any) -> str | None:
    kind = event_type(data)
    name = AUDIO_FIELDS.get(kind) if kind is not None else None
    return name if name is not None and isinstance(data.get(name), str) else None


def audio_digest(encoded: str) -> dict[str, Any]:
    """The stored form of base64 audio: the SHA-256 and size of its bytes (of the text itself when it is not
    valid base64, so that such audio still matches only itself)."""
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raw = encoded.encode("utf-8")
    return {OMITTED_AUDIO: {"sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw)}}


def omit_audio(data: Any) -> Any:
    """`data` with its base64 audio, if any, replaced by `audio_digest`; the same object when it has none."""
    name = _audio_field(data)
    if name is None:
        return data
    return {**data, name: audio_digest(data[name])}


def restore_audio(data: Any) -> Any:
    """A stored event as a server message again: omitted audio becomes silence of the recorded size."""
    kind = event_type(data)
    name = AUDIO_FIELDS.get(kind) if kind is not None else None
    omitted = data.get(name) if name is not None else None
    if not (isinstance(omitted, dict) and isinstance(omitted.get(OMITTED_AUDIO), dict)):
        return data
    size = omitted[OMITTED_AUDIO].get("bytes")
    silence = bytes(size if isinstance(size, int) and size >= 0 else 0)
    return {**data, name: base64.b64encode(silence).decode("ascii")}


def stored_frame(frame: SessionFrame, *, keep_audio: bool) -> SessionFrame:
    """A frame as the cassette keeps it: audio by digest unless `keep_audio`."""
    if keep_audio or frame.data is None:
        return frame
    stored = omit_audio(frame.data)
    return frame if stored is frame.data else SessionFrame(frame.sender, frame.at_ms, data=stored)


def match_form(frame: SessionFrame, rules: KeyRules) -> Any:
    """What of a client frame must match a recording: its data without volatile fields, audio by digest, after
    the key rules; a text or binary frame as itself."""
    if frame.binary is not None:
        return {"binary_sha256": hashlib.sha256(frame.binary).hexdigest()}
    if frame.text is not None:
        return {"text": frame.text}
    data = omit_audio(frame.data)
    if isinstance(data, dict):
        data = {name: value for name, value in data.items() if name not in VOLATILE_CLIENT_FIELDS}
    return rules.apply(data, ()).json_body


def session_key(path: str, query: Sequence[tuple[str, str]], client_forms: Sequence[Any], rules: KeyRules) -> str:
    """The key of a session: its endpoint, query (credentials already left out), rules and client frames."""
    canonical = orjson.dumps(
        {
            "version": SESSION_KEY_VERSION,
            "path": path,
            "query": sorted([list(pair) for pair in query]),
            "rules": rules.canonical_form.decode(),
            "client": list(client_forms),
        },
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(canonical).hexdigest()


@dataclass(frozen=True, slots=True)
class RecordedSession:
    """A session cassette's replayable part: its name (for reports), its frames in order, and the close the
    server ended it with, if the server did (Live closes after `session.closed`): a replay ends the same way, or
    a client that reads until the server closes would wait for ever."""

    name: str
    frames: tuple[SessionFrame, ...]
    server_close: tuple[int, str] | None = None


@dataclass(frozen=True, slots=True)
class Followed:
    """A client frame matched: send `frames`, each `at_ms` after the matched client frame was recorded, paced."""

    session: str
    frames: tuple[SessionFrame, ...]
    after_ms: int  # the matched client frame's own offset, which `frames`' offsets count from
    ended: bool  # the recording has nothing after these frames
    close: tuple[int, str] | None = None  # the server's close (code, reason) to send after `frames`


@dataclass(frozen=True, slots=True)
class Miss:
    """No recording answers this client frame. `closest` names the recording that went furthest (None when
    there is none) and `difference` says where it parts from the client, in one line."""

    closest: str | None
    difference: str
    frame_index: int  # 0-based, among the client's frames

    def message(self) -> str:
        where = f"client event {self.frame_index + 1}"
        if self.closest is None:
            return f"inference-gate: no recorded session for this endpoint answers {where}; {self.difference}."
        return (
            f"inference-gate: no recorded session answers {where}. Closest: {self.closest}, which differs at "
            f"{self.difference}. Record it with `inference-gate start`."
        )


@dataclass(slots=True)
class _Candidate:
    session: RecordedSession
    position: int  # index of the next frame to consume
    forms: list[Any] = field(default_factory=list)  # match forms of its client frames, computed when reached


class SessionFollower:
    """The replay of one session: which recordings still agree with the client, and what to send next.

    Candidates keep the order they are given (the store's order, by file name), and the first one still agreeing
    is the one whose server frames are sent, so a replay is deterministic.
    """

    def __init__(self, sessions: Sequence[RecordedSession], rules: KeyRules) -> None:
        self._rules = rules
        self._candidates = [_Candidate(session, 0) for session in sessions]
        self._client_frames = 0

    def opening(self) -> tuple[SessionFrame, ...]:
        """The server frames the first recording sent before its client spoke (e.g. `session.created`)."""
        if not self._candidates:
            return ()
        leading = self._server_frames_from(self._candidates[0], 0)
        for candidate in self._candidates:
            candidate.position = len(self._server_frames_from(candidate, 0))
        return leading

    def follow(self, frame: SessionFrame) -> Followed | Miss:
        """What to answer a client frame: the recorded server frames after it, or a miss."""
        index = self._client_frames
        self._client_frames += 1
        received = match_form(frame, self._rules)
        agreeing: list[_Candidate] = []
        for candidate in self._candidates:
            frames = candidate.session.frames
            if candidate.position < len(frames) and frames[candidate.position].sender is Sender.CLIENT:
                recorded = match_form(frames[candidate.position], self._rules)
                if recorded == received:
                    agreeing.append(candidate)
        if not agreeing:
            return self._miss(received, index)
        self._candidates = agreeing
        chosen = agreeing[0]
        after_ms = chosen.session.frames[chosen.position].at_ms
        for candidate in agreeing:
            candidate.position += 1
        answer = self._server_frames_from(chosen, chosen.position)
        for candidate in agreeing:
            candidate.position += len(self._server_frames_from(candidate, candidate.position))
        ended = chosen.position >= len(chosen.session.frames)
        close = chosen.session.server_close if ended else None
        return Followed(chosen.session.name, answer, after_ms, ended=ended, close=close)

    @staticmethod
    def _server_frames_from(candidate: _Candidate, start: int) -> tuple[SessionFrame, ...]:
        frames = candidate.session.frames
        end = start
        while end < len(frames) and frames[end].sender is Sender.SERVER:
            end += 1
        return frames[start:end]

    def _miss(self, received: Any, index: int) -> Miss:
        if not self._candidates:
            return Miss(None, "no session was recorded for it", index)
        candidate = self._candidates[0]
        frames = candidate.session.frames
        if candidate.position >= len(frames):
            return Miss(candidate.session.name, "its end: the recording has no more client events", index)
        recorded = match_form(frames[candidate.position], self._rules)
        return Miss(candidate.session.name, first_difference(recorded, received), index)


def first_difference(recorded: Any, received: Any) -> str:
    """`path: recorded X, received Y` for the first place two match forms differ."""
    differences = json_differences(recorded, received)
    if not differences:
        return "its type (the values are equal but of different JSON types)"
    first = differences[0]
    return f"{first.location}: recorded {_preview(first.recorded)}, received {_preview(first.received)}"


def _preview(value: Any) -> str:
    if value is ABSENT:
        return "nothing"
    return truncate(orjson.dumps(value).decode(), VALUE_PREVIEW_CHARS)


def miss_event(endpoint: str, message: str, *, client_event_id: str | None = None) -> dict[str, Any]:
    """The `error` event a session API's SDK parses (Realtime's, or Live's), saying `message` (code
    `inference_gate_miss`). The Responses API's WebSocket mode is no session: its turns answer a miss with the
    HTTP miss, as `ResponseWsError` (proxy/websocket_turns.py)."""
    error = {
        "type": "invalid_request_error",
        "code": "inference_gate_miss",
        "message": message,
        "param": None,
    }
    if endpoint.startswith("live"):
        if client_event_id is not None:
            error["client_event_id"] = client_event_id
        return {"type": "error", "event_id": "event_inference_gate_miss", "error": error}
    error["event_id"] = client_event_id
    return {"type": "error", "event_id": "event_inference_gate_miss", "error": error}
