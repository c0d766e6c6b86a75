"""The InferenceGate benchmark: how close a cache hit comes to what trio + h11 can do at all, and how the gate
compares with the tools a team would use instead.

    python -m tools.bench            # about 5 to 7 minutes
    python -m tools.bench --quick    # every step once, briefly: a smoke run, not figures to quote

Every figure is measured in one run on this machine, and most are read against a reference measured in the
same run, because absolute numbers say more about the machine than about the gate:

(b) replay hits of a non-streamed chat answer (about 2 KB), 32 keep-alive connections: the gate in `replay`
    mode against tools/baseline_server.py, a minimal trio + h11 server sending the very bytes the gate sent;
(c) the same for a streamed chat answer of 100 SSE events, which both send chunked;
(c') aimock replaying the stream of (c), recorded from the same fake upstream. aimock re-chunks a stream it
    replays, so the row says whether its stream is the same work as the gate's (the same events, about the
    same bytes); where it is not, its reference is the baseline server sending aimock's own bytes;
(d) hits in record-and-replay mode (`start`), against the same baseline as (b);
(e) the record path: misses forwarded to tools/fake_upstream.py and recorded, one at a time, each with a new
    prompt; the latency the gate adds over calling the fake upstream directly;
(e') the same run, split: what the gate adds to the time to the response's first byte, and to its last byte
    (which includes making the cassette durable);
(f) mitmdump --server-replay serving the answer of (b), from a flow file it recorded itself;
(g) start-up with 0, 10,000 and 100,000 cassettes: from process start to the first answered request, and the
    peak memory (VmHWM) at that moment;
(h) `inference-gate cache list` and `cache info` over 10,000 cassettes: wall time;
(i) aimock (@copilotkit/aimock, a Node mock with record and replay) serving the answer of (b), recorded through
    it from the fake upstream, in the same interleaved runs as (b);
(j) the official openai SDK making sequential `chat.completions.create` calls on one client (tools/sdk_calls.py):
    through the gate in replay, through aimock, and under vcrpy in-process, which costs only the SDK's own work;
(k) the gate's peak memory while 20 clients read a 20 MB replayed stream at 1 MB/s each, then hang up.

Servers run as child processes pinned to one core and the load generator on another, so that on a two-core
machine they never compete for a core (this, and reading peak memory from /proc, make the bench Linux-only).
The load generator is wrk when installed, else tools/loadgen.py. Throughput runs are interleaved (baseline,
gate, baseline, gate, ...) and the best run of each counts, so that a burst of other work on the machine spoils
one run rather than one side of a ratio. Synthetic cassette sets, mitmproxy's own virtualenv, the SDK row's
virtualenv (openai and vcrpy) and aimock's npm folder are kept in ~/.cache/inference-gate-bench, so that a
second run skips making them. A reference that cannot be installed (no node or npm, say) leaves its rows
saying why, and the rest of the run goes on.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import importlib.metadata
import math
import os
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import trio

from inference_gate.core.cassette import cassette_to_bytes
from inference_gate.core.sse import SSEParser
from inference_gate.store.cassette_store import CassetteStore, relative_cassette_path
from tools.baseline_server import CannedReply
from tools.fake_replies import chat_completion, chat_completion_chunks
from tools.loadgen import FetchedResponse, LoadRequest, LoadResult, fetch, read_slowly, run_load
from tools.make_cassettes import (
    STREAMED_EVERY,
    is_streamed,
    make_cassettes,
    synthetic_cassette,
    synthetic_request_body,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "inference-gate-bench"
MITM_VENV_DIR = BENCH_CACHE_DIR / "mitm-venv"
SDK_VENV_DIR = BENCH_CACHE_DIR / "sdk-venv"
# openai 3 moved to httpx2, which vcrpy does not patch; the last major version on httpx keeps vcrpy in the row.
SDK_REQUIREMENTS = ("openai<3", "vcrpy")
AIMOCK_DIR = BENCH_CACHE_DIR / "aimock"
AIMOCK_PACKAGE = "@copilotkit/aimock"
HOST = "127.0.0.1"
CHAT_PATH = "/v1/chat/completions"
API_KEY = "sk-bench-0123456789abcdefWXYZ"
CONNECTIONS = 32
CHAT_ANSWER_BYTES = 2048
STREAM_EVENT_COUNT = 100
OUTCOME_HEADER = b"x-inference-gate"
CHILD_START_TIMEOUT_S = 60.0
CHILD_STOP_TIMEOUT_S = 15.0
REQUEST_TIMEOUT_S = 30.0
CASSETTE_WRITE_WAIT_S = 5.0
COMMAND_TIMEOUT_S = 300.0
INSTALL_TIMEOUT_S = 900.0
RECORD_WARMUP_REQUESTS = 20
RECORD_ROUNDS = 4
LARGE_STORE = 100_000
LISTING_STORE = 10_000
SDK_WARMUP_CALLS = 20
SLOW_READERS = 20
SLOW_STREAM_BYTES = 20_000_000
SLOW_READ_BYTES_PER_S = 1_000_000


@dataclass(frozen=True, slots=True)
class Profile:
    """How long and how large each step is."""

    load_duration_s: int  # wrk takes whole seconds
    load_rounds: int
    warmup_duration_s: int
    record_samples: int
    startup_counts: tuple[int, ...]
    startup_runs: int
    listing_count: int
    listing_runs: int
    sdk_calls: int
    sdk_rounds: int
    slow_read_s: float


FULL = Profile(
    load_duration_s=3,
    load_rounds=5,
    warmup_duration_s=1,
    record_samples=400,
    startup_counts=(0, 10_000, LARGE_STORE),
    startup_runs=3,
    listing_count=LISTING_STORE,
    listing_runs=3,
    sdk_calls=500,
    sdk_rounds=3,
    slow_read_s=5.0,
)
QUICK = Profile(
    load_duration_s=1,
    load_rounds=1,
    warmup_duration_s=0,
    record_samples=40,
    startup_counts=(0, 1_000),
    startup_runs=1,
    listing_count=1_000,
    listing_runs=1,
    sdk_calls=50,
    sdk_rounds=1,
    slow_read_s=2.0,
)


# --- Figures and the report ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Throughput:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    failed_count: int  # responses that were not 2xx, and socket errors

    def text(self) -> str:
        failures = f", {self.failed_count} FAILED" if self.failed_count else ""
        return f"{self.requests_per_s:>6,.0f} req/s  p50 {self.p50_ms:5.2f} ms  p99 {self.p99_ms:5.2f} ms{failures}"

    @classmethod
    def of(cls, result: LoadResult) -> Throughput:
        return cls(
            result.requests_per_s,
            result.percentile_s(0.5) * 1000,
            result.percentile_s(0.99) * 1000,
            result.failed_count,
        )


def latency_text(result: LoadResult) -> str:
    return f"p50 {result.percentile_s(0.5) * 1000:5.2f} ms  p99 {result.percentile_s(0.99) * 1000:5.2f} ms"


def first_byte_text(result: LoadResult) -> str:
    p50_ms, p99_ms = (result.first_byte_percentile_s(fraction) * 1000 for fraction in (0.5, 0.99))
    return f"first byte p50 {p50_ms:5.2f} ms  p99 {p99_ms:5.2f} ms"


@dataclass(frozen=True, slots=True)
class SdkRun:
    """What one run of tools/sdk_calls.py printed: its timed calls, their wall time, the last answer's text and the
    SDK's version."""

    calls: int
    elapsed_s: float
    content: str
    sdk_version: str

    @property
    def calls_per_s(self) -> float:
        return self.calls / self.elapsed_s

    def text(self) -> str:
        return f"{self.calls_per_s:,.0f} calls/s"

    @classmethod
    def parse(cls, output: str) -> SdkRun:
        try:
            printed = orjson.loads(output.strip().splitlines()[-1])
            return cls(int(printed["calls"]), float(printed["elapsed_s"]), printed["content"], printed["sdk_version"])
        except (IndexError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise BenchError(f"cannot read tools/sdk_calls.py's output:\n{output}") from None


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


def message_content(body: bytes) -> str:
    """The assistant's text in a non-streamed chat completion."""
    return orjson.loads(body)["choices"][0]["message"]["content"]


def without_recorded_timings(fixture_file: bytes) -> bytes:
    """An aimock fixture file with its recorded stream timings dropped, so that aimock replays a stream as fast
    as it can, as the gate does, instead of at the pace it was recorded."""
    fixtures = orjson.loads(fixture_file)
    for fixture in fixtures["fixtures"]:
        fixture.pop("recordedTimings", None)
    return orjson.dumps(fixtures, option=orjson.OPT_INDENT_2)


@dataclass(frozen=True, slots=True)
class Row:
    """One measurement in the table: what it is, its figure, its reference, and how they compare."""

    label: str
    scenario: str
    measured: str
    reference: str = ""
    comparison: str = ""


@dataclass(frozen=True, slots=True)
class Target:
    """A goal and whether it was met; `passed` is None when the run did not measure it (`measured` says why)."""

    name: str
    measured: str
    goal: str
    passed: bool | None


@dataclass(slots=True)
class Report:
    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)

    def add_ratio_target(self, name: str, ratio: float, goal: float) -> None:
        self.targets.append(Target(name, f"{ratio:.2f}", f">= {goal:.2f}", ratio >= goal))

    def print(self, header_lines: list[str]) -> None:
        print()
        print("\n".join(header_lines))
        print()
        rows = [("row", "scenario", "measured", "reference", "ratio / difference")]
        rows += [(r.label, r.scenario, r.measured, r.reference, r.comparison) for r in sorted(self.rows, key=_label)]
        _print_columns(rows)
        print()
        targets = [("target", "measured", "goal", "result")]
        for target in sorted(self.targets, key=_row_label_of_target):
            result = "SKIP" if target.passed is None else "PASS" if target.passed else "FAIL"
            targets.append((target.name, target.measured, target.goal, result))
        _print_columns(targets)


