"""The Realtime API (`client.realtime.connect(model=...)`, `GET /v1/realtime?model=...` upgraded), as a fake.

The event shapes are the GA interface's, as `openai.types.realtime` has them. The server opens with
`session.created`; `session.update` answers `session.updated`; `conversation.item.create` answers
`conversation.item.added` and `conversation.item.done`; `input_audio_buffer.append` collects audio silently and
`input_audio_buffer.commit` turns it into a user item (`input_audio_buffer.committed`, then the item events);
`response.create` streams a response: `response.created`, `response.output_item.added`, the content part, the
deltas (text, or audio with its transcript, after the session's or the response's `output_modalities`), the done
events, and `response.done` with the output and usage. When the session has tools and the last item is the
user's, the response calls the first tool instead (`response.function_call_arguments.delta`/`.done`); after a
`function_call_output` item it answers in text that quotes the output. A refused event gets an `error` event
naming it, and the session goes on.

Two simplifications, both visible in what the fake sends: it does no voice activity detection (its sessions
report `turn_detection: null`, so a client commits the audio buffer itself), and every response completes at
once (so `response.cancel` always finds nothing to cancel).
"""

from __future__ import annotations

import base64
import copy
from typing import Any

import orjson

from tools.fake_replies import (
    ARGUMENTS_DELTA_CHARS,
    TEXT_DELTA_CHARS,
    TOOL_CALL_ARGUMENTS,
    pieces,
    reply_text,
    text_of,
    token_count,
)
from tools.fake_socket_session import (
    RESET_MIDSTREAM_MODEL,
    ClientEventError,
    SocketSession,
    Turn,
    audio_description,
    decoded_audio,
    handler_for,
    required_field,
    synthetic_pcm,
)

SESSION_LIFETIME_S = 3600
AUDIO_DELTA_BYTES = 4800  # 100 ms of 24 kHz 16-bit mono PCM
PCM_FORMAT = {"type": "audio/pcm", "rate": 24000}
DEFAULT_VOICE = "alloy"


def default_session(session_id: str, model: str, expires_at: int) -> dict[str, Any]:
    """The session a new connection starts with, as `session.created` reports it."""
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": session_id,
        "model": model,
        "output_modalities": ["audio"],
        "instructions": "You are a helpful assistant.",
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "expires_at": expires_at,
        "audio": {
            "input": {
                "format": dict(PCM_FORMAT),
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": None,
            },
            "output": {"format": dict(PCM_FORMAT), "voice": DEFAULT_VOICE, "speed": 1.0},
        },
        "include": None,
    }


