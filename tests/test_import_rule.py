"""The sans-IO core never imports trio or h11, directly or through another module (or the package `__init__`).

Each module is imported in a fresh interpreter, because in this one the I/O shell is long since loaded.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

CORE_MODULES = [
    "inference_gate",
    "inference_gate.cassette",
    "inference_gate.config",
    "inference_gate.content_coding",
    "inference_gate.errors",
    "inference_gate.faults",
    "inference_gate.forwarding",
    "inference_gate.keys",
    "inference_gate.messages",
    "inference_gate.nearest",
    "inference_gate.nearest.diff",
    "inference_gate.nearest.index",
    "inference_gate.outcome",
    "inference_gate.pacing",
    "inference_gate.policy",
    "inference_gate.redact",
    "inference_gate.replies",
    "inference_gate.review",
    "inference_gate.settings",
    "inference_gate.sse",
    "inference_gate.store",
    "inference_gate.summary",
]
IO_PACKAGES = ("trio", "h11")

PROBE = """
import sys
import {module}
print(" ".join(name for name in {io_packages!r} if name in sys.modules))
"""


def io_packages_imported_by(module: str, io_packages: tuple[str, ...] = IO_PACKAGES) -> list[str]:
    probe = PROBE.format(module=module, io_packages=io_packages)
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    return completed.stdout.split()


@pytest.mark.parametrize("module", CORE_MODULES)
def test_a_core_module_imports_neither_trio_nor_h11(module):
    assert io_packages_imported_by(module) == []


def test_the_probe_sees_an_io_import():
    assert io_packages_imported_by("inference_gate.gate") == ["trio", "h11"]


# What the pytest plugin must not load at import: pytest imports it in every run of every suite in an environment
# where the package is installed, whether or not the suite uses the gate.
PLUGIN_DEFERRED = ("trio", "h11", "inference_gate.gate", "inference_gate.store", "inference_gate.settings")


def test_the_pytest_plugin_defers_the_gate_the_store_and_the_settings():
    assert io_packages_imported_by("inference_gate.pytest_plugin", PLUGIN_DEFERRED) == []
