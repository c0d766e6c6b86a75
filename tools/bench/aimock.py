"""aimock (@copilotkit/aimock, a Node mock with record and replay) as a reference: it records the bench's
answers through itself from the fake upstream, then replays them alone, with its recorded stream timings dropped.
Rows (i), (c') and part of (j) read it."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from tools.baseline_server import CannedReply
from tools.bench.installs import aimock_executable, aimock_version
from tools.bench.processes import HOST, BenchError, free_port, running
from tools.bench.report import Row, Target, first_line
from tools.bench.requests import StreamShape, canned, fetch_now, message_content
from tools.bench.run import BenchRun
from tools.loadgen import LoadRequest


@dataclass(frozen=True, slots=True)
class AimockReplay:
    """A running aimock replay server and what it sends for the bench's two requests."""

    port: int
    version: str
    chat: CannedReply
    stream: CannedReply


def without_recorded_timings(fixture_file: bytes) -> bytes:
    """An aimock fixture file with its recorded stream timings dropped, so that aimock replays a stream as fast
    as it can, as the gate does, instead of at the pace it was recorded."""
    fixtures = orjson.loads(fixture_file)
    for fixture in fixtures["fixtures"]:
        fixture.pop("recordedTimings", None)
    return orjson.dumps(fixtures, option=orjson.OPT_INDENT_2)


def start_aimock(
    run: BenchRun,
    upstream_port: int,
    chat: LoadRequest,
    chat_reply: CannedReply,
    stream: LoadRequest,
    stream_reply: CannedReply,
) -> AimockReplay | None:
    """aimock replaying the chat and stream answers it recorded from the fake upstream, checked to carry the
    same text as the gate's; None, with the rows and targets saying why, where it cannot be had."""
    try:
        port = serve_aimock(run, upstream_port, [chat, stream])
        chat_answer, stream_answer = canned(fetch_now(port, chat)), canned(fetch_now(port, stream))
        if chat_answer.status != 200 or message_content(chat_answer.body) != message_content(chat_reply.body):
            raise BenchError("aimock did not replay the text of the recorded chat answer")
        if (
            stream_answer.status != 200
            or StreamShape.of(stream_answer.body).content != StreamShape.of(stream_reply.body).content
        ):
            raise BenchError("aimock did not replay the text of the recorded stream")
        return AimockReplay(port, aimock_version(), chat_answer, stream_answer)
    except BenchError as error:
        print(f"skipping (i) and (c'): {error}", flush=True)
        reason = f"skipped: {first_line(error)}"
        run.report.rows += [Row("(i)", "aimock replay", reason), Row("(c')", "aimock replay of a stream", reason)]
        run.report.targets += [
            Target("(b) replay hits vs aimock", "not measured", ">= 1.00", None),
            Target("(c) streamed replay hits vs aimock", "not measured", ">= 1.00", None),
        ]
        return None


def serve_aimock(run: BenchRun, upstream_port: int, requests: list[LoadRequest]) -> int:
    """aimock records `requests` while proxying to the fake upstream (it passes the client's key on), then
    replays its fixtures alone, without the recorded stream timings, until the run's servers stop."""
    llmock = str(aimock_executable())
    fixtures = run.work_dir / "aimock-fixtures"
    fixtures.mkdir()
    port = free_port()
    common = ["--host", HOST, "--fixtures", str(fixtures)]
    argv = [llmock, *common, "--port", str(port), "--record", "--provider-openai", f"http://{HOST}:{upstream_port}"]
    with running(run.child("aimock recording", argv)) as recorder:
        recorder.wait_until_listening(port)
        for request in requests:
            if fetch_now(port, request).status != 200:
                raise recorder.failure("did not pass the fake upstream's answer through")
    recorded = sorted(fixtures.rglob("*.json"))
    if len(recorded) != len(requests):
        raise BenchError(f"aimock recorded {len(recorded)} fixture files for {len(requests)} requests")
    for path in recorded:
        path.write_bytes(without_recorded_timings(path.read_bytes()))
    port = free_port()
    argv = [llmock, *common, "--port", str(port), "--log-level", "silent"]  # its quickest setting
    replayer = run.servers.enter_context(running(run.child("aimock replay", argv)))
    replayer.wait_until_listening(port)
    return port
