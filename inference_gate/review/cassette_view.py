"""One cassette as a person reads it: the request in turns, the reply reassembled, and how to print both.

A cassette file is the exchange as it was on the wire: a streamed reply is a hundred chunks of a few
characters, a tool call's arguments arrive in pieces, the usage comes in the last chunk. `cache show` and
`cache diff` need the exchange as a reader thinks of it: who said what, which tools were offered, what the
model answered (text, tool calls, why it stopped, what it cost). `CassetteView` is that, built from a
cassette's plain JSON document (`cassette_document`), so a blob read from git needs no Cassette object.

Chat Completions and the Responses API are read in full, streamed or not; an error reply reads as its
message; any other endpoint gets its model, usage and input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from inference_gate.core.cassette import CassetteError
from inference_gate.core.dialects import endpoint_name
from inference_gate.core.session_cassette import first_prompt, is_session_document, server_text, session_from_document
from inference_gate.core.sse import RESPONSES_FINAL_EVENTS
from inference_gate.core.summary import SAMPLING_SETTINGS
from inference_gate.core.websocket_session import Sender, event_type

VALUE_LIMIT_CHARS = 400


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    arguments: str

    def as_text(self) -> str:
        return f"{self.name}({self.arguments})"


@dataclass(frozen=True, slots=True)
class Turn:
    """One message of the request: `role` as the API names it (`system`, `user`, `assistant`, `tool`)."""

    role: str
    text: str


@dataclass(frozen=True, slots=True)
class Reply:
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    model: str | None = None


@dataclass(frozen=True, slots=True)
class CassetteView:
    name: str
    method: str
    path: str
    endpoint: str
    status: int | None
    stream: bool
    model: str | None
    settings: dict[str, Any]
    turns: tuple[Turn, ...]
    tools: tuple[str, ...]
    reply: Reply
    takes: int
    recorded_at: str | None

    @property
    def prompt(self) -> str:
        """The last user turn, or the last turn of any role: what the request asked."""
        users = [turn.text for turn in self.turns if turn.role == "user"]
        return users[-1] if users else self.turns[-1].text if self.turns else ""


def view_of(name: str, document: dict[str, Any]) -> CassetteView:
    """The readable view of a cassette document; a malformed part reads as empty rather than failing."""
    if is_session_document(document):
        return _session_view(name, document)
    request = _dict(document.get("request"))
    takes = document.get("takes")
    first_take = _dict(takes[0]) if isinstance(takes, list) and takes else document
    response = _dict(first_take.get("response"))
    path = _text(request.get("path")) or ""
    endpoint = endpoint_name(path)
    body = _dict(request.get("body"))
    events = response.get("events")
    stream_data = [_dict(event).get("data") for event in events] if isinstance(events, list) else None
    return CassetteView(
        name=name,
        method=_text(request.get("method")) or "",
        path=path,
        endpoint=endpoint,
        status=response.get("status") if isinstance(response.get("status"), int) else None,
        stream=stream_data is not None,
        model=_text(body.get("model")),
        settings={setting: body[setting] for setting in SAMPLING_SETTINGS if setting in body},
        turns=tuple(_turns(endpoint, body)),
        tools=tuple(_tool_names(body.get("tools"))),
        reply=_reply(endpoint, response.get("body"), stream_data),
        takes=len(takes) if isinstance(takes, list) else 1,
        recorded_at=_text(first_take.get("recorded_at")),
    )


def _session_view(name: str, document: dict[str, Any]) -> CassetteView:
    """A WebSocket session read like an exchange: each client event is a turn (its type, and its text if it has
    any), the reply is what the server said in text, and the status is the `101`."""
    try:
        session = session_from_document(document)
    except CassetteError:
        return CassetteView(name, "GET", "", "", None, True, None, {}, (), (), Reply(), 1, None)
    summary = session.summary()
    turns = []
    for frame in session.frames:
        if frame.sender is Sender.CLIENT:
            text = first_prompt((frame,))
            kind = event_type(frame.data) or "message"
            turns.append(Turn("client", f"{kind}: {text}" if text else kind))
    return CassetteView(
        name=name,
        method="GET",
        path=session.path,
        endpoint=session.endpoint,
        status=101,
        stream=True,
        model=_text(summary.get("model")),
        settings={"client_frames": summary["client_frames"], "server_frames": summary["server_frames"]},
        turns=tuple(turns),
        tools=(),
        reply=Reply(text=server_text(session.frames)),
        takes=len(session.takes),
        recorded_at=session.recorded_at or None,
    )


# --- the request --------------------------------------------------------------------------------------------


def content_text(content: Any) -> str:
    """A message's `content` as text: a string, or the text of its typed parts (others named in brackets)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return "" if content is None else _compact(content)
    texts = []
    for part in content:
        part = _dict(part)
        text = part.get("text")
        texts.append(text if isinstance(text, str) else f"[{part.get('type', 'part')}]")
    return "\n".join(texts)


