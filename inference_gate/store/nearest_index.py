"""The nearest-request index: each endpoint folder's recorded requests, read once and refreshed when the
folder's mtime says a file was added, removed or replaced. The comparison itself is `diff.py`'s, on plain data.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from inference_gate.core.cassette import CassetteError, cassette_from_bytes
from inference_gate.core.key_rules import KeyRules
from inference_gate.core.keys import CanonicalRequest
from inference_gate.core.nearest import IndexedRequest, MissedRequest, closest, explain
from inference_gate.store.cassette_store import CassetteStore, folder_cassettes

# A folder changed this recently may change again within the same mtime tick (1 s or 2 s on some
# filesystems), so its index is not trusted to be complete: the next miss lists the folder again (as git does
# for its index).
RACY_MTIME_WINDOW_NS = 2_000_000_000


@dataclass(frozen=True, slots=True)
class _IndexedFile:
    """A readable cassette file; `signature` (mtime_ns, size) tells whether the file was replaced since."""

    signature: tuple[int, int]
    request: IndexedRequest


@dataclass(frozen=True, slots=True)
class _FolderIndex:
    """The readable cassettes of one endpoint folder; `mtime_ns` is None when too recent to be trusted."""

    mtime_ns: int | None
    files: dict[str, _IndexedFile]
    requests: list[IndexedRequest]


def _read_folder(
    store: CassetteStore, folder: Path, mtime_ns: int, previous: _FolderIndex | None, rules: KeyRules
) -> _FolderIndex:
    """Index `folder`, reading only the files new or replaced since `previous`; corrupt ones are skipped.

    A file that cannot be read or parsed is left out rather than raised: this index only improves the message
    of a miss, and one bad cassette must not hide the miss itself (`cache list` reports bad files).
    """
    known = previous.files if previous is not None else {}
    files: dict[str, _IndexedFile] = {}
    for entry in folder_cassettes(folder):
        indexed = _index_file(store, entry, folder.name, known.get(entry.name), rules)
        if indexed is not None:
            files[entry.name] = indexed
    trusted = time.time_ns() - mtime_ns > RACY_MTIME_WINDOW_NS
    return _FolderIndex(mtime_ns if trusted else None, files, [indexed.request for indexed in files.values()])


def _index_file(
    store: CassetteStore, entry: os.DirEntry[str], folder_name: str, known: _IndexedFile | None, rules: KeyRules
) -> _IndexedFile | None:
    """The file's entry: `known` if the file is unchanged, else read again; None if it is gone or corrupt."""
    try:
        stat = entry.stat()
        signature = (stat.st_mtime_ns, stat.st_size)
        if known is not None and known.signature == signature:
            return known
        cassette = cassette_from_bytes(store.read_bytes(Path(entry.path)))
    except (OSError, CassetteError):
        return None
    return _IndexedFile(signature, IndexedRequest.from_cassette(f"{folder_name}/{entry.name}", cassette, rules))


class NearestRequests:
    """Finds the recorded request closest to a missed one.

    Each endpoint folder is indexed on its first miss and the index is reused until the folder's mtime
    changes; recorded bodies are flattened once, when they are indexed. The first miss in a folder of
    thousands of cassettes reads them all, which is blocking file I/O, so callers run it in worker threads. One
    lock per folder makes concurrent first misses share that one build: the first reads, the others wait for it
    and reuse its index, rather than each reading (and holding) every cassette of the folder again.
    """

    def __init__(self, store: CassetteStore, rules: KeyRules | None = None) -> None:
        """`rules` are the key rules in force: recorded requests are compared as the key sees them."""
        self.store = store
        self.rules = rules or KeyRules.default()
        self._folders: dict[Path, _FolderIndex] = {}
        self._folder_locks: dict[Path, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def describe(self, request: CanonicalRequest) -> str | None:
        """Which cassette is closest to `request` and where they first differ; None without a candidate."""
        candidates = self._candidates(self.store.locate(request).path.parent)
        if not candidates:
            return None
        return explain(closest(candidates, MissedRequest(request)), request)

    def _candidates(self, folder: Path) -> list[IndexedRequest]:
        with self._locks_lock:
            folder_lock = self._folder_locks.setdefault(folder, threading.Lock())
        with folder_lock:
            return self._fresh_candidates(folder)

    def _fresh_candidates(self, folder: Path) -> list[IndexedRequest]:
        try:
            mtime_ns = folder.stat().st_mtime_ns
            index = self._folders.get(folder)
            if index is None or index.mtime_ns != mtime_ns:
                index = _read_folder(self.store, folder, mtime_ns, index, self.rules)
                self._folders[folder] = index
        except FileNotFoundError:
            return []
        return index.requests
