"""A WebSocket session cassette to test the review tools and the store with."""

from __future__ import annotations

from dataclasses import replace

from inference_gate.core.session_cassette import SessionCassette, SessionClose
from inference_gate.core.websocket_session import Sender, SessionFrame


def realtime_session(text: str = "hello", reply: tuple[str, ...] = ("Hi", " there")) -> SessionCassette:
    frames = [
        SessionFrame(Sender.SERVER, 2, data={"type": "session.created", "event_id": "evt_1"}),
        SessionFrame(
            Sender.CLIENT,
            10,
            data={"type": "conversation.item.create", "item": {"content": [{"type": "input_text", "text": text}]}},
        ),
        SessionFrame(Sender.CLIENT, 12, data={"type": "response.create"}),
        *(
            SessionFrame(Sender.SERVER, 20 + index, data={"type": "response.output_text.delta", "delta": delta})
            for index, delta in enumerate(reply)
        ),
        SessionFrame(Sender.SERVER, 40, data={"type": "response.done"}),
    ]
    return SessionCassette(
        key="0" * 64,
        recorded_at="2026-01-01T00:00:00Z",
        path="/v1/realtime",
        query=[["model", "gpt-realtime"]],
        headers={"user-agent": "test"},
        subprotocol=None,
        frames=tuple(frames),
        closed=SessionClose(Sender.CLIENT, 1000),
    )


def with_key(session: SessionCassette, key: str) -> SessionCassette:
    return replace(session, key=key)
