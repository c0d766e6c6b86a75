"""A bounded soak on loopback: many keep-alive clients against a record-mode gate, then a look at what it kept.

The gate runs as a subprocess (`python -m inference_gate start`), so that its resident memory, open file
descriptors and CPU time can be read from /proc (so: Linux only); the fake upstream and the load client run in
this process's trio loop. The load client (`HttpClient` from tools/loadgen.py) speaks raw HTTP/1.1 through h11
over many keep-alive connections, because the SDK is far too slow for tens of thousands of requests. The mix:
about 70% hits on a fixed set of recorded prompts, 20% misses with unique prompts, and 10% streams, half of
them hits.

    python -m tools.soak --requests 20000 --connections 200   (from the repository root)

It prints the figures and exits non-zero on any failed request, on a warning or error logged by the gate, or
if the gate's open file descriptors did not come back to their level after warm-up. Memory growth is printed
for a person to judge: the gate keeps every reply it has served in memory by design.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import h11
import orjson
import trio

from tools.fake_upstream import FakeUpstream
from tools.loadgen import FetchedResponse, HttpClient, LoadRequest

REPOSITORY = Path(__file__).resolve().parents[1]
HIT_PROMPTS = tuple(f"soak prompt {number}: what is {number} squared?" for number in range(20))
STREAMED_HIT_PROMPTS = tuple(f"soak stream {number}: count to {number}" for number in range(5))
# Recorded all at once during warm-up, while the fake upstream holds its replies: more concurrent upstream
# exchanges than the gate's upstream pool keeps idle (32), so that the pool is full before the baseline.
POOL_FILL_PROMPTS = tuple(f"soak pool filler {number}" for number in range(40))
FD_TOLERANCE = 4
START_TIMEOUT_S = 20.0
WARM_UP_TIMEOUT_S = 20.0
SETTLE_TIMEOUT_S = 10.0
STEADY_FOR_S = 0.3
STOP_TIMEOUT_S = 15.0
BANNER_PORT = re.compile(rb"listening on http://127\.0\.0\.1:(\d+)/v1")


@dataclass(frozen=True, slots=True)
class Call:
    prompt: str
    stream: bool

    def load_request(self) -> LoadRequest:
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": self.prompt}], "stream": self.stream}
        headers = [(b"authorization", b"Bearer sk-soak-client"), (b"content-type", b"application/json")]
        return LoadRequest("POST", "/v1/chat/completions", headers, orjson.dumps(body))


def plan_calls(requests: int, seed: int) -> list[Call]:
    """The soak's calls in order, drawn from `seed`: ~70% hits, ~20% misses, ~10% streams (half hits)."""
    rng = random.Random(seed)
    calls = []
    for number in range(requests):
        draw = rng.random()
        if draw < 0.7:
            calls.append(Call(rng.choice(HIT_PROMPTS), stream=False))
        elif draw < 0.9:
            calls.append(Call(f"soak miss {seed}-{number}", stream=False))
        elif draw < 0.95:
            calls.append(Call(rng.choice(STREAMED_HIT_PROMPTS), stream=True))
        else:
            calls.append(Call(f"soak streamed miss {seed}-{number}", stream=True))
    return calls


# --- The load client ----------------------------------------------------------------------------------


@dataclass
class Tally:
    """What the gate answered: counts by its `x-inference-gate` outcome, and every failure."""

    outcomes: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def count(self, call: Call, response: FetchedResponse) -> None:
        if response.status != 200:
            self.errors.append(f"{call}: HTTP {response.status}: {response.body[:200]!r}")
        elif call.stream and not response.body.endswith(b"data: [DONE]\n\n"):
            self.errors.append(f"{call}: the stream did not end with [DONE]")
        else:
            self.outcomes[(response.header(b"x-inference-gate") or b"none").decode()] += 1


async def send_calls(port: int, calls: list[Call], tally: Tally) -> None:
    """Send `calls` one after another on one keep-alive connection, opening a new one after a failure."""
    stream: trio.SocketStream | None = None
    try:
        for call in calls:
            if stream is None:
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                client = HttpClient(stream, b"gate")
            try:
                tally.count(call, await client.send(call.load_request()))
            except (OSError, trio.BrokenResourceError, h11.ProtocolError) as error:
                tally.errors.append(f"{call}: {type(error).__name__}: {error}")
                await stream.aclose()
                stream = None
    finally:
        if stream is not None:
            await stream.aclose()


