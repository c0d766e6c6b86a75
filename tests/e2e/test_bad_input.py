"""Hostile and broken clients against a whole running gate, while a healthy SDK client keeps being served.

The server's own tests check each limit with a toy handler. These check the same limits through the gate, in
both modes: that the settings reach the server, that every refusal is an OpenAI-shaped error an SDK can read
(or a closed connection), that nothing reaches the upstream or the cassette directory, that no traceback is
logged at the default level, and above all that one client's bad bytes never stall or break anyone else.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import h11
import openai
import orjson
import pytest
import trio

from inference_gate import Mode, Settings
from inference_gate.core.errors import GATE_ERROR_TYPE
from inference_gate.core.keys import MAX_JSON_DEPTH
from tests.e2e.conftest import running_gate
from tests.plain_http import post_json
from tests.servers import running_upstream
from tools.fake_upstream import FakeUpstream

CLIENT_KEY = "sk-client-key-for-tests-9876543210"
TEST_TIMEOUT_S = 15.0
MAX_BODY_BYTES = 1024 * 1024
REQUEST_TIMEOUT_S = 0.5
DRIBBLE_INTERVAL_S = 0.01
# What the healthy client asks in turn, plain and streamed; recorded before the gate under test starts.
HEALTHY_CALLS = (("Is the gate still up?", False), ("Is the gate still streaming?", True))

BOTH_MODES = pytest.mark.parametrize("mode", [Mode.RECORD, Mode.REPLAY], ids=["record", "replay"])


@pytest.fixture(autouse=True)
def no_traceback_is_logged(caplog):
    """At the default level (warnings), bad input may be reported, but never with a traceback."""
    caplog.set_level(logging.WARNING, logger="inference_gate")
    yield
    assert [record.getMessage() for record in caplog.records if record.exc_info] == []


def tls_client_hello() -> bytes:
    """The first bytes a real TLS client sends, as when `https://` is pointed at the gate's plain port."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with contextlib.suppress(ssl.SSLWantReadError):  # the handshake now waits for a server hello
        tls.do_handshake()
    return outgoing.read()


def chat_body(prompt: str, *, stream: bool = False) -> bytes:
    return orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}], "stream": stream})


def chat_head(content_length: int | str) -> bytes:
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: gate\r\nAuthorization: Bearer %s\r\n"
        b"Content-Type: application/json\r\nContent-Length: %s\r\n\r\n"
    )
    return head % (CLIENT_KEY.encode(), str(content_length).encode())


def chat_request(body: bytes) -> bytes:
    return chat_head(len(body)) + body


# --- The healthy client -------------------------------------------------------------------------------


