"""Gates in child processes, for tests where nothing in memory may be shared: signals, one directory shared by
two processes. Each runs `inference_gate.serve.foreground.run_gate` on a free port and prints the port once it listens.
"""

from __future__ import annotations

import resource
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import orjson
import trio

from inference_gate import CassetteStore, Mode, Settings
from tests.cassettes import read_all

REPO_ROOT = Path(__file__).parents[2]
STARTUP_TIMEOUT_S = 15.0
EXIT_TIMEOUT_S = 5.0

# Runs one gate until SIGINT or SIGTERM, logging at INFO to stderr; prints the bound port once it listens.
RUNNER = """
import logging, sys
from pathlib import Path
import orjson
from inference_gate import Mode, Settings
from inference_gate.serve.foreground import run_gate

options = orjson.loads(sys.argv[1])
mode = Mode(options.pop("mode"))
options["cache_dir"] = Path(options["cache_dir"])
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
run_gate(Settings(**options), mode, on_started=lambda port: print(port, flush=True))
"""

@dataclass
class GateProcess:
    process: trio.Process
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8")

    async def wait_for_exit(self) -> int:
        with trio.fail_after(EXIT_TIMEOUT_S):
            return await self.process.wait()


@asynccontextmanager
async def gate_process(
    settings: Settings, mode: Mode, log_path: Path, *, open_files_limit: int | None = None
) -> AsyncIterator[GateProcess]:
    """A gate in a child process on a free port, with its log in `log_path`; killed if still running after.
    With `open_files_limit`, the child's soft and hard limits on open files are both that (as `ulimit -n`)."""
    options: dict[str, Any] = {field.name: getattr(settings, field.name) for field in fields(Settings)}
    options.update(mode=mode.value, host="127.0.0.1", port=0)
    arguments = [sys.executable, "-c", RUNNER, orjson.dumps(options, default=str).decode()]
    limit = None if open_files_limit is None else (open_files_limit, open_files_limit)
    with log_path.open("wb") as log_file:
        process = await trio.lowlevel.open_process(
            arguments,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=log_file,
            preexec_fn=None if limit is None else lambda: resource.setrlimit(resource.RLIMIT_NOFILE, limit),
        )
    try:
        printed = b""
        with trio.fail_after(STARTUP_TIMEOUT_S):
            while not printed.endswith(b"\n"):
                chunk = await process.stdout.receive_some()
                assert chunk, f"the gate exited before listening: {log_path.read_text(encoding='utf-8')}"
                printed += chunk
        yield GateProcess(process, int(printed), log_path)
    finally:
        if process.returncode is None:
            process.kill()
        with trio.move_on_after(EXIT_TIMEOUT_S, shield=True):
            await process.wait()
        await process.stdout.aclose()


def files_under(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


def assert_only_whole_cassettes(cache_dir: Path, count: int) -> None:
    """`count` cassettes that read back, and no other file: no temporary or partial one."""
    store = CassetteStore(cache_dir)
    assert files_under(cache_dir) == store.cassette_paths()
    assert len(read_all(store)) == count
