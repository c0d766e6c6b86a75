"""Runtime checks survive `python -O`: shipped code states its invariants with `if ...: raise`, never `assert`,
which the optimiser strips (a gate run with -O would otherwise carry on past a broken invariant)."""

from __future__ import annotations

import ast
from pathlib import Path

import inference_gate

PACKAGE = Path(inference_gate.__file__).parent


def test_no_shipped_module_relies_on_assert():
    asserts = [
        f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Assert)
    ]
    assert asserts == []