class HealthyClient:
    """The official SDK asking `HEALTHY_CALLS` over and over, without retries: one failed request fails the test."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.answered = 0
        self._answered_one = trio.Event()

    async def run(self, *, rounds: int | None = None) -> None:
        async with openai.AsyncOpenAI(base_url=self.base_url, api_key=CLIENT_KEY, max_retries=0) as sdk:
            round_number = 0
            while rounds is None or round_number < rounds:
                round_number += 1
                for prompt, stream in HEALTHY_CALLS:
                    assert (await ask(sdk, prompt, stream=stream)).startswith(f"Echo: {prompt}")
                    self.answered += 1
                    self._answered_one.set()
                    self._answered_one = trio.Event()

    async def wait_for_answers(self, count: int) -> None:
        target = self.answered + count
        while self.answered < target:
            await self._answered_one.wait()


async def ask(sdk: openai.AsyncOpenAI, prompt: str, *, stream: bool) -> str:
    messages = [{"role": "user", "content": prompt}]
    if not stream:
        completion = await sdk.chat.completions.create(model="gpt-4o-mini", messages=messages)
        return completion.choices[0].message.content
    chunks = await sdk.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True)
    return "".join([chunk.choices[0].delta.content or "" async for chunk in chunks if chunk.choices])


@dataclass
class GateUnderAttack:
    port: int
    base_url: str
    upstream: FakeUpstream
    healthy: HealthyClient
    cache_dir: Path
    cassettes_before: set[Path]
    forwarded_before: int

    def cassettes(self) -> set[Path]:
        return set(self.cache_dir.rglob("*.json"))

    def assert_nothing_forwarded_or_recorded(self) -> None:
        assert len(self.upstream.requests) == self.forwarded_before
        assert self.cassettes() == self.cassettes_before


@asynccontextmanager
async def gate_with_healthy_client(settings: Settings, mode: Mode) -> AsyncIterator[GateUnderAttack]:
    """A gate with small limits, and the healthy client asking it for the whole block.

    The healthy calls are recorded by an earlier gate, so that for the gate under test they are hits in either
    mode and any new upstream request or cassette comes from the test. On exit, the healthy client must have
    been answered twice more after the bad input.
    """
    upstream = FakeUpstream()
    async with running_upstream(upstream):
        settings = replace(
            settings, upstream=upstream.url, max_body_bytes=MAX_BODY_BYTES, request_timeout_s=REQUEST_TIMEOUT_S
        )
        async with running_gate(settings, Mode.RECORD) as recorder:
            await HealthyClient(recorder.base_url).run(rounds=1)
        async with running_gate(settings, mode) as gate, trio.open_nursery() as nursery:
            healthy = HealthyClient(gate.base_url)
            nursery.start_soon(healthy.run)
            await healthy.wait_for_answers(1)
            yield GateUnderAttack(
                gate.port,
                gate.base_url,
                upstream,
                healthy,
                settings.cache_dir,
                set(settings.cache_dir.rglob("*.json")),
                len(upstream.requests),
            )
            await healthy.wait_for_answers(2)
            nursery.cancel_scope.cancel()


# --- A raw client -------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[bytes, bytes]
    body: bytes

    def gate_error(self, status: int) -> dict:
        """The OpenAI-shaped error body, after checking that it is one the gate made, with `status`."""
        assert self.status == status
        assert self.headers[b"content-type"].startswith(b"application/json")
        error = orjson.loads(self.body)["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["type"] == GATE_ERROR_TYPE
        return error


class RawClient:
    """A socket that sends whatever bytes a test wants, and parses the gate's answer with h11."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.parser = h11.Connection(h11.CLIENT)

    async def read_reply(self) -> Reply:
        # h11 parses a response only after a request has gone out through it; the bytes were sent raw.
        self.parser.send(h11.Request(method="POST", target="/", headers=[("host", "gate"), ("content-length", "0")]))
        self.parser.send(h11.EndOfMessage())
        head = await self._next_event()
        assert type(head) is h11.Response
        body = bytearray()
        while type(event := await self._next_event()) is h11.Data:
            body += event.data
        assert type(event) is h11.EndOfMessage
        return Reply(head.status_code, dict(head.headers), bytes(body))

    async def assert_closed_by_gate(self) -> None:
        assert await self.stream.receive_some(65536) == b""

    async def _next_event(self) -> h11.Event:
        while (event := self.parser.next_event()) is h11.NEED_DATA:
            self.parser.receive_data(await self.stream.receive_some(65536))
        return event


@asynccontextmanager
async def raw_client(port: int) -> AsyncIterator[RawClient]:
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        yield RawClient(stream)


async def refused(port: int, data: bytes) -> Reply:
    """Send `data`, read the gate's one answer, and check that the gate then closed the connection."""
    async with raw_client(port) as client:
        await client.stream.send_all(data)
        reply = await client.read_reply()
        assert reply.headers[b"connection"] == b"close"
        await client.assert_closed_by_gate()
    return reply


async def dribble(stream: trio.SocketStream, data: bytes) -> None:
    """Send `data` one byte at a time, as a slowloris client does to hold a server's connection open."""
    for index in range(len(data)):
        await stream.send_all(data[index : index + 1])
        await trio.sleep(DRIBBLE_INTERVAL_S)


# --- The tests ----------------------------------------------------------------------------------------


@BOTH_MODES
@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x00\x01\x02\xff\xfe not HTTP at all\r\n\r\n", id="garbage-bytes"),
        pytest.param(tls_client_hello(), id="tls-client-hello"),
        pytest.param(chat_head(-5) + b"{}", id="negative-content-length"),
    ],
)
async def test_unparseable_request_gets_400_and_a_closed_connection(record_settings, mode, data):
    with trio.fail_after(TEST_TIMEOUT_S):
        async with gate_with_healthy_client(record_settings, mode) as gate:
            assert (await refused(gate.port, data)).gate_error(400)["code"] == "bad_request"
            gate.assert_nothing_forwarded_or_recorded()


@BOTH_MODES
async def test_enormous_content_length_gets_413_without_waiting_for_the_body(record_settings, mode):
    with trio.fail_after(TEST_TIMEOUT_S):
        async with gate_with_healthy_client(record_settings, mode) as gate:
            reply = await refused(gate.port, chat_head(10**15))
            assert reply.gate_error(413)["code"] == "body_too_large"
            gate.assert_nothing_forwarded_or_recorded()


@BOTH_MODES
async def test_oversized_head_gets_431(record_settings, mode):
    with trio.fail_after(TEST_TIMEOUT_S):
        async with gate_with_healthy_client(record_settings, mode) as gate:
            head = chat_head(2).replace(b"\r\n\r\n", b"\r\nX-Padding: " + b"p" * 256 * 1024 + b"\r\n\r\n")
            reply = await refused(gate.port, head + b"{}")
            assert reply.gate_error(431)["code"] == "request_head_too_large"
            gate.assert_nothing_forwarded_or_recorded()


