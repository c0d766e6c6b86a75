"""`inference-gate start` and `replay` as a user runs them: the real entry point in a child process, with its own
HOME and working directory, so that nothing but the files a test writes can configure it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

STARTUP_TIMEOUT_S = 30.0
EXIT_TIMEOUT_S = 10.0
BANNER_URL = re.compile(rb"listening on (http://127\.0\.0\.1:\d+)/v1")


@dataclass
class CliGate:
    url: str  # the root URL, without /v1
    stdout_bytes: bytearray  # grows while the gate runs; whole once the block has ended
    stderr_path: Path

    @property
    def stdout(self) -> str:
        return self.stdout_bytes.decode()

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8")


@asynccontextmanager
async def cli_gate(
    args: list[str], *, home: Path, cwd: Path, environ: Mapping[str, str] | None = None
) -> AsyncIterator[CliGate]:
    """`python -m inference_gate ARGS` with HOME set to `home`, until the block ends; then SIGINT, and the exit
    code must be 0. Provider keys come from `environ` only."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.endswith("_API_KEY") and not name.startswith(("INFERENCE_GATE", "OPENAI_", "ANTHROPIC_"))
    }
    env.update(HOME=str(home), USERPROFILE=str(home), PYTHONPATH=str(Path(__file__).parents[2]), **(environ or {}))
    stderr_path = home.parent / f"gate-{len(list(home.parent.glob('gate-*')))}.stderr"
    command = [sys.executable, "-m", "inference_gate", *args, "--host", "127.0.0.1", "--port", "0"]
    with stderr_path.open("wb") as stderr_file:
        process = await trio.lowlevel.open_process(
            command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=stderr_file
        )
    try:
        printed = bytearray()
        with trio.fail_after(STARTUP_TIMEOUT_S):
            while (match := BANNER_URL.search(printed)) is None:
                chunk = await process.stdout.receive_some()
                assert chunk, f"the gate exited before listening: {stderr_path.read_text(encoding='utf-8')}"
                printed += chunk
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_read_all, process.stdout, printed)
            yield CliGate(match[1].decode(), printed, stderr_path)
            process.send_signal(signal.SIGINT)
            with trio.fail_after(EXIT_TIMEOUT_S):
                assert await process.wait() == 0, stderr_path.read_text(encoding="utf-8")
    finally:
        if process.returncode is None:
            process.kill()
        with trio.move_on_after(EXIT_TIMEOUT_S, shield=True):
            await process.wait()
        await process.stdout.aclose()


async def _read_all(stream: trio.abc.ReceiveStream, into: bytearray) -> None:
    """Everything `stream` gives until it ends, appended to `into` as it comes."""
    while chunk := await stream.receive_some():
        into += chunk
