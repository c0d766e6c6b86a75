"""The pytest plugin: `pytest --inference-gate=replay` runs a whole suite through one in-process gate.

Registered through the `pytest11` entry point, so installing the package is enough; it does nothing unless a
mode is chosen (command line, then `INFERENCE_GATE_MODE`, then the `inference_gate_mode` ini option). Nothing
that brings in trio or h11 (the gate, the server) is imported until then, so an inactive plugin costs a suite
next to nothing.

While active, each pytest process (each xdist worker, not the controller) runs one gate on 127.0.0.1 with a free
port, in a background thread with its own trio loop, from session start to session end, and points every SDK it
knows at it through the SDK's own variable (core/sdk_environment.py): an `OpenAI()` or `Anthropic()` built with no
arguments then goes through the gate. The gate calls back with an `Answer` per request, on its own thread, before
the client has the response; the plugin files it in the ledger under the test running at that moment, which is
therefore the test that made the request (no header is needed: the plugin sees the tests).

The network guard (network_guard.py) is installed for the session once the gate runs: in replay, a test that
connects to a provider itself fails at once. A test whose code swallowed the guard's error still fails: each
phase's report is failed when the guard refused something during it.

At session end the gate stops gracefully (pending cassette writes finish), the guard comes off, the environment is
put back, and in record and refresh modes the cassettes created by tests that did not pass are taken back
(`ledger.discard_plan`). The `inference-gate` summary section reports the ledger. Under xdist, workers send their
ledger to the controller through `workeroutput`; the controller, which sees every test's reports, merges the
parts, reports, takes back and prunes once all workers are down.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from inference_gate.core.address import gate_url
from inference_gate.core.outcome import Answer
from inference_gate.core.policy import Mode
from inference_gate.core.sdk_environment import sdk_environment
from inference_gate.proxy.ledger import (
    OUTSIDE_TESTS,
    DiscardPlan,
    Ledger,
    PrunePlan,
    RunState,
    discard_plan,
    prune_plan,
)
from inference_gate.proxy.ledger_report import KEEP_FAILED_OPTION, discard_lines, prune_lines, summary_lines
from inference_gate.pytest_plugin.network_guard import (
    Endpoint,
    GuardLevel,
    GuardPolicy,
    NetworkGuard,
    add_guard_options,
    allowed_hosts,
    guard_level,
    mark_gate_context,
)

if TYPE_CHECKING:
    from inference_gate.config.settings import Settings
    from inference_gate.proxy.gate import Gate

MODE_ENV = "INFERENCE_GATE_MODE"
MODES = ("replay", "record", "refresh", "off")
DEFAULT_CACHE_DIR = ".inference_cache"
WORKEROUTPUT_KEY = "inference_gate_ledger"
GATE_THREAD_NAME = "inference-gate"
START_TIMEOUT_S = 30.0
PLUGIN_NAME = "inference-gate-session"
INI_SETTINGS = ("upstream", "replay_speed", "fault_rate", "fault_seed")
"""Settings an ini key (`inference_gate_upstream`, ...) sets, below the option of the same name, so that
`pyproject.toml` alone configures a suite."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("inference-gate", "record and replay OpenAI calls through an in-process gate")
    group.addoption(
        "--inference-gate",
        dest="inference_gate_mode",
        metavar="MODE",
        help=f"replay, record, refresh or off (default: ${MODE_ENV}, then ini inference_gate_mode, then off).",
    )
    group.addoption(
        "--inference-gate-dir",
        dest="inference_gate_dir",
        metavar="PATH",
        help=f"Cassette directory (default: ini inference_gate_dir, then {DEFAULT_CACHE_DIR} in the rootdir).",
    )
    group.addoption(
        "--inference-gate-upstream",
        dest="inference_gate_upstream",
        metavar="URL",
        help="Where record and refresh modes forward misses (default: the inference-gate config file, then OpenAI).",
    )
    group.addoption(
        "--inference-gate-replay-speed",
        dest="inference_gate_replay_speed",
        metavar="X",
        help="Replay at X times the recorded pace (1 as recorded, 2 twice as fast; default: the config file's "
        "replay_speed, then at once).",
    )
    group.addoption(
        "--inference-gate-prune",
        dest="inference_gate_prune",
        action="store_true",
        help="After a complete, passing run, delete the cassettes no test used.",
    )
    group.addoption(
        "--inference-gate-fault-rate",
        dest="inference_gate_fault_rate",
        metavar="R",
        help="Share of answers from cassettes that fail on purpose (429, 500, cut stream), to test retries.",
    )
    group.addoption(
        "--inference-gate-fault-seed",
        dest="inference_gate_fault_seed",
        metavar="N",
        help="Seed that decides which answers fail; the same seed fails the same requests in every run.",
    )
    group.addoption(
        KEEP_FAILED_OPTION,
        dest="inference_gate_keep_failed",
        action="store_true",
        help="In record and refresh modes, keep the cassettes that tests which did not pass created (by default "
        "they are deleted when the run ends, unless a passing test used them too).",
    )
    add_guard_options(group, parser)
    parser.addini("inference_gate_keep_failed", f"Keep what failing tests recorded ({KEEP_FAILED_OPTION}).", "bool")
    parser.addini("inference_gate_mode", "inference-gate mode: replay, record, refresh or off.", default="")
    parser.addini("inference_gate_dir", f"Cassette directory, relative to the rootdir ({DEFAULT_CACHE_DIR}).")
    for setting in INI_SETTINGS:
        option = "--inference-gate-" + setting.replace("_", "-")
        parser.addini(f"inference_gate_{setting}", f"The {setting} setting, below {option}.")


