"""Throughput under load: wrk where installed, else tools/loadgen.py in this process, and the figures they give."""

from __future__ import annotations

import hashlib
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tools.bench.processes import HOST, BenchError
from tools.bench.requests import COMMAND_TIMEOUT_S, run_load_now
from tools.loadgen import LoadRequest, LoadResult

CONNECTIONS = 32


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