@BOTH_MODES
async def test_sdk_sending_a_body_over_the_limit_reads_413_instead_of_a_connection_error(record_settings, mode):
    """`max_body_bytes` reaches the server, and the SDK reads a 413 it can report, not a connection error."""
    with trio.fail_after(TEST_TIMEOUT_S):
        async with (
            gate_with_healthy_client(record_settings, mode) as gate,
            openai.AsyncOpenAI(base_url=gate.base_url, api_key=CLIENT_KEY, max_retries=0) as sdk,
        ):
            with pytest.raises(openai.APIStatusError) as raised:
                await ask(sdk, "x" * MAX_BODY_BYTES, stream=False)
            gate.assert_nothing_forwarded_or_recorded()
    assert raised.value.status_code == 413
    assert (raised.value.body["type"], raised.value.body["code"]) == (GATE_ERROR_TYPE, "body_too_large")


@BOTH_MODES
@pytest.mark.parametrize(
    ("body", "problem"),
    [
        pytest.param(b'{"model": "gpt-4o-mini", "messages": [', "unexpected end of data", id="truncated"),
        pytest.param(b'{"model": "gpt-4o-mini", "temperature": NaN}', "unexpected character", id="nan"),
    ],
)
async def test_invalid_json_gets_400_and_is_neither_forwarded_nor_recorded(record_settings, mode, body, problem):
    with trio.fail_after(TEST_TIMEOUT_S):
        async with gate_with_healthy_client(record_settings, mode) as gate, raw_client(gate.port) as client:
            await client.stream.send_all(chat_request(body))
            error = (await client.read_reply()).gate_error(400)
            gate.assert_nothing_forwarded_or_recorded()
    assert error["code"] == "invalid_json"
    assert "not valid JSON" in error["message"] and problem in error["message"]


@pytest.mark.parametrize("number", [b"123456789012345678901234567890", b"1e400"])
async def test_valid_json_with_a_number_orjson_cannot_represent_is_forwarded(record_settings, number):
    body = b'{"model": "gpt-4o-mini", "seed": ' + number + b', "messages": [{"role": "user", "content": "n"}]}'
    with trio.fail_after(TEST_TIMEOUT_S):
        async with gate_with_healthy_client(record_settings, Mode.RECORD) as gate, raw_client(gate.port) as client:
            await client.stream.send_all(chat_request(body))
            reply = await client.read_reply()
            assert gate.upstream.requests[-1].body == body
    assert reply.headers[b"x-inference-gate"] != b"error"


@BOTH_MODES
@pytest.mark.parametrize("depth", [254, 1000, 100_000])  # these once got a 500, or a 400 calling them invalid
async def test_json_nested_past_the_limit_gets_400_naming_it_and_no_retry(record_settings, mode, depth):
    with trio.fail_after(TEST_TIMEOUT_S):
        async with gate_with_healthy_client(record_settings, mode) as gate, raw_client(gate.port) as client:
            await client.stream.send_all(chat_request(b"[" * depth + b"]" * depth))
            reply = await client.read_reply()
            gate.assert_nothing_forwarded_or_recorded()
    assert reply.gate_error(400)["code"] == "json_too_deep"
    assert f"more than {MAX_JSON_DEPTH} levels" in reply.gate_error(400)["message"]
    assert reply.headers[b"x-should-retry"] == b"false"


@BOTH_MODES
@pytest.mark.parametrize("slow_part", ["head", "body"])
async def test_slowloris_gets_408_while_the_healthy_client_is_served(record_settings, mode, slow_part):
    body = chat_body("a request that takes its time " * 3)
    with trio.fail_after(TEST_TIMEOUT_S):
        async with gate_with_healthy_client(record_settings, mode) as gate, raw_client(gate.port) as client:
            answered_before = gate.healthy.answered
            started_s = trio.current_time()
            async with trio.open_nursery() as slowloris:
                if slow_part == "head":
                    slowloris.start_soon(dribble, client.stream, chat_request(body))
                else:
                    await client.stream.send_all(chat_head(len(body)))
                    slowloris.start_soon(dribble, client.stream, body)
                reply = await client.read_reply()
                slowloris.cancel_scope.cancel()
            elapsed_s = trio.current_time() - started_s
            assert gate.healthy.answered > answered_before
            await client.assert_closed_by_gate()
            gate.assert_nothing_forwarded_or_recorded()
    assert reply.gate_error(408)["code"] == "request_timeout"
    assert REQUEST_TIMEOUT_S <= elapsed_s < REQUEST_TIMEOUT_S + 1.0