def pytest_configure(config: pytest.Config) -> None:
    mode_name = config.getoption("inference_gate_mode") or os.environ.get(MODE_ENV) or config.getini(
        "inference_gate_mode"
    )
    if mode_name and mode_name != "off":
        config.pluginmanager.register(GateSession(config, mode_name), PLUGIN_NAME)


@dataclass(frozen=True)
class RunningGate:
    """The session's gate, as the `inference_gate` fixture gives it to a test."""

    url: str
    mode: Mode
    cache_dir: Path

    @property
    def base_url(self) -> str:
        """What to pass an SDK as `base_url`: the gate's `/v1`."""
        return f"{self.url}/v1"


@pytest.fixture(scope="session")
def inference_gate(request: pytest.FixtureRequest) -> RunningGate:
    session = request.config.pluginmanager.get_plugin(PLUGIN_NAME)
    if session is None or session.running is None:
        pytest.skip("inference-gate is off: choose a mode with --inference-gate=replay, record or refresh")
    return session.running


def settings_for(config: pytest.Config, mode_name: str) -> tuple[Settings, Mode]:
    """The gate's settings: the CLI's files (the per-user one, then the project's `[tool.inference-gate]` in the
    rootdir's `pyproject.toml` and `inference-gate.yaml` in the cache directory), then the ini keys, then the
    plugin's options; `pytest.UsageError` for anything the user must fix, so pytest prints one line instead of a
    traceback.

    The cache directory is the option's, else the ini key's, else the `cache_dir` of `[tool.inference-gate]`,
    else `.inference_cache` in the rootdir. No mode demands a key: a route whose key the gate lacks passes the
    client's own credential through (routes.py).
    """
    from inference_gate.config.sources import SOURCE_PYPROJECT, ConfigError, load_settings

    if mode_name not in MODES:
        raise pytest.UsageError(f"--inference-gate: unknown mode {mode_name!r}; choose one of {', '.join(MODES)}")
    mode = Mode(mode_name)
    given_dir = config.getoption("inference_gate_dir")
    ini_dir = config.getini("inference_gate_dir")
    cache_dir = None
    if given_dir:
        cache_dir = config.invocation_params.dir / Path(given_dir).expanduser()
    elif ini_dir:
        cache_dir = config.rootpath / Path(ini_dir).expanduser()
    overrides = {"host": "127.0.0.1", "port": 0, "cache_dir": cache_dir}
    for setting in INI_SETTINGS:
        name = f"inference_gate_{setting}"
        overrides[setting] = config.getoption(name) or config.getini(name) or None
    try:
        loaded = load_settings(overrides=overrides, project_dir=config.rootpath)
        if cache_dir is None and loaded.sources["cache_dir"] != SOURCE_PYPROJECT:
            overrides["cache_dir"] = config.rootpath / DEFAULT_CACHE_DIR
            loaded = load_settings(overrides=overrides, project_dir=config.rootpath)
    except ConfigError as error:
        raise pytest.UsageError(f"inference-gate: {error}") from None
    for warning in loaded.warnings:
        config.issue_config_time_warning(pytest.PytestConfigWarning(f"inference-gate: {warning}"), stacklevel=2)
    settings = loaded.settings
    if not mode.calls_upstream:
        # Only recording creates the directory: a replay of a typo'd one would fail every test with a miss.
        if not settings.cache_dir.is_dir():
            raise pytest.UsageError(
                f"--inference-gate={mode_name}: the cassette directory {settings.cache_dir} does not exist; only "
                "recording (--inference-gate=record) creates it"
            )
        return settings, mode
    try:
        settings.cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise pytest.UsageError(
            f"--inference-gate-dir: cannot create the cassette directory {settings.cache_dir}: "
            f"{error.strerror or error}"
        ) from None
    return settings, mode


