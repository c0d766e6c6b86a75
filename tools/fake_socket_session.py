"""What the fake WebSocket APIs share: a session that turns each client event into the server events that answer it.

A session is sans-IO, like tools/fake_replies.py: `receive(text)` takes one client message and returns a `Turn`,
the server events to send and whether to close or drop the connection afterwards. Every id it mints comes from a
running digest of the client events so far, so a reply depends on everything the client said before it (as a
conversation's does) and the same session played twice gets the same bytes. `salt` mixes into that digest: a test
that wants ids to drift between two recordings, as the real API's do, gives each session a new salt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from tools.fake_replies import CREATED_EPOCH_S

# A fault model's name makes the fake cut the connection halfway through its answer, without a close frame.
RESET_MIDSTREAM_MODEL = "fault-reset-midstream"
NORMAL_CLOSURE = 1000


@dataclass(frozen=True, slots=True)
class Close:
    """A close frame the server sends on purpose, with its code and reason."""

    code: int
    reason: str


@dataclass(slots=True)
class Turn:
    """The server's answer to one client message.

    `close` sends a close frame after the events; `drop_after` instead cuts the TCP connection after that many
    events, with no close frame, as when an upstream connection breaks mid-answer.
    """

    events: list[dict[str, Any]] = field(default_factory=list)
    close: Close | None = None
    drop_after: int | None = None


class ClientEventError(Exception):
    """A client event the API refuses with an `error` event: its type, code, message and parameter."""

    def __init__(self, message: str, *, code: str, param: str | None = None, error_type: str = "invalid_request_error"):
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.error_type = error_type


class SocketSession(ABC):
    """One WebSocket session's state; subclasses answer their API's events in `answer`."""

    def __init__(self, *, salt: str = "") -> None:
        self._digest = hashlib.sha256(salt.encode())
        self._minted = 0

    def opening(self) -> list[dict[str, Any]]:
        """What the server sends as soon as the connection opens, before any client event."""
        return []

    def receive(self, text: str) -> Turn:
        """Answer one client message: parse it, fold it into the running digest, then `answer` it."""
        try:
            event = orjson.loads(text)
        except orjson.JSONDecodeError:
            event = None
        if not isinstance(event, dict):
            return Turn(
                [self.error_event(ClientEventError("The client event is not a JSON object.", code="invalid_json"))]
            )
        self._digest.update(orjson.dumps(event, option=orjson.OPT_SORT_KEYS) + b"\n")
        try:
            return self.answer(event)
        except ClientEventError as error:
            return Turn([self.error_event(error, client_event_id=event.get("event_id"))])

    @abstractmethod
    def answer(self, event: dict[str, Any]) -> Turn:
        """The server's answer to one client event of this API."""

    @abstractmethod
    def error_event(self, error: ClientEventError, *, client_event_id: Any = None) -> dict[str, Any]:
        """The API's `error` event for a refused client event."""

    # --- Values derived from the conversation so far --------------------------------------------------

    @property
    def seed(self) -> bytes:
        """The digest of every client event received so far (and of the salt)."""
        return self._digest.digest()

    def mint(self, prefix: str, length: int = 24) -> str:
        """A new id, `prefix` then hex digits that depend on the conversation so far and on how many came before."""
        self._minted += 1
        label = f"{prefix}{self._minted}".encode()
        return prefix + hashlib.sha256(self.seed + label).hexdigest()[:length]

    def created_at_s(self) -> int:
        """A plausible Unix time from the conversation rather than the clock."""
        return CREATED_EPOCH_S + int.from_bytes(self.seed[:3], "big")


def handler_for(
    handlers: dict[str, Callable[[dict[str, Any]], Any]], event: dict[str, Any]
) -> Callable[[dict[str, Any]], Any]:
    """The handler of the client event's `type`, or the API's `invalid_value` error naming the supported ones."""
    handler = handlers.get(event.get("type"))
    if handler is None:
        supported = ", ".join(f"'{name}'" for name in handlers)
        message = f"Invalid value: '{event.get('type')}'. Supported values are: {supported}."
        raise ClientEventError(message, code="invalid_value", param="type")
    return handler


def required_field(event: dict[str, Any], name: str, kind: type, *, param: str | None = None) -> Any:
    """`event[name]` when it has type `kind`; otherwise the API's missing-parameter refusal."""
    value = event.get(name)
    if isinstance(value, kind):
        return value
    param = param or name
    raise ClientEventError(f"Missing required parameter: '{param}'.", code="missing_required_parameter", param=param)


def decoded_audio(value: Any, *, param: str) -> bytes:
    """Base64 audio from a client event; anything else is refused as the API refuses it."""
    if not isinstance(value, str):
        raise ClientEventError(
            f"Missing required parameter: '{param}'.", code="missing_required_parameter", param=param
        )
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        message = f"Invalid value for '{param}': the audio is not valid base64."
        raise ClientEventError(message, code="invalid_value", param=param) from None


def audio_description(audio: bytes) -> str:
    """What the fake "hears" in audio: its size and a digest, so that other audio gets another answer."""
    return f"{len(audio)} bytes of audio ({hashlib.sha256(audio).hexdigest()[:8]})"


def synthetic_pcm(text: str, size_bytes: int) -> bytes:
    """`size_bytes` of 16-bit PCM derived from `text`: what the fake "says", the same every time."""
    blocks = bytearray()
    counter = 0
    while len(blocks) < size_bytes:
        blocks += hashlib.sha256(f"{counter}:{text}".encode()).digest()
        counter += 1
    return bytes(blocks[:size_bytes])
