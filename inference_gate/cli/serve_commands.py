"""`start` (record and replay) and `replay` (replay only): run the gate in the foreground until Ctrl-C.

The command prints one banner line once the gate listens, with the port it really bound (any free one for
port 0), so that a script or a test can read where to connect. The gate logs to the `inference_gate` logger;
this is the one place that decides where those lines go: stderr, one line each, one per request with
`--verbose`, otherwise warnings and errors only, without tracebacks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

import orjson
from cleo.commands.command import Command
from cleo.io.inputs.option import Option
from cleo.io.io import IO
from cleo.io.outputs.output import Type as OutputType

from inference_gate.cli.common import cassette_count_text, setting_options, settings_from_io, write_warning
from inference_gate.config.settings import Settings, gate_keys, route_table
from inference_gate.config.sources import API_KEY_ENV
from inference_gate.core.address import gate_url, is_loopback
from inference_gate.core.dialects import Dialect
from inference_gate.core.policy import Mode
from inference_gate.proxy.faults import fault_plan
from inference_gate.proxy.ledger import Ledger
from inference_gate.serve.foreground import check_startup, run_gate
from inference_gate.store.cassette_store import CassetteStore, write_atomically

GATE_LOGGER = "inference_gate"
_FORMATTER = logging.Formatter()
LEDGER_OPTION = Option(
    "--ledger",
    flag=False,
    requires_value=True,
    description="Write which cassettes were used to this JSON file when the gate stops (for `cache prune`).",
)
PACING_SETTINGS = ("replay_speed", "replay_spread")
REFRESH_OPTION = Option(
    "--refresh",
    flag=True,
    description="Send every request upstream and record it again; a cassette is rewritten only when the answer "
    "changed in a way that matters (not ids, timestamps or rate-limit headers).",
)


class StartCommand(Command):
    name = "start"
    description = "Run the gate: replay recorded answers, forward and record everything else."
    options: ClassVar[list[Option]] = [
        *setting_options(
            "host", "port", "cache_dir", "upstream", "api_key", "takes", *PACING_SETTINGS, "fault_rate", "fault_seed"
        ),
        REFRESH_OPTION,
        LEDGER_OPTION,
    ]

    def handle(self) -> int:
        mode = Mode.REFRESH if self.io.input.option("refresh") else Mode.RECORD
        return serve(self.io, settings_from_io(self.io).settings, mode, ledger_path(self.io))


class ReplayCommand(Command):
    name = "replay"
    description = "Run the gate in replay-only mode: answer from cassettes, never call the upstream (for CI)."
    options: ClassVar[list[Option]] = [
        *setting_options("host", "port", "cache_dir", *PACING_SETTINGS, "fault_rate", "fault_seed"),
        LEDGER_OPTION,
    ]

    def handle(self) -> int:
        return serve(self.io, settings_from_io(self.io).settings, Mode.REPLAY, ledger_path(self.io))


def ledger_path(io: IO) -> Path | None:
    value = io.input.option("ledger")
    return None if value is None else Path(value)


def serve(io: IO, settings: Settings, mode: Mode, ledger_path: Path | None = None) -> int:
    """Refuse unusable settings, warn about risky ones, then run the gate until a signal stops it.

    With `ledger_path`, every request's answer goes into a ledger (all under one pseudo-test: a CLI gate
    cannot know which test sent what), written there when the gate stops, for `cache prune --ledger`.
    """
    check_startup(settings, mode)
    if mode.calls_upstream:
        if not is_loopback(settings.host):
            write_warning(
                io,
                f"RECORD MODE IS LISTENING ON {settings.host}, NOT ON LOOPBACK: anyone who can reach this "
                f"address can send requests to {settings.upstream} and spend the API key owner's money",
            )
        if not gate_keys(settings):
            io.write_error_line(
                f"note: no API key set ({API_KEY_ENV} or --api-key): each client's own Authorization header "
                "is passed to the upstream",
                type=OutputType.RAW,
            )
    cassette_count = CassetteStore(settings.cache_dir).count()

    def announce(port: int) -> None:
        io.write_line(banner(settings, mode, port, cassette_count), type=OutputType.RAW)
        if mode.calls_upstream:
            for line in route_lines(settings):
                io.write_line(line, type=OutputType.RAW)

    ledger = Ledger()
    on_answer = ledger.add_under_its_test if ledger_path is not None else None
    with gate_logging(io, verbose=settings.verbose):
        try:
            gate = run_gate(settings, mode, on_started=announce, on_answer=on_answer)
        finally:
            if ledger_path is not None:
                write_atomically(ledger_path, orjson.dumps(ledger.as_json(), option=orjson.OPT_INDENT_2), replace=True)
    if mode is Mode.REFRESH:
        io.write_line(gate.refresh_summary(), type=OutputType.RAW)
    io.write_line("stopped", type=OutputType.RAW)
    return 0


def banner(settings: Settings, mode: Mode, port: int, cassette_count: int) -> str:
    """The line that says the gate is up: its mode, the base URL to give an SDK, the cache and upstream."""
    parts = [
        f"{mode.value} mode",
        f"listening on {gate_url(settings.host, port)}/v1",
        f"cache {settings.cache_dir.absolute()} ({cassette_count_text(cassette_count)})",
    ]
    if mode.calls_upstream:
        parts.append(f"upstream {route_table(settings).dialect_routes[Dialect.OPENAI].url}")
    if mode is Mode.RECORD and settings.takes > 1:
        parts.append(f"up to {settings.takes} takes per request")
    if mode is Mode.REFRESH:
        parts.append("every request re-recorded; files rewritten only when the answer changed")
    if settings.replay_speed is not None and mode is not Mode.REFRESH:
        parts.append(f"replays paced at {settings.replay_speed:g}x the recorded speed")
    if (faults := fault_plan(settings, mode)) is not None:
        parts.append(faults.description)
    return ", ".join(parts)


def route_lines(settings: Settings) -> list[str]:
    """The lines under a recording gate's banner: each route, where its paths go, and whether the gate sends its
    own key there or passes the client's credential through (a provider whose key it lacks)."""
    return ["routes:", *(f"  {line}" for line in route_table(settings).describe())]


@contextmanager
def gate_logging(io: IO, *, verbose: bool) -> Iterator[None]:
    """Send the gate's log to stderr through `io` while the gate runs, and leave the logger as it was."""
    logger = logging.getLogger(GATE_LOGGER)
    handler = _IOLogHandler(io, verbose=verbose)
    previous_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)


class _IOLogHandler(logging.Handler):
    """Log records as stderr lines: `12:00:01 POST /v1/chat/completions hit 200 0.4ms <cassette>` for the
    per-request lines, `warning: ...` and `error: ...` for problems. Tracebacks only when verbose."""

    def __init__(self, io: IO, *, verbose: bool) -> None:
        super().__init__()
        self._io = io
        self._verbose = verbose

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._io.write_error_line(self._line(record), type=OutputType.RAW)
        except Exception:
            self.handleError(record)

    def _line(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            if self._verbose:
                message += "\n" + _FORMATTER.formatException(record.exc_info).rstrip()
            else:
                message += f" ({type(error).__name__}: {error})"
        if not self._verbose:
            message = " ".join(message.split())
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {message}"
        return f"{_FORMATTER.formatTime(record, '%H:%M:%S')} {message}"