def _label(row: Row) -> str:
    return _in_order(row.label)


def _row_label_of_target(target: Target) -> str:
    """`(b)` for "(b) replay hits vs baseline": targets are listed in the order of the rows they judge."""
    return _in_order(target.name.partition(" ")[0])


def _in_order(label: str) -> str:
    """`(c')` sorts just after `(c)`, not before it as its bytes would."""
    return label.strip("()")


def _print_columns(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


# --- Child processes ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cores:
    """The core the servers run on and the one the load generator runs on; None when there is only one."""

    server: int | None
    client: int | None

    @classmethod
    def pick(cls) -> Cores:
        available = sorted(os.sched_getaffinity(0))
        if len(available) < 2:
            return cls(None, None)
        return cls(available[0], available[1])

    def describe(self) -> str:
        if self.server is None:
            return "one core: servers and load generator share it"
        return f"servers on cpu {self.server}, load generator on cpu {self.client}"


class BenchError(Exception):
    """A step that could not be measured: a child that did not start or answered wrongly, a failed install."""


class Child:
    """A child process pinned to the server core, its stderr kept in a log file for error messages."""

    def __init__(self, name: str, argv: list[str], *, log_dir: Path, cores: Cores) -> None:
        self.name = name
        self._log_path = log_dir / f"{re.sub(r'[^a-z0-9]+', '-', name.lower())}.log"
        pin = None if cores.server is None else functools.partial(os.sched_setaffinity, 0, {cores.server})
        with self._log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=log, cwd=REPO_ROOT, env=child_environment(), preexec_fn=pin
            )

    def read_port(self, pattern: re.Pattern[bytes]) -> int:
        """Wait for the first stdout line that matches `pattern`; its first group is the port."""
        deadline = time.monotonic() + CHILD_START_TIMEOUT_S
        stdout = self.process.stdout
        assert stdout is not None
        while (remaining_s := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([stdout], [], [], remaining_s)
            if not ready:
                break
            line = stdout.readline()
            if not line:
                raise self.failure("exited before it was listening")
            if match := pattern.search(line):
                return int(match.group(1))
        raise self.failure(f"printed no line like {pattern.pattern!r} within {CHILD_START_TIMEOUT_S:.0f} s")

    def wait_until_listening(self, port: int) -> None:
        deadline = time.monotonic() + CHILD_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise self.failure("exited before it was listening")
            with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1.0):
                return
            time.sleep(0.1)
        raise self.failure(f"did not listen on port {port} within {CHILD_START_TIMEOUT_S:.0f} s")

    def peak_rss_bytes(self) -> int:
        """The process's peak resident memory so far (VmHWM)."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(r"^VmHWM:\s+(\d+) kB$", status, re.MULTILINE)
        if match is None:
            raise self.failure("has no VmHWM in /proc/<pid>/status")
        return int(match.group(1)) * 1024

    def stop(self) -> None:
        """SIGINT, as Ctrl-C would; killed if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(CHILD_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def failure(self, what: str) -> BenchError:
        log_tail = self._log_path.read_text(errors="replace").strip().splitlines()[-15:]
        details = "\n".join(f"    {line}" for line in log_tail) or "    (its log is empty)"
        return BenchError(f"{self.name} {what}; its log ends with:\n{details}")


def child_environment() -> dict[str, str]:
    """The bench's environment without an OpenAI key (no child may see one) and with unbuffered output."""
    environment = {name: value for name, value in os.environ.items() if name != "OPENAI_API_KEY"}
    environment["PYTHONUNBUFFERED"] = "1"
    return environment


@contextlib.contextmanager
def running(child: Child) -> Iterator[Child]:
    try:
        yield child
    finally:
        child.stop()


GATE_BANNER = re.compile(rb"listening on http://[^ ]*:(\d+)/v1")
URL_LINE = re.compile(rb"^http://[^ ]*:(\d+)\s*$")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


# --- Requests -----------------------------------------------------------------------------------------


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


def read_slowly_now(port: int, request: LoadRequest, count: int, duration_s: float) -> list[int]:
    """`count` concurrent slow readers of `request`'s response; the bytes each one read."""
    read_bytes: list[int] = []

    async def one_reader() -> None:
        read_bytes.append(
            await read_slowly(HOST, port, request, bytes_per_s=SLOW_READ_BYTES_PER_S, duration_s=duration_s)
        )

    async def all_readers() -> list[int]:
        with trio.fail_after(duration_s + REQUEST_TIMEOUT_S):
            async with trio.open_nursery() as nursery:
                for _ in range(count):
                    nursery.start_soon(one_reader)
        return read_bytes

    return trio.run(all_readers)


def write_large_stream_cassette(cache_dir: Path, min_body_bytes: int) -> LoadRequest:
    """A streamed synthetic cassette whose content events are repeated until its SSE body is at least
    `min_body_bytes` long, written where the gate looks for it; returns the request it answers."""
    index = next(index for index in range(STREAMED_EVERY) if is_streamed(index))
    canonical, cassette = synthetic_cassette(index)
    events = cassette.response.events
    assert events is not None  # is_streamed says so
    opening, content, closing = events[:1], events[1:-2], events[-2:]  # role; text deltas; finish and [DONE]
    content_bytes = sum(len(b"data: \n\n") + len(event.data.encode()) for event in content)
    cassette.response.events = opening + content * math.ceil(min_body_bytes / content_bytes) + closing
    path = CassetteStore(cache_dir).locate(canonical).path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cassette_to_bytes(cassette.with_summary()))
    return LoadRequest("POST", CHAT_PATH, [(b"content-type", b"application/json")], synthetic_request_body(index))


