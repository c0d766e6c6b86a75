"""The bench's runner: the order of the steps, the servers they share, and the report's header."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tools.bench.aimock import start_aimock
from tools.bench.hits import chat_hits, stream_hits
from tools.bench.installs import BENCH_CACHE_DIR
from tools.bench.listing import listing
from tools.bench.load import CONNECTIONS, LoadGenerator, PythonLoad, WrkLoad
from tools.bench.mitmdump import mitmdump_hits
from tools.bench.processes import HOST, BenchError, Cores
from tools.bench.profiles import FULL, QUICK, Profile
from tools.bench.record_path import record_path
from tools.bench.report import Report
from tools.bench.requests import API_KEY, expect_outcome, fetch_now, message_content, sized_chat_request, stream_request
from tools.bench.run import BenchRun
from tools.bench.sdk import SDK_WARMUP_CALLS, sdk_calls
from tools.bench.slow_readers import slow_readers
from tools.bench.startup import startup
from tools.bench.suite import suite_rows
from tools.bench.websocket import websocket_sessions

ROWS = "bcdefghijklm"
# Rows that share one recording, one replaying gate and one aimock: asking for any of them runs them all.
SHARED_ROWS = frozenset("bcdefij")


def run_all(run: BenchRun, rows: frozenset[str] = frozenset(ROWS)) -> Report:
    if rows & SHARED_ROWS:
        shared_rows(run)
    if "m" in rows:
        print("replayed WebSocket sessions against the baseline and aimock (m)...", flush=True)
        with run.servers:
            websocket_sessions(run)
    if "k" in rows:
        print("slow readers of a large stream (k)...", flush=True)
        slow_readers(run)
    if "g" in rows:
        print("start-up (g)...", flush=True)
        startup(run)
    if "h" in rows:
        print("cache list and cache info (h)...", flush=True)
        listing(run)
    if "l" in rows:
        print("a whole pytest suite four ways, and pytest's start-up with the plugin (l)...", flush=True)
        suite_rows(run)
    return run.report


def shared_rows(run: BenchRun) -> None:
    """Rows (b) to (j): the answers recorded once in `start` mode, then replayed by the gate, the baseline,
    aimock, mitmdump and the SDK."""
    chat, stream = sized_chat_request(), stream_request()
    with run.servers:
        print("recording the benchmark's cassettes in `start` mode; the record path (e), (e')...", flush=True)
        # It refuses any other key, so a recorder that did not pass the client's key on shows up at once.
        upstream_port = run.serve_script("fake upstream", "fake_upstream", ["--expected-api-key", API_KEY])
        record_dir = run.work_dir / "cassettes"
        start_port = run.serve_gate("start", record_dir, upstream=f"http://{HOST}:{upstream_port}")
        # A live stream's head says `recording`, a promise (inference_gate/outcome.py); a whole body `recorded`.
        for request, name, recorded in ((chat, "chat", b"recorded"), (stream, "stream", b"recording")):
            expect_outcome(fetch_now(start_port, request), recorded, f"recording the {name} request")
            expect_outcome(fetch_now(start_port, request), b"hit", f"the {name} request once recorded")
        record_path(run, upstream_port, start_port, record_dir)

        replay_port = run.serve_gate("replay", record_dir)
        chat_reply = run.replayed(replay_port, chat)
        stream_reply = run.replayed(replay_port, stream)
        print("aimock: recording the same answers from the fake upstream...", flush=True)
        aimock = start_aimock(run, upstream_port, chat, chat_reply, stream, stream_reply)
        print("hits (b), (c), (d) against the baseline, and aimock (i), (c')...", flush=True)
        chat_hits(run, chat, chat_reply, replay_port, start_port, aimock)
        stream_hits(run, stream, stream_reply, replay_port, aimock)
        print("mitmdump --server-replay against the gate's replay (f)...", flush=True)
        mitmdump_hits(run, chat, chat_reply, replay_port)
        print("the SDK's sequential calls (j)...", flush=True)
        sdk_calls(run, chat, message_content(chat_reply.body), replay_port, upstream_port, aimock)


def environment_line(cores: Cores, load_average_at_start: float) -> str:
    """The versions and the machine; the load average tells a reader whether other work shared the machine."""
    versions = ", ".join(f"{name} {importlib.metadata.version(name)}" for name in ("trio", "h11", "orjson"))
    return (
        f"Python {sys.version.split()[0]}, {versions}; {os.cpu_count()} cores, {cores.describe()}; "
        f"load average {load_average_at_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end"
    )


def header_lines(profile: Profile, quick: bool, elapsed_s: float, environment: str, load: LoadGenerator) -> list[str]:
    load_runs = f"best of {profile.load_rounds} interleaved runs of {profile.load_duration_s} s"
    if profile.warmup_duration_s:
        load_runs += f", after a {profile.warmup_duration_s} s warm-up"
    return [
        f"InferenceGate benchmark{' --quick (rough figures)' if quick else ''}: {elapsed_s:.0f} s",
        environment,
        f"load generator: {load.name}",
        f"(b) (c) (c') (d) (f) (i): {CONNECTIONS} keep-alive connections; {load_runs}",
        f"(j): best of {profile.sdk_rounds} interleaved runs, each after {SDK_WARMUP_CALLS} untimed calls",
        f"(l): median of {profile.suite_rounds} interleaved runs of each way; the empty suite's, of "
        f"{profile.empty_run_rounds}",
        f"(m) (m'): {CONNECTIONS} clients of tools/ws_loadgen.py, a new connection per session; {load_runs}",
    ]


def rows_argument(value: str) -> frozenset[str]:
    rows = frozenset(value.replace(",", ""))
    unknown = rows - set(ROWS)
    if not rows or unknown:
        raise argparse.ArgumentTypeError(f"rows are letters from {ROWS}, not {''.join(sorted(unknown)) or value!r}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Benchmark the gate against a bare trio + h11 server, mitmdump, aimock, vcrpy and cassetter."
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run of every step; rough figures")
    parser.add_argument(
        "--rows",
        type=rows_argument,
        default=frozenset(ROWS),
        help=f"the rows to run, as letters (default: all, {ROWS}); b, c, d, e, f, i and j run together",
    )
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
            report = run_all(BenchRun(profile, load, cores, work_dir), arguments.rows)
        except BenchError as error:
            sys.exit(f"benchmark failed: {error}")
    environment = environment_line(cores, load_average_at_start)
    report.print(header_lines(profile, arguments.quick, time.perf_counter() - started, environment, load))
