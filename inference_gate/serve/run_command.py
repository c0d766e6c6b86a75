"""`inference-gate run -- CMD ARGS...`: a gate for the length of one command, for any test runner.

    from inference_gate import Mode, Settings
    from inference_gate.serve.run_command import run_command

    finished = run_command(Settings(port=0), Mode.REPLAY, ["npm", "test"])
    raise SystemExit(finished.exit_code)

The gate starts on a free port; once it listens, the command starts with every SDK's variable pointed at it
(core/sdk_environment.py), and in replay with placeholder keys. When the command ends, the gate stops gracefully
(its pending cassette writes finish) and `run_command` returns the command's exit code, as a shell reports it
(128 + N for a command that a signal N ended), with the ledger of every answer: each one filed under the test its
`x-inference-gate-test` header named, else under the pseudo-test of requests outside tests.

Signals: Ctrl-C reaches the command from the terminal (it is in the same process group), so the gate keeps
serving until the command has finished with it; SIGTERM (a CI runner cancelling the job) is passed on to the
command. If the gate itself fails, the command is killed and the failure is raised.
"""

from __future__ import annotations

import functools
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import trio

from inference_gate.config.settings import Settings
from inference_gate.core.address import gate_url
from inference_gate.core.policy import Mode
from inference_gate.core.sdk_environment import sdk_environment
from inference_gate.http.server import raise_open_files_limit
from inference_gate.proxy.gate import Gate
from inference_gate.proxy.ledger import Ledger
from inference_gate.serve.foreground import ListenError, listen_failure_reason, sole_exception

SHELL_SIGNAL_BASE = 128  # a shell reports a command ended by signal N as 128 + N
COMMAND_NOT_FOUND = 127
COMMAND_NOT_EXECUTABLE = 126


class CommandStartError(Exception):
    """The command could not be started; `exit_code` is the shell's for the same failure (127 or 126)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class FinishedRun:
    """What `run_command` reports: the command's exit code, the gate (its counts are final) and the ledger."""

    exit_code: int
    gate: Gate
    ledger: Ledger


def run_command(
    settings: Settings,
    mode: Mode,
    command: Sequence[str],
    *,
    on_started: Callable[[int], None] = lambda port: None,
    environ: Mapping[str, str] | None = None,
) -> FinishedRun:
    """Serve a gate while `command` runs with the SDKs pointed at it; must be called from the main thread.

    `on_started` is called with the gate's port before the command starts. Raises `ListenError` when the gate
    cannot listen, `CommandStartError` when the command cannot be started, and the gate's own failure if it fails.
    """
    raise_open_files_limit()
    ledger = Ledger()
    gate = Gate(settings, mode, on_answer=ledger.add_under_its_test)
    base_environ = dict(os.environ if environ is None else environ)
    listening = False

    def started(port: int) -> dict[str, str]:
        nonlocal listening
        listening = True
        on_started(port)
        url = gate_url(settings.host, port)
        return {**base_environ, **sdk_environment(url, replay=mode is Mode.REPLAY, environ=base_environ)}

    try:
        exit_code = trio.run(_serve_while_running, gate, list(command), started)
    except BaseExceptionGroup as group:
        failure = sole_exception(group)
        if failure is group:
            raise
    else:
        return FinishedRun(exit_code, gate, ledger)
    if isinstance(failure, OSError) and not listening:
        raise ListenError(settings.host, settings.port, listen_failure_reason(failure)) from failure
    raise failure


async def _serve_while_running(gate: Gate, command: list[str], started: Callable[[int], dict[str, str]]) -> int:
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        port = await nursery.start(functools.partial(gate.run, shutdown=shutdown))
        try:
            returncode = await _run_to_the_end(command, started(port))
        finally:
            shutdown.set()
    return returncode if returncode >= 0 else SHELL_SIGNAL_BASE - returncode


async def _run_to_the_end(command: list[str], environ: dict[str, str]) -> int:
    """Start `command` and wait for it; if the wait is cancelled (the gate failed), the command is killed."""
    try:
        process = await trio.lowlevel.open_process(command, env=environ)
    except FileNotFoundError:
        raise CommandStartError(f"command not found: {command[0]}", COMMAND_NOT_FOUND) from None
    except PermissionError:
        raise CommandStartError(f"command not executable: {command[0]}", COMMAND_NOT_EXECUTABLE) from None
    try:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as watchers:
                watchers.start_soon(_pass_on_termination, signals, process)
                returncode = await process.wait()
                watchers.cancel_scope.cancel()
    finally:
        if process.returncode is None:
            process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()
    return returncode


async def _pass_on_termination(signals: trio.abc.ReceiveChannel[int], process: trio.Process) -> None:
    """SIGTERM goes on to the command; SIGINT is the terminal's to deliver, and the command's to act on."""
    async for signum in signals:
        if signum == signal.SIGTERM and process.returncode is None:
            process.send_signal(signal.SIGTERM)