def first_line(error: Exception) -> str:
    return str(error).splitlines()[0]


@dataclass(frozen=True, slots=True)
class AimockReplay:
    """A running aimock replay server and what it sends for the bench's two requests."""

    port: int
    version: str
    chat: CannedReply
    stream: CannedReply


# --- Load generators ----------------------------------------------------------------------------------


class WrkLoad:
    """wrk with one thread (it has one core), `CONNECTIONS` connections, and a Lua script for the POST body."""

    def __init__(self, executable: str, work_dir: Path) -> None:
        self._executable = executable
        self._work_dir = work_dir
        banner = subprocess.run([executable, "-v"], capture_output=True, text=True, check=False).stdout
        version = re.search(r"(\d+\.\d+\.\d+)", banner)
        self.name = f"wrk {version.group(1) if version else '(unknown version)'}"

    def measure(self, port: int, request: LoadRequest, duration_s: int) -> Throughput:
        script = self._script_for(request)
        argv = [self._executable, "-t1", f"-c{CONNECTIONS}", f"-d{duration_s}s", "--latency", "-s", str(script)]
        argv.append(f"http://{HOST}:{port}{request.target}")
        completed = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=COMMAND_TIMEOUT_S)
        if completed.returncode != 0:
            raise BenchError(f"wrk failed ({completed.returncode}): {completed.stderr.strip() or completed.stdout}")
        return parse_wrk_output(completed.stdout)

    def _script_for(self, request: LoadRequest) -> Path:
        digest = hashlib.sha256(request.body).hexdigest()[:12]
        body_path = self._work_dir / f"wrk-body-{digest}.bin"
        body_path.write_bytes(request.body)
        lines = [f'wrk.method = "{request.method}"']
        lines += [f'wrk.headers["{name.decode()}"] = "{value.decode()}"' for name, value in request.headers]
        lines += [f'local body_file = io.open("{body_path}", "rb")', 'wrk.body = body_file:read("*a")']
        lines.append("body_file:close()")
        script = self._work_dir / f"wrk-{digest}.lua"
        script.write_text("\n".join(lines) + "\n")
        return script


_WRK_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_WRK_LATENCY = re.compile(r"([\d.]+)(us|ms|s|m)")


def parse_wrk_output(output: str) -> Throughput:
    """Requests/sec, the 50% and 99% latencies of `--latency`, and the non-2xx and socket error counts."""
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", output, re.MULTILINE))
    p50, p99 = (_WRK_LATENCY.fullmatch(percentiles.get(name, "")) for name in ("50", "99"))
    if rate is None or p50 is None or p99 is None:
        raise BenchError(f"cannot read wrk's output:\n{output}")
    p50_ms, p99_ms = (float(match.group(1)) * _WRK_UNIT_MS[match.group(2)] for match in (p50, p99))
    failed = sum(int(count) for count in re.findall(r"Non-2xx or 3xx responses:\s+(\d+)", output))
    if socket_errors := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output):
        failed += sum(int(count) for count in socket_errors.groups())
    return Throughput(float(rate.group(1)), p50_ms, p99_ms, failed)


class PythonLoad:
    """tools/loadgen.py in this process, which runs on the load generator's core."""

    name = "tools/loadgen.py (trio + h11, as wrk is not installed: it may be the bottleneck)"

    def measure(self, port: int, request: LoadRequest, duration_s: int) -> Throughput:
        return Throughput.of(run_load_now(port, lambda: request, connections=CONNECTIONS, duration_s=duration_s))