def record_command(config: pytest.Config, settings: Settings) -> str:
    """What a replay miss tells a pytest user to run: this plugin's record mode, with the directory and the
    upstream the run was given (the upstream only when it is not the default)."""
    from inference_gate.config.settings import SETTING_SPECS

    command = "pytest --inference-gate=record"
    if config.getoption("inference_gate_dir"):
        command += f" --inference-gate-dir={settings.cache_dir}"
    if settings.upstream != SETTING_SPECS["upstream"].default:
        command += f" --inference-gate-upstream={settings.upstream}"
    return command


class GateThread:
    """One gate serving in a background thread with its own trio loop, from `start` to `stop`."""

    def __init__(self, gate: Gate) -> None:
        self._gate = gate
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name=GATE_THREAD_NAME, daemon=True)
        self._failure: BaseException | None = None
        self.port = 0

    def start(self) -> int:
        """Serve, and return the bound port once the gate accepts connections."""
        self._thread.start()
        if not self._started.wait(START_TIMEOUT_S):
            raise RuntimeError(f"inference-gate did not start within {START_TIMEOUT_S} s")
        if self._failure is not None:
            raise self._failure
        return self.port

    def stop(self) -> None:
        """Stop gracefully: the listener closes, exchanges in flight get the grace period, writes finish."""
        import trio

        with contextlib.suppress(trio.RunFinishedError):  # the gate failed mid-session; pytest reported it
            trio.from_thread.run_sync(self._shutdown.set, trio_token=self._token)
        self._thread.join()

    def _run(self) -> None:
        import trio

        try:
            trio.run(self._serve)
        except BaseException as error:  # reported to the main thread by `start`, or by pytest's thread hook
            self._failure = error
            if self._started.is_set():
                raise
            self._started.set()

    async def _serve(self) -> None:
        import trio

        mark_gate_context()  # the gate's tasks and threads inherit it: the network guard lets them through
        self._token = trio.lowlevel.current_trio_token()
        self._shutdown = trio.Event()
        async with trio.open_nursery() as nursery:
            self.port = await nursery.start(functools.partial(self._gate.run, shutdown=self._shutdown))
            self._started.set()