async def run_load(port: int, calls: list[Call], connections: int) -> Tally:
    """Send `calls` over `connections` concurrent keep-alive connections, round robin."""
    tally = Tally()
    async with trio.open_nursery() as nursery:
        for index in range(connections):
            nursery.start_soon(send_calls, port, calls[index::connections], tally)
    return tally


# --- The gate process ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProcessUsage:
    rss_kib: int
    open_fds: int
    cpu_s: float


@dataclass
class GateProcess:
    """`python -m inference_gate start` in record mode, its port, and the lines it writes to stderr."""

    process: trio.Process
    port: int
    log_lines: list[str]

    def usage(self) -> ProcessUsage:
        proc = Path(f"/proc/{self.process.pid}")
        rss_kib = int(re.search(r"^VmRSS:\s+(\d+) kB$", (proc / "status").read_text(), re.MULTILINE).group(1))
        # Fields 14 and 15 of /proc/<pid>/stat, counted after the parenthesised command name: user and system time.
        user_ticks, system_ticks = (proc / "stat").read_text().rpartition(")")[2].split()[11:13]
        cpu_s = (int(user_ticks) + int(system_ticks)) / os.sysconf("SC_CLK_TCK")
        return ProcessUsage(rss_kib, len(os.listdir(proc / "fd")), cpu_s)

    async def steady_usage(self) -> ProcessUsage:
        """The usage once the open FDs have stayed the same for `STEADY_FOR_S` (or after `SETTLE_TIMEOUT_S`).

        The gate closes a connection's socket as soon as it sees the client's end, but this process's closes
        take a moment to reach it; reading at once would count sockets that are on their way out.
        """
        usage = self.usage()
        with trio.move_on_after(SETTLE_TIMEOUT_S):
            while True:
                await trio.sleep(STEADY_FOR_S)
                previous, usage = usage, self.usage()
                if usage.open_fds == previous.open_fds:
                    break
        return usage


@asynccontextmanager
async def gate_process(upstream_url: str, workspace: Path) -> AsyncIterator[GateProcess]:
    """The gate for the block's duration, stopped with SIGINT (a graceful shutdown) afterwards.

    An empty config file shields the soak from the user's own `~/.InferenceGate/config.yaml`.
    """
    config_path = workspace / "config.yaml"
    config_path.write_text("")
    command = [sys.executable, "-m", "inference_gate", "--config", str(config_path), "start"]
    command += ["--host", "127.0.0.1", "--port", "0", "--upstream", upstream_url]
    command += ["--api-key", "sk-soak-gate-key-0123456789abcdef"]
    command += ["--cache-dir", str(workspace / "cassettes")]
    python_path = os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")]))
    process = await trio.lowlevel.open_process(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": python_path}
    )
    log_lines: list[str] = []
    banner = b""
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_collect_lines, process.stderr, log_lines)
            try:
                with trio.move_on_after(START_TIMEOUT_S):
                    banner = await _read_line(process.stdout)
                if port := BANNER_PORT.search(banner):
                    yield GateProcess(process, int(port.group(1)), log_lines)
            finally:
                await _stop(process)
    finally:
        for pipe in (process.stdout, process.stderr):
            await pipe.aclose()
    if not BANNER_PORT.search(banner):
        raise RuntimeError(f"the gate did not start: {banner!r}, stderr: {log_lines}")


async def _stop(process: trio.Process) -> None:
    process.send_signal(signal.SIGINT)
    with trio.move_on_after(STOP_TIMEOUT_S):
        await process.wait()
    if process.returncode is None:
        process.kill()
        await process.wait()


async def _read_line(pipe: trio.abc.ReceiveStream) -> bytes:
    """One line from `pipe`, read a byte at a time so that nothing after it is consumed."""
    line = bytearray()
    while not line.endswith(b"\n"):
        byte = await pipe.receive_some(1)
        if not byte:
            break
        line += byte
    return bytes(line)


async def _collect_lines(pipe: trio.abc.ReceiveStream, lines: list[str]) -> None:
    """Every line written to `pipe`, until it closes; reading also keeps the writer from blocking."""
    buffered = b""
    async for data in pipe:
        buffered += data
        *complete, buffered = buffered.split(b"\n")
        lines.extend(line.decode("utf-8", "replace") for line in complete)