@BOTH_MODES
async def test_client_leaving_mid_body_leaves_no_trace(record_settings, mode):
    body = chat_body("a request whose second half never comes")
    with trio.fail_after(TEST_TIMEOUT_S):
        async with gate_with_healthy_client(record_settings, mode) as gate:
            async with raw_client(gate.port) as client:
                await client.stream.send_all(chat_request(body)[: -len(body) // 2])
            await gate.healthy.wait_for_answers(1)
            gate.assert_nothing_forwarded_or_recorded()


async def test_client_leaving_mid_stream_of_a_miss_does_not_abandon_the_upstream_call(record_settings):
    prompt = "a streamed answer nobody waits for"
    with trio.fail_after(TEST_TIMEOUT_S):
        async with gate_with_healthy_client(record_settings, Mode.RECORD) as gate:
            gate.upstream.event_delay_s = 0.02  # so that the client leaves while the upstream is still sending
            async with raw_client(gate.port) as client:
                await client.stream.send_all(chat_request(chat_body(prompt, stream=True)))
                received = b""
                while b"data: " not in received:
                    received += await client.stream.receive_some(65536)
            async with openai.AsyncOpenAI(base_url=gate.base_url, api_key=CLIENT_KEY, max_retries=0) as sdk:
                answer = await ask(sdk, prompt, stream=True)
            # The cassette is written just after the stream ends, off the client's path: wait for it, bounded.
            with trio.fail_after(5):
                while len(gate.cassettes() - gate.cassettes_before) != 1:
                    await trio.sleep(0.01)
    assert answer.startswith(f"Echo: {prompt}")
    assert [request.json["stream"] for request in gate.upstream.requests if prompt.encode() in request.body] == [True]


@BOTH_MODES
@pytest.mark.parametrize(
    ("content_type", "problem"),
    [(b"multipart/form-data", b"names no boundary"), (b"multipart/form-data; boundary=b", b"no closing boundary")],
)
async def test_bad_multipart_gets_400_saying_what_is_wrong(record_settings, mode, content_type, problem):
    body = b'--b\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1'
    head = chat_head(len(body)).replace(b"/v1/chat/completions", b"/v1/audio/transcriptions")
    with trio.fail_after(TEST_TIMEOUT_S):
        async with gate_with_healthy_client(record_settings, mode) as gate, raw_client(gate.port) as client:
            await client.stream.send_all(head.replace(b"application/json", content_type) + body)
            error = (await client.read_reply()).gate_error(400)
            gate.assert_nothing_forwarded_or_recorded()
    assert error["code"] == "invalid_multipart"
    assert problem.decode() in error["message"]


DOTTED_TARGETS = ["/v1/..", "/v1/../", "/..", "/v1/./x", "/.hidden", "/v1/../chat/completions", "/.x/chat/completions"]
LONG_SEGMENT_TARGET = f"/v1/{'a' * 300}/chat/completions"


async def test_no_request_path_writes_outside_the_cache_directory_or_into_a_dot_folder(tmp_path, record_settings):
    """Each target is answered, in both modes; what is recorded lands in a plain folder of the cache directory."""
    targets = [*DOTTED_TARGETS, LONG_SEGMENT_TARGET]
    upstream = FakeUpstream()
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Where am I stored?"}]}
    with trio.fail_after(TEST_TIMEOUT_S):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url)
            async with running_gate(settings, Mode.RECORD) as gate:
                recorded = [await post_json(f"http://127.0.0.1:{gate.port}", target, body) for target in targets]
            async with running_gate(settings, Mode.REPLAY) as gate:
                replayed = [await post_json(f"http://127.0.0.1:{gate.port}", target, body) for target in targets]
    assert [reply.status for reply in recorded] == [404] * 5 + [200] * 3
    assert [reply.headers["x-inference-gate"] for reply in recorded] == ["passthrough"] * 5 + ["recorded"] * 3
    assert [reply.headers["x-inference-gate"] for reply in replayed] == ["miss"] * 5 + ["hit"] * 3
    cassettes = [reply.headers["x-inference-gate-cassette"] for reply in recorded[5:]]
    assert cassettes == [reply.headers["x-inference-gate-cassette"] for reply in replayed[5:]]
    assert list(tmp_path.iterdir()) == [settings.cache_dir]  # nothing one level up
    folders = {path.name for path in settings.cache_dir.iterdir()}
    assert folders == {cassette.split("/")[0] for cassette in cassettes}
    assert "chat.completions" in folders and "x.chat.completions" in folders
    assert all(len(folder) <= 255 and not folder.startswith(".") for folder in folders)
