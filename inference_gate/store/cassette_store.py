"""The cassette directory: where each request's cassette lives, and how it is written without ever being torn.

Layout: `<cache_dir>/<endpoint>/<prompt-slug>.<key prefix>.json`, for example
`chat.completions/say-hello-in-french.3f2a9c1b4e5d6f70.json`. The path is computed from the request alone, so a
lookup opens one file and never lists the directory (a hit costs the same with 100,000 cassettes as with 10),
recording the same request into two directories gives the same path, and `git status` tells a reviewer what
was recorded. The full key is inside the file and is checked on every read.

Writes go to a temporary file in the same folder, are flushed to disk, and are then linked into place. Linking
fails if the name exists, so two gates recording into one directory never write two different contents under one
name: the first complete recording wins. Only a cassette known to be corrupt is replaced, with `os.replace`.

A cassette that gains a take, or is refreshed, is read, changed and replaced whole while its folder is locked
(`fcntl.flock` on the folder itself, so no lock file is left next to the cassettes), so two gates adding takes
to one file never lose one. A refresh whose material view (volatile.py) is unchanged leaves the file as it was.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import hashlib
import os
import re
import tempfile
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import orjson

from inference_gate.config.settings import SETTING_SPECS
from inference_gate.core.cassette import Cassette, CassetteError, cassette_from_bytes, cassette_to_bytes
from inference_gate.core.dialects import endpoint_name
from inference_gate.core.key_rules import KeyRules
from inference_gate.core.keys import CanonicalRequest
from inference_gate.core.redact import leaked_secret, redact_body
from inference_gate.core.session_cassette import SessionCassette, first_prompt, session_from_bytes, session_to_bytes
from inference_gate.core.summary import prompt_text
from inference_gate.core.volatile import material_view
from inference_gate.store.cassette_file import read_cassette_file

KEY_PREFIX_CHARS = 16
SLUG_MAX_CHARS = 48
CASSETTE_NAME = re.compile(r"^(?:[a-z0-9-]+\.)?[0-9a-f]{16}\.json$")
TEMP_NAME = re.compile(r"^\..+\.json\.[^.]+\.tmp$")
FOLDER_UNSAFE_CHARS = re.compile(r"[^a-z0-9._-]+")
DOT_RUNS = re.compile(r"\.{2,}")
FOLDER_MAX_CHARS = 200
"""Well under the 255 bytes a file name may have on every common file system; a longer folder name is cut."""
FOLDER_HASH_CHARS = 16
DEFAULT_MAX_CASSETTE_BYTES: int = SETTING_SPECS["max_cassette_bytes"].default


def slugify(text: str) -> str:
    """A short, ASCII, lower-case, dash-separated form of `text`, cut at a word boundary."""
    ascii_text = unicodedata.normalize("NFKD", text[: SLUG_MAX_CHARS * 4]).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if len(slug) > SLUG_MAX_CHARS:
        slug = slug[:SLUG_MAX_CHARS].rsplit("-", 1)[0]
    return slug


def folder_name(endpoint: str) -> str:
    """The endpoint as one safe folder name inside the cache directory, whatever the request path held.

    Only `a-z 0-9 . _ -` remain, dot runs become one dot and no name starts or ends with a dot or a dash, so
    `/v1/..`, `/v1/./x` and `/.hidden` can never name `.`, `..`, a hidden folder, or a path outside the
    directory. A name too long for a file system is cut and ends with a hash of the whole name, so two long
    endpoints never share a folder.
    """
    name = DOT_RUNS.sub(".", FOLDER_UNSAFE_CHARS.sub("-", endpoint)).strip(".-") or "root"
    if len(name) <= FOLDER_MAX_CHARS:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:FOLDER_HASH_CHARS]
    return f"{name[: FOLDER_MAX_CHARS - FOLDER_HASH_CHARS - 1].rstrip('.-')}-{digest}"


def relative_cassette_path(request: CanonicalRequest, redact_rules: Sequence[str] = ()) -> str:
    """`<endpoint>/<slug>.<key prefix>.json` for a request; GET and other methods are named in the folder.

    The slug comes from the prompt as it is stored, after the `redact` rules: a redacted prompt must not
    reappear in a file name committed to git. So a rule that masks the prompt also changes the names of the
    cassettes recorded under it.
    """
    endpoint = endpoint_name(request.path).lower()
    folder = folder_name(endpoint if request.method == "POST" else f"{request.method.lower()}.{endpoint}")
    stored_body = redact_body(request.json_body, redact_rules) if request.is_json else None
    slug = slugify(prompt_text(endpoint_name(request.path), stored_body)) if request.is_json else ""
    name = f"{slug}.{request.key[:KEY_PREFIX_CHARS]}.json" if slug else f"{request.key[:KEY_PREFIX_CHARS]}.json"
    return f"{folder}/{name}"


@dataclass(frozen=True, slots=True)
class Slot:
    """Where one request's cassette lives: its file, and its name relative to the cache directory (as reports
    show it)."""

    path: Path
    name: str


class MissingCacheDirError(Exception):
    """A cache directory that is not there: only recording creates one, so anything else that reads it stops
    here rather than report an empty cache (a typo in `--cache-dir` must not pass a CI check)."""

    def __init__(self, cache_dir: Path) -> None:
        reason = "is not a directory" if cache_dir.exists() else "does not exist"
        super().__init__(f"the cache directory {cache_dir} {reason}; only recording creates it")


def require_cache_dir(cache_dir: Path) -> Path:
    """`cache_dir`, once it is known to be a directory; MissingCacheDirError otherwise."""
    if not cache_dir.is_dir():
        raise MissingCacheDirError(cache_dir)
    return cache_dir


class SecretLeakError(Exception):
    """A cassette that would have written an API key to disk."""


class CassetteTooLargeError(Exception):
    """A cassette larger than the store reads back (`max_cassette_bytes`), which is therefore not written."""


class TakeWrite(enum.Enum):
    """What `CassetteStore.put_take` did with the file."""

    NEW = "new"  # there was no (readable) cassette: it is written with this one take
    CHANGED = "changed"  # the take was added or replaced, and the file rewritten
    UNCHANGED = "unchanged"  # the take replaced one equal in every material value: the file is left byte for byte
    FULL = "full"  # the cassette already has every take wanted (another writer's): the file is left as it was


T = TypeVar("T")


def with_take(takes: Sequence[T], take: T, take_index: int, takes_wanted: int, *, refresh: bool) -> list[T] | None:
    """A cassette's takes once `take` is placed, or None when it is full and this is no refresh: appended while
    there are fewer than `takes_wanted`; with `refresh`, replacing take `take_index` (past the end of a full
    cassette, the last). HTTP and session cassettes place their takes alike."""
    placed = list(takes)
    if refresh and take_index < len(placed):
        placed[take_index] = take
    elif len(placed) < takes_wanted:
        placed.append(take)
    elif refresh:
        placed[-1] = take
    else:
        return None
    return placed


class CassetteStore:
    """The cassettes under one directory."""

    def __init__(
        self,
        root: Path,
        *,
        redact_rules: Sequence[str] = (),
        max_cassette_bytes: int = DEFAULT_MAX_CASSETTE_BYTES,
        key_rules: KeyRules | None = None,
    ) -> None:
        """`key_rules` are those keys are computed under: a refresh compares stored requests as they see them."""
        self.root = Path(root)
        self.redact_rules = tuple(redact_rules)
        self.max_cassette_bytes = max_cassette_bytes
        self.key_rules = KeyRules.default() if key_rules is None else key_rules

    def locate(self, request: CanonicalRequest) -> Slot:
        name = relative_cassette_path(request, self.redact_rules)
        return Slot(self.root / name, name)

    def load(self, path: Path, key: str) -> Cassette | None:
        """The cassette at `path` for `key`, or None if there is none.

        Raises CassetteError, naming the file, if the file exists but cannot be used.
        """
        try:
            cassette = cassette_from_bytes(self.read_bytes(path))
        except (FileNotFoundError, NotADirectoryError):  # the latter: a file stands where the folder would be
            return None
        except CassetteError as error:
            raise CassetteError(f"{path}: {error}") from None
        if cassette.key != key:
            raise CassetteError(f"{path}: holds key {cassette.key[:12]}…, expected {key[:12]}…")
        return cassette

    def read_bytes(self, path: Path) -> bytes:
        """The bytes of the cassette file at `path`, read only if it is a regular file inside the directory and no
        larger than `max_cassette_bytes` (cassette_file.py); raises CassetteError saying what stands there
        otherwise, and FileNotFoundError or NotADirectoryError when nothing does."""
        return read_cassette_file(path, self.root, self.max_cassette_bytes)

    def save(self, cassette: Cassette, path: Path, *, replace: bool = False, secrets: Sequence[str] = ()) -> bool:
        """Write `cassette` at `path` atomically; False if another writer got there first.

        With `replace`, an existing file is overwritten (used for a cassette found corrupt). As a last check,
        SecretLeakError refuses to write bytes that contain any of `secrets` (the API keys in play).
        """
        return self._write_checked(cassette_to_bytes(cassette), cassette.key, path, replace=replace, secrets=secrets)

    def _write_checked(self, data: bytes, key: str, path: Path, *, replace: bool, secrets: Sequence[str]) -> bool:
        """Write a cassette's bytes atomically, unless they contain one of `secrets` (SecretLeakError) or are more
        than the store reads back (CassetteTooLargeError)."""
        if len(data) > self.max_cassette_bytes:
            raise CassetteTooLargeError(
                f"the cassette would be {len(data)} bytes, more than max_cassette_bytes ({self.max_cassette_bytes})"
            )
        if leaked_secret(data, secrets):
            # Not named by its file name: the name's slug comes from the prompt, which holds the key.
            raise SecretLeakError(
                f"refused to write the cassette for key {key[:KEY_PREFIX_CHARS]} in {path.parent}: "
                "it contains an API key"
            )
        return write_atomically(path, data, replace=replace)

    def put_take(
        self,
        recorded: Cassette,
        path: Path,
        *,
        take_index: int,
        takes_wanted: int,
        refresh: bool,
        secrets: Sequence[str] = (),
    ) -> tuple[TakeWrite, Cassette]:
        """Add `recorded`'s one take to the cassette at `path`; returns what was done and the cassette as it now
        is on disk.

        The take is appended while the cassette has fewer than `takes_wanted`, whatever index it was recorded
        for: another gate may have appended meanwhile, and an answer paid for is kept. With `refresh` it
        replaces take `take_index` instead (or, past the end of a full cassette, the last one), the request as
        just sent replaces the stored one, and the file is only rewritten when the material view changed. An
        unreadable file is replaced. Raises SecretLeakError like `save`.
        """
        with _locked_folder(path.parent):
            try:
                old_bytes = self.read_bytes(path)
                existing: Cassette | None = cassette_from_bytes(old_bytes)
            except (FileNotFoundError, NotADirectoryError, CassetteError):
                old_bytes, existing = b"", None
            if existing is None or existing.key != recorded.key:
                self.save(recorded, path, replace=True, secrets=secrets)
                return TakeWrite.NEW, recorded
            takes = with_take(existing.takes, recorded.takes[0], take_index, takes_wanted, refresh=refresh)
            if takes is None:
                return TakeWrite.FULL, existing
            updated = (recorded if refresh else existing).with_takes(takes)
            data = cassette_to_bytes(updated)
            # Only a refresh can leave the material unchanged: an appended take always changes it.
            if refresh and self._same_material(data, old_bytes):
                return TakeWrite.UNCHANGED, existing
            self._write_checked(data, updated.key, path, replace=True, secrets=secrets)
            return TakeWrite.CHANGED, updated

    def put_session_take(
        self,
        recorded: SessionCassette,
        slot: Slot,
        *,
        take_index: int,
        takes_wanted: int,
        refresh: bool,
        secrets: Sequence[str] = (),
    ) -> TakeWrite:
        """Add a recorded session's one take to the session cassette at `slot`, as `put_take` does for HTTP:
        appended while it has fewer than `takes_wanted`; with `refresh`, replacing take `take_index` (or, past
        the end of a full cassette, the last), and not rewritten when its material view is unchanged."""
        with _locked_folder(slot.path.parent):
            try:
                old_bytes = self.read_bytes(slot.path)
                existing: SessionCassette | None = session_from_bytes(old_bytes)
            except (FileNotFoundError, NotADirectoryError, CassetteError):
                old_bytes, existing = b"", None
            if existing is None or existing.key != recorded.key:
                self.save_session(recorded, slot, replace=True, secrets=secrets)
                return TakeWrite.NEW
            takes = with_take(existing.takes, recorded.takes[0], take_index, takes_wanted, refresh=refresh)
            if takes is None:
                return TakeWrite.FULL
            data = session_to_bytes((recorded if refresh else existing).with_takes(takes))
            if refresh and self._same_material(data, old_bytes):
                return TakeWrite.UNCHANGED
            self._write_checked(data, recorded.key, slot.path, replace=True, secrets=secrets)
            return TakeWrite.CHANGED

    def _same_material(self, data: bytes, old_bytes: bytes) -> bool:
        rules = self.key_rules
        return material_view(orjson.loads(data), rules) == material_view(orjson.loads(old_bytes), rules)

    def session_slot(self, cassette: SessionCassette) -> Slot:
        """`<endpoint>/<slug>.<key prefix>.json` for a WebSocket session, the slug from its client's first text."""
        slug = slugify(first_prompt(cassette.frames)) or "session"
        name = f"{folder_name(endpoint_name(cassette.path).lower())}/{slug}.{cassette.key[:KEY_PREFIX_CHARS]}.json"
        return Slot(self.root / name, name)

    def sessions(self, path: str) -> tuple[list[tuple[Slot, SessionCassette]], list[str]]:
        """The WebSocket sessions recorded at request path `path`, by name; and the problems of the files in that
        folder that could not be read as sessions (an HTTP cassette there is not one, and not a problem)."""
        folder = self.root / folder_name(endpoint_name(path).lower())
        found: list[tuple[Slot, SessionCassette]] = []
        problems: list[str] = []
        if not folder.is_dir():
            return found, problems
        for file in sorted(folder_cassettes(folder), key=lambda entry: entry.name):
            data = Path(file.path).read_bytes()
            if b'"websocket_session"' not in data:
                continue
            try:
                cassette = session_from_bytes(data)
            except CassetteError as error:
                problems.append(f"{file.path}: {error}")
                continue
            if cassette.path == path:
                found.append((Slot(Path(file.path), f"{folder.name}/{file.name}"), cassette))
        return found, problems

    def save_session(
        self, cassette: SessionCassette, slot: Slot, *, replace: bool, secrets: Sequence[str] = ()
    ) -> bool:
        """Write a session cassette atomically and durably; False if one with its key is there and not `replace`.
        SecretLeakError refuses bytes that hold one of `secrets`."""
        data = session_to_bytes(cassette)
        return self._write_checked(data, cassette.key, slot.path, replace=replace, secrets=secrets)

    def cassette_paths(self) -> list[Path]:
        """Every entry named like a cassette, in a stable (sorted) order."""
        return [slot.path for slot in self.slots()]

    def slots(self) -> list[Slot]:
        """Every entry named like a cassette with its name, in a stable (sorted) order: a directory, FIFO or link
        at a cassette's name is listed too, so that readers report it as corrupt rather than skip it."""
        slots = [
            Slot(Path(file.path), f"{folder.name}/{file.name}")
            for folder in self._endpoint_folders()
            for file in folder_cassettes(folder.path)
        ]
        slots.sort(key=lambda slot: slot.path)
        return slots

    def stray_files(self) -> list[Slot]:
        """The files in the endpoint folders that are not named like cassettes (nor hidden, as a write's temporary
        file is): a cassette renamed or copied by hand, which the gate never reads. Sorted by path."""
        strays = [
            Slot(Path(file.path), f"{folder.name}/{file.name}")
            for folder in self._endpoint_folders()
            for file in os.scandir(folder.path)
            if not CASSETTE_NAME.match(file.name) and not file.name.startswith(".")
        ]
        strays.sort(key=lambda slot: slot.path)
        return strays

    def count(self) -> int:
        """How many files are named like cassettes. No paths are built or sorted: the start-up banner shows this
        number, and for 100,000 cassettes that would take a second."""
        return sum(1 for _ in self._cassette_files())

    def _endpoint_folders(self) -> Iterator[os.DirEntry[str]]:
        """The endpoint folders, in directory order. A symlinked folder counts like a real one, because the gate
        serves from it and records into it: what is served is also listed, counted and cleared."""
        if not self.root.is_dir():
            return
        with os.scandir(self.root) as folders:
            yield from (folder for folder in folders if folder.is_dir())

    def _cassette_files(self) -> Iterator[os.DirEntry[str]]:
        """The files named like a cassette, one folder deep, in directory order."""
        for folder in self._endpoint_folders():
            yield from folder_cassettes(folder.path)

    def remove_temp_files(self) -> int:
        """Remove the temporary files a killed writer left behind (never linked into place); returns the count."""
        removed = 0
        for folder in list(self._endpoint_folders()):
            for leftover in Path(folder.path).iterdir():
                if TEMP_NAME.match(leftover.name):
                    leftover.unlink(missing_ok=True)
                    removed += 1
        return removed

    def clear(self) -> int:
        """Remove the cassettes (and leftover temporary files) the gate wrote; nothing else. Returns the count."""
        removed = 0
        for path in self.cassette_paths():
            if path.is_dir() and not path.is_symlink():  # not a cassette the gate wrote: the user's to look at
                continue
            path.unlink(missing_ok=True)
            removed += 1
        self.remove_temp_files()
        for folder in list(self._endpoint_folders()):
            if not folder.is_symlink():  # a linked folder is the user's; only its cassettes were ours
                with contextlib.suppress(OSError):
                    os.rmdir(folder.path)
        return removed


def folder_cassettes(folder: str | os.PathLike[str]) -> Iterator[os.DirEntry[str]]:
    """The entries named like a cassette in one endpoint folder, in directory order: the one listing that
    counting, reviewing and the nearest-request index all read. Whatever stands at such a name is listed, file or
    not, for the readers to report (`CassetteStore.read_bytes`)."""
    with os.scandir(folder) as files:
        yield from (file for file in files if CASSETTE_NAME.match(file.name))


@contextlib.contextmanager
def _locked_folder(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on `folder` (created if missing) against every other writer of takes, in this
    process (each call opens its own descriptor) and in others."""
    folder.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def write_atomically(path: Path, data: bytes, *, replace: bool) -> bool:
    """Write `data` so that `path` is either absent, or the old file, or the whole new file; never a torn one.

    Returns False, writing nothing, when `path` already exists and `replace` is false.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as temp_file:
            temp_file.write(data)
            temp_file.flush()
            os.fsync(temp_file.fileno())
        os.chmod(temp_name, 0o644)
        if replace:
            os.replace(temp_name, path)
            return True
        try:
            os.link(temp_name, path)
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
