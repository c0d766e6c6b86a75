"""Server-Sent Events, sans-IO: an incremental parser for recording and a serializer for replay.

On the record path the gate passes the upstream's `text/event-stream` body through to the client as it arrives
and, alongside, feeds every network read to `SSEParser` so that the cassette stores events rather than raw
chunks. Reads split the stream anywhere (inside a line, between the `\\r` and `\\n` of a CRLF, inside a
multi-byte UTF-8 character), so the parser keeps the unfinished line as bytes and decodes only complete lines.
On the replay path `serialize_events` turns stored events back into one bytes object for a coalesced write.

Parsing follows WHATWG's "interpreting an event stream", with two deliberate differences, both so that a
recording keeps what the upstream sent:

- A blank line dispatches the event if *any* field (`data`, `event`, `id`, `retry`) was seen since the last
  dispatch, as the `openai` SDK's own decoder does; WHATWG drops events without data. A blank line with
  nothing collected is a keep-alive and yields nothing.
- `id` and `retry` belong to the event whose block carried them. WHATWG keeps the last event ID for the whole
  stream; carrying it over would make replay repeat an `id:` line on every later event.

Serialization always writes at least one `data:` line, so a parsed event with empty data replays as
`data: ` and parses back equal. Data is split into `data:` lines on CRLF, CR and LF alike, because the stream
cannot carry a line break inside a line: data holding a lone CR therefore comes back with LF in its place.
For every event the parser produces, `parse(serialize(events)) == events`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_UTF8_BOM = b"\xef\xbb\xbf"
_CR = 0x0D
_LF = 0x0A
_COLON = 0x3A
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# `retry` is in milliseconds; 16 digits is already ~300,000 years. Longer values are garbage, and Python
# refuses to convert digit strings past 4300 characters, so an upstream could otherwise crash the parser.
_MAX_RETRY_DIGITS = 16


# The events after which a client may stop reading an LLM stream: the openai SDK stops at OpenAI's `[DONE]`
# without reading the end of the body, and a caller may stop at the Responses API's last events or at
# Anthropic's `message_stop`. Gemini's stream has no such event: its client reads until the body ends.
DONE_DATA = "[DONE]"
RESPONSES_FINAL_EVENTS = ("response.completed", "response.incomplete", "response.failed")
FINAL_EVENT_NAMES = frozenset({*RESPONSES_FINAL_EVENTS, "message_stop"})


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event. `data` is its `data:` lines joined with LF."""

    data: str
    event: str | None = None
    id: str | None = None
    retry: int | None = None

    @property
    def is_final(self) -> bool:
        """Whether a client may take this event as the end of the stream and stop reading (see above)."""
        return self.data == DONE_DATA or self.event in FINAL_EVENT_NAMES


