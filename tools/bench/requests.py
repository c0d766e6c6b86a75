"""The requests the bench sends, sent from this process, and the answers read back: the chat and stream requests
of a known size, one-shot fetches and loads bounded in time, and the shape of a replayed stream."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import orjson
import trio

from inference_gate.core.sse import SSEParser
from tools.baseline_server import CannedReply
from tools.bench.processes import HOST, BenchError
from tools.fake_replies import chat_completion, chat_completion_chunks
from tools.loadgen import FetchedResponse, LoadRequest, LoadResult, fetch, run_load

CHAT_PATH = "/v1/chat/completions"
API_KEY = "sk-bench-0123456789abcdefWXYZ"
CHAT_ANSWER_BYTES = 2048
STREAM_EVENT_COUNT = 100
OUTCOME_HEADER = b"x-inference-gate"
REQUEST_TIMEOUT_S = 30.0
COMMAND_TIMEOUT_S = 300.0


def chat_request(prompt: str, *, stream: bool = False) -> LoadRequest:
    body: dict[str, object] = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]}
    if stream:
        body["stream"] = True
    headers = [(b"content-type", b"application/json"), (b"authorization", b"Bearer " + API_KEY.encode())]
    return LoadRequest("POST", CHAT_PATH, headers, orjson.dumps(body))


def sized_chat_request() -> LoadRequest:
    """A chat request whose non-streamed answer from the fake upstream is about `CHAT_ANSWER_BYTES` long."""
    words: list[str] = []
    while True:
        request = chat_request("Summarise this benchmark sentence. " + " ".join(words))
        answer = chat_completion(orjson.loads(request.body), request.body)
        if len(orjson.dumps(answer)) >= CHAT_ANSWER_BYTES:
            return request
        words.append(f"word{len(words)}")


def stream_request() -> LoadRequest:
    """A streamed chat request whose answer is `STREAM_EVENT_COUNT` SSE events, `[DONE]` included."""
    for length in range(2000):
        request = chat_request("Stream this. " + "x" * length, stream=True)
        if len(chat_completion_chunks(orjson.loads(request.body), request.body)) + 1 == STREAM_EVENT_COUNT:
            return request
    raise AssertionError(f"no prompt length gives {STREAM_EVENT_COUNT} events")


def fetch_now(port: int, request: LoadRequest) -> FetchedResponse:
    async def bounded() -> FetchedResponse:
        with trio.fail_after(REQUEST_TIMEOUT_S):
            return await fetch(HOST, port, request)

    return trio.run(bounded)


def run_load_now(port: int, next_request: Callable[[], LoadRequest], **options: int) -> LoadResult:
    async def bounded() -> LoadResult:
        with trio.fail_after(options.get("duration_s", 0) + COMMAND_TIMEOUT_S):
            return await run_load(HOST, port, next_request, **options)

    return trio.run(bounded)


def expect_outcome(response: FetchedResponse, outcome: bytes, what: str) -> None:
    got = response.header(OUTCOME_HEADER)
    if response.status != 200 or got != outcome:
        raise BenchError(f"{what}: expected 200 {outcome.decode()}, got {response.status} {got!r}")


def canned(response: FetchedResponse) -> CannedReply:
    return CannedReply(response.status, response.headers, response.body)


def message_content(body: bytes) -> str:
    """The assistant's text in a non-streamed chat completion."""
    return orjson.loads(body)["choices"][0]["message"]["content"]


@dataclass(frozen=True, slots=True)
class StreamShape:
    """A replayed SSE body as the work it is to serve: how many events, how many bytes, and the text they carry."""

    event_count: int
    body_bytes: int
    content: str

    @classmethod
    def of(cls, body: bytes) -> StreamShape:
        events = SSEParser().feed(body)
        deltas = [orjson.loads(event.data)["choices"] for event in events if event.data != "[DONE]"]
        content = "".join(choice["delta"].get("content") or "" for choices in deltas for choice in choices)
        return cls(len(events), len(body), content)

    def is_same_work_as(self, other: StreamShape) -> bool:
        """The same answer in as many events, within a tenth of the bytes: serving either costs about the same."""
        similar_size = abs(self.body_bytes - other.body_bytes) <= 0.1 * max(self.body_bytes, other.body_bytes)
        return self.content == other.content and self.event_count == other.event_count and similar_size

    def text(self) -> str:
        return f"{self.event_count} events, {self.body_bytes:,} B"
