"""Reading one cassette file without trusting what stands at its path.

A cache directory is shared through git, archives and hands, so what stands at a cassette's path may be anything a
file system holds. Reading it naively can hang the gate beyond the reach of SIGINT (a FIFO blocks its reader, and a
worker thread cannot be cancelled), exhaust its memory (a symlink to /dev/zero, a file of gigabytes), fail with a
traceback (a directory), or answer from a file outside the cache directory (a symlink). So a cassette is read only
if it is a regular file no larger than `max_bytes`, found inside the cache directory:

- The last component is opened with O_NOFOLLOW and O_NONBLOCK, so neither a link nor a FIFO is followed or waited
  on, and `fstat` on the opened descriptor (not on the name, which may change meanwhile) must say a regular file.
- A cassette that is itself a symlink is followed only when its target, resolved, lies inside the cache directory
  or inside its own endpoint folder (a symlinked endpoint folder is the user's, and served like a real one).
- At most `max_bytes + 1` bytes are read, so a file that grows while it is read is caught too.

Each refusal is a CassetteError saying what stood there, so every caller reports it like any corrupt cassette.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from inference_gate.core.cassette import CassetteError

# What says nothing of the file, only that the process is short of descriptors or memory: raised as it is, for
# the caller to wait and try again.
OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM})
OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
READ_CHUNK_BYTES = 1024 * 1024

FILE_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def read_cassette_file(path: Path, root: Path, max_bytes: int) -> bytes:
    """The bytes of the cassette file at `path` in the cache directory `root`, at most `max_bytes` of them.

    Raises FileNotFoundError (or NotADirectoryError, where a file stands in for the folder) when nothing is
    there, and CassetteError, without the file's name (callers add it), when what is there is not to be read.
    """
    target = _contained_target(path, root) if path.is_symlink() else path
    try:
        descriptor = os.open(target, OPEN_FLAGS)
    except OSError as error:
        nothing_there = isinstance(error, FileNotFoundError | NotADirectoryError) and target is path
        if nothing_there or error.errno in OUT_OF_RESOURCES:
            raise
        raise CassetteError(f"cannot be opened ({error.strerror or error})") from None
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            kind = FILE_KINDS.get(stat.S_IFMT(status.st_mode), "not a file")
            raise CassetteError(f"is not a regular file ({kind})")
        if status.st_size > max_bytes:
            raise CassetteError(f"is {status.st_size} bytes, more than max_cassette_bytes ({max_bytes})")
        return _read_at_most(descriptor, max_bytes)
    finally:
        os.close(descriptor)


def _contained_target(link: Path, root: Path) -> Path:
    """Where the symlink `link` leads, if that is inside `root` or inside the link's own folder."""
    target = Path(os.path.realpath(link))
    allowed = (Path(os.path.realpath(root)), Path(os.path.realpath(link.parent)))
    if not any(target.is_relative_to(folder) for folder in allowed):
        raise CassetteError(f"is a symlink to {target}, outside the cache directory")
    if not target.exists():
        raise CassetteError(f"is a symlink to {target}, which does not exist")
    return target


def _read_at_most(descriptor: int, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    received = 0
    while chunk := os.read(descriptor, min(READ_CHUNK_BYTES, max_bytes + 1 - received)):
        chunks.append(chunk)
        received += len(chunk)
        if received > max_bytes:
            raise CassetteError(f"grew past max_cassette_bytes ({max_bytes}) while it was read")
    return b"".join(chunks)
