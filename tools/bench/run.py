"""One run of the benchmark, as every row family sees it: its profile, its scratch directory, the report it fills,
the servers it has running, and the interleaved throughput measurement most rows are read from."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from tools.baseline_server import CannedReply
from tools.bench.load import LoadGenerator, Throughput
from tools.bench.processes import GATE_BANNER, HOST, URL_LINE, BenchError, Child, Cores, running
from tools.bench.profiles import Profile
from tools.bench.report import Report, Row
from tools.bench.requests import canned, expect_outcome, fetch_now
from tools.loadgen import LoadRequest


class BenchRun:
    """One run of the benchmark: its settings, its scratch directory, and the servers it has running, each
    stopped when the run leaves `servers`."""

    def __init__(self, profile: Profile, load: LoadGenerator, cores: Cores, work_dir: Path) -> None:
        self.profile = profile
        self.load = load
        self.cores = cores
        self.work_dir = work_dir
        self.report = Report()
        self.servers = contextlib.ExitStack()

    def serve_gate(self, mode: str, cache_dir: Path, *, upstream: str | None = None) -> int:
        gate = self.servers.enter_context(running(self.gate(mode, cache_dir, upstream=upstream)))
        return gate.read_port(GATE_BANNER)

    def serve_script(self, name: str, module: str, arguments: list[str]) -> int:
        server = self.servers.enter_context(running(self.script(name, module, arguments)))
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

    def child(self, name: str, argv: list[str]) -> Child:
        return Child(name, argv, log_dir=self.work_dir, cores=self.cores)

    def reply_file(self, name: str, reply: CannedReply) -> Path:
        path = self.work_dir / f"{name}-reply.json"
        path.write_bytes(reply.to_json())
        return path

    def replayed(self, replay_port: int, request: LoadRequest) -> CannedReply:
        response = fetch_now(replay_port, request)
        expect_outcome(response, b"hit", "replaying a recorded request")
        return canned(response)

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
                    raise BenchError(f"{figures.failed_count} requests to {HOST}:{port} failed under load")
                current = best[index]
                if current is None or figures.requests_per_s > current.requests_per_s:
                    best[index] = figures
        return [figures for figures in best if figures is not None]

    def add_hit_row(self, label: str, scenario: str, measured: Throughput, baseline: Throughput) -> None:
        ratio = measured.requests_per_s / baseline.requests_per_s
        self.report.rows.append(Row(label, scenario, measured.text(), f"{baseline.text()} (baseline)", f"{ratio:.2f}"))
