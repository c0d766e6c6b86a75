"""`inference-gate run [--mode replay|record|refresh] [options] -- CMD ARGS...`: a gate around one command.

The library does the work (serve/run_command.py); this parses the options `start` and `replay` take, prints the
banner before the command and the plugin's summary after it, both on stderr so that the command's own output stays
clean, writes the ledger with `--ledger`, and exits with the command's exit code.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import orjson
from cleo.commands.command import Command
from cleo.io.inputs.argument import Argument
from cleo.io.inputs.option import Option
from cleo.io.outputs.output import Type as OutputType

from inference_gate.cli.common import setting_options, settings_from_io, write_error
from inference_gate.cli.serve_commands import LEDGER_OPTION, PACING_SETTINGS, banner, gate_logging, ledger_path
from inference_gate.core.policy import Mode
from inference_gate.proxy.ledger_report import summary_lines
from inference_gate.serve.foreground import check_startup
from inference_gate.serve.run_command import CommandStartError, run_command
from inference_gate.store.cassette_store import CassetteStore, write_atomically

RUN_MODES = (Mode.REPLAY, Mode.RECORD, Mode.REFRESH)
GATE_FAILED = 1  # the gate's own failure; a command's code is passed through unchanged


class RunCommand(Command):
    name = "run"
    description = "Run a command (your test runner) with a gate on a free port and every SDK pointed at it."
    arguments: ClassVar[list[Argument]] = [
        Argument("cmd", required=True, is_list=True, description="The command and its arguments, after `--`.")
    ]
    options: ClassVar[list[Option]] = [
        Option(
            "--mode",
            flag=False,
            requires_value=True,
            default=Mode.REPLAY.value,
            description="replay (never call a provider), record (record what is missing) or refresh.",
        ),
        *setting_options(
            "host", "port", "cache_dir", "upstream", "api_key", "takes", *PACING_SETTINGS, "fault_rate", "fault_seed",
            descriptions={"port": "Port to listen on (default: a free one)."},
        ),
        LEDGER_OPTION,
    ]

    def handle(self) -> int:
        io = self.io
        mode_name = io.input.option("mode")
        if mode_name not in {mode.value for mode in RUN_MODES}:
            write_error(io, f"--mode: unknown mode {mode_name!r}; choose one of replay, record, refresh")
            return GATE_FAILED
        mode = Mode(mode_name)
        settings = settings_from_io(io).settings
        if io.input.option("port") is None:
            settings = dataclasses.replace(settings, port=0)  # the command is told the port: any free one will do
        check_startup(settings, mode)
        cassette_count = CassetteStore(settings.cache_dir).count()

        def announce(port: int) -> None:
            io.write_error_line(banner(settings, mode, port, cassette_count), type=OutputType.RAW)

        with gate_logging(io, verbose=settings.verbose):
            try:
                finished = run_command(settings, mode, io.input.argument("cmd"), on_started=announce)
            except CommandStartError as error:
                write_error(io, error)
                return error.exit_code
        notes = [finished.gate.refresh_summary()] if mode is Mode.REFRESH else []
        for line in summary_lines(finished.ledger, mode, settings.cache_dir, notes=notes, by_test=settings.verbose):
            io.write_error_line(line, type=OutputType.RAW)
        path = ledger_path(io)
        if path is not None:
            write_atomically(path, orjson.dumps(finished.ledger.as_json(), option=orjson.OPT_INDENT_2), replace=True)
        return finished.exit_code
