"""`cache diff [REV | A..B]`: the two sides of the comparison, read, and handed to `cassette_diff`.

`REV` compares the cassette directory at that revision (default `HEAD`) with the working tree; `A..B`
compares two revisions, `A..` means `A..HEAD` and `..B` means `HEAD..B`, as in git. Only files whose bytes
differ are read and parsed, so a pull request that touches three cassettes of ten thousand parses six files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from inference_gate.core.cassette import CassetteError
from inference_gate.review import git_tree
from inference_gate.review.changes import CassetteChanges, diff_cassettes
from inference_gate.store.cassette_store import CassetteStore

WORKING_TREE = "working tree"


@dataclass(frozen=True, slots=True)
class RevisionDiff:
    """What changed in `folder` (relative to the repository) from `base` to `target` (a revision or the
    working tree)."""

    base: str
    target: str
    folder: str
    changes: CassetteChanges


def parse_revisions(spec: str | None) -> tuple[str, str | None]:
    """`None` -> (`HEAD`, working tree); `A..B` -> (A, B); a target of None is the working tree."""
    if spec is None:
        return "HEAD", None
    if ".." in spec:
        base, _, target = spec.partition("..")
        return base or "HEAD", target or "HEAD"
    return spec, None


def diff_revisions(cache_dir: Path, spec: str | None, *, cwd: Path) -> RevisionDiff:
    """Compare the cassettes as `spec` says, in the git repository that holds `cwd`; raises GitError."""
    root = git_tree.repository_root(cwd)
    folder = git_tree.path_in_repository(root, cache_dir)
    base, target = parse_revisions(spec)
    base_blobs = git_tree.cassette_blobs(root, git_tree.resolve_commit(root, base), folder)
    if target is None:
        _require_somewhere(cache_dir, folder, base_blobs, base)
        new = _working_tree_files(cache_dir)
        unchanged = {name for name, data in new.items() if base_blobs.get(name) == git_tree.blob_id(data)}
        wanted = {name: blob for name, blob in base_blobs.items() if name not in unchanged}
        contents = git_tree.read_blobs(root, wanted.values())
        old = {name: contents[blob] for name, blob in wanted.items()}
        new = {name: data for name, data in new.items() if name not in unchanged}
    else:
        target_blobs = git_tree.cassette_blobs(root, git_tree.resolve_commit(root, target), folder)
        _require_somewhere(cache_dir, folder, {**base_blobs, **target_blobs}, f"{base} or {target}")
        old_ids = {name: blob for name, blob in base_blobs.items() if target_blobs.get(name) != blob}
        new_ids = {name: blob for name, blob in target_blobs.items() if base_blobs.get(name) != blob}
        contents = git_tree.read_blobs(root, [*old_ids.values(), *new_ids.values()])
        old = {name: contents[blob] for name, blob in old_ids.items()}
        new = {name: contents[blob] for name, blob in new_ids.items()}
    return RevisionDiff(base, target or WORKING_TREE, folder, diff_cassettes(old, new))


def _require_somewhere(cache_dir: Path, folder: str, blobs: dict[str, str], revisions: str) -> None:
    """GitError when the cache directory is in neither the working tree nor a revision compared: a typo, which
    would otherwise read as "nothing changed". A directory deleted since a revision is a change, and is shown."""
    if not blobs and not cache_dir.is_dir():
        raise git_tree.GitError(
            f"no cache directory {folder} in the working tree, and no cassettes under it at {revisions}"
        )


def _working_tree_files(cache_dir: Path) -> dict[str, bytes]:
    store = CassetteStore(cache_dir)
    return {slot.name: _readable_bytes(store, slot.path) for slot in store.slots()}


def _readable_bytes(store: CassetteStore, path: Path) -> bytes:
    """A working-tree cassette's bytes; what cannot be read (a FIFO, a directory, a link out of the directory, a
    file too large) is compared as empty bytes, which the diff reports as a corrupt cassette."""
    try:
        return store.read_bytes(path)
    except CassetteError:
        return b""