LoadGenerator = WrkLoad | PythonLoad


# --- The run ------------------------------------------------------------------------------------------


class BenchRun:
    """One run of the benchmark: its settings, its scratch directory, and the servers it has running."""

    def __init__(self, profile: Profile, load: LoadGenerator, cores: Cores, work_dir: Path) -> None:
        self.profile = profile
        self.load = load
        self.cores = cores
        self.work_dir = work_dir
        self.report = Report()
        self._servers = contextlib.ExitStack()

    def run(self) -> Report:
        chat, stream = sized_chat_request(), stream_request()
        with self._servers:
            print("recording the benchmark's cassettes in `start` mode; the record path (e), (e')...", flush=True)
            # It refuses any other key, so a recorder that did not pass the client's key on shows up at once.
            upstream_port = self.serve_script("fake upstream", "fake_upstream", ["--expected-api-key", API_KEY])
            record_dir = self.work_dir / "cassettes"
            start_port = self.serve_gate("start", record_dir, upstream=f"http://{HOST}:{upstream_port}")
            # A live stream's head says `recording`, a promise (inference_gate/outcome.py); a whole body `recorded`.
            for request, name, recorded in ((chat, "chat", b"recorded"), (stream, "stream", b"recording")):
                expect_outcome(fetch_now(start_port, request), recorded, f"recording the {name} request")
                expect_outcome(fetch_now(start_port, request), b"hit", f"the {name} request once recorded")
            self.record_path(upstream_port, start_port, record_dir)

            replay_port = self.serve_gate("replay", record_dir)
            chat_reply = self.replayed(replay_port, chat)
            stream_reply = self.replayed(replay_port, stream)
            print("aimock: recording the same answers from the fake upstream...", flush=True)
            aimock = self.start_aimock(upstream_port, chat, chat_reply, stream, stream_reply)
            print("hits (b), (c), (d) against the baseline, and aimock (i), (c')...", flush=True)
            chat_replay_rate = self.chat_hits(chat, chat_reply, replay_port, start_port, aimock)
            self.stream_hits(stream, stream_reply, replay_port, aimock)
            print("the SDK's sequential calls (j)...", flush=True)
            self.sdk_calls(chat, message_content(chat_reply.body), replay_port, upstream_port, aimock)

        print("mitmdump --server-replay (f)...", flush=True)
        self.mitmdump(chat, chat_reply, chat_replay_rate)
        print("slow readers of a large stream (k)...", flush=True)
        self.slow_readers()
        print("start-up (g)...", flush=True)
        self.startup()
        print("cache list and cache info (h)...", flush=True)
        self.listing()
        return self.report

    # Servers, each stopped when the run leaves `self._servers`.

    def serve_gate(self, mode: str, cache_dir: Path, *, upstream: str | None = None) -> int:
        gate = self._servers.enter_context(running(self.gate(mode, cache_dir, upstream=upstream)))
        return gate.read_port(GATE_BANNER)

    def serve_script(self, name: str, module: str, arguments: list[str]) -> int:
        server = self._servers.enter_context(running(self.script(name, module, arguments)))
        return server.read_port(URL_LINE)

    def serve_baseline(self, name: str, reply: CannedReply) -> int:
        return self.serve_script(f"baseline {name}", "baseline_server", [str(self.reply_file(name, reply))])

    def gate(self, mode: str, cache_dir: Path, *, upstream: str | None = None) -> Child:
        """`python -m inference_gate <mode>` on a free port, with an empty config file so no user's applies."""
        config = self.work_dir / "empty-config.yaml"
        config.write_text("{}\n")
        argv = [sys.executable, "-m", "inference_gate", mode, "--config", str(config), "--port", "0"]
        argv += ["--cache-dir", str(cache_dir)]
        if upstream is not None:
            argv += ["--upstream", upstream]
        return Child(f"gate {mode}", argv, log_dir=self.work_dir, cores=self.cores)

    def script(self, name: str, module: str, arguments: list[str]) -> Child:
        argv = [sys.executable, "-m", f"tools.{module}", *arguments]
        return Child(name, argv, log_dir=self.work_dir, cores=self.cores)

    def reply_file(self, name: str, reply: CannedReply) -> Path:
        path = self.work_dir / f"{name}-reply.json"
        path.write_bytes(reply.to_json())
        return path

    # The steps.

    def record_path(self, upstream_port: int, gate_port: int, record_dir: Path) -> None:
        """(e): sequential misses with new prompts, straight to the fake upstream and through the gate, in
        alternating rounds so that both see the same background load."""
        samples_per_round = self.profile.record_samples // RECORD_ROUNDS
        counters = {upstream_port: 0, gate_port: 0}

        def next_request(port: int) -> LoadRequest:
            counters[port] += 1  # both sides send the same sequence of prompts
            return chat_request(f"Record path sample {counters[port]}: say something short about caching.")

        results: dict[int, LoadResult] = {port: LoadResult([], 0.0) for port in counters}
        for round_index in range(RECORD_ROUNDS + 1):
            for port, result in results.items():
                count = RECORD_WARMUP_REQUESTS if round_index == 0 else samples_per_round
                measured = run_load_now(port, functools.partial(next_request, port), connections=1, request_count=count)
                if measured.failed_count:
                    raise BenchError(f"record path: {measured.failed_count} requests to port {port} failed")
                if round_index > 0:
                    result.latencies_s += measured.latencies_s
                    result.first_byte_latencies_s += measured.first_byte_latencies_s
        expected = 2 + counters[gate_port]
        # The gate writes a cassette just after the response ends, so the last one may still be on its way.
        deadline = time.monotonic() + CASSETTE_WRITE_WAIT_S
        while CassetteStore(record_dir).count() != expected:
            if time.monotonic() > deadline:
                raise BenchError(f"the record path did not leave {expected} cassettes in {record_dir}")
            time.sleep(0.01)
        direct, gated = results[upstream_port], results[gate_port]
        added_p50_ms = (gated.percentile_s(0.5) - direct.percentile_s(0.5)) * 1000
        added_p99_ms = (gated.percentile_s(0.99) - direct.percentile_s(0.99)) * 1000
        self.report.rows.append(
            Row(
                "(e)",
                f"record path, {gated.request_count} misses, 1 connection",
                latency_text(gated),
                f"{latency_text(direct)} (fake upstream direct)",
                f"adds {added_p50_ms:+.2f} ms at p50, {added_p99_ms:+.2f} ms at p99",
            )
        )
        goal_met = added_p50_ms <= 1.0
        self.report.targets.append(
            Target("(e) record path adds at p50", f"{added_p50_ms:.2f} ms", "<= 1.00 ms", goal_met)
        )
        added_first_byte_ms = (gated.first_byte_percentile_s(0.5) - direct.first_byte_percentile_s(0.5)) * 1000
        self.report.rows.append(
            Row(
                "(e')",
                "record path, the misses of (e): time to the first byte",
                first_byte_text(gated),
                f"{first_byte_text(direct)} (fake upstream direct)",
                f"adds {added_first_byte_ms:+.2f} ms to the first byte, {added_p50_ms:+.2f} ms to the last, at p50",
            )
        )
        self.report.targets.append(
            Target(
                "(e') record path adds to the first byte at p50",
                f"{added_first_byte_ms:.2f} ms",
                "<= 1.00 ms",
                added_first_byte_ms <= 1.0,
            )
        )

    def replayed(self, replay_port: int, request: LoadRequest) -> CannedReply:
        response = fetch_now(replay_port, request)
        expect_outcome(response, b"hit", "replaying a recorded request")
        return canned(response)

    def chat_hits(
        self, chat: LoadRequest, reply: CannedReply, replay_port: int, start_port: int, aimock: AimockReplay | None
    ) -> float:
        """(b), (d) and (i); returns the replay rate, for (f)."""
        baseline_port = self.serve_baseline("chat", reply)
        self.check_baseline(baseline_port, chat, reply)
        ports = [baseline_port, replay_port, start_port] + ([aimock.port] if aimock else [])
        baseline, replay, start, *aimock_figures = self.compare_throughput(chat, ports)
        scenario = f"chat answer of {len(reply.body):,} B"
        self.add_hit_row("(b)", f"replay hit, {scenario}", replay, baseline)
        self.add_hit_row("(d)", f"start-mode hit, {scenario}", start, baseline)
        self.report.add_ratio_target(
            "(b) replay hits vs baseline", replay.requests_per_s / baseline.requests_per_s, 0.85
        )
        self.report.add_ratio_target(
            "(d) start-mode hits vs baseline", start.requests_per_s / baseline.requests_per_s, 0.8
        )
        if aimock is not None:
            [aimock_rate] = aimock_figures
            gate_ratio = replay.requests_per_s / aimock_rate.requests_per_s
            self.report.rows.append(
                Row(
                    "(i)",
                    f"aimock {aimock.version} replay, the answer of (b) in its own bytes, {len(aimock.chat.body):,} B",
                    aimock_rate.text(),
                    f"{baseline.text()} (baseline)",
                    f"{aimock_rate.requests_per_s / baseline.requests_per_s:.2f}; gate (b) / aimock {gate_ratio:.2f}",
                )
            )
            self.report.add_ratio_target("(b) replay hits vs aimock", gate_ratio, 1.0)
        return replay.requests_per_s

    def stream_hits(
        self, stream: LoadRequest, reply: CannedReply, replay_port: int, aimock: AimockReplay | None
    ) -> None:
        """(c) and (c')."""
        baseline_port = self.serve_baseline("stream", reply)
        self.check_baseline(baseline_port, stream, reply)
        ports = [baseline_port, replay_port]
        if aimock is not None:
            aimock_baseline_port = self.serve_baseline("aimock stream", aimock.stream)
            self.check_baseline(aimock_baseline_port, stream, aimock.stream)
            ports += [aimock.port, aimock_baseline_port]
        baseline, replay, *aimock_figures = self.compare_throughput(stream, ports)
        scenario = f"replay hit, stream of {STREAM_EVENT_COUNT} SSE events, {len(reply.body):,} B"
        self.add_hit_row("(c)", scenario, replay, baseline)
        ratio = replay.requests_per_s / baseline.requests_per_s
        self.report.add_ratio_target("(c) streamed replay hits vs baseline", ratio, 0.8)
        if aimock is None:
            return
        aimock_rate, aimock_baseline = aimock_figures
        gate_shape, aimock_shape = StreamShape.of(reply.body), StreamShape.of(aimock.stream.body)
        aimock_ratio = aimock_rate.requests_per_s / aimock_baseline.requests_per_s
        if gate_shape.is_same_work_as(aimock_shape):
            gate_ratio = replay.requests_per_s / aimock_rate.requests_per_s
            comparison = f"{aimock_ratio:.2f}; gate (c) / aimock {gate_ratio:.2f}"
            self.report.add_ratio_target("(c) streamed replay hits vs aimock", gate_ratio, 1.0)
        else:
            comparison = f"{aimock_ratio:.2f}; not the work of (c), which is {gate_shape.text()}"
            self.report.add_ratio_target("(c) streamed replay hits vs baseline (aimock re-chunks)", ratio, 1.0)
        self.report.rows.append(
            Row(
                "(c')",
                f"aimock {aimock.version} replay of the stream of (c): {aimock_shape.text()}",
                aimock_rate.text(),
                f"{aimock_baseline.text()} (baseline sending aimock's bytes)",
                comparison,
            )
        )

    def check_baseline(self, port: int, request: LoadRequest, reply: CannedReply) -> None:
        if canned(fetch_now(port, request)) != reply:
            raise BenchError("the baseline server did not send the same status, headers and body as the gate")

    def compare_throughput(self, request: LoadRequest, ports: list[int]) -> list[Throughput]:
        """Each server's best run of `load_rounds`, measured in turn, after a warm-up of each."""
        best: list[Throughput | None] = [None] * len(ports)
        if self.profile.warmup_duration_s:
            for port in ports:
                self.load.measure(port, request, self.profile.warmup_duration_s)
        for _ in range(self.profile.load_rounds):
            for index, port in enumerate(ports):
                figures = self.load.measure(port, request, self.profile.load_duration_s)
                if figures.failed_count:
                    raise BenchError(f"{figures.failed_count} requests to port {port} failed under load")
                current = best[index]
                if current is None or figures.requests_per_s > current.requests_per_s:
                    best[index] = figures
        return [figures for figures in best if figures is not None]

    def add_hit_row(self, label: str, scenario: str, measured: Throughput, baseline: Throughput) -> None:
        ratio = measured.requests_per_s / baseline.requests_per_s
        self.report.rows.append(Row(label, scenario, measured.text(), f"{baseline.text()} (baseline)", f"{ratio:.2f}"))

    def mitmdump(self, chat: LoadRequest, reply: CannedReply, gate_rate: float) -> None:
        """(f), or a row that says why it was skipped."""
        try:
            mitm = self.mitmdump_throughput(chat, reply)
        except BenchError as error:
            print(f"skipping (f): {error}", flush=True)
            self.report.rows.append(Row("(f)", "mitmdump --server-replay", f"skipped: {first_line(error)}"))
            self.report.targets.append(Target("(b) replay hits vs mitmdump", "not measured", ">= 6x", None))
            return
        ratio = gate_rate / mitm.requests_per_s
        scenario = f"mitmdump --server-replay, chat answer of {len(reply.body):,} B"
        self.report.rows.append(Row("(f)", scenario, mitm.text(), "gate replay (b) / mitmdump", f"{ratio:.1f}x"))
        self.report.targets.append(Target("(b) replay hits vs mitmdump", f"{ratio:.1f}x", ">= 6x", ratio >= 6))

    def mitmdump_throughput(self, request: LoadRequest, reply: CannedReply) -> Throughput:
        """mitmdump records the answer while reverse-proxying to a baseline server, then replays it alone."""
        mitmdump = str(mitmdump_executable())
        flows = self.work_dir / "chat.flows"
        upstream_port = free_port()  # the baseline's while recording; nothing listens there during the replay
        common = ["-q", "--listen-host", HOST, "--mode", f"reverse:http://{HOST}:{upstream_port}"]
        common += ["--set", "connection_strategy=lazy"]
        baseline_arguments = [str(self.reply_file("mitm", reply)), "--port", str(upstream_port)]
        with running(self.script("baseline for mitmdump", "baseline_server", baseline_arguments)) as baseline:
            baseline.read_port(URL_LINE)
            port = free_port()
            argv = [mitmdump, *common, "--listen-port", str(port), "--save-stream-file", str(flows)]
            with running(Child("mitmdump recording", argv, log_dir=self.work_dir, cores=self.cores)) as recorder:
                recorder.wait_until_listening(port)
                if fetch_now(port, request).body != reply.body:
                    raise recorder.failure("did not pass the baseline's answer through")
        port = free_port()
        argv = [mitmdump, *common, "--listen-port", str(port), "--server-replay", str(flows)]
        argv += ["--set", "server_replay_reuse=true", "--set", "server_replay_extra=kill"]
        with running(Child("mitmdump server-replay", argv, log_dir=self.work_dir, cores=self.cores)) as replayer:
            replayer.wait_until_listening(port)
            if fetch_now(port, request).body != reply.body:
                raise replayer.failure("did not replay the recorded answer")
            return self.compare_throughput(request, [port])[0]

    def start_aimock(
        self,
        upstream_port: int,
        chat: LoadRequest,
        chat_reply: CannedReply,
        stream: LoadRequest,
        stream_reply: CannedReply,
    ) -> AimockReplay | None:
        """aimock replaying the chat and stream answers it recorded from the fake upstream, checked to carry the
        same text as the gate's; None, with the rows and targets saying why, where it cannot be had."""
        try:
            port = self.serve_aimock(upstream_port, [chat, stream])
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
            self.report.rows += [Row("(i)", "aimock replay", reason), Row("(c')", "aimock replay of a stream", reason)]
            self.report.targets += [
                Target("(b) replay hits vs aimock", "not measured", ">= 1.00", None),
                Target("(c) streamed replay hits vs aimock", "not measured", ">= 1.00", None),
            ]
            return None

    def serve_aimock(self, upstream_port: int, requests: list[LoadRequest]) -> int:
        """aimock records `requests` while proxying to the fake upstream (it passes the client's key on), then
        replays its fixtures alone, without the recorded stream timings, until the run's servers stop."""
        llmock = str(aimock_executable())
        fixtures = self.work_dir / "aimock-fixtures"
        fixtures.mkdir()
        port = free_port()
        common = ["--host", HOST, "--fixtures", str(fixtures)]
        argv = [llmock, *common, "--port", str(port), "--record", "--provider-openai", f"http://{HOST}:{upstream_port}"]
        with running(Child("aimock recording", argv, log_dir=self.work_dir, cores=self.cores)) as recorder:
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
        replayer = self._servers.enter_context(
            running(Child("aimock replay", argv, log_dir=self.work_dir, cores=self.cores))
        )
        replayer.wait_until_listening(port)
        return port

    def sdk_calls(
        self, chat: LoadRequest, content: str, replay_port: int, upstream_port: int, aimock: AimockReplay | None
    ) -> None:
        """(j): each side's best of `sdk_rounds` interleaved runs of tools/sdk_calls.py, each run a fresh process."""
        try:
            best = self.sdk_calls_per_side(chat, content, replay_port, upstream_port, aimock)
        except BenchError as error:
            print(f"skipping (j): {error}", flush=True)
            self.report.rows.append(Row("(j)", "openai SDK, sequential calls", f"skipped: {first_line(error)}"))
            self.report.targets += [
                Target("(j) SDK calls: gate vs vcrpy", "not measured", ">= 0.92", None),
                Target("(j) SDK calls: gate vs aimock", "not measured", ">= 1.10", None),
            ]
            return
        gate, vcrpy = best["gate"], best["vcrpy"]
        scenario = f"openai {gate.sdk_version}, {gate.calls} sequential calls on one client"
        vcrpy_ratio = gate.calls_per_s / vcrpy.calls_per_s
        self.report.rows += [
            Row(
                "(j)",
                f"{scenario}, through the gate (replay)",
                gate.text(),
                f"{vcrpy.text()} (vcrpy)",
                f"{vcrpy_ratio:.2f}",
            ),
            Row("(j)", f"{scenario}, vcrpy in-process (allow_playback_repeats)", vcrpy.text()),
        ]
        self.report.add_ratio_target("(j) SDK calls: gate vs vcrpy", vcrpy_ratio, 0.92)
        if aimock is None:
            self.report.rows.append(Row("(j)", f"{scenario}, through aimock", "skipped: aimock is not running"))
            self.report.targets.append(Target("(j) SDK calls: gate vs aimock", "not measured", ">= 1.10", None))
            return
        aimock_ratio = gate.calls_per_s / best["aimock"].calls_per_s
        row = Row("(j)", f"{scenario}, through aimock", best["aimock"].text(), "gate / aimock", f"{aimock_ratio:.2f}")
        self.report.rows.append(row)
        self.report.add_ratio_target("(j) SDK calls: gate vs aimock", aimock_ratio, 1.1)

    def sdk_calls_per_side(
        self, chat: LoadRequest, content: str, replay_port: int, upstream_port: int, aimock: AimockReplay | None
    ) -> dict[str, SdkRun]:
        python = str(sdk_python())
        request_file = self.work_dir / "sdk-request.json"
        request_file.write_bytes(chat.body)
        vcr_cassette = self.work_dir / "sdk-vcrpy.yaml"
        upstream_url = f"http://{HOST}:{upstream_port}/v1"
        self.sdk_run(python, request_file, ["--base-url", upstream_url, "--vcr-record", str(vcr_cassette)], content)
        sides = {
            "gate": ["--base-url", f"http://{HOST}:{replay_port}/v1"],
            "vcrpy": ["--base-url", upstream_url, "--vcr-replay", str(vcr_cassette)],
        }
        if aimock is not None:
            sides["aimock"] = ["--base-url", f"http://{HOST}:{aimock.port}/v1"]
        best: dict[str, SdkRun] = {}
        for _ in range(self.profile.sdk_rounds):
            for side, arguments in sides.items():
                timing = ["--calls", str(self.profile.sdk_calls), "--warmup-calls", str(SDK_WARMUP_CALLS)]
                run = self.sdk_run(python, request_file, [*arguments, *timing], content)
                if side not in best or run.calls_per_s > best[side].calls_per_s:
                    best[side] = run
        return best

    def sdk_run(self, python: str, request_file: Path, arguments: list[str], content: str) -> SdkRun:
        """One run of tools/sdk_calls.py on the load generator's core, checked to have got the recorded text."""
        argv = [python, str(REPO_ROOT / "tools" / "sdk_calls.py"), str(request_file), "--api-key", API_KEY, *arguments]
        try:
            completed = subprocess.run(
                argv, capture_output=True, text=True, cwd=REPO_ROOT, env=child_environment(), timeout=COMMAND_TIMEOUT_S
            )
        except subprocess.TimeoutExpired:
            raise BenchError(f"tools/sdk_calls.py did not finish in {COMMAND_TIMEOUT_S:.0f} s") from None
        if completed.returncode != 0:
            last_line = (completed.stderr.strip().splitlines() or ["no output"])[-1]
            raise BenchError(f"tools/sdk_calls.py {' '.join(arguments[:2])} failed: {last_line}")
        run = SdkRun.parse(completed.stdout)
        if run.content != content:
            raise BenchError(f"tools/sdk_calls.py {' '.join(arguments[:2])} got another answer: {run.content[:60]!r}")
        return run

    def slow_readers(self) -> None:
        """(k): the gate's peak memory while `SLOW_READERS` clients fall behind one large replayed stream."""
        cache_dir = self.work_dir / "large-stream"
        request = write_large_stream_cassette(cache_dir, SLOW_STREAM_BYTES)
        duration_s = self.profile.slow_read_s
        with running(self.gate("replay", cache_dir)) as gate:
            port = gate.read_port(GATE_BANNER)
            whole = fetch_now(port, request)
            expect_outcome(whole, b"hit", "replaying the large stream")
            after_one_read_bytes = gate.peak_rss_bytes()
            read_bytes = read_slowly_now(port, request, SLOW_READERS, duration_s)
            peak_bytes = gate.peak_rss_bytes()
        scenario = (
            f"{SLOW_READERS} clients reading a {len(whole.body) / 1e6:.0f} MB replayed stream "
            f"at {SLOW_READ_BYTES_PER_S / 1e6:.0f} MB/s for {duration_s:.0f} s"
        )
        peak_mb = peak_bytes / 1e6
        self.report.rows.append(
            Row(
                "(k)",
                scenario,
                f"peak RSS {peak_mb:.0f} MB",
                f"{after_one_read_bytes / 1e6:.0f} MB after one whole read",
                f"each client read {min(read_bytes) / 1e6:.1f} to {max(read_bytes) / 1e6:.1f} MB",
            )
        )
        self.report.targets.append(
            Target("(k) slow readers: peak RSS", f"{peak_mb:.0f} MB", "<= 100 MB", peak_mb <= 100)
        )

    def startup(self) -> None:
        """(g): seconds from process start to the first answer, and the peak RSS then; medians over the runs."""
        for count in self.profile.startup_counts:
            cache_dir = cassette_set(count) if count else self.work_dir / "no-cassettes"
            cache_dir.mkdir(exist_ok=True)  # replay refuses a cache directory that does not exist
            first_request = LoadRequest(
                "POST", CHAT_PATH, [(b"content-type", b"application/json")], synthetic_request_body(0)
            )
            expected_status = 200 if count else 404
            first_answer_s: list[float] = []
            peak_rss_bytes: list[int] = []
            for _ in range(self.profile.startup_runs):
                started = time.perf_counter()
                with running(self.gate("replay", cache_dir)) as gate:
                    response = fetch_now(gate.read_port(GATE_BANNER), first_request)
                    first_answer_s.append(time.perf_counter() - started)
                    peak_rss_bytes.append(gate.peak_rss_bytes())
                    if response.status != expected_status:
                        raise gate.failure(f"answered {response.status} to the first request, not {expected_status}")
            answer_s, rss_mb = statistics.median(first_answer_s), statistics.median(peak_rss_bytes) / 1e6
            measured = f"first answer {answer_s:.2f} s, peak RSS {rss_mb:.0f} MB"
            self.report.rows.append(Row("(g)", f"start-up, {count:,} cassettes", measured))
            if count == LARGE_STORE:
                targets = [
                    Target("(g) 100k cassettes: first answer", f"{answer_s:.2f} s", "<= 1.00 s", answer_s <= 1.0),
                    Target("(g) 100k cassettes: peak RSS", f"{rss_mb:.0f} MB", "<= 100 MB", rss_mb <= 100),
                ]
                self.report.targets += targets
        if LARGE_STORE not in self.profile.startup_counts:
            self.report.targets.append(Target("(g) 100k cassettes", "not measured (--quick)", "<= 1 s, 100 MB", None))

    def listing(self) -> None:
        """(h): median wall time of `cache list` and `cache info`, their output thrown away."""
        count = self.profile.listing_count
        cache_dir = str(cassette_set(count))
        for command in ("list", "info"):
            times_s = []
            for _ in range(self.profile.listing_runs):
                started = time.perf_counter()
                argv = [sys.executable, "-m", "inference_gate", "cache", command, "--cache-dir", cache_dir]
                subprocess.run(
                    argv, stdout=subprocess.DEVNULL, check=True, cwd=REPO_ROOT, env=child_environment(), timeout=300
                )
                times_s.append(time.perf_counter() - started)
            wall_s = statistics.median(times_s)
            self.report.rows.append(Row("(h)", f"cache {command}, {count:,} cassettes", f"{wall_s:.2f} s wall"))
            if command == "list":
                passed = wall_s <= 2.0 if count == LISTING_STORE else None
                measured = f"{wall_s:.2f} s" + ("" if passed is not None else f" for {count:,} (--quick)")
                self.report.targets.append(Target("(h) cache list, 10,000 cassettes", measured, "<= 2.00 s", passed))


