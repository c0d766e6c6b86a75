"""Row (l): a whole pytest suite (tools/make_suite.py), run four ways, and pytest's start-up with the plugin.

The four ways, each on its own copy of the suite and its own cassettes, recorded first from tools/fake_upstream.py
(untimed), then replayed with the fake upstream stopped:
- floor: the SDK on an in-memory transport of its own HTTP client returning canned bytes, no mocking library;
- gate: this package's pytest plugin, `--inference-gate=replay`;
- vcrpy: vcrpy with pytest-recording, `--record-mode=none`, which patches the SDK's HTTP client;
- cassetter: cassetter's pytest plugin, `--record-mode=none`.
Each run is `pytest -p no:cacheprovider -q` with the other ways' plugins disabled (`-p no:...`), serially and
with `-n 2`; the runs are interleaved way by way, and each figure is the median of its runs: the wall time,
which the targets judge, and the CPU time of pytest and its workers, which says what a run cost when other work
on a shared machine stretched its wall time. A way's overhead per test is its time less the floor's, divided by
the tests. Every run must pass every test, so a way that
did not answer from its cassettes shows up as a failed run, not as a fast one.

The start-up figure is pytest on an empty suite, with the plugin installed but not active, and active
(`--inference-gate=replay`): what the plugin adds to every run, however small.

The suite runs in a virtualenv of its own under the bench cache (the openai SDK, pytest-xdist, vcrpy,
pytest-recording, cassetter, and this repository installed editable), so that none of them reaches the project's
environment.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import resource
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from inference_gate.store.cassette_store import CassetteStore
from tools.bench.installs import BENCH_CACHE_DIR, bench_venv
from tools.bench.processes import REPO_ROOT, URL_LINE, BenchError, child_environment, running
from tools.bench.report import Row, Target, first_line
from tools.bench.run import BenchRun
from tools.make_suite import SuiteShape, write_suite

SUITE_REQUIREMENTS = ("openai", "pytest", "pytest-xdist", "vcrpy", "pytest-recording", "cassetter")
SUITE_API_KEY = "sk-suite-0123456789abcdefWXYZ"  # the key tools/make_suite.py's conftest sends
SUITE_RUN_TIMEOUT_S = 900.0
EMPTY_RUN_EXIT_CODE = 5  # pytest's "no tests collected"
PYTEST = ["-p", "no:cacheprovider", "-q"]
WORKER_COUNTS = (0, 2)  # serial, then `-n 2`
CASSETTER_GOAL = 1.5  # the plugin's overhead per test at most this many times cassetter's
EMPTY_RUN_GOAL_S = 0.1


@dataclass(frozen=True, slots=True)
class Way:
    """One way of running the suite: the pytest plugin it needs (None for the floor), and its options."""

    name: str
    label: str
    plugin: str | None
    record_options: tuple[str, ...]
    replay_options: tuple[str, ...]

    def disabled_plugins(self) -> list[str]:
        """`-p no:<plugin>` for every other way's plugin, so that a run holds its own library only."""
        others = [way.plugin for way in WAYS if way.plugin is not None and way.plugin != self.plugin]
        return [option for plugin in others for option in ("-p", f"no:{plugin}")]


WAYS = (
    Way("floor", "the SDK on canned bytes in memory (floor)", None, (), ()),
    Way(
        "gate",
        "this plugin, --inference-gate=replay",
        "inference_gate",
        ("--inference-gate=record",),
        ("--inference-gate=replay",),
    ),
    Way(
        "vcrpy",
        "vcrpy + pytest-recording, --record-mode=none",
        "recording",
        ("--record-mode=once",),
        ("--record-mode=none",),
    ),
    Way("cassetter", "cassetter, --record-mode=none", "cassetter", ("--record-mode=once",), ("--record-mode=none",)),
)
GATE = WAYS[1]


def suite_venv() -> Path:
    """The suite's virtualenv, one per checkout and pyproject.toml, since it holds this repository installed
    editable with its dependencies: a new dependency makes a new virtualenv."""
    project = hashlib.sha256(str(REPO_ROOT).encode() + (REPO_ROOT / "pyproject.toml").read_bytes()).hexdigest()[:8]
    return bench_venv(BENCH_CACHE_DIR / f"suite-venv-{project}", [*SUITE_REQUIREMENTS, "-e", str(REPO_ROOT)])


def suite_rows(run: BenchRun) -> None:
    """(l), or rows that say why it was skipped."""
    try:
        measure_suite(run, suite_venv() / "pytest")
    except BenchError as error:
        print(f"skipping (l): {error}", flush=True)
        run.report.rows.append(Row("(l)", "pytest suite, four ways", f"skipped: {first_line(error)}"))
        run.report.targets.append(Target("(l) suite: plugin overhead per test", "not measured", "", None))


