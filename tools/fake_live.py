"""Live sessions (`client.live.connect()`, `GET /v1/live/sessions` upgraded), as a fake.

The event shapes are `openai.types.live`'s. Nothing is sent before the client's `session.start` (its `session`
names the model); the server answers `session.started` with the resolved session. Then:
- `session.update` answers `session.updated`;
- `session.instructions.append` answers `session.instructions.appended`, placed on the session timeline;
- `session.input_audio.append` answers a `session.input_transcript.delta` for what was heard, and the model's spoken
  reply: `session.output_audio.delta` and `session.output_transcript.delta` in turn. (The real service speaks when
  its voice activity detection decides the user finished; the fake treats every append as a finished utterance.)
- with Responses delegation, `response.item.create` adds an input item and `response.create` answers
  `session.delegation.created`, then the delegated response's streaming events, each wrapped in a `response.event`;
  without it both are refused;
- `session.close` answers `session.closed` and a close frame with code 1000.
Timeline offsets count the audio heard, 16-bit mono PCM at 24 kHz. A refused command gets an `error` event
carrying its `client_event_id`, and the session goes on.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

from tools.fake_replies import TEXT_DELTA_CHARS, pieces, reply_text, response_events
from tools.fake_socket_session import (
    NORMAL_CLOSURE,
    RESET_MIDSTREAM_MODEL,
    ClientEventError,
    Close,
    SocketSession,
    Turn,
    audio_description,
    decoded_audio,
    handler_for,
    required_field,
    synthetic_pcm,
)

SESSION_LIFETIME_S = 3600
PCM_BYTES_PER_MS = 48  # 24 kHz, 16-bit, mono
AUDIO_DELTA_BYTES = 4800
DEFAULT_FORMAT = {"type": "audio/pcm", "rate": 24000}
DEFAULT_VOICE = "marin"


class LiveSession(SocketSession):
    """One Live connection: its session, once started, its timeline and its delegated input items."""

    def __init__(self, *, salt: str = "") -> None:
        super().__init__(salt=salt)
        self.session: dict[str, Any] | None = None
        self.timeline_ms = 0
        self.response_input: list[dict[str, Any]] = []

    def answer(self, event: dict[str, Any]) -> Turn:
        handlers = {
            "session.start": self._start,
            "session.update": self._update,
            "session.instructions.append": self._instructions_append,
            "session.input_audio.append": self._audio_append,
            "response.item.create": self._response_item_create,
            "response.create": self._response_create,
            "session.close": self._close,
        }
        handler = handler_for(handlers, event)
        if (self.session is None) != (handler == self._start):
            message = (
                "Send session.start once, before any other command."
                if self.session
                else "The session has not started: send session.start first."
            )
            raise ClientEventError(message, code="invalid_session_state", param="type")
        client_event_id = event.get("event_id")
        turn = handler(event)
        if client_event_id is not None:
            turn.events = [{**answer, "client_event_id": client_event_id} for answer in turn.events]
        return turn

    def error_event(self, error: ClientEventError, *, client_event_id: Any = None) -> dict[str, Any]:
        detail = {
            "type": error.error_type,
            "code": error.code,
            "message": error.message,
            "param": error.param,
            "client_event_id": client_event_id,
        }
        return self._event("error", error=detail, client_event_id=client_event_id)

    # --- Client events ------------------------------------------------------------------------------

    def _start(self, event: dict[str, Any]) -> Turn:
        config = copy.deepcopy(required_field(event, "session", dict))
        required_field(config, "model", str, param="session.model")
        audio = config.setdefault("audio", {})
        audio.setdefault("format", dict(DEFAULT_FORMAT))
        audio.setdefault("output", {}).setdefault("voice", DEFAULT_VOICE)
        config.setdefault("delegation", None)
        config.setdefault("store", False)
        session_id = self.mint("sess_")
        self.session = {"id": session_id, "expires_at": self.created_at_s() + SESSION_LIFETIME_S, "status": "active"}
        self.session.update(config)
        return Turn([self._event("session.started", session=self.session)])

    def _update(self, event: dict[str, Any]) -> Turn:
        update = required_field(event, "session", dict)
        immutable = sorted(set(update) & {"model", "instructions", "audio", "input"})
        if immutable:
            param = f"session.{immutable[0]}"
            raise ClientEventError(f"'{param}' cannot change after startup.", code="immutable_parameter", param=param)
        self.session.update(copy.deepcopy(update))
        return Turn([self._event("session.updated", session=self.session)])

    def _instructions_append(self, event: dict[str, Any]) -> Turn:
        required_field(event, "content", str)
        placed = {"start_ms": self.timeline_ms, "end_ms": self.timeline_ms}
        return Turn([self._event("session.instructions.appended", **placed)])

    def _audio_append(self, event: dict[str, Any]) -> Turn:
        audio = decoded_audio(event.get("audio"), param="audio")
        heard = audio_description(audio)
        start_ms = self.timeline_ms
        self.timeline_ms += len(audio) // PCM_BYTES_PER_MS
        events = [
            self._event("session.input_transcript.delta", delta=heard, start_ms=start_ms, end_ms=self.timeline_ms)
        ]
        for piece in pieces(reply_text(heard), TEXT_DELTA_CHARS):
            start_ms = self.timeline_ms
            self.timeline_ms += AUDIO_DELTA_BYTES // PCM_BYTES_PER_MS
            delta = base64.b64encode(synthetic_pcm(piece, AUDIO_DELTA_BYTES)).decode()
            events.append({"type": "session.output_audio.delta", "delta": delta})
            transcript = {"delta": piece, "start_ms": start_ms, "end_ms": self.timeline_ms}
            events.append(self._event("session.output_transcript.delta", **transcript))
        drop_after = len(events) // 2 if self.session["model"] == RESET_MIDSTREAM_MODEL else None
        return Turn(events, drop_after=drop_after)

    def _responses_delegation(self) -> dict[str, Any]:
        delegation = self.session.get("delegation")
        if not isinstance(delegation, dict) or delegation.get("type") != "responses":
            message = "This command requires Responses delegation: set session.delegation.type to 'responses'."
            raise ClientEventError(message, code="delegation_required", param="session.delegation")
        return delegation.get("responses") if isinstance(delegation.get("responses"), dict) else {}

    def _response_item_create(self, event: dict[str, Any]) -> Turn:
        self._responses_delegation()
        self.response_input.append(copy.deepcopy(required_field(event, "item", dict)))
        return Turn()

    def _response_create(self, event: dict[str, Any]) -> Turn:
        backend = self._responses_delegation()
        body = {"model": backend.get("model", "gpt-5"), "input": self.response_input}
        nested = response_events(body, self.seed)
        delegation_id = self.mint("deleg_")
        delegation = {"id": delegation_id, "target": "responses", "type": "delegation"}
        delegation["response_id"] = nested[0]["response"]["id"]
        events = [self._event("session.delegation.created", delegation=delegation, offset_ms=self.timeline_ms)]
        events += [self._event("response.event", event=inner, delegation_id=delegation_id) for inner in nested]
        return Turn(events)

    def _close(self, event: dict[str, Any]) -> Turn:
        usage = {"seconds": self.timeline_ms / 1000}
        closed = self._event("session.closed", reason="close_requested", session=self.session, usage=usage)
        return Turn([closed], close=Close(NORMAL_CLOSURE, "session closed"))

    def _event(self, event_type: str, **fields: Any) -> dict[str, Any]:
        return {"type": event_type, "event_id": self.mint("event_"), **fields}
