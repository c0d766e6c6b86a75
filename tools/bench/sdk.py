"""Row (j): the official openai SDK making sequential `chat.completions.create` calls on one client
(tools/sdk_calls.py, in the bench's SDK virtualenv): through the gate in replay, through aimock, and under vcrpy
in-process, which costs only the SDK's own work."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import orjson

from tools.bench.aimock import AimockReplay
from tools.bench.installs import sdk_python
from tools.bench.processes import HOST, REPO_ROOT, BenchError, child_environment
from tools.bench.report import Row, Target, first_line
from tools.bench.requests import API_KEY, COMMAND_TIMEOUT_S
from tools.bench.run import BenchRun
from tools.loadgen import LoadRequest

SDK_WARMUP_CALLS = 20
VCRPY_GOAL = 0.95
AIMOCK_GOAL = 1.1


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


def sdk_calls(
    run: BenchRun, chat: LoadRequest, content: str, replay_port: int, upstream_port: int, aimock: AimockReplay | None
) -> None:
    """(j): each side's best of `sdk_rounds` interleaved runs of tools/sdk_calls.py, each run a fresh process."""
    try:
        best = sdk_calls_per_side(run, chat, content, replay_port, upstream_port, aimock)
    except BenchError as error:
        print(f"skipping (j): {error}", flush=True)
        run.report.rows.append(Row("(j)", "openai SDK, sequential calls", f"skipped: {first_line(error)}"))
        run.report.targets += [
            Target("(j) SDK calls: gate vs vcrpy", "not measured", f">= {VCRPY_GOAL:.2f}", None),
            Target("(j) SDK calls: gate vs aimock", "not measured", f">= {AIMOCK_GOAL:.2f}", None),
        ]
        return
    gate, vcrpy = best["gate"], best["vcrpy"]
    scenario = f"openai {gate.sdk_version}, {gate.calls} sequential calls on one client"
    vcrpy_ratio = gate.calls_per_s / vcrpy.calls_per_s
    run.report.rows += [
        Row(
            "(j)",
            f"{scenario}, through the gate (replay)",
            gate.text(),
            f"{vcrpy.text()} (vcrpy)",
            f"{vcrpy_ratio:.2f}",
        ),
        Row("(j)", f"{scenario}, vcrpy in-process (allow_playback_repeats)", vcrpy.text()),
    ]
    run.report.add_ratio_target("(j) SDK calls: gate vs vcrpy", vcrpy_ratio, VCRPY_GOAL)
    if aimock is None:
        run.report.rows.append(Row("(j)", f"{scenario}, through aimock", "skipped: aimock is not running"))
        run.report.targets.append(
            Target("(j) SDK calls: gate vs aimock", "not measured", f">= {AIMOCK_GOAL:.2f}", None)
        )
        return
    aimock_ratio = gate.calls_per_s / best["aimock"].calls_per_s
    row = Row("(j)", f"{scenario}, through aimock", best["aimock"].text(), "gate / aimock", f"{aimock_ratio:.2f}")
    run.report.rows.append(row)
    run.report.add_ratio_target("(j) SDK calls: gate vs aimock", aimock_ratio, AIMOCK_GOAL)


def sdk_calls_per_side(
    run: BenchRun, chat: LoadRequest, content: str, replay_port: int, upstream_port: int, aimock: AimockReplay | None
) -> dict[str, SdkRun]:
    python = str(sdk_python())
    request_file = run.work_dir / "sdk-request.json"
    request_file.write_bytes(chat.body)
    vcr_cassette = run.work_dir / "sdk-vcrpy.yaml"
    upstream_url = f"http://{HOST}:{upstream_port}/v1"
    sdk_run(python, request_file, ["--base-url", upstream_url, "--vcr-record", str(vcr_cassette)], content)
    sides = {
        "gate": ["--base-url", f"http://{HOST}:{replay_port}/v1"],
        "vcrpy": ["--base-url", upstream_url, "--vcr-replay", str(vcr_cassette)],
    }
    if aimock is not None:
        sides["aimock"] = ["--base-url", f"http://{HOST}:{aimock.port}/v1"]
    best: dict[str, SdkRun] = {}
    for _ in range(run.profile.sdk_rounds):
        for side, arguments in sides.items():
            timing = ["--calls", str(run.profile.sdk_calls), "--warmup-calls", str(SDK_WARMUP_CALLS)]
            measured = sdk_run(python, request_file, [*arguments, *timing], content)
            if side not in best or measured.calls_per_s > best[side].calls_per_s:
                best[side] = measured
    return best


def sdk_run(python: str, request_file: Path, arguments: list[str], content: str) -> SdkRun:
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
    measured = SdkRun.parse(completed.stdout)
    if measured.content != content:
        raise BenchError(f"tools/sdk_calls.py {' '.join(arguments[:2])} got another answer: {measured.content[:60]!r}")
    return measured
