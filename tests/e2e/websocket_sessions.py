"""What the Realtime and Live end-to-end tests share: recording a session through the gate from
tools/fake_websocket.py, and comparing events whose audio the gate may have stored by digest."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import trio

from inference_gate import Mode, Settings
from inference_gate.core.outcome import Answer
from tests.e2e.conftest import running_gate
from tests.sdk_sockets import Script, run_session
from tests.servers import running_upstream
from tools.fake_websocket import FakeWebSocketUpstream

CLIENT_KEY = "sk-client-key-for-tests-9876543210"
DEADLINE_S = 30
# The server events that carry base64 audio, and the field that holds it.
SERVER_AUDIO_FIELDS = {"response.output_audio.delta": "delta", "session.output_audio.delta": "delta"}


async def record_session(
    settings: Settings, flavour: str, api: str, script: Script, **gate_options: Any
) -> tuple[Any, list[Answer], FakeWebSocketUpstream]:
    """`script` played through a recording gate, from an upstream that takes only the gate's key; what the script
    returned, the gate's answers, and the upstream (which has stopped)."""
    upstream = FakeWebSocketUpstream(expected_api_key=settings.api_key)
    answers: list[Answer] = []
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            settings = replace(settings, upstream=upstream.url)
            async with running_gate(settings, Mode.RECORD, on_answer=answers.append, **gate_options) as gate:
                result = await run_session(flavour, api, gate.base_url, CLIENT_KEY, script)
                await settled(answers, 1)
    return result, answers, upstream


async def replay_session(settings: Settings, flavour: str, api: str, script: Script) -> tuple[Any, list[Answer]]:
    answers: list[Answer] = []
    with trio.fail_after(DEADLINE_S):
        async with running_gate(settings, Mode.REPLAY, on_answer=answers.append) as gate:
            result = await run_session(flavour, api, gate.base_url, CLIENT_KEY, script)
            await settled(answers, 1)
    return result, answers


async def settled(answers: list[Answer], count: int) -> None:
    """Wait for the gate to report `count` sessions: it reports a session once its close handshake is done."""
    while len(answers) < count:
        await trio.sleep(0.01)


def audio_as_sizes(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events with each server audio chunk replaced by its size in bytes."""
    sized = []
    for event in events:
        field = SERVER_AUDIO_FIELDS.get(event["type"])
        if field is not None:
            event = {**event, field: len(base64.b64decode(event[field]))}
        sized.append(event)
    return sized


def server_audio(events: list[dict[str, Any]]) -> bytes:
    return b"".join(
        base64.b64decode(event[SERVER_AUDIO_FIELDS[event["type"]]])
        for event in events
        if event["type"] in SERVER_AUDIO_FIELDS
    )