# --- The soak -----------------------------------------------------------------------------------------


@dataclass
class SoakReport:
    requests: int
    connections: int
    tally: Tally
    duration_s: float
    before: ProcessUsage
    after: ProcessUsage
    gate_log: list[str]
    gate_exit_code: int | None

    def problems(self) -> list[str]:
        problems = []
        if self.tally.errors:
            problems.append(f"{len(self.tally.errors)} requests failed, first: {self.tally.errors[0]}")
        if self.after.open_fds > self.before.open_fds + FD_TOLERANCE:
            problems.append(f"open FDs went from {self.before.open_fds} to {self.after.open_fds}")
        problems += [f"the gate logged: {line}" for line in self.gate_log if line.startswith(("warning", "error"))]
        if self.gate_exit_code != 0:
            problems.append(f"the gate exited with {self.gate_exit_code} after SIGINT")
        return problems

    def describe(self) -> str:
        rss_growth_mib = (self.after.rss_kib - self.before.rss_kib) / 1024
        outcomes = ", ".join(f"{name} {count}" for name, count in sorted(self.tally.outcomes.items()))
        return "\n".join(
            [
                f"requests: {self.requests} over {self.connections} connections in {self.duration_s:.1f} s "
                f"({self.requests / self.duration_s:.0f} requests/s)",
                f"outcomes: {outcomes}",
                f"errors: {len(self.tally.errors)}",
                f"gate RSS: {self.before.rss_kib / 1024:.1f} MiB after warm-up, "
                f"{self.after.rss_kib / 1024:.1f} MiB after the load ({rss_growth_mib:+.1f} MiB)",
                f"gate open FDs: {self.before.open_fds} after warm-up, {self.after.open_fds} after the load",
                f"gate CPU time during the load: {self.after.cpu_s - self.before.cpu_s:.1f} s",
            ]
        )


async def warm_up(gate: GateProcess, upstream: FakeUpstream) -> None:
    """Record the prompts that will be hits, all at once, with the upstream holding its replies until every
    request has reached it, so that the gate's upstream pool fills up."""
    calls = [Call(prompt, stream=False) for prompt in HIT_PROMPTS + POOL_FILL_PROMPTS]
    calls += [Call(prompt, stream=True) for prompt in STREAMED_HIT_PROMPTS]
    upstream.hold = trio.Event()
    async with trio.open_nursery() as nursery:
        tally = Tally()
        for call in calls:
            nursery.start_soon(send_calls, gate.port, [call], tally)
        while len(upstream.requests) < len(calls) and not tally.errors:
            await trio.sleep(0.01)
        upstream.hold.set()
    upstream.hold = None
    # A live stream's head says `recording` (a promise, see outcome.py); every other answer says `recorded`.
    expected = Counter(recorded=len(calls) - len(STREAMED_HIT_PROMPTS), recording=len(STREAMED_HIT_PROMPTS))
    if tally.errors or tally.outcomes != expected:
        raise RuntimeError(f"warm-up failed: {tally}")


async def soak(requests: int, connections: int, *, seed: int = 0) -> SoakReport:
    """Run the whole soak: upstream, gate, warm-up, load, and the gate's usage before and after the load."""
    calls = plan_calls(requests, seed)
    upstream = FakeUpstream()
    with tempfile.TemporaryDirectory(prefix="inference-gate-soak-") as workspace:
        async with trio.open_nursery() as nursery:
            await nursery.start(upstream.serve)
            async with gate_process(upstream.url, Path(workspace)) as gate:
                with trio.fail_after(WARM_UP_TIMEOUT_S):
                    await warm_up(gate, upstream)
                before = await gate.steady_usage()
                started_s = trio.current_time()
                tally = await run_load(gate.port, calls, connections)
                duration_s = trio.current_time() - started_s
                after = await gate.steady_usage()
            nursery.cancel_scope.cancel()
    return SoakReport(requests, connections, tally, duration_s, before, after, gate.log_lines, gate.process.returncode)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0, help="picks the mix of calls")
    arguments = parser.parse_args(argv)
    report = trio.run(lambda: soak(arguments.requests, arguments.connections, seed=arguments.seed))
    print(report.describe())
    for problem in report.problems():
        print(f"FAILED: {problem}")
    return 1 if report.problems() else 0


if __name__ == "__main__":
    sys.exit(main())
