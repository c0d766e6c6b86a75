"""The fake OpenAI upstream, checked with the official SDK (so the wire format really parses) and with a raw
h11 client (to see the framing the SDK hides: chunk boundaries, content coding, dropped connections).

These tests also document the wire format the gate is tested against.
"""

from __future__ import annotations

import gzip
import signal
import ssl
import subprocess
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import h11
import openai
import orjson
import pytest
import trio
import trustme

from tools.fake_replies import OK_INSTRUCTION
from tools.fake_upstream import FakeUpstream, tls_server_context

API_KEY = "sk-test-0123456789abcdefWXYZ"
TEST_TIMEOUT_S = 10.0
SDK_TIMEOUT_S = 5.0
QUIET_PERIOD_S = 0.2
REPO_ROOT = Path(__file__).resolve().parents[2]
USER_MESSAGES = [{"role": "user", "content": "Say hi"}]
EXPECTED_ECHO = "Echo: Say hi — héllo wörld 你好 🌍"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture
async def fake(nursery: trio.Nursery) -> FakeUpstream:
    upstream = FakeUpstream()
    await nursery.start(upstream.serve)
    return upstream


def client_options(upstream: FakeUpstream, **overrides: object) -> dict[str, object]:
    """SDK client options for the fake: no retries, so each call is one request, and a bounded timeout."""
    options = {
        "api_key": API_KEY,
        "base_url": upstream.url + "/v1",
        "max_retries": 0,
        "timeout": SDK_TIMEOUT_S,
    }
    return options | overrides


def sync_client(upstream: FakeUpstream, **overrides: object) -> openai.OpenAI:
    return openai.OpenAI(**client_options(upstream, **overrides))


def async_client(upstream: FakeUpstream, **overrides: object) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(**client_options(upstream, **overrides))


@dataclass
class RawResponse:
    """A response as framed on the wire: `chunks` are the transfer-encoding chunks, in order."""

    status: int
    headers: dict[bytes, bytes]
    chunks: list[bytes]

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)


