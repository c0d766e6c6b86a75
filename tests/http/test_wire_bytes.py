"""The exact bytes a replay puts on the wire, pinned by golden files so that work on the hit path cannot change them.

A real replay gate serves the example cassettes to raw sockets: a whole answer then a streamed one on one keep-alive
connection, a streamed one to an HTTP/1.0 client, and one answered after shutdown began (`Connection: close`).
Each connection's received bytes must equal its golden file. After a deliberate change of the wire, regenerate
the files with INFERENCE_GATE_UPDATE_GOLDEN=1 and review their diff.
"""

from __future__ import annotations

import shutil
from functools import partial
from pathlib import Path

import h11
import orjson
import pytest
import trio
import trio.testing

from inference_gate.config.settings import Settings
from inference_gate.core.policy import Mode
from inference_gate.proxy.gate import Gate
from tests.cassettes import EXAMPLES
from tests.golden import updating_golden_files

GOLDEN = Path(__file__).parent / "golden_wire"
UPDATE = updating_golden_files()
TEST_TIMEOUT_S = 10.0

WHOLE = "chat.completions/say-hello-in-french"
STREAMED = "chat.completions/write-a-haiku-about-caching"


def request_bytes(slug: str, *, http_version: str = "1.1") -> bytes:
    """The request that the example cassette `slug` answers, as a client would frame it."""
    endpoint, name = slug.split("/")
    (file,) = (EXAMPLES / endpoint).glob(f"{name}.*.json")
    recorded = orjson.loads(file.read_bytes())["request"]
    body = orjson.dumps(recorded["body"])
    head = (
        f"POST {recorded['path']} HTTP/{http_version}\r\nhost: gate\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


async def read_responses(stream: trio.SocketStream, count: int) -> bytes:
    """Everything the server sends for `count` responses to HTTP/1.1 requests, parsed only to know where they end."""
    parser = h11.Connection(h11.CLIENT)
    received = bytearray()
    for _ in range(count):
        if parser.our_state is h11.DONE:
            parser.start_next_cycle()
        parser.send(h11.Request(method="POST", target="/", headers=[("host", "gate"), ("content-length", "0")]))
        parser.send(h11.EndOfMessage())
        while type(event := parser.next_event()) is not h11.EndOfMessage:
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                assert data, "the server closed the connection mid-response"
                received += data
                parser.receive_data(data)
    return bytes(received)


async def read_to_close(stream: trio.SocketStream) -> bytes:
    received = bytearray()
    while data := await stream.receive_some(65536):
        received += data
    return bytes(received)


def assert_matches_golden(name: str, received: bytes) -> None:
    golden = GOLDEN / f"{name}.http"
    if UPDATE:
        golden.write_bytes(received)
    assert received == golden.read_bytes()


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLES, tmp_path / "cache")
    return tmp_path / "cache"


async def test_replay_bytes_on_the_wire_match_the_golden_files(cache_dir: Path) -> None:
    gate = Gate(Settings(host="127.0.0.1", port=0, cache_dir=cache_dir), Mode.REPLAY)
    shutdown = trio.Event()
    with trio.fail_after(TEST_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(partial(gate.run, shutdown=shutdown))
            keep_alive = await trio.open_tcp_stream("127.0.0.1", port)
            # Twice each: the first answer prepares the reply, the second is served from what was prepared.
            await keep_alive.send_all(request_bytes(WHOLE) + request_bytes(STREAMED))
            await keep_alive.send_all(request_bytes(WHOLE) + request_bytes(STREAMED))
            assert_matches_golden("keep_alive", await read_responses(keep_alive, 4))

            http_10 = await trio.open_tcp_stream("127.0.0.1", port)
            await http_10.send_all(request_bytes(STREAMED, http_version="1.0"))
            assert_matches_golden("http_10", await read_to_close(http_10))

            during_shutdown = await trio.open_tcp_stream("127.0.0.1", port)
            whole = request_bytes(WHOLE)
            await during_shutdown.send_all(whole[:10])
            await trio.testing.wait_all_tasks_blocked()
            shutdown.set()
            await trio.testing.wait_all_tasks_blocked()
            await during_shutdown.send_all(whole[10:])
            assert_matches_golden("during_shutdown", await read_to_close(during_shutdown))
            for stream in (keep_alive, http_10, during_shutdown):
                await stream.aclose()
