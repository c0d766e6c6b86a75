"""The Responses API's WebSocket mode, as the streamed HTTP call each of its turns is equivalent to.

Over `client.responses.connect()` the client sends `response.create` events, and the server answers each with
exactly the events a streamed `POST /v1/responses` sends as SSE, one JSON message per event, ending with
`response.completed` (or `.incomplete`, `.failed`, `error`). So a turn is stored as that HTTP call: the request
is the event without its `type`, with `"stream": true`, keyed by `keys.canonicalize` like any request; the
response is a `text/event-stream` whose events are the server's messages, each named by its `type`. One cassette
answers both transports: a streamed HTTP call with the same body replays a turn recorded over the WebSocket, and
a WebSocket turn replays a streamed HTTP recording. `cache show`, `diff`, refresh and the ledger see an ordinary
cassette.

What does not carry over: a WebSocket turn's `previous_response_id` may name a response the upstream holds only
in that connection (`store: false`); on replay the recorded ids come back, so a chained turn keys as recorded.
"""

from __future__ import annotations

from typing import Any

import orjson

from inference_gate.core.sse import RESPONSES_FINAL_EVENTS, SSEEvent

CREATE_EVENT = "response.create"
# The events after which the server has finished a turn.
TURN_END_EVENTS = frozenset({*RESPONSES_FINAL_EVENTS, "error"})
HTTP_PATH_SUFFIX = "/responses"


class NotATurn(ValueError):
    """A client message that is not a `response.create` event; the message says what it is instead."""


def turn_request_body(message: str | bytes) -> bytes:
    """The body of the streamed HTTP request a `response.create` message is equivalent to.

    Raises NotATurn for anything else: not JSON, not an object, or another event type.
    """
    try:
        event = orjson.loads(message)
    except orjson.JSONDecodeError as error:
        raise NotATurn(f"the message is not JSON ({error})") from None
    if not isinstance(event, dict):
        raise NotATurn("the message is not a JSON object")
    kind = event.get("type")
    if kind != CREATE_EVENT:
        raise NotATurn(f"the Responses WebSocket carries `{CREATE_EVENT}` events, not {kind!r}")
    body: dict[str, Any] = {name: value for name, value in event.items() if name != "type"}
    body["stream"] = True
    return orjson.dumps(body)


def event_of_message(message: str) -> SSEEvent:
    """A server message as the SSE event a streamed HTTP call would carry: named by its `type`."""
    try:
        data = orjson.loads(message)
    except orjson.JSONDecodeError:
        return SSEEvent(data=message)
    kind = data.get("type") if isinstance(data, dict) else None
    return SSEEvent(data=message, event=kind if isinstance(kind, str) else None)


def ends_turn(message: str) -> bool:
    """Whether a server message is the last of its turn."""
    return event_of_message(message).event in TURN_END_EVENTS


def messages_of_events(events: list[SSEEvent]) -> list[str]:
    """The WebSocket messages a recorded stream's events replay as: each event's data (an HTTP stream's
    `[DONE]` sentinel, which the WebSocket has no counterpart for, left out)."""
    return [event.data for event in events if event.data != "[DONE]"]
