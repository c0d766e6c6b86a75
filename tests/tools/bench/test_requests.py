"""tools/bench/requests.py: the requests' promised sizes, a stream's shape and a chat answer's text."""

from __future__ import annotations

import orjson

from tools.bench.requests import (
    CHAT_ANSWER_BYTES,
    STREAM_EVENT_COUNT,
    StreamShape,
    message_content,
    sized_chat_request,
    stream_request,
)
from tools.fake_replies import chat_completion, chat_completion_chunks


def test_the_bench_requests_have_the_sizes_it_promises() -> None:
    chat = sized_chat_request()
    answer = orjson.dumps(chat_completion(orjson.loads(chat.body), chat.body))
    assert CHAT_ANSWER_BYTES <= len(answer) < CHAT_ANSWER_BYTES + 64
    stream = stream_request()
    assert len(chat_completion_chunks(orjson.loads(stream.body), stream.body)) + 1 == STREAM_EVENT_COUNT


def _sse(*data: str) -> bytes:
    return b"".join(b"data: " + item.encode() + b"\n\n" for item in data)


def _delta(text: str) -> str:
    return orjson.dumps({"choices": [{"index": 0, "delta": {"content": text}}]}).decode()


def test_a_stream_shape_counts_events_and_bytes_and_joins_the_text() -> None:
    body = _sse(_delta("Hel"), _delta("lo"), "[DONE]")
    assert StreamShape.of(body) == StreamShape(3, len(body), "Hello")
    assert StreamShape.of(body).text() == f"3 events, {len(body)} B"


def test_streams_are_the_same_work_only_with_the_same_text_in_as_many_events_of_about_the_same_size() -> None:
    gate = StreamShape.of(_sse(_delta("Hel"), _delta("lo"), "[DONE]"))
    rechunked = StreamShape.of(_sse(_delta("Hello"), "[DONE]"))
    other_text = StreamShape.of(_sse(_delta("Hel"), _delta("p!"), "[DONE]"))
    assert gate.is_same_work_as(StreamShape(gate.event_count, gate.body_bytes + 5, gate.content))
    assert not gate.is_same_work_as(rechunked)
    assert not gate.is_same_work_as(other_text)
    assert not gate.is_same_work_as(StreamShape(gate.event_count, gate.body_bytes * 2, gate.content))


def test_the_message_content_of_a_chat_answer() -> None:
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Echo: hi"}}]}
    assert message_content(orjson.dumps(answer)) == "Echo: hi"
