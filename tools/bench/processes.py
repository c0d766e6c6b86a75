"""The bench's child processes: servers pinned to one core, their logs kept for error messages, stopped as Ctrl-C
would stop them, and their peak memory read from /proc (which makes the bench Linux-only)."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import select
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
HOST = "127.0.0.1"
CHILD_START_TIMEOUT_S = 60.0
CHILD_STOP_TIMEOUT_S = 15.0
GATE_BANNER = re.compile(rb"listening on http://[^ ]*:(\d+)/v1")
URL_LINE = re.compile(rb"^http://[^ ]*:(\d+)\s*$")


class BenchError(Exception):
    """A step that could not be measured: a child that did not start or answered wrongly, a failed install."""


@dataclass(frozen=True, slots=True)
class Cores:
    """The core the servers run on and the one the load generator runs on, None when there is only one; and every
    core the bench was given, for the runs that want them all (a pytest suite with `-n 2`)."""

    server: int | None
    client: int | None
    every: tuple[int, ...] = ()

    @classmethod
    def pick(cls) -> Cores:
        available = tuple(sorted(os.sched_getaffinity(0)))
        if len(available) < 2:
            return cls(None, None, available)
        return cls(available[0], available[1], available)

    def describe(self) -> str:
        if self.server is None:
            return "one core: servers and load generator share it"
        return f"servers on cpu {self.server}, load generator on cpu {self.client}"


class Child:
    """A child process pinned to the server core, its stderr kept in a log file for error messages."""

    def __init__(self, name: str, argv: list[str], *, log_dir: Path, cores: Cores) -> None:
        self.name = name
        self._log_path = log_dir / f"{re.sub(r'[^a-z0-9]+', '-', name.lower())}.log"
        pin = None if cores.server is None else functools.partial(os.sched_setaffinity, 0, {cores.server})
        with self._log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=log, cwd=REPO_ROOT, env=child_environment(), preexec_fn=pin
            )

    def read_port(self, pattern: re.Pattern[bytes]) -> int:
        """Wait for the first stdout line that matches `pattern`; its first group is the port."""
        deadline = time.monotonic() + CHILD_START_TIMEOUT_S
        stdout = self.process.stdout
        assert stdout is not None
        while (remaining_s := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([stdout], [], [], remaining_s)
            if not ready:
                break
            line = stdout.readline()
            if not line:
                raise self.failure("exited before it was listening")
            if match := pattern.search(line):
                return int(match.group(1))
        raise self.failure(f"printed no line like {pattern.pattern!r} within {CHILD_START_TIMEOUT_S:.0f} s")

    def wait_until_listening(self, port: int) -> None:
        deadline = time.monotonic() + CHILD_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise self.failure("exited before it was listening")
            with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1.0):
                return
            time.sleep(0.1)
        raise self.failure(f"did not listen on port {port} within {CHILD_START_TIMEOUT_S:.0f} s")

    def peak_rss_bytes(self) -> int:
        """The process's peak resident memory so far (VmHWM)."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(r"^VmHWM:\s+(\d+) kB$", status, re.MULTILINE)
        if match is None:
            raise self.failure("has no VmHWM in /proc/<pid>/status")
        return int(match.group(1)) * 1024

    def stop(self) -> None:
        """SIGINT, as Ctrl-C would; killed if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(CHILD_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def failure(self, what: str) -> BenchError:
        log_tail = self._log_path.read_text(errors="replace").strip().splitlines()[-15:]
        details = "\n".join(f"    {line}" for line in log_tail) or "    (its log is empty)"
        return BenchError(f"{self.name} {what}; its log ends with:\n{details}")


def child_environment() -> dict[str, str]:
    """The bench's environment without an OpenAI key (no child may see one) and with unbuffered output."""
    environment = {name: value for name, value in os.environ.items() if name != "OPENAI_API_KEY"}
    environment["PYTHONUNBUFFERED"] = "1"
    return environment


@contextlib.contextmanager
def running(child: Child) -> Iterator[Child]:
    try:
        yield child
    finally:
        child.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]
