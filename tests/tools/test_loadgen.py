"""tools/loadgen.py at tiny sizes, against the baseline server; no timing is asserted."""

from __future__ import annotations

from functools import partial

import pytest
import trio

from tools.baseline_server import CannedReply, serve_canned
from tools.loadgen import LoadRequest, fetch, read_slowly, run_load

TEST_TIMEOUT_S = 10.0

PLAIN_REPLY = CannedReply(200, [(b"content-type", b"application/json"), (b"content-length", b"11")], b'{"ok":true}')

CHUNKED_REPLY = CannedReply(
    200,
    [(b"content-type", b"text/event-stream"), (b"transfer-encoding", b"chunked")],
    b"data: one\n\ndata: [DONE]\n\n",
)

POST_JSON = LoadRequest("POST", "/v1/chat/completions", [(b"content-type", b"application/json")], b'{"a":1}')


async def test_the_load_generator_sends_exactly_the_requests_asked_for(nursery: trio.Nursery) -> None:
    with trio.fail_after(TEST_TIMEOUT_S):
        port = await nursery.start(partial(serve_canned, PLAIN_REPLY))
        result = await run_load("127.0.0.1", port, lambda: POST_JSON, connections=4, request_count=50)
    assert result.request_count == 50
    assert result.failed_count == 0
    assert 0 < result.percentile_s(0.5) <= result.percentile_s(0.99) == max(result.latencies_s)
    assert result.requests_per_s > 0
    assert len(result.first_byte_latencies_s) == 50
    assert result.first_byte_percentile_s(1.0) == max(result.first_byte_latencies_s)
    assert all(
        0 < first <= whole for first, whole in zip(result.first_byte_latencies_s, result.latencies_s, strict=True)
    )


async def test_the_load_generator_counts_answers_that_are_not_2xx(nursery: trio.Nursery) -> None:
    refusal = CannedReply(429, [(b"content-length", b"0")], b"")
    with trio.fail_after(TEST_TIMEOUT_S):
        port = await nursery.start(partial(serve_canned, refusal))
        result = await run_load("127.0.0.1", port, lambda: POST_JSON, connections=2, duration_s=0.2)
    assert result.request_count > 0
    assert result.failed_count == result.request_count


async def test_the_load_generator_wants_either_a_duration_or_a_count() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        await run_load("127.0.0.1", 1, lambda: POST_JSON, connections=1)


async def test_a_slow_reader_that_keeps_up_reads_the_whole_response_then_hangs_up(nursery: trio.Nursery) -> None:
    with trio.fail_after(TEST_TIMEOUT_S):
        port = await nursery.start(partial(serve_canned, CHUNKED_REPLY))
        read_bytes = await read_slowly("127.0.0.1", port, POST_JSON, bytes_per_s=10_000_000, duration_s=0.2)
        still_serving = await fetch("127.0.0.1", port, POST_JSON)
    head_bytes = len(b"HTTP/1.1 200 \r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
    framing_bytes = len(b"1a\r\n\r\n0\r\n\r\n")
    assert read_bytes == head_bytes + len(CHUNKED_REPLY.body) + framing_bytes
    assert still_serving.body == CHUNKED_REPLY.body