def measure_suite(run: BenchRun, pytest: Path) -> None:
    profile = run.profile
    suites = {way.name: run.work_dir / f"suite-{way.name}" for way in WAYS}
    shapes = {way.name: write_suite(suites[way.name], profile.suite_tests, profile.suite_prompts) for way in WAYS}
    shape = shapes[GATE.name]
    print(f"recording the suite's cassettes four ways: {shape.text()}...", flush=True)
    with running(
        run.script("fake upstream for the suite", "fake_upstream", ["--expected-api-key", SUITE_API_KEY])
    ) as upstream:
        upstream_url = f"http://127.0.0.1:{upstream.read_port(URL_LINE)}"
        for way in WAYS:
            record_suite(run, pytest, way, suites[way.name], shape, upstream_url)
    cassettes = CassetteStore(suites[GATE.name] / ".inference_cache").count()
    if cassettes != shape.distinct_requests:
        raise BenchError(f"the plugin recorded {cassettes} cassettes for {shape.distinct_requests} distinct requests")
    print("replaying the suite four ways, serially and with -n 2, interleaved...", flush=True)
    timings: dict[tuple[str, int], list[Timing]] = {
        (way.name, workers): [] for way in WAYS for workers in WORKER_COUNTS
    }
    for _ in range(profile.suite_rounds):
        for workers in WORKER_COUNTS:
            for way in WAYS:
                argv = [str(pytest), *PYTEST, *way.disabled_plugins(), *way.replay_options, *_workers(workers)]
                timings[way.name, workers].append(
                    timed_suite_run(run, argv, suites[way.name], way, shape.tests, upstream_url)
                )
    medians = {key: Timing.median(runs) for key, runs in timings.items()}
    add_suite_rows(run, shape, medians)
    empty_runs(run, pytest)


def record_suite(run: BenchRun, pytest: Path, way: Way, suite: Path, shape: SuiteShape, upstream_url: str) -> None:
    options = list(way.record_options)
    if way is GATE:
        options.append(f"--inference-gate-upstream={upstream_url}")
    argv = [str(pytest), *PYTEST, *way.disabled_plugins(), *options]
    completed = suite_process(run, argv, suite, way, upstream_url, recording=True)
    expect_passed(completed, shape.tests, f"recording the suite, {way.name}")


@dataclass(frozen=True, slots=True)
class Timing:
    """A run's wall time, and the CPU time (user and system) of pytest and its workers: on a shared machine the
    CPU time says what the run cost even when other work stretched its wall time."""

    wall_s: float
    cpu_s: float

    @classmethod
    def median(cls, timings: list[Timing]) -> Timing:
        return cls(statistics.median(t.wall_s for t in timings), statistics.median(t.cpu_s for t in timings))


def timed_suite_run(run: BenchRun, argv: list[str], suite: Path, way: Way, tests: int, upstream_url: str) -> Timing:
    started_cpu_s = _children_cpu_s()
    started = time.perf_counter()
    completed = suite_process(run, argv, suite, way, upstream_url, recording=False)
    timing = Timing(time.perf_counter() - started, _children_cpu_s() - started_cpu_s)
    expect_passed(completed, tests, f"replaying the suite, {way.name}{' -n 2' if '-n' in argv else ''}")
    return timing


