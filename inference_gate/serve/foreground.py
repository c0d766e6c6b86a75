"""Run a gate in the foreground until SIGINT or SIGTERM, as `inference-gate start` and `replay` do.

    from inference_gate import Mode, Settings
    from inference_gate.serve.foreground import run_gate

    run_gate(Settings(port=0), Mode.REPLAY, on_started=lambda port: print("listening on", port))

The first signal sets the gate's shutdown event rather than cancelling it: the listener closes at once, and
exchanges in flight get the grace period (`shutdown_grace_s`) to finish and be recorded. A cassette is written
to a temporary file and linked into place, so one cut short leaves no partial file. A second signal stops at
once, for when the grace period is more than the person at the keyboard wants to wait.
"""

from __future__ import annotations

import functools
import signal
import tempfile
from collections.abc import Callable

import trio

from inference_gate.config.settings import DIALECT_KEY_SETTINGS, Settings
from inference_gate.core.address import host_and_port
from inference_gate.core.dialects import Dialect
from inference_gate.core.outcome import Answer
from inference_gate.core.policy import Mode
from inference_gate.core.redact import MIN_CREDENTIAL_CHARS, is_credential_length
from inference_gate.http.server import raise_open_files_limit
from inference_gate.proxy.gate import Gate

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StartupError(Exception):
    """A setting the gate cannot start with, found before it listens; the message is one line for the user."""


class ListenError(Exception):
    """The gate could not open its listening socket: the port is taken, the address is not ours, ..."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(f"cannot listen on {host_and_port(host, port)}: {reason}")
        self.host = host
        self.port = port
        self.reason = reason


def check_startup(settings: Settings, mode: Mode) -> None:
    """Refuse, before listening, what would otherwise fail on every request or quietly record nothing.

    A replay from a missing directory would miss on every request (a typo in CI); a directory that is a file
    gives a 500 on each; an unwritable one records nothing. A gate key too short to search for could not be
    kept out of cassettes, so it is refused rather than trusted.
    """
    cache_dir = settings.cache_dir
    if cache_dir.exists() and not cache_dir.is_dir():
        raise StartupError(f"cache directory {cache_dir} is not a directory")
    if mode is Mode.REPLAY:
        if not cache_dir.is_dir():
            raise StartupError(f"cache directory {cache_dir} does not exist (replay mode needs recorded cassettes)")
        return
    for dialect, name in DIALECT_KEY_SETTINGS.items():
        key = getattr(settings, name)
        if key is not None and not is_credential_length(key):
            which = "the API key" if dialect is Dialect.OPENAI else f"the {dialect.value} API key"
            raise StartupError(
                f"{which} is {len(key)} characters long; the gate needs at least {MIN_CREDENTIAL_CHARS} to keep it "
                "out of cassettes (real OpenAI, Anthropic and Azure keys are longer)"
            )
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=cache_dir):
            pass
    except OSError as exc:
        raise StartupError(f"cache directory {cache_dir} cannot be written: {exc.strerror or exc}") from None


def run_gate(
    settings: Settings,
    mode: Mode,
    *,
    on_started: Callable[[int], None],
    on_answer: Callable[[Answer], None] | None = None,
) -> Gate:
    """Serve until SIGINT or SIGTERM, then return the gate once it has shut down (its counts are final).

    `on_started` is called with the bound port (the real one when `settings.port` is 0) once the gate accepts
    connections; `on_answer` with each request's `Answer`, on the gate's thread. Must be called from the main
    thread, which is where Python delivers signals. Raises `ListenError` when the socket cannot be opened.
    """
    raise_open_files_limit()
    gate = Gate(settings, mode, on_answer=on_answer)
    listening = False

    def started(port: int) -> None:
        nonlocal listening
        listening = True
        on_started(port)

    try:
        trio.run(_serve_until_signalled, gate, started)
    except BaseExceptionGroup as group:
        failure = sole_exception(group)
        if failure is group:
            raise
    else:
        return gate
    # Raised outside the `except` block, so that the traceback chain is the failure's own.
    if isinstance(failure, OSError) and not listening:
        raise ListenError(settings.host, settings.port, listen_failure_reason(failure)) from failure
    raise failure


async def _serve_until_signalled(gate: Gate, on_started: Callable[[int], None]) -> None:
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        # The signal handlers go in before the socket is bound, so that no signal finds Python's default one.
        await nursery.start(_stop_on_signals, shutdown, nursery.cancel_scope)
        async with trio.open_nursery() as gate_nursery:
            port = await gate_nursery.start(functools.partial(gate.run, shutdown=shutdown))
            on_started(port)
        nursery.cancel_scope.cancel()


async def _stop_on_signals(
    shutdown: trio.Event,
    everything: trio.CancelScope,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """First signal: shut down gracefully. Second signal: cancel `everything` now."""
    with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
        task_status.started()
        async for _ in signals:
            if shutdown.is_set():
                everything.cancel()
                return
            shutdown.set()


def sole_exception(group: BaseExceptionGroup) -> BaseException:
    """The one exception inside nested single-member groups (trio wraps one per nursery), else the group."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


def listen_failure_reason(error: OSError) -> str:
    """`address already in use`: the system's words (for a host name, the resolver's), in lower case like the
    rest of the line."""
    reason = error.strerror or str(error)
    return reason[:1].lower() + reason[1:]