class RawClient:
    """An h11 client over a plain TCP stream."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.connection = h11.Connection(h11.CLIENT)

    @classmethod
    async def connect(cls, upstream: FakeUpstream) -> RawClient:
        assert upstream.port is not None
        return cls(await trio.open_tcp_stream("127.0.0.1", upstream.port))

    async def send_request(
        self, method: str, target: str, body: bytes = b"", headers: list[tuple[str, str]] | None = None
    ) -> None:
        if headers is None:
            headers = [("authorization", f"Bearer {API_KEY}")]
        head = [("host", "127.0.0.1"), ("content-length", str(len(body))), *headers]
        data = self.connection.send(h11.Request(method=method, target=target, headers=head))
        if body:
            data += self.connection.send(h11.Data(data=body))
        await self.stream.send_all(data + self.connection.send(h11.EndOfMessage()))

    async def next_event(self) -> h11.Event:
        while True:
            event = self.connection.next_event()
            if event is not h11.NEED_DATA:
                return event
            self.connection.receive_data(await self.stream.receive_some(65536))

    async def read_response(self) -> RawResponse:
        head = await self.next_event()
        assert isinstance(head, h11.Response)
        chunks: list[bytes] = []
        chunk = b""
        while not isinstance(event := await self.next_event(), h11.EndOfMessage):
            assert isinstance(event, h11.Data)
            chunk += event.data
            if event.chunk_end:
                chunks.append(chunk)
                chunk = b""
        return RawResponse(head.status_code, dict(head.headers), chunks)


async def raw_exchange(
    upstream: FakeUpstream, method: str, target: str, payload: object = None, **options: object
) -> RawResponse:
    body = b"" if payload is None else orjson.dumps(payload)
    client = await RawClient.connect(upstream)
    async with client.stream:
        await client.send_request(method, target, body, **options)
        return await client.read_response()


def chat_request(model: str = "gpt-4o-mini", **fields: object) -> dict:
    return {"model": model, "messages": USER_MESSAGES, **fields}


# --- Through the official SDK ---------------------------------------------------------------------------


async def test_sync_sdk_reads_a_chat_completion(fake: FakeUpstream) -> None:
    def create() -> openai.types.chat.ChatCompletion:
        with sync_client(fake) as client:
            return client.chat.completions.create(model="gpt-4o-mini", messages=USER_MESSAGES)

    with trio.fail_after(TEST_TIMEOUT_S):
        completion = await trio.to_thread.run_sync(create)

    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "gpt-4o-mini"
    assert completion.choices[0].message.content == EXPECTED_ECHO
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (
        completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    assert completion._request_id is not None and completion._request_id.startswith("req_")


async def test_ok_instruction_gets_exactly_ok(fake: FakeUpstream) -> None:
    messages = [{"role": "user", "content": f"Are you there? {OK_INSTRUCTION}"}]
    with trio.fail_after(TEST_TIMEOUT_S):
        async with async_client(fake) as client:
            completion = await client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert completion.choices[0].message.content == "OK."


async def test_streamed_chat_reassembles_and_ends_with_a_usage_chunk(fake: FakeUpstream) -> None:
    with trio.fail_after(TEST_TIMEOUT_S):
        async with async_client(fake) as client:
            stream = await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=USER_MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = [chunk async for chunk in stream]

    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks[:-1]) == EXPECTED_ECHO
    assert len(chunks) > 4, "the text must arrive in several deltas"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert all(chunk.usage is None for chunk in chunks[:-1])
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


async def test_streamed_tool_call_arguments_concatenate_to_json(fake: FakeUpstream) -> None:
    with trio.fail_after(TEST_TIMEOUT_S):
        async with async_client(fake) as client:
            stream = await client.chat.completions.create(
                model="gpt-4o-mini", messages=USER_MESSAGES, tools=[WEATHER_TOOL], stream=True
            )
            chunks = [chunk async for chunk in stream]

    first_call = chunks[0].choices[0].delta.tool_calls[0]
    assert first_call.function.name == "get_weather"
    assert first_call.id.startswith("call_")
    fragments = [
        call.function.arguments
        for chunk in chunks
        for call in chunk.choices[0].delta.tool_calls or []
        if call.function.arguments
    ]
    assert len(fragments) > 1
    assert orjson.loads("".join(fragments)) == {"city": "Paris"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_non_streamed_tool_call(fake: FakeUpstream) -> None:
    with trio.fail_after(TEST_TIMEOUT_S):
        async with async_client(fake) as client:
            completion = await client.chat.completions.create(
                model="gpt-4o-mini", messages=USER_MESSAGES, tools=[WEATHER_TOOL]
            )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls[0].function.name == "get_weather"
    assert orjson.loads(choice.message.tool_calls[0].function.arguments) == {"city": "Paris"}


async def test_responses_api_non_streamed(fake: FakeUpstream) -> None:
    with trio.fail_after(TEST_TIMEOUT_S):
        async with async_client(fake) as client:
            response = await client.responses.create(model="gpt-4o-mini", input="Say hi")
    assert response.object == "response"
    assert response.status == "completed"
    assert response.id.startswith("resp_")
    assert response.output_text == EXPECTED_ECHO
    assert response.usage is not None and response.usage.total_tokens > 0


async def test_responses_api_stream_events_come_in_openai_order(fake: FakeUpstream) -> None:
    with trio.fail_after(TEST_TIMEOUT_S):
        async with async_client(fake) as client:
            stream = await client.responses.create(
                model="gpt-4o-mini", input=[{"role": "user", "content": "Say hi"}], stream=True
            )
            events = [event async for event in stream]

    types = [event.type for event in events]
    deltas = types.count("response.output_text.delta")
    assert deltas > 1
    assert types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * deltas,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert (
        "".join(event.delta for event in events if event.type == "response.output_text.delta")
        == EXPECTED_ECHO
    )
    assert events[-1].response.output_text == EXPECTED_ECHO


async def test_embeddings_agree_as_base64_and_as_floats(fake: FakeUpstream) -> None:
    with trio.fail_after(TEST_TIMEOUT_S):
        async with async_client(fake) as client:
            as_base64 = await client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
            as_floats = await client.embeddings.create(
                model="text-embedding-3-small", input=["a", "b"], encoding_format="float"
            )
    assert len(as_base64.data) == 2
    assert len(as_base64.data[0].embedding) == 8
    assert as_base64.data[0].embedding != as_base64.data[1].embedding
    assert [item.embedding for item in as_base64.data] == [item.embedding for item in as_floats.data]


async def test_models_are_listed(fake: FakeUpstream) -> None:
    with trio.fail_after(TEST_TIMEOUT_S):
        async with async_client(fake) as client:
            page = await client.models.list()
    assert "gpt-4o-mini" in [model.id for model in page.data]


async def test_wrong_key_raises_authentication_error_with_masked_key(nursery: trio.Nursery) -> None:
    upstream = FakeUpstream(expected_api_key="sk-the-right-key")
    await nursery.start(upstream.serve)

    def create() -> None:
        with sync_client(upstream) as client:
            client.chat.completions.create(model="gpt-4o-mini", messages=USER_MESSAGES)

    with trio.fail_after(TEST_TIMEOUT_S), pytest.raises(openai.AuthenticationError) as raised:
        await trio.to_thread.run_sync(create)
    assert raised.value.code == "invalid_api_key"
    assert raised.value.body["message"].startswith(
        "Incorrect API key provided: sk-test-****************WXYZ."
    )
    assert API_KEY not in str(raised.value)


async def test_fault_429_raises_rate_limit_error_with_retry_after(fake: FakeUpstream) -> None:
    with trio.fail_after(TEST_TIMEOUT_S), pytest.raises(openai.RateLimitError) as raised:
        async with async_client(fake) as client:
            await client.chat.completions.create(model="fault-429", messages=USER_MESSAGES)
    assert raised.value.code == "rate_limit_exceeded"
    assert raised.value.response.headers["retry-after"] == "1"
    assert raised.value.response.headers["retry-after-ms"] == "1000"


@pytest.mark.parametrize(
    ("model", "error", "code"),
    [
        ("fault-401", openai.AuthenticationError, "invalid_api_key"),
        ("fault-404", openai.NotFoundError, "model_not_found"),
        ("does-not-exist", openai.NotFoundError, "model_not_found"),
        ("fault-500", openai.InternalServerError, None),
    ],
)
async def test_faults_selected_by_model(
    fake: FakeUpstream, model: str, error: type[openai.APIStatusError], code: str | None
) -> None:
    with trio.fail_after(TEST_TIMEOUT_S), pytest.raises(error) as raised:
        async with async_client(fake) as client:
            await client.chat.completions.create(model=model, messages=USER_MESSAGES)
    assert raised.value.code == code
    assert raised.value.response.headers["content-type"] == "application/json; charset=utf-8"


async def test_routes_match_by_path_suffix(fake: FakeUpstream) -> None:
    base_url = fake.url + "/openai/v1"
    with trio.fail_after(TEST_TIMEOUT_S):
        async with async_client(fake, base_url=base_url) as client:
            await client.chat.completions.create(model="gpt-4o-mini", messages=USER_MESSAGES)
    assert fake.calls("/v1/chat/completions") == 1
    assert fake.requests[0].target == "/openai/v1/chat/completions"


async def test_tls_with_a_trusted_ca_and_a_failed_handshake(nursery: trio.Nursery) -> None:
    ca = trustme.CA()
    upstream = FakeUpstream()
    await nursery.start(partial(upstream.serve, ssl_context=tls_server_context(ca)))
    assert upstream.url.startswith("https://127.0.0.1:")
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)

    with trio.fail_after(TEST_TIMEOUT_S):
        async with async_client(upstream) as untrusting_client:
            with pytest.raises(openai.APIConnectionError):
                await untrusting_client.models.list()
        async with async_client(
            upstream, http_client=openai.DefaultAsyncHttpxClient(verify=trusting)
        ) as client:
            completion = await client.chat.completions.create(model="gpt-4o-mini", messages=USER_MESSAGES)
    assert completion.choices[0].message.content == EXPECTED_ECHO


# --- On the wire ----------------------------------------------------------------------------------------


async def test_requests_are_recorded(fake: FakeUpstream) -> None:
    with trio.fail_after(TEST_TIMEOUT_S):
        await raw_exchange(fake, "POST", "/v1/embeddings?x=1", {"model": "e", "input": "a"})
    [request] = fake.requests
    assert (request.method, request.target, request.path) == ("POST", "/v1/embeddings?x=1", "/v1/embeddings")
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.json == {"model": "e", "input": "a"}
    assert fake.calls("/embeddings") == 1


async def test_missing_key_unknown_path_and_invalid_json(fake: FakeUpstream) -> None:
    with trio.fail_after(TEST_TIMEOUT_S):
        missing_key = await raw_exchange(fake, "POST", "/v1/chat/completions", chat_request(), headers=[])
        unknown_path = await raw_exchange(fake, "POST", "/v1/nothing-here", chat_request())
        client = await RawClient.connect(fake)
        async with client.stream:
            await client.send_request("POST", "/v1/chat/completions", b"{not json")
            invalid_json = await client.read_response()

    assert missing_key.status == 401
    assert orjson.loads(missing_key.body)["error"]["message"].startswith("You didn't provide an API key.")
    assert unknown_path.status == 404
    assert orjson.loads(unknown_path.body)["error"]["message"] == "Invalid URL (POST /v1/nothing-here)"
    assert invalid_json.status == 400
    assert orjson.loads(invalid_json.body)["error"]["type"] == "invalid_request_error"


async def test_identical_requests_get_identical_bytes(fake: FakeUpstream) -> None:
    with trio.fail_after(TEST_TIMEOUT_S):
        first = await raw_exchange(fake, "POST", "/v1/chat/completions", chat_request(stream=True))
        second = await raw_exchange(fake, "POST", "/v1/chat/completions", chat_request(stream=True))
        other = await raw_exchange(fake, "POST", "/v1/chat/completions", chat_request("gpt-4o", stream=True))
    assert (first.headers, first.body) == (second.headers, second.body)
    assert first.body != other.body
    assert first.headers[b"x-request-id"] != other.headers[b"x-request-id"]


async def test_sse_chunks_split_events_and_utf8_characters(fake: FakeUpstream) -> None:
    with trio.fail_after(TEST_TIMEOUT_S):
        response = await raw_exchange(fake, "POST", "/v1/chat/completions", chat_request(stream=True))

    assert response.headers[b"content-type"] == b"text/event-stream; charset=utf-8"
    assert response.headers[b"transfer-encoding"] == b"chunked"
    assert b"content-encoding" not in response.headers
    assert response.body.endswith(b"data: [DONE]\n\n")
    response.body.decode("utf-8")
    assert any(_cuts_a_utf8_character(chunk) for chunk in response.chunks)
    assert not all(chunk.endswith(b"\n\n") for chunk in response.chunks)


def _cuts_a_utf8_character(chunk: bytes) -> bool:
    try:
        chunk.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


async def test_json_is_chunked_and_gzipped_only_when_asked(fake: FakeUpstream) -> None:
    asks_gzip = [("authorization", f"Bearer {API_KEY}"), ("accept-encoding", "gzip, deflate")]
    with trio.fail_after(TEST_TIMEOUT_S):
        gzipped = await raw_exchange(fake, "POST", "/v1/chat/completions", chat_request(), headers=asks_gzip)
        plain = await raw_exchange(fake, "POST", "/v1/chat/completions", chat_request())

    assert gzipped.headers[b"content-encoding"] == b"gzip"
    assert gzip.decompress(gzipped.body) == plain.body
    assert b"content-encoding" not in plain.headers
    for response in (gzipped, plain):
        assert response.headers[b"transfer-encoding"] == b"chunked"
        assert b"content-length" not in response.headers
        assert len(response.chunks) >= 2
    assert plain.headers[b"content-type"] == b"application/json"
    for name in (b"openai-processing-ms", b"openai-version", b"x-ratelimit-reset-tokens", b"set-cookie"):
        assert name in plain.headers
    assert orjson.loads(plain.body)["object"] == "chat.completion"


@pytest.mark.parametrize(
    ("model", "coding", "decode"),
    [("fault-gzip", b"gzip", gzip.decompress), ("fault-deflate", b"deflate", zlib.decompress)],
)
async def test_coding_faults_compress_although_identity_was_asked(
    fake: FakeUpstream, model: str, coding: bytes, decode: Callable[[bytes], bytes]
) -> None:
    identity = [("authorization", f"Bearer {API_KEY}"), ("accept-encoding", "identity")]
    with trio.fail_after(TEST_TIMEOUT_S):
        response = await raw_exchange(
            fake, "POST", "/v1/chat/completions", chat_request(model), headers=identity
        )
    assert response.headers[b"content-encoding"] == coding
    assert orjson.loads(decode(response.body))["model"] == model


@pytest.mark.parametrize("streamed", [False, True])
async def test_reset_faults_drop_the_connection_mid_body(fake: FakeUpstream, streamed: bool) -> None:
    model = "fault-reset-midstream" if streamed else "fault-reset-midbody"
    client = await RawClient.connect(fake)
    received = b""
    with trio.fail_after(TEST_TIMEOUT_S), pytest.raises(h11.RemoteProtocolError, match="incomplete chunked"):
        async with client.stream:
            await client.send_request(
                "POST", "/v1/chat/completions", orjson.dumps(chat_request(model, stream=streamed))
            )
            assert (await client.next_event()).status_code == 200
            while isinstance(event := await client.next_event(), h11.Data):
                received += event.data
    assert received
    if streamed:
        assert received.count(b"\n\n") >= 2
        assert b"[DONE]" not in received


async def test_slow_fault_sends_nothing_for_a_long_time(fake: FakeUpstream) -> None:
    with trio.fail_after(TEST_TIMEOUT_S):
        client = await RawClient.connect(fake)
        async with client.stream:
            slow_request = orjson.dumps(chat_request("fault-slow"))
            await client.send_request("POST", "/v1/chat/completions", slow_request)
            with trio.move_on_after(QUIET_PERIOD_S) as quiet:
                await client.next_event()
    assert quiet.cancelled_caught
    assert fake.calls("/chat/completions") == 1


async def test_hold_pauses_a_stream_after_its_first_event(fake: FakeUpstream) -> None:
    fake.hold = trio.Event()
    client = await RawClient.connect(fake)
    with trio.fail_after(TEST_TIMEOUT_S):
        async with client.stream:
            await client.send_request("POST", "/v1/chat/completions", orjson.dumps(chat_request(stream=True)))
            assert (await client.next_event()).status_code == 200
            received = b""
            while b"\n\n" not in received:
                received += (await client.next_event()).data
            assert received.startswith(b"data: {") and received.endswith(b"\n\n")
            with trio.move_on_after(QUIET_PERIOD_S) as quiet:
                await client.next_event()
            assert quiet.cancelled_caught

            fake.hold.set()
            while isinstance(event := await client.next_event(), h11.Data):
                received += event.data
    assert received.endswith(b"data: [DONE]\n\n")


async def test_hold_pauses_a_json_reply_before_its_status_line(fake: FakeUpstream) -> None:
    fake.hold = trio.Event()
    client = await RawClient.connect(fake)
    with trio.fail_after(TEST_TIMEOUT_S):
        async with client.stream:
            await client.send_request("POST", "/v1/chat/completions", orjson.dumps(chat_request()))
            with trio.move_on_after(QUIET_PERIOD_S) as quiet:
                await client.next_event()
            assert quiet.cancelled_caught
            assert fake.calls("/chat/completions") == 1

            fake.hold.set()
            response = await client.read_response()
    assert response.status == 200


async def test_keep_alive_serves_several_requests_on_one_connection(fake: FakeUpstream) -> None:
    client = await RawClient.connect(fake)
    with trio.fail_after(TEST_TIMEOUT_S):
        async with client.stream:
            for _ in range(2):
                await client.send_request("GET", "/v1/models")
                assert (await client.read_response()).status == 200
                client.connection.start_next_cycle()
    assert fake.calls("/v1/models") == 2


async def test_client_leaving_mid_stream_does_not_stop_the_server(fake: FakeUpstream) -> None:
    fake.event_delay_s = 0.01
    with trio.fail_after(TEST_TIMEOUT_S):
        client = await RawClient.connect(fake)
        async with client.stream:
            await client.send_request("POST", "/v1/chat/completions", orjson.dumps(chat_request(stream=True)))
            assert (await client.next_event()).status_code == 200
        await trio.sleep(0.1)  # the fake keeps writing into the closed connection meanwhile
        response = await raw_exchange(fake, "GET", "/v1/models")
    assert response.status == 200


async def test_runs_as_a_script_until_sigterm() -> None:
    with trio.fail_after(TEST_TIMEOUT_S):
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "tools.fake_upstream", "--host", "127.0.0.1", "--port", "0"],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
        )
        try:
            printed = b""
            while not printed.endswith(b"\n"):
                printed += await process.stdout.receive_some(1024)
            url = printed.decode().strip()
            assert url.startswith("http://127.0.0.1:")
            stream = await trio.open_tcp_stream("127.0.0.1", int(url.rsplit(":", 1)[1]))
            await stream.aclose()
        finally:
            process.send_signal(signal.SIGTERM)
            await process.wait()
    assert process.returncode == 0
