"""Fuzzing the SSE parser with streams as upstreams really write them, cut into random reads.

`tests/test_sse.py` proves that the serializer's output parses back under any split. Upstreams do not write
the serializer's canonical form, though, and a recording must not depend on where the network cut the bytes:
these properties feed raw streams (CRLF, CR and LF line endings, comments, a BOM, unknown fields, invalid
UTF-8, an unfinished tail) in random pieces, and cut real OpenAI streams short, as a dropped connection does.
"""

from __future__ import annotations

import itertools

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from inference_gate.core.sse import SSEEvent, SSEParser
from tools.fake_replies import chat_completion_chunks, response_events

LINE_ENDINGS = st.sampled_from([b"\n", b"\r\n", b"\r"])
RAW_LINES = st.one_of(
    st.sampled_from([b"", b"", b"data: [DONE]", b"data", b"data:no space", b"data:  two spaces", b"event: ping"]),
    st.sampled_from([b": keep-alive", b":", b"id: 42", b"id", b"retry: 1500", b"retry: 15x", b"unknown: field"]),
    st.text(max_size=20).map(lambda text: b"data: " + text.encode()),
    st.binary(max_size=20).map(lambda raw: raw.replace(b"\r", b"").replace(b"\n", b"")),
)
BOM = b"\xef\xbb\xbf"


@st.composite
def raw_streams(draw: st.DrawFn) -> bytes:
    """Lines with any endings, maybe a BOM first, maybe an unfinished last line."""
    lines = draw(st.lists(st.tuples(RAW_LINES, LINE_ENDINGS), max_size=20))
    stream = b"".join(line + ending for line, ending in lines)
    return (BOM if draw(st.booleans()) else b"") + stream + draw(RAW_LINES)


def split_points(stream: bytes) -> st.SearchStrategy[list[int]]:
    """Up to eight cuts, repeats allowed: a repeated cut feeds an empty piece."""
    return st.lists(st.integers(min_value=0, max_value=len(stream)), max_size=8).map(sorted)


def pieces_of(stream: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *cuts, len(stream)]
    return [stream[start:end] for start, end in itertools.pairwise(bounds)]


def parse(pieces: list[bytes]) -> tuple[list[SSEEvent], bool]:
    parser = SSEParser()
    events = [event for piece in pieces for event in parser.feed(piece)]
    return events, parser.has_partial_event


@settings(max_examples=300, deadline=None)
@given(data=st.data(), stream=raw_streams())
def test_any_split_of_a_raw_stream_parses_like_the_whole(data, stream):
    assert parse(pieces_of(stream, data.draw(split_points(stream)))) == parse([stream])


def real_blocks(api: str) -> list[bytes]:
    """The events of a real-looking streamed answer, one wire block each, with LF line endings."""
    request = {"model": "gpt-4o-mini", "stream": True}
    if api == "chat":
        request["messages"] = [{"role": "user", "content": "Say héllo 🌍"}]
        chunks = chat_completion_chunks(request, orjson.dumps(request))
        return [b"data: " + orjson.dumps(chunk) + b"\n\n" for chunk in chunks] + [b"data: [DONE]\n\n"]
    request["input"] = "Say héllo 🌍"
    return [
        b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"
        for event in response_events(request, orjson.dumps(request))
    ]


@settings(max_examples=200, deadline=None)
@given(data=st.data(), api=st.sampled_from(["chat", "responses"]), line_ending=st.sampled_from([b"\n", b"\r\n"]))
def test_a_real_stream_cut_short_is_reported_unfinished(data, api, line_ending):
    """What the gate relies on to never record a stream that a dropped connection cut short."""
    blocks = [block.replace(b"\n", line_ending) for block in real_blocks(api)]
    stream = b"".join(blocks)
    cut = data.draw(st.integers(min_value=0, max_value=len(stream)), label="cut")
    block_ends = list(itertools.accumulate(len(block) for block in blocks))
    # An event is dispatched by the first byte of its blank line: with CRLF, the CR alone completes it.
    dispatch_offsets = [end - len(line_ending) + 1 for end in block_ends]
    whole_events_sent = sum(1 for offset in dispatch_offsets if offset <= cut)
    at_boundary = cut == 0 or cut in block_ends or cut in dispatch_offsets

    events, unfinished = parse(pieces_of(stream[:cut], data.draw(split_points(stream[:cut]), label="cuts")))

    assert events == SSEParser().feed(stream)[:whole_events_sent]
    assert unfinished is not at_boundary