def _children_cpu_s() -> float:
    """The CPU time of this process's children that have ended, their own children included."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def suite_process(
    run: BenchRun, argv: list[str], suite: Path, way: Way, upstream_url: str, *, recording: bool
) -> subprocess.CompletedProcess[str]:
    """One pytest run of the suite, on every core the bench was given (`-n 2` needs two)."""
    environment = child_environment()
    environment.pop("OPENAI_BASE_URL", None)
    environment["SUITE_WAY"] = way.name
    # The fake upstream's address at replay too, where nothing listens: vcrpy matches the port.
    environment["SUITE_UPSTREAM"] = f"{upstream_url}/v1"
    if recording:
        environment["SUITE_RECORD"] = "1"
        environment["OPENAI_API_KEY"] = SUITE_API_KEY
    unpin = functools.partial(os.sched_setaffinity, 0, run.cores.every) if run.cores.every else None
    try:
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            cwd=suite,
            env=environment,
            timeout=SUITE_RUN_TIMEOUT_S,
            preexec_fn=unpin,
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"pytest {' '.join(argv[1:])} did not finish in {SUITE_RUN_TIMEOUT_S:.0f} s") from None


def expect_passed(completed: subprocess.CompletedProcess[str], tests: int, what: str) -> None:
    summary = (completed.stdout.strip().splitlines() or [""])[-1]
    if completed.returncode != 0 or re.search(rf"^=* ?{tests} passed in ", summary) is None:
        details = "\n".join(f"    {line}" for line in (completed.stdout + completed.stderr).strip().splitlines()[-15:])
        raise BenchError(f"{what}: pytest exited {completed.returncode}, not all {tests} tests passed:\n{details}")


def _workers(workers: int) -> list[str]:
    return ["-n", str(workers)] if workers else []


def _mode(workers: int) -> str:
    return f"-n {workers}" if workers else "serial"


def add_suite_rows(run: BenchRun, shape: SuiteShape, medians: dict[tuple[str, int], Timing]) -> None:
    overheads: dict[tuple[str, int], Timing] = {}  # per test over the floor, in ms
    for workers in WORKER_COUNTS:
        floor = medians["floor", workers]
        for way in WAYS:
            timing = medians[way.name, workers]
            scenario = f"suite of {shape.text()}, {_mode(workers)}: {way.label}"
            measured = f"{timing.wall_s:.2f} s wall, {timing.cpu_s:.2f} s CPU"
            if way.name == "floor":
                run.report.rows.append(Row("(l)", scenario, measured))
                continue
            overhead = Timing(
                (timing.wall_s - floor.wall_s) / shape.tests * 1000, (timing.cpu_s - floor.cpu_s) / shape.tests * 1000
            )
            overheads[way.name, workers] = overhead
            comparison = f"{overhead.wall_s:+.2f} ms per test over the floor (CPU {overhead.cpu_s:+.2f} ms)"
            reference = f"floor {floor.wall_s:.2f} s wall, {floor.cpu_s:.2f} s CPU"
            run.report.rows.append(Row("(l)", scenario, measured, reference, comparison))
    for workers in WORKER_COUNTS:
        gate, vcrpy, cassetter = (overheads[name, workers] for name in ("gate", "vcrpy", "cassetter"))
        mode = _mode(workers)
        run.report.targets += [
            Target(
                f"(l) suite {mode}: plugin overhead per test vs vcrpy's",
                f"{gate.wall_s:.2f} vs {vcrpy.wall_s:.2f} ms (CPU {gate.cpu_s:.2f} vs {vcrpy.cpu_s:.2f})",
                "<= vcrpy's",
                gate.wall_s <= vcrpy.wall_s,
            ),
            Target(
                f"(l) suite {mode}: plugin overhead per test vs cassetter's",
                f"{gate.wall_s:.2f} vs {cassetter.wall_s:.2f} ms (CPU {gate.cpu_s:.2f} vs {cassetter.cpu_s:.2f})",
                f"<= {CASSETTER_GOAL}x cassetter's",
                gate.wall_s <= CASSETTER_GOAL * max(cassetter.wall_s, 0.0),
            ),
        ]


def empty_runs(run: BenchRun, pytest: Path) -> None:
    """pytest on an empty suite, with the plugin installed but not active, and active; medians."""
    suite = run.work_dir / "suite-empty"
    suite.mkdir()
    (suite / "pytest.ini").write_text("[pytest]\n")
    (suite / ".inference_cache").mkdir()  # replay refuses a cassette directory that does not exist
    sides = {"inactive": (), "active": GATE.replay_options}
    timings: dict[tuple[str, int], list[Timing]] = {(side, workers): [] for side in sides for workers in WORKER_COUNTS}
    for _ in range(run.profile.empty_run_rounds):
        for workers in WORKER_COUNTS:
            for side, options in sides.items():
                argv = [str(pytest), *PYTEST, *GATE.disabled_plugins(), *options, *_workers(workers)]
                started_cpu_s = _children_cpu_s()
                started = time.perf_counter()
                completed = suite_process(run, argv, suite, GATE, "http://127.0.0.1:9", recording=False)
                timings[side, workers].append(Timing(time.perf_counter() - started, _children_cpu_s() - started_cpu_s))
                if completed.returncode != EMPTY_RUN_EXIT_CODE:
                    raise BenchError(f"pytest on an empty suite, plugin {side}, exited {completed.returncode}")
    for workers in WORKER_COUNTS:
        inactive, active = (Timing.median(timings[side, workers]) for side in sides)
        added_s, added_cpu_s = active.wall_s - inactive.wall_s, active.cpu_s - inactive.cpu_s
        mode = _mode(workers)
        run.report.rows.append(
            Row(
                "(l)",
                f"empty suite, {mode}: pytest with the plugin active (--inference-gate=replay)",
                f"{active.wall_s:.2f} s wall, {active.cpu_s:.2f} s CPU",
                f"{inactive.wall_s:.2f} s wall, {inactive.cpu_s:.2f} s CPU, installed, not active",
                f"adds {added_s:+.3f} s (CPU {added_cpu_s:+.3f} s)",
            )
        )
        run.report.targets.append(
            Target(
                f"(l) empty suite {mode}: the plugin adds",
                f"{added_s:.3f} s (CPU {added_cpu_s:.3f} s)",
                f"<= {EMPTY_RUN_GOAL_S:.2f} s",
                added_s <= EMPTY_RUN_GOAL_S,
            )
        )
