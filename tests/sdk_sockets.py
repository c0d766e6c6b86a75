"""The official SDK's WebSocket clients, driven from a trio test: `responses.connect()`, `realtime.connect()` and
`live.connect()`, sync and async.

The SDK's WebSockets come from the `websockets` package, whose async client needs asyncio; so each session runs in
a worker thread, the async client inside `asyncio.run` there, the sync one as it is. A session is a script, an
async function of a `Connection` (send an event, receive the next one), so that one script drives both clients.
Events are received as the raw JSON the server sent, parsed, after the SDK has parsed it too; so equal events
mean equal bytes on the wire, not merely an equal SDK model.
"""

from __future__ import annotations

import asyncio
import base64
import functools
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import openai
import orjson
import trio

DEADLINE_S = 20
SYNC, ASYNC = "sync", "async"
FLAVOURS = (SYNC, ASYNC)
REALTIME_MODEL = "gpt-realtime"
LIVE_MODEL = "gpt-live-1"
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
SHORT_PCM = bytes(range(256)) * 9  # 2304 bytes: 48 ms of 24 kHz 16-bit mono


class Connection(Protocol):
    async def send(self, event: dict[str, Any]) -> None: ...
    async def recv(self) -> dict[str, Any]: ...


class _Async:
    """An SDK async connection as a `Connection`."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    async def send(self, event: dict[str, Any]) -> None:
        await self._connection.send(event)

    async def recv(self) -> dict[str, Any]:
        data = await self._connection.recv_bytes()
        return _checked(self._connection, data)


class _Sync:
    """An SDK sync connection as a `Connection`: its calls block, which is all its own thread does."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    async def send(self, event: dict[str, Any]) -> None:
        self._connection.send(event)

    async def recv(self) -> dict[str, Any]:
        return _checked(self._connection, self._connection.recv_bytes())


def _checked(connection: Any, data: bytes) -> dict[str, Any]:
    """The event as sent, once the SDK has parsed it into its own model of the same type."""
    event = orjson.loads(data)
    assert connection.parse_event(data).type == event["type"]
    return event


Script = Callable[[Connection], Awaitable[Any]]


def _open(client: openai.OpenAI | openai.AsyncOpenAI, api: str, options: dict[str, Any]) -> Any:
    if api == "responses":
        return client.responses.connect(**options)
    if api == "realtime":
        return client.realtime.connect(model=options.pop("model", REALTIME_MODEL), **options)
    return client.live.connect(**options)


async def run_session(
    flavour: str, api: str, base_url: str, api_key: str, script: Script, **connect_options: Any
) -> Any:
    """Open one `api` session ("responses", "realtime" or "live") with the `flavour` client, run `script` on it,
    close it, and return what the script returned. An error in the session is raised here."""

    def sync_session() -> Any:
        client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=DEADLINE_S)
        with client, _open(client, api, dict(connect_options)) as connection:
            return asyncio.run(script(_Sync(connection)))

    async def async_session() -> Any:
        async with asyncio.timeout(DEADLINE_S):
            client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=DEADLINE_S)
            async with client, _open(client, api, dict(connect_options)) as connection:
                return await script(_Async(connection))

    work = sync_session if flavour == SYNC else functools.partial(asyncio.run, async_session())
    with trio.fail_after(DEADLINE_S):
        return await trio.to_thread.run_sync(work, abandon_on_cancel=True)


async def receive_until(connection: Connection, last_type: str) -> list[dict[str, Any]]:
    """Every event up to and including the first of type `last_type`."""
    events = [await connection.recv()]
    while events[-1]["type"] != last_type:
        events.append(await connection.recv())
    return events


# --- The sessions the tests play ---------------------------------------------------------------------


async def chained_responses(connection: Connection) -> list[dict[str, Any]]:
    """Two `response.create` calls, the second continuing the first by `previous_response_id`."""
    await connection.send({"type": "response.create", "model": "gpt-4o-mini", "input": "Name a colour"})
    events = await receive_until(connection, "response.completed")
    first_id = events[-1]["response"]["id"]
    follow_up = {"type": "response.create", "model": "gpt-4o-mini", "input": "And another"}
    await connection.send({**follow_up, "previous_response_id": first_id})
    return events + await receive_until(connection, "response.completed")


def _user_text(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


async def realtime_turns(connection: Connection) -> list[dict[str, Any]]:
    """A text turn, an audio turn (short base64 PCM, answered in audio) and a function-call turn, with the
    function's output sent back and answered."""
    events = [await connection.recv()]  # session.created
    await connection.send({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}})
    events += await receive_until(connection, "session.updated")
    await connection.send({"type": "conversation.item.create", "item": _user_text("Name a colour")})
    events += await receive_until(connection, "conversation.item.done")
    await connection.send({"type": "response.create"})
    events += await receive_until(connection, "response.done")

    audio = base64.b64encode(SHORT_PCM).decode()
    await connection.send({"type": "input_audio_buffer.append", "audio": audio})
    await connection.send({"type": "input_audio_buffer.commit"})
    events += await receive_until(connection, "conversation.item.done")
    await connection.send({"type": "response.create", "response": {"output_modalities": ["audio"]}})
    events += await receive_until(connection, "response.done")

    update = {"type": "realtime", "tools": [WEATHER_TOOL]}
    await connection.send({"type": "session.update", "session": update})
    events += await receive_until(connection, "session.updated")
    await connection.send({"type": "conversation.item.create", "item": _user_text("Weather in Paris?")})
    events += await receive_until(connection, "conversation.item.done")
    await connection.send({"type": "response.create"})
    events += await receive_until(connection, "response.done")
    call = events[-1]["response"]["output"][0]
    output = {"type": "function_call_output", "call_id": call["call_id"], "output": '{"sky": "clear"}'}
    await connection.send({"type": "conversation.item.create", "item": output})
    events += await receive_until(connection, "conversation.item.done")
    await connection.send({"type": "response.create"})
    return events + await receive_until(connection, "response.done")


async def live_turns(connection: Connection) -> list[dict[str, Any]]:
    """A Live session: start, an utterance, an instruction, a delegated Responses turn, then a close."""
    delegation = {"type": "responses", "responses": {"model": "gpt-4o-mini"}}
    await connection.send({"type": "session.start", "session": {"model": LIVE_MODEL, "delegation": delegation}})
    events = await receive_until(connection, "session.started")
    # An utterance's reply has no closing event: the instruction sent after it marks where the reply ends.
    audio = base64.b64encode(SHORT_PCM).decode()
    await connection.send({"type": "session.input_audio.append", "audio": audio})
    await connection.send({"type": "session.instructions.append", "content": "Be brief.", "delegation_id": None})
    events += await receive_until(connection, "session.instructions.appended")
    await connection.send({"type": "response.item.create", "item": _user_text("Book a table")})
    await connection.send({"type": "response.create"})
    events += await _receive_until_nested(connection, "response.completed")
    await connection.send({"type": "session.close"})
    return events + await receive_until(connection, "session.closed")


async def _receive_until_nested(connection: Connection, nested_type: str) -> list[dict[str, Any]]:
    events = [await connection.recv()]
    while events[-1].get("event", {}).get("type") != nested_type:
        events.append(await connection.recv())
    return events