def _turns(endpoint: str, body: dict[str, Any]) -> list[Turn]:
    if endpoint == "responses":
        turns = [Turn("system", body["instructions"])] if isinstance(body.get("instructions"), str) else []
        given = body.get("input")
        if isinstance(given, str):
            return [*turns, Turn("user", given)]
        items = given if isinstance(given, list) else []
        return turns + [_responses_turn(_dict(item)) for item in items]
    messages = body.get("messages")
    if isinstance(messages, list):
        return [_chat_turn(_dict(message)) for message in messages]
    if "input" in body:
        return [Turn("input", content_text(body["input"]))]
    return []


def _chat_turn(message: dict[str, Any]) -> Turn:
    parts = [content_text(message.get("content"))]
    for call in message.get("tool_calls") or []:
        function = _dict(_dict(call).get("function"))
        parts.append("[tool call] " + _tool_call(function.get("name"), function.get("arguments")).as_text())
    return Turn(str(message.get("role", "user")), "\n".join(part for part in parts if part))


def _responses_turn(item: dict[str, Any]) -> Turn:
    kind = item.get("type")
    if kind == "function_call":
        return Turn("assistant", "[tool call] " + _tool_call(item.get("name"), item.get("arguments")).as_text())
    if kind == "function_call_output":
        return Turn("tool", content_text(item.get("output")))
    return Turn(str(item.get("role", "user")), content_text(item.get("content")))


def _tool_names(tools: Any) -> list[str]:
    names = []
    for tool in tools if isinstance(tools, list) else []:
        tool = _dict(tool)
        function = _dict(tool.get("function")) or tool
        names.append(str(function.get("name") or tool.get("type") or "?"))
    return names


# --- the reply ----------------------------------------------------------------------------------------------


def _reply(endpoint: str, body: Any, stream_data: list[Any] | None) -> Reply:
    error = _dict(body).get("error")
    if isinstance(error, dict):
        return Reply(text=f"error: {error.get('message')}", finish_reason=_text(error.get("code")))
    if endpoint == "chat.completions":
        return _chat_stream_reply(stream_data) if stream_data is not None else _chat_reply(_dict(body))
    if endpoint == "responses":
        return _responses_stream_reply(stream_data) if stream_data is not None else _responses_reply(_dict(body))
    body = _dict(body)
    return Reply(usage=_dict(body.get("usage")), model=_text(body.get("model")))


def _tool_call(name: Any, arguments: Any) -> ToolCall:
    return ToolCall(str(name), arguments if isinstance(arguments, str) else _compact(arguments))


def _chat_reply(body: dict[str, Any]) -> Reply:
    choices = body.get("choices")
    choice = _dict(choices[0]) if isinstance(choices, list) and choices else {}
    message = _dict(choice.get("message"))
    calls = [_dict(_dict(call).get("function")) for call in message.get("tool_calls") or []]
    return Reply(
        text=content_text(message.get("content")),
        tool_calls=tuple(_tool_call(call.get("name"), call.get("arguments")) for call in calls),
        finish_reason=_text(choice.get("finish_reason")),
        usage=_dict(body.get("usage")),
        model=_text(body.get("model")),
    )


