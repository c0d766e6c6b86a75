"""What the bench installs or generates outside the repository, once, under ~/.cache/inference-gate-bench: each
reference tool in a virtualenv (or npm folder) of its own, so that none of them reaches the project's
environment, and the synthetic cassette sets."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson

from inference_gate.core.cassette import cassette_to_bytes
from inference_gate.store.cassette_store import relative_cassette_path
from tools.bench.processes import BenchError
from tools.make_cassettes import make_cassettes, synthetic_cassette

BENCH_CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "inference-gate-bench"
MITM_VENV_DIR = BENCH_CACHE_DIR / "mitm-venv"
SDK_VENV_DIR = BENCH_CACHE_DIR / "sdk-venv"
# openai 3 moved to httpx2, which vcrpy did not patch until 9.4; row (j) keeps the last major version on httpx.
SDK_REQUIREMENTS = ("openai<3", "vcrpy")
AIMOCK_DIR = BENCH_CACHE_DIR / "aimock"
AIMOCK_PACKAGE = "@copilotkit/aimock"
INSTALL_TIMEOUT_S = 900.0


def mitmdump_executable() -> Path:
    return bench_venv(MITM_VENV_DIR, ["mitmproxy"]) / "mitmdump"


def sdk_python() -> Path:
    return bench_venv(SDK_VENV_DIR, list(SDK_REQUIREMENTS)) / "python"


def bench_venv(directory: Path, requirements: list[str]) -> Path:
    """The bin folder of a virtualenv under the bench cache holding `requirements`, made on first use; BenchError
    if it cannot be. Each tool gets its own, so that none of them reaches the project's environment."""
    complete_marker = directory / ".complete"
    if not complete_marker.exists():
        print(f"installing {' '.join(requirements)} into {directory} (once)...", flush=True)
        python = str(directory / "bin" / "python")
        run_install_steps(
            [
                [sys.executable, "-m", "venv", "--clear", str(directory)],
                [python, "-m", "pip", "install", "--quiet", *requirements],
            ]
        )
        complete_marker.touch()
    return directory / "bin"


def aimock_executable() -> Path:
    """aimock's `llmock` command from its npm folder under the bench cache, installed on first use."""
    executable = AIMOCK_DIR / "node_modules" / ".bin" / "llmock"
    if executable.exists():
        return executable
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        raise BenchError(f"{' and '.join(missing)} not installed")
    print(f"installing {AIMOCK_PACKAGE} into {AIMOCK_DIR} (once)...", flush=True)
    AIMOCK_DIR.mkdir(parents=True, exist_ok=True)
    run_install_steps([["npm", "install", "--no-audit", "--no-fund", "--prefix", str(AIMOCK_DIR), AIMOCK_PACKAGE]])
    return executable


def aimock_version() -> str:
    package = orjson.loads((AIMOCK_DIR / "node_modules" / AIMOCK_PACKAGE / "package.json").read_bytes())
    return package["version"]


def run_install_steps(steps: list[list[str]]) -> None:
    for argv in steps:
        command = " ".join(argv[-3:])
        try:
            completed = subprocess.run(argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise BenchError(f"`{command}` did not finish in {INSTALL_TIMEOUT_S:.0f} s") from None
        if completed.returncode != 0:
            last_line = (completed.stderr.strip().splitlines() or ["no output"])[-1]
            raise BenchError(f"`{command}` failed: {last_line}")


def cassette_set(count: int) -> Path:
    """A directory of `count` synthetic cassettes under the bench cache, made on first use.

    Its name holds a fingerprint of cassette 0 (its path and bytes), so that a change to the key scheme, the
    layout or the format makes a fresh set rather than reusing one the gate would no longer read the same way.
    """
    canonical, cassette = synthetic_cassette(0)
    fingerprint = hashlib.sha256(relative_cassette_path(canonical).encode() + cassette_to_bytes(cassette))
    directory = BENCH_CACHE_DIR / f"cassettes-{count}-{fingerprint.hexdigest()[:12]}"
    complete_marker = directory / ".complete"
    if not complete_marker.exists():
        for stale in BENCH_CACHE_DIR.glob(f"cassettes-{count}-*"):
            shutil.rmtree(stale)
        print(f"making {count:,} synthetic cassettes in {directory} (once)...", flush=True)
        make_cassettes(directory, count)
        complete_marker.touch()
    return directory