class SSEParser:
    """Incremental: feed bytes as they arrive, get complete events back.

    Each byte is scanned for line endings once, whatever the read sizes, so an event trickling in one byte
    at a time costs linear, not quadratic, time.
    """

    __slots__ = (
        "_at_stream_start",
        "_data_lines",
        "_event_id",
        "_event_name",
        "_partial_line",
        "_retry_ms",
        "_skip_leading_lf",
    )

    def __init__(self) -> None:
        # Bytes of a line whose ending has not arrived yet. It never contains CR or LF.
        self._partial_line = bytearray()
        # The BOM check waits until three bytes have arrived or the stream can no longer start with one.
        self._at_stream_start = True
        # The last read ended in CR: a LF opening the next read completes that CRLF, it is not a blank line.
        self._skip_leading_lf = False
        self._data_lines: list[str] = []
        self._event_name: str | None = None
        self._event_id: str | None = None
        self._retry_ms: int | None = None

    @property
    def has_partial_event(self) -> bool:
        """True if bytes or fields of an undispatched event are pending: a stream ending now was cut short."""
        return bool(self._partial_line) or self._has_fields()

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Take the next read of the stream and return the events it completed, in order."""
        if self._skip_leading_lf and chunk:
            self._skip_leading_lf = False
            if chunk[0] == _LF:
                chunk = chunk[1:]
        if self._at_stream_start:
            chunk = self._strip_bom(chunk)
        if b"\n" not in chunk and b"\r" not in chunk:
            self._partial_line += chunk
            return []

        if self._partial_line:
            block = bytes(self._partial_line) + chunk
            self._partial_line.clear()
        else:
            block = chunk
        lines = block.splitlines()  # bytes.splitlines breaks on CRLF, CR and LF only
        last_byte = block[-1]
        if last_byte == _CR:
            self._skip_leading_lf = True
        elif last_byte != _LF:
            self._partial_line += lines.pop()

        events = []
        for line in lines:
            if not line:
                if self._has_fields():
                    events.append(self._dispatch())
            elif line[0] != _COLON:  # lines starting with a colon are comments
                self._take_field(line.decode("utf-8", errors="replace"))
        return events

    def _strip_bom(self, chunk: bytes) -> bytes:
        """Drop one UTF-8 BOM at stream start, holding bytes back while they could still be its beginning."""
        head = bytes(self._partial_line) + chunk
        self._partial_line.clear()
        if len(head) < len(_UTF8_BOM) and _UTF8_BOM.startswith(head):
            self._partial_line += head
            return b""
        self._at_stream_start = False
        return head.removeprefix(_UTF8_BOM)

    def _take_field(self, line: str) -> None:
        name, _, value = line.partition(":")
        if value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data_lines.append(value)
        elif name == "event":
            self._event_name = value
        elif name == "id" and "\0" not in value:
            self._event_id = value
        elif name == "retry" and value.isascii() and value.isdigit() and len(value) <= _MAX_RETRY_DIGITS:
            self._retry_ms = int(value)
        # Any other field, an id holding NUL and a retry that is not all digits are ignored, as the spec says.

    def _has_fields(self) -> bool:
        return bool(self._data_lines) or not (
            self._event_name is None and self._event_id is None and self._retry_ms is None
        )

    def _dispatch(self) -> SSEEvent:
        event = SSEEvent(
            data="\n".join(self._data_lines), event=self._event_name, id=self._event_id, retry=self._retry_ms
        )
        self._data_lines = []
        self._event_name = None
        self._event_id = None
        self._retry_ms = None
        return event


def serialize_event(event: SSEEvent) -> bytes:
    """The wire form of one event: `event:`, `id:`, `retry:` when set, `data:` lines, then a blank line."""
    return _event_text(event).encode("utf-8")


def serialize_events(events: Iterable[SSEEvent]) -> bytes:
    """The wire form of several events as one bytes object, so replay can send them in a single write."""
    return "".join(map(_event_text, events)).encode("utf-8")


def comment_line(text: str) -> bytes:
    """An SSE comment (`: text` and a blank line), which every SSE parser skips; line breaks in `text` become
    spaces, so the comment can never end early and start an event of its own."""
    return (": " + " ".join(text.splitlines()) + "\n\n").encode("utf-8")


def _event_text(event: SSEEvent) -> str:
    header = ""
    if event.event is not None:
        _require_single_line("event", event.event)
        header += "event: " + event.event + "\n"
    if event.id is not None:
        _require_single_line("id", event.id)
        if "\0" in event.id:
            raise ValueError(f"SSE id {event.id!r} contains NUL, which parsers ignore")
        header += "id: " + event.id + "\n"
    if event.retry is not None:
        if event.retry < 0:
            raise ValueError(f"SSE retry must be a non-negative number of milliseconds, got {event.retry}")
        header += "retry: " + str(event.retry) + "\n"
    data = event.data
    data_lines = _LINE_BREAK.split(data) if "\r" in data else data.split("\n")
    return header + "data: " + "\ndata: ".join(data_lines) + "\n\n"


def _require_single_line(field: str, value: str) -> None:
    """A line break in a field value would end the field early and inject the rest as new lines."""
    if "\n" in value or "\r" in value:
        raise ValueError(f"SSE {field} {value!r} contains a line break")
