"""The cassette directory as git has it: the only module that runs git.

Users who commit cassettes have git, and git reads its own object store faster than any library: one
`git ls-tree -r` lists a revision's files with their blob ids, and one `git cat-file --batch` process hands
back every blob asked for. A working-tree file whose blob id (computed here, as git does) equals the
revision's is unchanged and is never read from git at all.

Every failure is a `GitError` with a one-line message for the user.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from inference_gate.store.cassette_store import CASSETTE_NAME


class GitError(Exception):
    """git could not answer: not installed, not a repository, an unknown revision."""


def _git(root: Path, *args: str, stdin: bytes | None = None) -> bytes:
    try:
        done = subprocess.run(["git", *args], cwd=root, input=stdin, capture_output=True, check=False)
    except FileNotFoundError:
        raise GitError("git is not installed (cache diff reads the cassettes' history with it)") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", errors="replace").strip().splitlines()
        raise GitError(message[0].removeprefix("fatal: ") if message else f"git {args[0]} failed")
    return done.stdout


def repository_root(directory: Path) -> Path:
    """The top of the git work tree that holds `directory`."""
    try:
        output = _git(directory, "rev-parse", "--show-toplevel")
    except GitError:
        raise GitError(f"{directory} is not inside a git work tree") from None
    return Path(os.fsdecode(output.rstrip(b"\n")))


def path_in_repository(root: Path, directory: Path) -> str:
    """`directory` relative to the repository at `root`, with `/` separators."""
    try:
        relative = directory.resolve().relative_to(root.resolve())
    except ValueError:
        raise GitError(f"the cache directory {directory} is not inside the git repository {root}") from None
    return relative.as_posix()


def resolve_commit(root: Path, revision: str) -> str:
    """The commit id `revision` names; GitError for a name git does not know."""
    try:
        return (
            _git(root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{revision}^{{commit}}")
            .decode()
            .strip()
        )
    except GitError:
        raise GitError(f"unknown revision {revision!r}") from None


def cassette_blobs(root: Path, commit: str, folder: str) -> dict[str, str]:
    """Cassette name (`<endpoint>/<file>`) -> blob id, for the cassettes under `folder` at `commit`."""
    prefix = "" if folder in ("", ".") else folder.rstrip("/") + "/"
    output = _git(root, "ls-tree", "-r", "-z", "--full-tree", commit, "--", prefix or ".")
    blobs: dict[str, str] = {}
    for record in output.split(b"\0"):
        if not record:
            continue
        meta, _, raw_path = record.partition(b"\t")
        _, kind, blob_id = meta.decode().split(" ")
        name = os.fsdecode(raw_path).removeprefix(prefix)
        parts = PurePosixPath(name).parts
        if kind == "blob" and len(parts) == 2 and CASSETTE_NAME.match(parts[1]):
            blobs[name] = blob_id
    return blobs


def read_blobs(root: Path, blob_ids: Iterable[str]) -> dict[str, bytes]:
    """The content of each blob, by id, from one `git cat-file --batch` process."""
    wanted = sorted(set(blob_ids))
    if not wanted:
        return {}
    output = _git(root, "cat-file", "--batch", stdin="".join(f"{blob_id}\n" for blob_id in wanted).encode())
    contents: dict[str, bytes] = {}
    position = 0
    for _ in wanted:
        header_end = output.index(b"\n", position)
        blob_id, _, size = output[position:header_end].decode().split(" ")
        start = header_end + 1
        contents[blob_id] = output[start : start + int(size)]
        position = start + int(size) + 1  # each content is followed by a newline
    return contents


def blob_id(data: bytes) -> str:
    """The id git gives a file with this content (SHA-1 repositories, git's default)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()
