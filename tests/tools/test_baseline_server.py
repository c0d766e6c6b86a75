"""tools/baseline_server.py: the canned reply it sends on every request, and its JSON file."""

from __future__ import annotations

from functools import partial

import trio

from tools.baseline_server import CannedReply, serve_canned
from tools.loadgen import LoadRequest, fetch

TEST_TIMEOUT_S = 10.0

PLAIN_REPLY = CannedReply(200, [(b"content-type", b"application/json"), (b"content-length", b"11")], b'{"ok":true}')

CHUNKED_REPLY = CannedReply(
    200,
    [(b"content-type", b"text/event-stream"), (b"transfer-encoding", b"chunked")],
    b"data: one\n\ndata: [DONE]\n\n",
)

POST_JSON = LoadRequest("POST", "/v1/chat/completions", [(b"content-type", b"application/json")], b'{"a":1}')


async def test_the_baseline_server_sends_its_canned_reply_on_every_request(nursery: trio.Nursery) -> None:
    with trio.fail_after(TEST_TIMEOUT_S):
        plain_port = await nursery.start(partial(serve_canned, PLAIN_REPLY))
        chunked_port = await nursery.start(partial(serve_canned, CHUNKED_REPLY))
        for _ in range(2):
            plain = await fetch("127.0.0.1", plain_port, POST_JSON)
            assert (plain.status, plain.headers, plain.body) == (200, PLAIN_REPLY.headers, PLAIN_REPLY.body)
        chunked = await fetch("127.0.0.1", chunked_port, POST_JSON)
        assert chunked.header(b"transfer-encoding") == b"chunked"
        assert chunked.body == CHUNKED_REPLY.body


def test_a_canned_reply_survives_its_json_file() -> None:
    assert CannedReply.from_json(CHUNKED_REPLY.to_json()) == CHUNKED_REPLY