def _chat_stream_reply(data: list[Any]) -> Reply:
    text: list[str] = []
    names: dict[int, str] = {}
    arguments: dict[int, list[str]] = {}
    finish_reason = model = None
    usage: dict[str, Any] = {}
    for chunk in data:
        chunk = _dict(chunk)
        model = model or _text(chunk.get("model"))
        usage = _dict(chunk.get("usage")) or usage
        for choice in chunk.get("choices") or []:
            choice = _dict(choice)
            if choice.get("index", 0) != 0:
                continue
            finish_reason = _text(choice.get("finish_reason")) or finish_reason
            delta = _dict(choice.get("delta"))
            text.append(delta.get("content") or "")
            for call in delta.get("tool_calls") or []:
                call = _dict(call)
                index = call.get("index", 0)
                function = _dict(call.get("function"))
                if function.get("name"):
                    names[index] = function["name"]
                arguments.setdefault(index, []).append(function.get("arguments") or "")
    calls = tuple(ToolCall(names.get(index, "?"), "".join(arguments[index])) for index in sorted(arguments))
    return Reply("".join(text), calls, finish_reason, usage, model)


def _responses_reply(body: dict[str, Any]) -> Reply:
    texts: list[str] = []
    calls: list[ToolCall] = []
    for item in body.get("output") or []:
        item = _dict(item)
        if item.get("type") == "message":
            texts.append(content_text(item.get("content")))
        elif item.get("type") == "function_call":
            calls.append(_tool_call(item.get("name"), item.get("arguments")))
    incomplete = _dict(body.get("incomplete_details")).get("reason")
    return Reply(
        text="\n".join(texts),
        tool_calls=tuple(calls),
        finish_reason=_text(incomplete) or _text(body.get("status")),
        usage=_dict(body.get("usage")),
        model=_text(body.get("model")),
    )


def _responses_stream_reply(data: list[Any]) -> Reply:
    deltas: list[str] = []
    for event in data:
        event = _dict(event)
        if event.get("type") in RESPONSES_FINAL_EVENTS:
            return _responses_reply(_dict(event.get("response")))
        if event.get("type") == "response.output_text.delta":
            deltas.append(str(event.get("delta") or ""))
    return Reply(text="".join(deltas))


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _compact(value: Any) -> str:
    return orjson.dumps(value).decode()


# --- printing -----------------------------------------------------------------------------------------------


def shorten(text: str, limit: int = VALUE_LIMIT_CHARS) -> str:
    """`text` cut to `limit` characters, saying how many were left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit:,} more characters)"


def _indented(text: str, limit: int) -> list[str]:
    return ["    " + line for line in shorten(text, limit).splitlines() or [""]]


def view_lines(view: CassetteView, limit: int = VALUE_LIMIT_CHARS) -> list[str]:
    """`cache show`: the cassette from request to reply, every long value cut to `limit` characters."""
    reply = view.reply
    lines = [
        view.name,
        f"  endpoint:  {view.endpoint} ({view.method} {view.path})",
        f"  model:     {view.model or '-'}",
        f"  stream:    {'yes' if view.stream else 'no'}",
        f"  recorded:  {view.recorded_at or '-'}",
        f"  takes:     {view.takes}",
    ]
    if view.settings:
        settings = ", ".join(f"{name}={_compact(value)}" for name, value in view.settings.items())
        lines.append(f"  settings:  {shorten(settings, limit)}")
    if view.tools:
        lines.append(f"  tools:     {shorten(', '.join(view.tools), limit)}")
    lines.append("request:")
    for turn in view.turns:
        lines += [f"  {turn.role}:", *_indented(turn.text, limit)]
    lines.append(f"reply (status {view.status if view.status is not None else '?'}):")
    if reply.text:
        lines += _indented(reply.text, limit)
    lines += [f"  tool call: {shorten(call.as_text(), limit)}" for call in reply.tool_calls]
    if reply.model:
        lines.append(f"  model:     {reply.model}")
    if reply.finish_reason:
        lines.append(f"  finish:    {reply.finish_reason}")
    counts = {name: value for name, value in reply.usage.items() if isinstance(value, int | float)}
    if counts:
        lines.append("  usage:     " + ", ".join(f"{name}={value}" for name, value in counts.items()))
    return lines
