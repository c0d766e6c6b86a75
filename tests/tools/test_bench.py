"""The benchmark's helpers at tiny sizes: the baseline server, the load generator, the synthetic cassettes and the
bench's own parsing, request shaping and report. No timing is asserted; `python -m tools.bench --quick` is the
smoke run of the benchmark itself. tools/sdk_calls.py runs only in the bench's own virtualenv (it needs vcrpy),
so it is exercised by that smoke run, not here.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import orjson
import pytest
import trio

from inference_gate import Gate, Mode, Settings
from inference_gate.core.keys import canonicalize
from inference_gate.review.inventory import review_cassettes
from inference_gate.store.cassette_store import CassetteStore
from tools.baseline_server import CannedReply, serve_canned
from tools.bench import (
    CHAT_ANSWER_BYTES,
    STREAM_EVENT_COUNT,
    BenchError,
    Report,
    Row,
    SdkRun,
    StreamShape,
    Target,
    message_content,
    parse_wrk_output,
    sized_chat_request,
    stream_request,
    without_recorded_timings,
    write_large_stream_cassette,
)
from tools.fake_replies import CHAT_COMPLETIONS, chat_completion, chat_completion_chunks
from tools.loadgen import LoadRequest, fetch, read_slowly, run_load
from tools.make_cassettes import is_streamed, make_cassettes, synthetic_request_body

TEST_TIMEOUT_S = 10.0
PLAIN_REPLY = CannedReply(200, [(b"content-type", b"application/json"), (b"content-length", b"11")], b'{"ok":true}')
CHUNKED_REPLY = CannedReply(
    200,
    [(b"content-type", b"text/event-stream"), (b"transfer-encoding", b"chunked")],
    b"data: one\n\ndata: [DONE]\n\n",
)
POST_JSON = LoadRequest("POST", "/v1/chat/completions", [(b"content-type", b"application/json")], b'{"a":1}')

WRK_OUTPUT = """Running 5s test @ http://127.0.0.1:8080/v1/chat/completions
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.10ms  500.00us  20.00ms   90.00%
    Req/Sec    10.00k   500.00    11.00k    70.00%
  Latency Distribution
     50%  850.00us
     75%    3.20ms
     90%    3.50ms
     99%    1.02s
  50000 requests in 5.00s, 100.00MB read
  Non-2xx or 3xx responses: 7
  Socket errors: connect 0, read 2, write 0, timeout 1