@dataclass
class RunFacts:
    """What the run's reports say about its completeness, counted as they arrive."""

    failed: int = 0
    errors: int = 0
    skipped: int = 0
    deselected: int = 0


class GateSession:
    """The active plugin for one pytest process: its gate, its ledger, and what it reports at the end."""

    def __init__(self, config: pytest.Config, mode_name: str) -> None:
        self._config = config
        self._mode_name = mode_name
        self._current_test = OUTSIDE_TESTS
        self.ledger = Ledger()
        self.running: RunningGate | None = None
        self._gate: Gate | None = None
        self._gate_thread: GateThread | None = None
        self._saved_environ: dict[str, str | None] = {}
        self._facts = RunFacts()
        self._unreported_workers: list[str] = []
        self._cache_dir: Path | None = None
        self._mode: Mode | None = None
        self._plan: PrunePlan | None = None
        self._discarded: DiscardPlan | None = None
        self._guard: NetworkGuard | None = None
        self._called_ok: set[str] = set()  # tests whose call phase passed
        self._not_ok: set[str] = set()  # tests with a phase that failed
        self._faults_note: str | None = None  # the summary's line about injected faults, when they are on

    @property
    def _is_xdist_controller(self) -> bool:
        return self._config.pluginmanager.has_plugin("dsession")

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        settings, self._mode = settings_for(self._config, self._mode_name)
        replay = self._mode is Mode.REPLAY
        level = guard_level(self._config, replay=replay)  # a usage error, before there is a gate to stop
        self._cache_dir = settings.cache_dir
        from inference_gate.proxy.faults import fault_plan

        faults = fault_plan(settings, self._mode)
        self._faults_note = None if faults is None else faults.description
        if self._is_xdist_controller:
            return  # the workers run the tests, each with its own gate
        from inference_gate.config.settings import route_table
        from inference_gate.proxy.gate import Gate

        self._gate = Gate(
            settings, self._mode, on_answer=self._file_answer, record_command=record_command(self._config, settings)
        )
        self._gate_thread = GateThread(self._gate)
        port = self._gate_thread.start()
        self.running = RunningGate(gate_url(settings.host, port), self._mode, settings.cache_dir)
        for name, value in sdk_environment(self.running.url, replay=replay, environ=os.environ).items():
            self._set_environ(name, value)
        policy = GuardPolicy.build(
            level,
            gate=Endpoint(settings.host, port),
            upstream_urls=[route.url for route in route_table(settings).routes],
            allowed_hosts=allowed_hosts(self._config),
        )
        if policy.level is not GuardLevel.OFF:
            self._guard = NetworkGuard(policy)
            self._guard.install()

    def _set_environ(self, name: str, value: str) -> None:
        self._saved_environ[name] = os.environ.get(name)
        os.environ[name] = value

    def _file_answer(self, answer: Answer) -> None:
        """Called on the gate's thread, while the test that sent the request is still waiting for it."""
        self.ledger.add(self._current_test, answer)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, object, object]:
        """Attribute the test's requests to it, and count its identical requests from the first take."""
        self._current_test = item.nodeid
        if self._gate is not None:
            self._gate.reset_take_counters()  # thread-safe: no need to wake the gate's thread for it
        try:
            return (yield)
        finally:
            self._current_test = OUTSIDE_TESTS

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
        """A phase during which the guard refused a connection fails, even if the code under test caught the
        guard's error."""
        report = yield
        refusals = self._guard.take_refusals() if self._guard is not None else []
        if refusals and report.passed:
            report.outcome = "failed"
            report.longrepr = "\n".join(refusal.message(self._guard.policy.level) for refusal in refusals)
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            self._not_ok.add(report.nodeid)
        elif report.when == "call" and report.passed:
            self._called_ok.add(report.nodeid)
        if report.failed:
            if report.when == "call":
                self._facts.failed += 1
            else:
                self._facts.errors += 1
        elif report.skipped and not hasattr(report, "wasxfail"):
            self._facts.skipped += 1

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self._facts.errors += 1

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self._facts.deselected += len(items)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        part = getattr(node, "workeroutput", {}).get(WORKEROUTPUT_KEY)
        if part is None:
            self._unreported_workers.append(node.gateway.id)
        else:
            self.ledger.merge(Ledger.from_json(part))

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self._gate_thread is not None:
            self._gate_thread.stop()
            self._gate_thread = None
        if self._guard is not None:
            self._guard.uninstall()
            self._guard = None
        for name, value in self._saved_environ.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_environ.clear()
        workeroutput = getattr(self._config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput[WORKEROUTPUT_KEY] = self.ledger.as_json()
            return
        recorded = self._mode is not None and self._mode.calls_upstream
        if recorded and self._cache_dir is not None and not self._keeps_failed:
            self._discarded = self._discard_what_did_not_pass(self._cache_dir)
        if self._config.getoption("inference_gate_prune") and self._cache_dir is not None:
            self._plan = self._prune(session, exitstatus)

    @property
    def _keeps_failed(self) -> bool:
        config = self._config
        return bool(config.getoption("inference_gate_keep_failed") or config.getini("inference_gate_keep_failed"))

    def _discard_what_did_not_pass(self, cache_dir: Path) -> DiscardPlan:
        """Delete the cassettes that tests which did not pass created (after every gate has stopped)."""
        from inference_gate.review.prune import delete_cassettes  # the store, only when a test did not pass

        plan = discard_plan(self.ledger, passed=self._called_ok - self._not_ok)
        if plan.discard:
            delete_cassettes(cache_dir, plan.discard)
        return plan

    def _prune(self, session: pytest.Session, exitstatus: int) -> PrunePlan:
        if self._cache_dir is None:
            raise RuntimeError("pruning needs the cache directory")
        from inference_gate.review.prune import cassette_names, delete_cassettes  # the store, only when pruning

        plan = prune_plan(cassette_names(self._cache_dir), self.ledger, self._run_state(session, exitstatus))
        delete_cassettes(self._cache_dir, plan.delete)
        return plan

    def _run_state(self, session: pytest.Session, exitstatus: int) -> RunState:
        config = self._config
        node_ids: tuple[str, ...] = ()
        if config.args_source is pytest.Config.ArgsSource.ARGS:
            invoked = config.invocation_params.dir
            node_ids = tuple(arg for arg in config.args if (invoked / arg).resolve() != config.rootpath)
        stopped_early = session.shouldstop or session.shouldfail or None
        if exitstatus == pytest.ExitCode.INTERRUPTED and not stopped_early:
            stopped_early = "interrupted"
        return RunState(
            keyword=config.getoption("keyword") or None,
            markers=config.getoption("markexpr") or None,
            node_ids=node_ids,
            last_failed=bool(config.getoption("lf", False)),
            deselected=self._facts.deselected,
            stopped_early=str(stopped_early) if stopped_early else None,
            failed=self._facts.failed,
            errors=self._facts.errors,
            skipped=self._facts.skipped,
            unreported_workers=tuple(self._unreported_workers),
        )

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if hasattr(self._config, "workerinput") or self._mode is None or self._cache_dir is None:
            return
        notes = [] if self._faults_note is None else [self._faults_note]
        if self._mode is Mode.REFRESH and self._gate is not None:  # under xdist, each worker's gate counts its own
            notes.append(self._gate.refresh_summary())
        lines = summary_lines(
            self.ledger, self._mode, self._cache_dir, notes=notes, by_test=self._config.get_verbosity() > 0
        )
        if self._discarded is not None:
            lines.extend(discard_lines(self._discarded))
        if self._plan is not None:
            lines.extend(prune_lines(self._plan))
        terminalreporter.section("inference-gate")
        for line in lines:
            terminalreporter.write_line(line)

