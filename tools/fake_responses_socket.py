"""The Responses API's WebSocket mode (`client.responses.connect()`, `GET /v1/responses` upgraded), as a fake.

The client sends `response.create` events: the body of `POST /v1/responses` plus `type`, without `stream` (a
WebSocket is always streamed) and optionally with a `stream_id`, the lane that every answering event then
carries. The server answers each with exactly the events a streamed HTTP call sends (tools/fake_replies.py builds
them), in order. A connection remembers the responses it produced, so a later `response.create` may chain one
with `previous_response_id`; an id this connection did not produce is refused with `previous_response_not_found`,
as the real API refuses it when `store` is false. Errors are `{"type": "error", "status", "error": {...}}`, and
the connection stays open after them.
"""

from __future__ import annotations

from typing import Any

from tools.fake_replies import InvalidRequest, response_events
from tools.fake_socket_session import (
    RESET_MIDSTREAM_MODEL,
    ClientEventError,
    SocketSession,
    Turn,
    required_field,
)

NOT_FOUND_MODELS = ("does-not-exist", "fault-404")


class ResponsesSocketSession(SocketSession):
    """One `responses.connect()` connection: the responses it produced, and its answers."""

    def __init__(self, *, salt: str = "") -> None:
        super().__init__(salt=salt)
        self.response_ids: list[str] = []
        self._status = 400

    def answer(self, event: dict[str, Any]) -> Turn:
        self._status = 400
        if event.get("type") != "response.create":
            message = f"Invalid value: '{event.get('type')}'. Supported values are: 'response.create'."
            raise ClientEventError(message, code="invalid_value", param="type")
        body = {name: value for name, value in event.items() if name not in ("type", "stream_id")}
        model = required_field(body, "model", str)
        if model in NOT_FOUND_MODELS:
            self._status = 404
            message = f"The model `{model}` does not exist or you do not have access to it."
            raise ClientEventError(message, code="model_not_found")
        if body.get("background") is True:
            raise ClientEventError(
                "Background mode is not supported over WebSocket.", code="invalid_value", param="background"
            )
        previous = body.get("previous_response_id")
        if previous is not None and previous not in self.response_ids:
            message = f"Previous response with id '{previous}' not found."
            raise ClientEventError(message, code="previous_response_not_found", param="previous_response_id")
        try:
            events = response_events(body, self.seed)
        except InvalidRequest as invalid:
            raise ClientEventError(invalid.message, code="invalid_request", param=invalid.param) from None
        self.response_ids.append(events[0]["response"]["id"])
        if "stream_id" in event:
            events = [{**answer, "stream_id": event["stream_id"]} for answer in events]
        drop_after = len(events) // 2 if model == RESET_MIDSTREAM_MODEL else None
        return Turn(events, drop_after=drop_after)

    def error_event(self, error: ClientEventError, *, client_event_id: Any = None) -> dict[str, Any]:
        detail = {"type": error.error_type, "code": error.code, "message": error.message, "param": error.param}
        return {"type": "error", "status": self._status, "error": detail}