def merged(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """`base` with `update` laid over it, nested objects merged key by key, as `session.update` applies."""
    result = copy.deepcopy(base)
    for name, value in update.items():
        if isinstance(value, dict) and isinstance(result.get(name), dict):
            result[name] = merged(result[name], value)
        else:
            result[name] = copy.deepcopy(value)
    return result


class RealtimeSession(SocketSession):
    """One Realtime connection: its session configuration, its conversation and its input audio buffer."""

    def __init__(self, model: str, *, salt: str = "") -> None:
        super().__init__(salt=salt + "\0" + model)
        self.model = model
        self.session = default_session(self.mint("sess_"), model, self.created_at_s() + SESSION_LIFETIME_S)
        self.conversation_id = self.mint("conv_")
        self.items: list[dict[str, Any]] = []
        self.audio_buffer = bytearray()
        self.heard: dict[str, str] = {}  # audio item id -> what the fake "hears" in it: its size and digest

    def opening(self) -> list[dict[str, Any]]:
        return [self._event("session.created", session=self.session)]

    def answer(self, event: dict[str, Any]) -> Turn:
        handlers = {
            "session.update": self._session_update,
            "conversation.item.create": self._item_create,
            "conversation.item.delete": self._item_delete,
            "input_audio_buffer.append": self._audio_append,
            "input_audio_buffer.commit": self._audio_commit,
            "input_audio_buffer.clear": self._audio_clear,
            "response.create": self._response_create,
            "response.cancel": self._response_cancel,
        }
        handler = handler_for(handlers, event)
        return handler(event)

    def error_event(self, error: ClientEventError, *, client_event_id: Any = None) -> dict[str, Any]:
        detail = {
            "type": error.error_type,
            "code": error.code,
            "message": error.message,
            "param": error.param,
            "event_id": client_event_id,
        }
        return self._event("error", error=detail)

    # --- Client events ------------------------------------------------------------------------------

    def _session_update(self, event: dict[str, Any]) -> Turn:
        update = required_field(event, "session", dict)
        if update.get("type") != "realtime":
            param = "session.type"
            raise ClientEventError(
                f"Missing required parameter: '{param}'.", code="missing_required_parameter", param=param
            )
        if update.get("model", self.model) != self.model:
            raise ClientEventError(
                "The session's model cannot be changed.", code="invalid_value", param="session.model"
            )
        self.session = merged(self.session, update)
        return Turn([self._event("session.updated", session=self.session)])

    def _item_create(self, event: dict[str, Any]) -> Turn:
        item = copy.deepcopy(required_field(event, "item", dict))
        if item.get("type") not in ("message", "function_call", "function_call_output"):
            supported = "'message', 'function_call' and 'function_call_output'"
            message = f"Invalid value: '{item.get('type')}'. Supported values are: {supported}."
            raise ClientEventError(message, code="invalid_value", param="item.type")
        item.setdefault("id", self.mint("item_"))
        item.setdefault("object", "realtime.item")
        item["status"] = "completed"
        return Turn(self._added(item))

    def _item_delete(self, event: dict[str, Any]) -> Turn:
        item_id = required_field(event, "item_id", str)
        remaining = [item for item in self.items if item["id"] != item_id]
        if len(remaining) == len(self.items):
            message = f"Error deleting item: the item with id '{item_id}' does not exist."
            raise ClientEventError(message, code="item_delete_invalid_item_id", param="item_id")
        self.items = remaining
        return Turn([self._event("conversation.item.deleted", item_id=item_id)])

    def _audio_append(self, event: dict[str, Any]) -> Turn:
        self.audio_buffer += decoded_audio(event.get("audio"), param="audio")
        return Turn()

    def _audio_clear(self, event: dict[str, Any]) -> Turn:
        self.audio_buffer.clear()
        return Turn([self._event("input_audio_buffer.cleared")])

    def _audio_commit(self, event: dict[str, Any]) -> Turn:
        if not self.audio_buffer:
            message = (
                "Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, "
                "but buffer only has 0.00ms of audio."
            )
            raise ClientEventError(message, code="input_audio_buffer_commit_empty")
        item_id = self.mint("item_")
        previous = self.items[-1]["id"] if self.items else None
        committed = self._event("input_audio_buffer.committed", previous_item_id=previous, item_id=item_id)
        self.heard[item_id] = audio_description(bytes(self.audio_buffer))
        item = {"id": item_id, "type": "message", "object": "realtime.item", "status": "completed", "role": "user"}
        item["content"] = [{"type": "input_audio", "transcript": None}]
        self.audio_buffer.clear()
        return Turn([committed, *self._added(item)])

    def _response_cancel(self, event: dict[str, Any]) -> Turn:
        message = "Cancellation failed: no active response found"
        raise ClientEventError(message, code="response_cancel_not_active")

    def _response_create(self, event: dict[str, Any]) -> Turn:
        options = event.get("response") if isinstance(event.get("response"), dict) else {}
        modalities = options.get("output_modalities", self.session["output_modalities"])
        tools = options.get("tools", self.session["tools"])
        response_id = self.mint("resp_")
        item_id = self.mint("item_")
        last = self.items[-1] if self.items else None
        if tools and last is not None and last.get("role") == "user":
            name = tools[0].get("name") if isinstance(tools[0], dict) else None
            if not isinstance(name, str):
                raise ClientEventError(
                    "Missing required parameter: 'tools[0].name'.", code="missing_required_parameter"
                )
            output_item, deltas = self._function_call(response_id, item_id, name)
        else:
            output_item, deltas = self._message(response_id, item_id, self._prompt(last), modalities)
        created = self._response(response_id, "in_progress", [], modalities, None)
        done_item = {**output_item, "status": "completed"}
        self.items.append(done_item)
        usage = self._usage(done_item)
        events = [
            self._event("response.created", response=created),
            self._event("response.output_item.added", response_id=response_id, output_index=0, item=output_item),
            self._event("conversation.item.added", previous_item_id=last["id"] if last else None, item=output_item),
            *deltas,
            self._event("response.output_item.done", response_id=response_id, output_index=0, item=done_item),
            self._event("conversation.item.done", previous_item_id=last["id"] if last else None, item=done_item),
            self._event(
                "response.done", response=self._response(response_id, "completed", [done_item], modalities, usage)
            ),
        ]
        drop_after = len(events) // 2 if self.model == RESET_MIDSTREAM_MODEL else None
        return Turn(events, drop_after=drop_after)

    # --- Building blocks ----------------------------------------------------------------------------

    def _event(self, event_type: str, **fields: Any) -> dict[str, Any]:
        return {"type": event_type, "event_id": self.mint("event_"), **fields}

    def _added(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        previous = self.items[-1]["id"] if self.items else None
        self.items.append(item)
        return [
            self._event("conversation.item.added", previous_item_id=previous, item=item),
            self._event("conversation.item.done", previous_item_id=previous, item=item),
        ]

    def _prompt(self, last: dict[str, Any] | None) -> str:
        """What the response answers: the last item's text, its audio's size, or a tool's output."""
        if last is None:
            return ""
        if last.get("type") == "function_call_output":
            return f"The tool returned {last.get('output')}"
        if last["id"] in self.heard:
            return self.heard[last["id"]]
        return text_of(last.get("content"))

    def _message(
        self, response_id: str, item_id: str, prompt: str, modalities: list[str]
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        text = reply_text(prompt)
        spoken = "audio" in modalities
        position = {"response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0}
        empty_part = {"type": "audio", "transcript": ""} if spoken else {"type": "text", "text": ""}
        deltas = [self._event("response.content_part.added", **position, part=empty_part)]
        for piece in pieces(text, TEXT_DELTA_CHARS):
            if spoken:
                audio = base64.b64encode(synthetic_pcm(piece, AUDIO_DELTA_BYTES)).decode()
                deltas.append(self._event("response.output_audio.delta", **position, delta=audio))
                deltas.append(self._event("response.output_audio_transcript.delta", **position, delta=piece))
            else:
                deltas.append(self._event("response.output_text.delta", **position, delta=piece))
        if spoken:
            deltas.append(self._event("response.output_audio.done", **position))
            deltas.append(self._event("response.output_audio_transcript.done", **position, transcript=text))
            part = {"type": "output_audio", "transcript": text}
        else:
            deltas.append(self._event("response.output_text.done", **position, text=text))
            part = {"type": "output_text", "text": text}
        done_part = {"type": "audio", "transcript": text} if spoken else {"type": "text", "text": text}
        deltas.append(self._event("response.content_part.done", **position, part=done_part))
        item = {
            "id": item_id,
            "type": "message",
            "object": "realtime.item",
            "status": "in_progress",
            "role": "assistant",
        }
        item["content"] = [part]
        return item, deltas

    def _function_call(self, response_id: str, item_id: str, name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        arguments = orjson.dumps(TOOL_CALL_ARGUMENTS).decode()
        call_id = self.mint("call_")
        position = {"response_id": response_id, "item_id": item_id, "output_index": 0}
        deltas = [
            self._event("response.function_call_arguments.delta", **position, call_id=call_id, delta=piece)
            for piece in pieces(arguments, ARGUMENTS_DELTA_CHARS)
        ]
        done = {"call_id": call_id, "name": name, "arguments": arguments}
        deltas.append(self._event("response.function_call_arguments.done", **position, **done))
        item = {"id": item_id, "type": "function_call", "object": "realtime.item", "status": "in_progress", **done}
        return item, deltas

    def _response(
        self, response_id: str, status: str, output: list[dict[str, Any]], modalities: list[str], usage: Any
    ) -> dict[str, Any]:
        audio = {
            "output": {
                "format": self.session["audio"]["output"]["format"],
                "voice": self.session["audio"]["output"]["voice"],
            }
        }
        return {
            "object": "realtime.response",
            "id": response_id,
            "status": status,
            "status_details": None,
            "output": output,
            "conversation_id": self.conversation_id,
            "output_modalities": modalities,
            "max_output_tokens": self.session["max_output_tokens"],
            "audio": audio,
            "usage": usage,
            "metadata": None,
        }

    def _usage(self, item: dict[str, Any]) -> dict[str, Any]:
        said = orjson.dumps(item).decode()
        heard = "".join(orjson.dumps(previous).decode() for previous in self.items[:-1])
        input_tokens, output_tokens = token_count(heard), token_count(said)
        return {
            "total_tokens": input_tokens + output_tokens,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "input_token_details": {"text_tokens": input_tokens, "audio_tokens": 0, "cached_tokens": 0},
            "output_token_details": {"text_tokens": output_tokens, "audio_tokens": 0},
        }
