"""A tiny WebSocket upstream for the gate's own tests: the gate's server, answering with canned events derived from
what the client sent. (tools/ holds the full fake of the three APIs; this one has only what a proxy test needs.)"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import orjson
import trio

from inference_gate.core.http_models import HttpRequest, HttpResponse
from inference_gate.http.server import ServerLimits, serve_http
from inference_gate.http.websocket import WebSocketClosed, WebSocketUpgrade, offered_subprotocols


def turn_events(event: dict, number: int) -> list[dict]:
    """What the Responses API streams for a `response.create`: created, one delta echoing the input, completed."""
    text = f"echo: {event.get('input')}"
    response = {"id": f"resp_{number}", "object": "response", "status": "in_progress",
                "previous_response_id": event.get("previous_response_id")}
    return [
        {"type": "response.created", "sequence_number": 0, "response": response},
        {"type": "response.output_text.delta", "sequence_number": 1, "item_id": f"msg_{number}", "delta": text},
        {"type": "response.completed", "sequence_number": 2,
         "response": {**response, "status": "completed", "output_text": text}},
    ]


def session_events(event: dict, number: int) -> list[dict]:
    """What a Realtime server answers: an ack for each item, a short response for `response.create`."""
    kind = event.get("type")
    if kind == "response.create":
        return [
            {"type": "response.created", "event_id": f"evt_{number}a", "response": {"id": f"resp_{number}"}},
            {"type": "response.output_audio.delta", "event_id": f"evt_{number}b", "delta": "AAECAwQFBgc="},
            {"type": "response.output_text.delta", "event_id": f"evt_{number}c", "delta": "hi"},
            {"type": "response.done", "event_id": f"evt_{number}d", "response": {"id": f"resp_{number}"}},
        ]
    return [{"type": f"{kind}.ack", "event_id": f"evt_{number}", "echo": event}]


@dataclass
class TinyUpstream:
    port: int = 0
    upgrades: list[HttpRequest] = field(default_factory=list)
    client_messages: list[str] = field(default_factory=list)
    delay_s: float = 0.0
    drop_after: int | None = None  # close without a close frame after this many client messages
    close_after: int | None = None  # close with 1000 after answering this many client messages

    async def session(self, request: HttpRequest, upgrade: WebSocketUpgrade) -> HttpResponse | None:
        self.upgrades.append(request)
        offered = [p for p in offered_subprotocols(request.headers) if p == "realtime"]
        websocket = await upgrade.accept(request.headers, subprotocol=offered[0] if offered else None)
        responses = request.path.endswith("/responses")
        if not responses:
            created = {"type": "session.created", "event_id": "evt_0", "session": {"id": f"sess_{len(self.upgrades)}"}}
            await websocket.send(orjson.dumps(created).decode())
        number = 0
        with contextlib.suppress(WebSocketClosed):
            while True:
                message = await websocket.receive()
                self.client_messages.append(message)
                number += 1
                if self.drop_after is not None and len(self.client_messages) >= self.drop_after:
                    await websocket.drop()
                    return None
                event = orjson.loads(message)
                for answer in turn_events(event, number) if responses else session_events(event, number):
                    await trio.sleep(self.delay_s)
                    await websocket.send(orjson.dumps(answer).decode())
                if self.close_after is not None and len(self.client_messages) >= self.close_after:
                    await websocket.close(1000, "session over")
                    return None
        return None


async def _refuse_http(request: HttpRequest) -> HttpResponse:
    return HttpResponse(404, [], body=b"")


@asynccontextmanager
async def running_tiny_upstream(upstream: TinyUpstream) -> AsyncIterator[TinyUpstream]:
    async with trio.open_nursery() as nursery:
        upstream.port = await nursery.start(
            lambda task_status: serve_http(
                _refuse_http, "127.0.0.1", 0, ServerLimits(), websocket_handler=upstream.session,
                task_status=task_status,
            )
        )
        try:
            yield upstream
        finally:
            nursery.cancel_scope.cancel()