def mitmdump_executable() -> Path:
    return bench_venv(MITM_VENV_DIR, ["mitmproxy"]) / "mitmdump"


def sdk_python() -> Path:
    return bench_venv(SDK_VENV_DIR, list(SDK_REQUIREMENTS)) / "python"


def bench_venv(directory: Path, requirements: list[str]) -> Path:
    """The bin folder of a virtualenv under the bench cache holding `requirements`, made on first use; BenchError
    if it cannot be. Each tool gets its own, so that none of them reaches the project's environment."""
    complete_marker = directory / ".complete"
    if not complete_marker.exists():
        print(f"installing {' '.join(requirements)} into {directory} (once)...", flush=True)
        python = str(directory / "bin" / "python")
        run_install_steps(
            [
                [sys.executable, "-m", "venv", "--clear", str(directory)],
                [python, "-m", "pip", "install", "--quiet", *requirements],
            ]
        )
        complete_marker.touch()
    return directory / "bin"


def aimock_executable() -> Path:
    """aimock's `llmock` command from its npm folder under the bench cache, installed on first use."""
    executable = AIMOCK_DIR / "node_modules" / ".bin" / "llmock"
    if executable.exists():
        return executable
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        raise BenchError(f"{' and '.join(missing)} not installed")
    print(f"installing {AIMOCK_PACKAGE} into {AIMOCK_DIR} (once)...", flush=True)
    AIMOCK_DIR.mkdir(parents=True, exist_ok=True)
    run_install_steps([["npm", "install", "--no-audit", "--no-fund", "--prefix", str(AIMOCK_DIR), AIMOCK_PACKAGE]])
    return executable


