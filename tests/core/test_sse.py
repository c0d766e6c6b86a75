"""Tests for the sans-IO SSE parser and serializer: split-safety, UTF-8 safety, WHATWG rules, round trip."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference_gate.core.sse import SSEEvent, SSEParser, serialize_event, serialize_events

_CHAT_CHUNK_HEAD = (
    '{"id":"chatcmpl-9x","object":"chat.completion.chunk","created":1718000000,'
    '"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":['
)


def _chat_chunk(delta: dict, finish_reason: str | None = None) -> str:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
    return _CHAT_CHUNK_HEAD + json.dumps(choice, ensure_ascii=False) + '],"obfuscation":"q1"}'


CHAT_DATA = [
    _chat_chunk({"role": "assistant", "content": "", "refusal": None}),
    _chat_chunk({"content": "héllo"}),
    _chat_chunk({"content": " 你好"}),
    _chat_chunk({"content": " 🌍"}),
    _chat_chunk({}, finish_reason="stop"),
    "[DONE]",
]
CHAT_STREAM = "".join(f"data: {data}\n\n" for data in CHAT_DATA).encode()

_TEXT_PART = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
_RESPONSES_TYPES_AND_FIELDS = [
    ("response.created", {"response": {"id": "resp_1", "object": "response", "status": "in_progress"}}),
    ("response.in_progress", {"response": {"id": "resp_1", "status": "in_progress"}}),
    ("response.output_item.added", {"output_index": 0, "item": {"id": "msg_1", "type": "message"}}),
    ("response.content_part.added", {**_TEXT_PART, "part": {"type": "output_text", "text": ""}}),
    ("response.output_text.delta", {**_TEXT_PART, "delta": "héllo", "logprobs": [], "obfuscation": "a"}),
    ("response.output_text.delta", {**_TEXT_PART, "delta": " 你好 🌍", "logprobs": [], "obfuscation": "b"}),
    ("response.output_text.done", {**_TEXT_PART, "text": "héllo 你好 🌍", "logprobs": []}),
    ("response.content_part.done", {**_TEXT_PART, "part": {"type": "output_text"}}),
    ("response.output_item.done", {"output_index": 0, "item": {"id": "msg_1", "status": "completed"}}),
    ("response.completed", {"response": {"id": "resp_1", "usage": {"input_tokens": 5, "output_tokens": 4}}}),
]
RESPONSES_EVENTS = [
    (
        event_type,
        json.dumps(
            {"type": event_type, "sequence_number": sequence_number, **fields},
            ensure_ascii=False,
            separators=(",", ":"),
        ),
    )
    for sequence_number, (event_type, fields) in enumerate(_RESPONSES_TYPES_AND_FIELDS)
]
RESPONSES_STREAM = "".join(f"event: {name}\ndata: {data}\n\n" for name, data in RESPONSES_EVENTS).encode()

REAL_STREAMS = pytest.mark.parametrize("stream", [CHAT_STREAM, RESPONSES_STREAM], ids=["chat", "responses"])


def parse_whole(stream: bytes) -> list[SSEEvent]:
    return SSEParser().feed(stream)


def parse_pieces(pieces: list[bytes]) -> list[SSEEvent]:
    parser = SSEParser()
    events = []
    for piece in pieces:
        events.extend(parser.feed(piece))
    return events


def test_chat_completions_stream_parses_to_data_only_events():
    events = parse_whole(CHAT_STREAM)
    assert events == [SSEEvent(data=data) for data in CHAT_DATA]
    assert json.loads(events[3].data)["choices"][0]["delta"]["content"] == " 🌍"
    assert events[-1].data == "[DONE]"


def test_responses_stream_parses_to_named_events():
    events = parse_whole(RESPONSES_STREAM)
    assert events == [SSEEvent(data=data, event=name) for name, data in RESPONSES_EVENTS]


@REAL_STREAMS
def test_every_two_piece_split_gives_the_same_events(stream):
    expected = parse_whole(stream)
    for split_at in range(len(stream) + 1):
        assert parse_pieces([stream[:split_at], stream[split_at:]]) == expected, split_at


@REAL_STREAMS
def test_one_byte_at_a_time_gives_the_same_events(stream):
    one_byte_pieces = [stream[index : index + 1] for index in range(len(stream))]
    assert parse_pieces(one_byte_pieces) == parse_whole(stream)


def test_four_byte_emoji_split_at_each_inner_boundary():
    prefix = b"data: hi "
    stream = prefix + "🌍".encode() + b"!\n\n"
    for inner_offset in (1, 2, 3):
        split_at = len(prefix) + inner_offset
        assert parse_pieces([stream[:split_at], stream[split_at:]]) == [SSEEvent(data="hi 🌍!")]


def test_invalid_utf8_is_replaced_not_fatal():
    assert parse_whole(b"data: a\xff\xfeb\n\n") == [SSEEvent(data="a\ufffd\ufffdb")]


def test_crlf_cr_and_mixed_line_endings():
    assert parse_whole(b"data: a\r\ndata: b\r\n\r\n") == [SSEEvent(data="a\nb")]
    assert parse_whole(b"data: a\rdata: b\r\r") == [SSEEvent(data="a\nb")]
    assert parse_whole(b"event: e\rdata: a\r\ndata: b\n\r\ndata: c\n\r") == [
        SSEEvent(data="a\nb", event="e"),
        SSEEvent(data="c"),
    ]


def test_crlf_split_across_feeds_is_one_line_ending():
    # Were the CR and the LF counted as two endings, the LF would be a blank line and dispatch "a" alone.
    assert parse_pieces([b"data: a\r", b"\ndata: b\r\n\r\n"]) == [SSEEvent(data="a\nb")]
    assert parse_pieces([b"data: a\r", b"", b"\n", b"data: b\r", b"\n\r", b"\n"]) == [SSEEvent(data="a\nb")]


def test_cr_at_end_of_feed_followed_by_cr_is_a_blank_line():
    assert parse_pieces([b"data: a\r", b"\r"]) == [SSEEvent(data="a")]


def test_comments_and_keep_alive_blank_lines_yield_nothing():
    assert parse_whole(b": ping\n\n\n\r\n:\n\n") == []
    assert parse_whole(b": comment\ndata: a\n: another\ndata: b\n\n") == [SSEEvent(data="a\nb")]


def test_field_value_spacing_and_field_without_colon():
    assert parse_whole(b"data:no-space\n\n") == [SSEEvent(data="no-space")]
    assert parse_whole(b"data:  two-spaces\n\n") == [SSEEvent(data=" two-spaces")]
    assert parse_whole(b"data\n\n") == [SSEEvent(data="")]
    assert parse_whole(b"data\ndata\ndata: x\n\n") == [SSEEvent(data="\n\nx")]
    assert parse_whole(b"data: a: b\n\n") == [SSEEvent(data="a: b")]


def test_unknown_fields_are_ignored():
    assert parse_whole(b"foo: bar\nDATA: shout\ndata: a\n\n") == [SSEEvent(data="a")]


def test_last_event_and_id_lines_win():
    assert parse_whole(b"event: a\nevent: b\nid: 1\nid: 2\ndata: x\n\n") == [
        SSEEvent(data="x", event="b", id="2")
    ]


def test_retry_requires_ascii_digits():
    assert parse_whole(b"retry: 3000\ndata: x\n\n") == [SSEEvent(data="x", retry=3000)]
    for malformed in (b"3s", b"-1", b" 5", b"", "\u0663".encode(), b"9" * 5000):
        assert parse_whole(b"retry: " + malformed + b"\ndata: x\n\n") == [SSEEvent(data="x")], malformed


def test_id_with_nul_is_ignored():
    assert parse_whole(b"id: a\x00b\ndata: x\n\n") == [SSEEvent(data="x")]


def test_id_and_retry_belong_to_their_own_event():
    assert parse_whole(b"id: 7\ndata: a\n\ndata: b\n\n") == [SSEEvent(data="a", id="7"), SSEEvent(data="b")]


def test_blocks_without_data_are_dispatched_when_they_carry_a_field():
    assert parse_whole(b"event: ping\n\n") == [SSEEvent(data="", event="ping")]
    assert parse_whole(b"retry: 10\n\n") == [SSEEvent(data="", retry=10)]
    assert parse_whole(b"data:\n\n") == [SSEEvent(data="")]


def test_bom_at_stream_start_is_stripped_even_when_split():
    stream = b"\xef\xbb\xbfdata: x\n\n"
    for split_at in range(len(stream) + 1):
        assert parse_pieces([stream[:split_at], stream[split_at:]]) == [SSEEvent(data="x")], split_at


def test_only_one_bom_is_stripped():
    parser = SSEParser()
    assert parser.feed(b"\xef\xbb\xbfdata: a\n\n") == [SSEEvent(data="a")]
    # Later, a BOM is part of the field name, which makes the field unknown.
    assert parser.feed(b"\xef\xbb\xbfdata: b\n\n") == []


def test_has_partial_event_tracks_an_unfinished_event():
    parser = SSEParser()
    assert not parser.has_partial_event
    parser.feed(b"data: hel")
    assert parser.has_partial_event  # mid-line
    parser.feed(b"lo\n")
    assert parser.has_partial_event  # a field collected, no blank line yet
    assert parser.feed(b"\n") == [SSEEvent(data="hello")]
    assert not parser.has_partial_event
    parser.feed(b": keep-alive\n\n")
    assert not parser.has_partial_event


def test_has_partial_event_is_false_after_a_clean_end_with_cr():
    parser = SSEParser()
    assert parser.feed(b"data: a\r\r") == [SSEEvent(data="a")]
    assert not parser.has_partial_event


def test_has_partial_event_with_a_held_back_bom_prefix():
    parser = SSEParser()
    assert parser.feed(b"\xef\xbb") == []
    assert parser.has_partial_event


def test_large_event_fed_one_byte_at_a_time():
    """A read that holds no line break only grows the partial line: the buffer is kept, never re-scanned or
    copied (which would make one-byte reads quadratic). Checked by what the parser does, not by a clock: unit
    tests time nothing."""
    payload = "x" * 300_000
    stream = f"data: {payload}\n\n".encode()
    parser = SSEParser()
    buffer = parser._partial_line
    events = []
    for index in range(len(stream) - 2):
        events.extend(parser.feed(stream[index : index + 1]))
        assert parser._partial_line is buffer
    assert events == [] and len(buffer) == len(stream) - 2
    events.extend(parser.feed(b"\n\n"))
    assert events == [SSEEvent(data=payload)]


def test_serialize_event_wire_form():
    assert serialize_event(SSEEvent(data="[DONE]")) == b"data: [DONE]\n\n"
    assert serialize_event(SSEEvent(data='{"a":1}', event="response.created")) == (
        b'event: response.created\ndata: {"a":1}\n\n'
    )
    assert serialize_event(SSEEvent(data="line1\nline2", event="e", id="42", retry=1500)) == (
        b"event: e\nid: 42\nretry: 1500\ndata: line1\ndata: line2\n\n"
    )
    assert serialize_event(SSEEvent(data="")) == b"data: \n\n"
    assert serialize_event(SSEEvent(data="héllo 🌍")) == "data: héllo 🌍\n\n".encode()


def test_serialize_events_is_the_concatenation():
    events = parse_whole(RESPONSES_STREAM)
    assert serialize_events(events) == b"".join(serialize_event(event) for event in events)
    assert serialize_events([]) == b""


@REAL_STREAMS
def test_real_streams_replay_byte_for_byte(stream):
    assert serialize_events(parse_whole(stream)) == stream


def test_round_trip_of_parsed_events():
    stream = (
        b": comment\r\nevent: multi\r\nid: 9\r\nretry: 007\r\ndata: a\r\ndata:\r\ndata:  b\r\n\r\n"
        b"event: ping\n\nid: only\n\ndata\n\n"
    )
    events = parse_whole(stream)
    assert events == [
        SSEEvent(data="a\n\n b", event="multi", id="9", retry=7),
        SSEEvent(data="", event="ping"),
        SSEEvent(data="", id="only"),
        SSEEvent(data=""),
    ]
    assert parse_whole(serialize_events(events)) == events


def test_carriage_returns_in_data_are_normalised_to_line_feeds():
    # The stream cannot carry a line break inside a data line, so CRLF and lone CR become separate data lines
    # and the parser joins them back with LF.
    event = SSEEvent(data="a\rb\r\nc\nd")
    assert serialize_event(event) == b"data: a\ndata: b\ndata: c\ndata: d\n\n"
    assert parse_whole(serialize_event(event)) == [SSEEvent(data="a\nb\nc\nd")]


@pytest.mark.parametrize(
    "unrepresentable",
    [
        SSEEvent(data="x", event="a\nb"),
        SSEEvent(data="x", event="a\rb"),
        SSEEvent(data="x", id="1\n2"),
        SSEEvent(data="x", id="1\x002"),
        SSEEvent(data="x", retry=-1),
    ],
)
def test_serialize_rejects_fields_the_wire_cannot_carry(unrepresentable):
    with pytest.raises(ValueError):
        serialize_event(unrepresentable)


_ALPHABET = st.one_of(
    st.sampled_from(["\n", " ", ":", "é", "你", "🌍", "\ufeff"]),
    st.characters(codec="utf-8", exclude_characters="\r"),
)
_LINE_TEXT = st.text(alphabet=_ALPHABET.filter(lambda character: character != "\n"), max_size=20)
_EVENTS = st.lists(
    st.builds(
        SSEEvent,
        data=st.text(alphabet=_ALPHABET, max_size=40),
        event=st.none() | _LINE_TEXT,
        id=st.none() | _LINE_TEXT.filter(lambda text: "\0" not in text),
        retry=st.none() | st.integers(min_value=0, max_value=10**12),
    ),
    max_size=8,
)


@pytest.mark.parametrize(
    ("event", "final"),
    [
        (SSEEvent(data="[DONE]"), True),
        (SSEEvent(data='{"type": "response.completed"}', event="response.completed"), True),
        (SSEEvent(data='{"type": "response.failed"}', event="response.failed"), True),
        (SSEEvent(data='{"type": "message_stop"}', event="message_stop"), True),
        (SSEEvent(data='{"choices": [{"delta": {"content": "[DONE]"}}]}'), False),
        (SSEEvent(data='{"type": "message_delta"}', event="message_delta"), False),
        (SSEEvent(data="[DONE] and more"), False),
    ],
)
def test_a_final_event_is_one_a_client_may_stop_reading_at(event, final):
    assert event.is_final is final


@settings(max_examples=200, deadline=None)
@given(events=_EVENTS, data=st.data())
def test_property_serialized_events_parse_back_equal_under_any_split(events, data):
    stream = serialize_events(events)
    split_points = sorted(data.draw(st.lists(st.integers(min_value=0, max_value=len(stream)), max_size=6)))
    bounds = [0, *split_points, len(stream)]
    pieces = [stream[start:end] for start, end in itertools.pairwise(bounds)]
    assert parse_pieces(pieces) == events
