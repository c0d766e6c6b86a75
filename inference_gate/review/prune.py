"""Carry out a prune plan on disk: list a cache directory's cassettes by name, and delete the unused ones.

The decision is `ledger.prune_plan`'s; this is the file-system half, shared by the pytest plugin and
`inference-gate cache prune`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from inference_gate.store.cassette_store import CassetteStore


def cassette_names(cache_dir: Path) -> list[str]:
    """Every cassette's name relative to `cache_dir`, as the ledger records it: `chat.completions/x.json`."""
    return [slot.name for slot in CassetteStore(cache_dir).slots()]


def delete_cassettes(cache_dir: Path, names: Iterable[str]) -> None:
    """Remove the named entries; a directory standing at a cassette's name is not the gate's, and is left."""
    for name in names:
        path = cache_dir / name
        if not path.is_dir() or path.is_symlink():
            path.unlink(missing_ok=True)