Requests/sec:  10000.50
Transfer/sec:     20.00MB
"""


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


def test_synthetic_cassettes_are_valid_cassettes_for_their_requests(tmp_path: Path) -> None:
    paths = make_cassettes(tmp_path, 10)
    store = CassetteStore(tmp_path)
    assert sorted(paths) == store.cassette_paths()
    for index, path in enumerate(paths):
        canonical = canonicalize("POST", CHAT_COMPLETIONS, synthetic_request_body(index))
        assert path == store.locate(canonical).path
        cassette = store.load(path, canonical.key)
        assert cassette is not None
        assert (cassette.response.events is not None) == is_streamed(index)
        assert cassette.summary["model"] == "gpt-4o-mini"
    assert sum(is_streamed(index) for index in range(10)) == 2
    assert not any(review.is_corrupt for review in review_cassettes(tmp_path))


async def test_the_gate_replays_a_synthetic_cassette(tmp_path: Path, nursery: trio.Nursery) -> None:
    [path] = make_cassettes(tmp_path, 1)
    gate = Gate(Settings(cache_dir=tmp_path, port=0), Mode.REPLAY)
    request = LoadRequest("POST", CHAT_COMPLETIONS, [(b"content-type", b"application/json")], synthetic_request_body(0))
    with trio.fail_after(TEST_TIMEOUT_S):
        port = await nursery.start(lambda task_status: gate.run(task_status=task_status))
        response = await fetch("127.0.0.1", port, request)
    assert response.status == 200
    assert response.header(b"x-inference-gate") == b"hit"
    assert orjson.loads(response.body)["choices"][0]["message"]["content"].startswith("Echo: Synthetic question 0")
    assert response.header(b"x-inference-gate-cassette") == path.relative_to(tmp_path).as_posix().encode()


def test_wrk_output_is_read_with_its_units_and_its_failures() -> None:
    figures = parse_wrk_output(WRK_OUTPUT)
    assert figures.requests_per_s == 10000.5
    assert figures.p50_ms == pytest.approx(0.85)
    assert figures.p99_ms == pytest.approx(1020.0)
    assert figures.failed_count == 10


def test_the_bench_requests_have_the_sizes_it_promises() -> None:
    chat = sized_chat_request()
    answer = orjson.dumps(chat_completion(orjson.loads(chat.body), chat.body))
    assert CHAT_ANSWER_BYTES <= len(answer) < CHAT_ANSWER_BYTES + 64
    stream = stream_request()
    assert len(chat_completion_chunks(orjson.loads(stream.body), stream.body)) + 1 == STREAM_EVENT_COUNT


def test_the_report_shows_every_row_and_a_verdict_per_target(capsys: pytest.CaptureFixture[str]) -> None:
    report = Report(
        rows=[
            Row("(c')", "other stream", "3 req/s"),
            Row("(c)", "streamed", "2 req/s"),
            Row("(b)", "plain", "1 req/s", "2 req/s (baseline)", "0.50"),
        ],
        targets=[
            Target("(c') met", "1", ">= 1", True),
            Target("(c) missed", "0", ">= 1", False),
            Target("(b) skipped", "not measured", ">= 1", None),
        ],
    )
    report.print(["header line"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "header line"
    rows = [line for line in lines if line.startswith("(") and "req/s" in line]
    assert [row.split()[0] for row in rows] == ["(b)", "(c)", "(c')"]
    targets = [line.split() for line in lines if line.startswith("(") and "req/s" not in line]
    assert [(target[1], target[-1]) for target in targets] == [("skipped", "SKIP"), ("missed", "FAIL"), ("met", "PASS")]


def test_the_large_stream_cassette_replays_at_least_the_size_asked_for(tmp_path: Path) -> None:
    request = write_large_stream_cassette(tmp_path, 100_000)
    canonical = canonicalize(request.method, request.target, request.body)
    cassette = CassetteStore(tmp_path).load(CassetteStore(tmp_path).locate(canonical).path, canonical.key)
    assert cassette is not None
    body = cassette.takes[0].response_body_bytes()
    assert 100_000 <= len(body) < 110_000
    shape = StreamShape.of(body)
    assert shape.content.startswith("Echo: Synthetic question")
    assert not any(review.is_corrupt for review in review_cassettes(tmp_path))


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


def test_an_sdk_run_is_read_from_its_last_line() -> None:
    output = 'a warning\n{"calls": 500, "elapsed_s": 0.5, "content": "Echo", "sdk_version": "2.54.0"}\n'
    run = SdkRun.parse(output)
    assert run == SdkRun(500, 0.5, "Echo", "2.54.0")
    assert run.calls_per_s == 1000.0
    assert run.text() == "1,000 calls/s"


@pytest.mark.parametrize("output", ["", "Traceback ...", '{"calls": 500}', '{"calls": "x", "elapsed_s": 1}'])
def test_an_sdk_run_that_printed_something_else_is_a_bench_error(output: str) -> None:
    with pytest.raises(BenchError, match=r"cannot read tools/sdk_calls\.py's output"):
        SdkRun.parse(output)


def test_aimock_fixtures_lose_their_recorded_timings_and_nothing_else() -> None:
    fixture = {"match": {"userMessage": "hi"}, "response": {"content": "Echo: hi"}}
    recorded = {"fixtures": [{**fixture, "recordedTimings": {"ttftMs": 12, "interChunkDelaysMs": [1, 0]}}]}
    assert orjson.loads(without_recorded_timings(orjson.dumps(recorded))) == {"fixtures": [fixture]}


def test_the_message_content_of_a_chat_answer() -> None:
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Echo: hi"}}]}
    assert message_content(orjson.dumps(answer)) == "Echo: hi"