def aimock_version() -> str:
    package = orjson.loads((AIMOCK_DIR / "node_modules" / AIMOCK_PACKAGE / "package.json").read_bytes())
    return package["version"]


def run_install_steps(steps: list[list[str]]) -> None:
    for argv in steps:
        command = " ".join(argv[-3:])
        try:
            completed = subprocess.run(argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise BenchError(f"`{command}` did not finish in {INSTALL_TIMEOUT_S:.0f} s") from None
        if completed.returncode != 0:
            last_line = (completed.stderr.strip().splitlines() or ["no output"])[-1]
            raise BenchError(f"`{command}` failed: {last_line}")


def cassette_set(count: int) -> Path:
    """A directory of `count` synthetic cassettes under the bench cache, made on first use.

    Its name holds a fingerprint of cassette 0 (its path and bytes), so that a change to the key scheme, the
    layout or the format makes a fresh set rather than reusing one the gate would no longer read the same way.
    """
    canonical, cassette = synthetic_cassette(0)
    fingerprint = hashlib.sha256(relative_cassette_path(canonical).encode() + cassette_to_bytes(cassette))
    directory = BENCH_CACHE_DIR / f"cassettes-{count}-{fingerprint.hexdigest()[:12]}"
    complete_marker = directory / ".complete"
    if not complete_marker.exists():
        for stale in BENCH_CACHE_DIR.glob(f"cassettes-{count}-*"):
            shutil.rmtree(stale)
        print(f"making {count:,} synthetic cassettes in {directory} (once)...", flush=True)
        make_cassettes(directory, count)
        complete_marker.touch()
    return directory


def environment_line(cores: Cores, load_average_at_start: float) -> str:
    """The versions and the machine; the load average tells a reader whether other work shared the machine."""
    versions = ", ".join(f"{name} {importlib.metadata.version(name)}" for name in ("trio", "h11", "orjson"))
    return (
        f"Python {sys.version.split()[0]}, {versions}; {os.cpu_count()} cores, {cores.describe()}; "
        f"load average {load_average_at_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Benchmark the gate against a bare trio + h11 server, mitmdump, aimock and vcrpy."
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run of every step; rough figures")
    arguments = parser.parse_args()
    profile = QUICK if arguments.quick else FULL
    cores = Cores.pick()
    if cores.client is not None:
        os.sched_setaffinity(0, {cores.client})  # the load generators run here, or are started from here
    BENCH_CACHE_DIR.mkdir(parents=True, exist_ok=True)
    load_average_at_start = os.getloadavg()[0]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="inference-gate-bench-") as work:
        work_dir = Path(work)
        wrk = shutil.which("wrk")
        load: LoadGenerator = WrkLoad(wrk, work_dir) if wrk else PythonLoad()
        print(f"load generator: {load.name}", flush=True)
        try:
            report = BenchRun(profile, load, cores, work_dir).run()
        except BenchError as error:
            sys.exit(f"benchmark failed: {error}")
    load_runs = f"best of {profile.load_rounds} interleaved runs of {profile.load_duration_s} s"
    if profile.warmup_duration_s:
        load_runs += f", after a {profile.warmup_duration_s} s warm-up"
    report.print(
        [
            f"InferenceGate benchmark{' --quick (rough figures)' if arguments.quick else ''}: "
            f"{time.perf_counter() - started:.0f} s",
            environment_line(cores, load_average_at_start),
            f"load generator: {load.name}",
            f"(b) (c) (c') (d) (f) (i): {CONNECTIONS} keep-alive connections; {load_runs}",
            f"(j): best of {profile.sdk_rounds} interleaved runs, each after {SDK_WARMUP_CALLS} untimed calls",
        ]
    )


if __name__ == "__main__":
    main()
