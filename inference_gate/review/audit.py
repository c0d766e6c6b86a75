"""`cache audit`: credentials that reached a cassette, found before the cassette reaches a commit.

The gate never writes its key or a credential the client sent (see store.py), but a cassette can still carry a
credential: a key pasted into a prompt, a token in an upstream's reply, a file edited by hand, a header or
query parameter the gate has not heard of. The audit looks, in the bytes of every cassette, for:

- provider keys by their shape: OpenAI (`sk-`, `sk-proj-`, `sk-svcacct-`, `sk-admin-`), Anthropic
  (`sk-ant-`), Google (`AIza`), AWS access key ids (`AKIA`, `ASIA`), GitHub tokens (`ghp_` and kin,
  `github_pat_`), and JWTs;
- `Bearer` values, and `Authorization`, `Proxy-Authorization`, `api-key`, `x-api-key`, `x-goog-api-key`,
  `Cookie` and `Set-Cookie` headers anywhere: as a JSON key or as a header line inside a text;
- credential query parameters (`key`, `api-key`, `api_key`, `access_token`, `token`, `sig`, ...) in a URL or
  in a stored `query` pair;
- the literal current values of the environment variables in `KEY_VARIABLES` and the config's `audit_env`
  list, when at least `redact.MIN_CREDENTIAL_CHARS` long (shorter ones would match ordinary text).

A key's shape includes its length and, for `sk-` keys, a digit: a prompt about scikit-learn (`sk-learn`) or a
slug like `sk-my-notes` is not a key. Masked values (`sk-abc****1234`, the `redact` setting's `<redacted>`) do
not match.

Besides the bytes as stored, the audit reads what they stand for once decoded (decoded_text.py): the base64
the gate itself writes (`body_base64`) and any base64 in a string, URL-encoded text (`sk%2Dproj%2D...`), and each
streamed field with its events' pieces joined, since a stream can cut a key anywhere (`sk-` | `proj-...`). A
finding there names the JSON path of the encoded string and says how it was decoded. Every pattern starts with a
literal, which `re` skips to directly, and the encoded runs are found in the bytes as stored: a file is parsed
only when it holds a stream, or a decoded run holds a credential whose JSON path is to be named.

Every file under the cache directory is audited, not only those named like cassettes: a credential in a stray
file reaches a commit as surely. A finding shows the value masked, never whole, and the allow-list
(`audit_allow`) drops known false positives by value or by location. `mask_credentials` hides what the audit
would flag in any text, and every review output (`cache list`, `show`, `diff`) goes through it.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import re
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from inference_gate.core.cassette import CassetteError
from inference_gate.core.keys import CREDENTIAL_QUERY_PARAMETERS
from inference_gate.core.nearest import flatten_json
from inference_gate.core.redact import is_credential_length
from inference_gate.core.routes import KEY_VARIABLES as PROVIDER_KEY_VARIABLES
from inference_gate.review.decoded_text import decoded_runs, joined_stream_fields, string_leaves
from inference_gate.store.cassette_store import CASSETTE_NAME, DEFAULT_MAX_CASSETTE_BYTES, CassetteStore

MIN_PRINTABLE_CHARS = 8
"""A decoded run holds text only with this many printable ASCII characters in a row: every credential's shape
is longer (the shortest, a header's value, is 8)."""
KEY_VARIABLES = tuple(variable for variables in PROVIDER_KEY_VARIABLES.values() for variable in variables)
UNKNOWN_PATH = "?"

CREDENTIAL_PARAMETERS = tuple(sorted(CREDENTIAL_QUERY_PARAMETERS))
TOKEN_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
HEADER_NAME_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyz-")
_TOKEN_END = rb"(?![A-Za-z0-9_-])"
_HEADER_VALUE = rb'"?\s*:\s*"?(?P<value>(?:[a-z]+ )?[^\s"\\,;<]{8,})'


def _one_of(names: tuple[str, ...]) -> bytes:
    return b"|".join(re.escape(name.encode()) for name in sorted(names, key=len, reverse=True))


@dataclass(frozen=True, slots=True)
class _Pattern:
    """A credential's shape.

    Every regex starts with a literal, which `re` finds at memchr speed; one starting with a class or a
    lookbehind would be tried at every byte of every file. So the boundaries a regex cannot start with are
    checked after a match: `token` means the match must not follow a token character, `header` that the name
    is extended back over the header-name characters before it (`x-` in `x-api-key`). A `lowered` regex runs
    on the lower-cased bytes (same offsets), for names matched in any case. A `value` group, when there is
    one, is the credential; a `name` group names the header or the query parameter.
    """

    kind: str
    regex: re.Pattern[bytes]
    lowered: bool = False
    token: bool = False
    header: bool = False


def _pattern(kind: str, regex: bytes, **flags: bool) -> _Pattern:
    return _Pattern(kind, re.compile(regex), **flags)


# In order of precedence: where two matches overlap, the earlier one in the file wins, then the earlier here.
_PATTERNS = (
    _pattern("Anthropic API key", rb"sk-ant-[A-Za-z0-9_-]{20,}", token=True),
    _pattern(
        "OpenAI API key",
        rb"sk-(?:proj-|svcacct-|admin-)?(?=[A-Za-z_-]*[0-9])[A-Za-z0-9_-]{20,}" + _TOKEN_END,
        token=True,
    ),
    _pattern("Google API key", rb"AIza[0-9A-Za-z_-]{35}" + _TOKEN_END, token=True),
    _pattern("AWS access key", rb"A(?:KIA|SIA)[A-Z0-9]{16}(?![A-Z0-9])", token=True),
    _pattern("GitHub token", rb"gh[pousr]_[A-Za-z0-9]{36,}", token=True),
    _pattern("GitHub token", rb"github_pat_[A-Za-z0-9_]{40,}", token=True),
    _pattern("JWT", rb"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    _pattern("header", rb"(?P<name>authorization)" + _HEADER_VALUE, lowered=True, header=True),
    _pattern("header", rb"(?P<name>api-key)" + _HEADER_VALUE, lowered=True, header=True),
    _pattern("header", rb"(?P<name>cookie)" + _HEADER_VALUE, lowered=True, header=True),
    _pattern("Bearer token", rb"bearer\s+[a-z0-9._~+/=-]{16,}", lowered=True),
    _pattern(
        "credential query parameter",
        rb"=(?P<value>[^&\s\"\\#]{8,})",  # the name before `=` is checked after the match
        lowered=True,
    ),
    _pattern(
        "credential query parameter",
        rb'\[\s*"(?i:(?P<name>' + _one_of(CREDENTIAL_PARAMETERS) + rb'))"\s*,\s*"(?P<value>[^"\\]{8,})"',
    ),
)
_URL_PARAMETER = re.compile(rb"[?&](?P<name>" + _one_of(CREDENTIAL_PARAMETERS) + rb")$")
_ANY_PATTERN_START = re.compile(
    rb"sk-|aiza|a[ks]ia|gh[pousr]_|github_pat_|eyj|authorization|api-key|cookie|bearer"
    rb"|[?&](?:" + _one_of(CREDENTIAL_PARAMETERS) + rb")=|\[\s*\"(?:" + _one_of(CREDENTIAL_PARAMETERS) + rb')"'
)
"""What every pattern's match starts with, lower-cased: one pass that rules out a decoded view holding none."""
_PRINTABLE_STRETCH = re.compile(rb"[\x20-\x7e]{%d}" % MIN_PRINTABLE_CHARS)


@dataclass(frozen=True, slots=True)
class Finding:
    """A credential in a cassette: where (`name`, JSON `path`), what (`kind`) and `masked`, its masked form.

    `value` is kept for the allow-list only; it is never printed and is not part of `as_json`.
    """

    name: str
    path: str
    kind: str
    masked: str
    value: str = field(repr=False)

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "path": self.path, "kind": self.kind, "masked": self.masked}


@dataclass(frozen=True, slots=True)
class AuditReport:
    scanned: int
    findings: tuple[Finding, ...]
    allowed: int

    @property
    def files_with_findings(self) -> int:
        return len({finding.name for finding in self.findings})


def mask(value: str) -> str:
    """Enough of a value to recognise it, never enough to use it: `sk-pro…3210 (51 chars)`."""
    prefix, suffix = min(6, len(value) // 4), min(4, len(value) // 8)
    return f"{value[:prefix]}…{value[len(value) - suffix :] if suffix else ''} ({len(value)} chars)"


def _credential(pattern: _Pattern, match: re.Match[bytes], data: bytes, lowered: bytes) -> tuple[str, int, str] | None:
    """(kind, start, value) of a match once its boundaries are checked; None when they fail."""
    start = match.start()
    value_start, value_end = match.span("value") if "value" in pattern.regex.groupindex else match.span()
    value = data[value_start:value_end].decode("utf-8", "replace")
    kind = pattern.kind
    if pattern.token and start > 0 and data[start - 1] in TOKEN_CHARS:
        return None
    if pattern.header:
        while start > 0 and lowered[start - 1] in HEADER_NAME_CHARS:
            start -= 1
        kind = f"{lowered[start : match.end('name')].decode()} header"
    elif "name" in pattern.regex.groupindex:
        kind = f"{kind} {match.group('name').decode().lower()!r}"
    elif kind == "credential query parameter":
        parameter = _URL_PARAMETER.search(lowered, max(0, start - 32), start)
        if parameter is None:
            return None
        start = parameter.start()
        kind = f"{kind} {parameter.group('name').decode()!r}"
    return kind, start, value


def watched_values(environ: Mapping[str, str], extra_variables: Sequence[str] = ()) -> dict[str, str]:
    """The current values of the key variables and `extra_variables` that are long enough to be credentials."""
    values = {}
    for variable in (*KEY_VARIABLES, *extra_variables):
        value = environ.get(variable, "")
        if is_credential_length(value):
            values[variable] = value
    return values


class CredentialScanner:
    """The audit's patterns, with the watched environment values and the allow-list."""

    def __init__(self, env_values: Mapping[str, str] | None = None, allow: Sequence[str] = ()) -> None:
        self.allow = tuple(allow)
        self._watched = [(f"value of ${variable}", value.encode()) for variable, value in (env_values or {}).items()]

    def scan(self, name: str, data: bytes) -> tuple[list[Finding], int]:
        """The findings in one file, as stored and decoded, and how many more the allow-list dropped."""
        found = self._matches(data)
        paths = _paths_of(data, [value for _, _, _, value in found]) if found else []
        findings = [
            Finding(name, path, kind, mask(value), value)
            for (_, _, kind, value), path in zip(found, paths, strict=True)
        ]
        seen = [value for _, _, _, value in found]
        for path, kind, value in self._decoded_matches(data):
            if not any(value in known or known in value for known in seen):
                seen.append(value)
                findings.append(Finding(name, path, kind, mask(value), value))
        kept = [finding for finding in findings if not self.is_allowed(finding)]
        return kept, len(findings) - len(kept)

    def _decoded_matches(self, data: bytes) -> list[tuple[str, str, str]]:
        """(path, kind, value) of each credential in the decoded views of a file (see decoded_text.py).

        The encoded runs are looked for in the file's bytes (JSON escapes nothing base64 or URL-encoding
        uses), so the file is walked for paths only when a decoded run holds a credential, and for its streams
        only when it has some.
        """
        found: list[tuple[bytes, str, str]] = []  # encoded run, kind, value
        decoded_seen: set[bytes] = set()
        for run in decoded_runs(data):
            # A stream repeats its ids in every event; an id or a word decoded as base64 is noise with no text in it.
            if run.text not in decoded_seen and _PRINTABLE_STRETCH.search(run.text):
                decoded_seen.add(run.text)
                encoded = data[run.start : run.end]
                found += [(encoded, f"{kind} ({run.how})", value) for _, _, kind, value in self._matches(run.text)]
        has_streams = b'"events"' in data or b'"frames"' in data
        if not (found or has_streams):
            return []
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError:
            return [(UNKNOWN_PATH, kind, value) for _, kind, value in found]
        leaves = list(string_leaves(document)) if found else []
        located = [(_path_holding(leaves, encoded.decode()), kind, value) for encoded, kind, value in found]
        for path, text in joined_stream_fields(document):
            located += [
                (path, f"{kind} (split across stream events)", value)
                for _, _, kind, value in self._matches(text.encode())
            ]
        return located

    def mask(self, text: str) -> str:
        """`text` with every credential the audit would flag in it masked, plain or encoded (see `mask`)."""
        data = text.encode()
        spans = [(start, end, value) for start, end, _, value in self._matches(data)]
        for run in decoded_runs(data):
            spans += [(run.start, run.end, value) for _, _, _, value in self._matches(run.text)[:1]]
        if not spans:
            return text
        pieces, position = [], 0
        for start, end, value in sorted(spans):
            if start < position:
                continue  # inside a span already masked
            segment, encoded_value, masked = data[start:end], value.encode(), mask(value).encode()
            # A plain match keeps its context (a header's name); an encoded run is replaced whole.
            masked_segment = segment.replace(encoded_value, masked) if encoded_value in segment else masked
            pieces += [data[position:start], masked_segment]
            position = end
        pieces.append(data[position:])
        return b"".join(pieces).decode("utf-8", "replace")

    def _matches(self, data: bytes) -> list[tuple[int, int, str, str]]:
        """(start, end, kind, value) of each credential, in file order, overlapping matches resolved."""
        candidates: list[tuple[int, int, int, str, str]] = []  # start, precedence, end, kind, value
        for precedence, (kind, value) in enumerate(self._watched):
            start = data.find(value)
            while start != -1:
                candidates.append((start, precedence, start + len(value), kind, value.decode("utf-8", "replace")))
                start = data.find(value, start + 1)
        lowered = data.lower()
        if not candidates and _ANY_PATTERN_START.search(lowered) is None:
            return []
        for precedence, pattern in enumerate(_PATTERNS, start=len(self._watched)):
            for match in pattern.regex.finditer(lowered if pattern.lowered else data):
                found = _credential(pattern, match, data, lowered)
                if found is not None:
                    kind, start, value = found
                    candidates.append((start, precedence, match.end(), kind, value))
        accepted: list[tuple[int, int, str, str]] = []
        for start, _, end, kind, value in sorted(candidates):
            if not accepted or start >= accepted[-1][1]:
                accepted.append((start, end, kind, value))
        return accepted

    def is_allowed(self, finding: Finding) -> bool:
        """An allow-list entry is the flagged value itself, or a location glob: `NAME` or `NAME:JSON_PATH`."""
        location = f"{finding.name}:{finding.path}"
        return any(
            entry == finding.value or fnmatch.fnmatchcase(location, entry) or fnmatch.fnmatchcase(finding.name, entry)
            for entry in self.allow
        )


def _paths_of(data: bytes, values: list[str]) -> list[str]:
    """The JSON path of each value, in order: the n-th occurrence of a value is in the n-th leaf holding it."""
    try:
        leaves = [(path, leaf) for path, leaf in flatten_json(orjson.loads(data)).items() if isinstance(leaf, str)]
    except orjson.JSONDecodeError:
        return [UNKNOWN_PATH] * len(values)
    seen: dict[str, int] = {}
    paths = []
    for value in values:
        holding = [path for path, leaf in leaves if value in leaf]
        occurrence = seen.get(value, 0)
        seen[value] = occurrence + 1
        paths.append(holding[min(occurrence, len(holding) - 1)] if holding else UNKNOWN_PATH)
    return paths


def _path_holding(leaves: list[tuple[str, str]], text: str) -> str:
    return next((path for path, leaf in leaves if text in leaf), UNKNOWN_PATH)


def audit_files(
    files: Iterable[tuple[str, Path]], scanner: CredentialScanner, read: Callable[[Path], bytes] = Path.read_bytes
) -> AuditReport:
    """Scan each `(name, path)`, read with `read`; a file that cannot be read is a finding, since it was not
    audited.

    Only a regular file is opened (not followed through a link): a FIFO would block the read, and a link to a
    device could be read without end.
    """
    findings: list[Finding] = []
    scanned = allowed = 0
    for name, path in files:
        try:
            if not stat.S_ISREG(path.lstat().st_mode):
                findings.append(Finding(name, UNKNOWN_PATH, "not a regular file (not audited)", "", ""))
                continue
            data = read(path)
        except OSError as error:
            findings.append(Finding(name, UNKNOWN_PATH, f"unreadable file ({error.strerror})", "", ""))
            continue
        except CassetteError as error:  # not a regular file in the directory, or too large to read
            findings.append(Finding(name, UNKNOWN_PATH, f"unreadable file ({error})", "", ""))
            continue
        scanned += 1
        found, dropped = scanner.scan(name, data)
        findings += found
        allowed += dropped
    return AuditReport(scanned, tuple(findings), allowed)


def audit_store(
    cache_dir: Path, scanner: CredentialScanner, *, max_cassette_bytes: int = DEFAULT_MAX_CASSETTE_BYTES
) -> AuditReport:
    """Scan every file under `cache_dir`, cassette or not, named by its path relative to it; `.git` is skipped
    and links to folders are not followed. A folder standing at a cassette's name is reported, not entered, and
    a file is read no further than `max_cassette_bytes` (CassetteStore.read_bytes)."""
    files = []
    for folder, folder_names, file_names in os.walk(cache_dir):
        folder_names[:] = [name for name in folder_names if name != ".git"]
        standing_in = [name for name in folder_names if CASSETTE_NAME.match(name)]
        folder_names[:] = [name for name in folder_names if name not in standing_in]
        for file_name in [*file_names, *standing_in]:
            path = Path(folder, file_name)
            files.append((path.relative_to(cache_dir).as_posix(), path))
    store = CassetteStore(cache_dir, max_cassette_bytes=max_cassette_bytes)
    return audit_files(sorted(files), scanner, store.read_bytes)


_DEFAULT_SCANNER = CredentialScanner()


def mask_credentials(text: str) -> str:
    """`text` with every credential the audit's patterns flag in it masked: what every review output prints."""
    return _DEFAULT_SCANNER.mask(text)


def masked_copy(value: Any) -> Any:
    """Review data (strings, dicts, lists, tuples, dataclasses of them) with `mask_credentials` applied to every
    string, as a copy: what `cache list`, `cache show` and `cache diff` print in every format."""
    if isinstance(value, str):
        return mask_credentials(value)
    if isinstance(value, dict):
        return {name: masked_copy(child) for name, child in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(masked_copy(child) for child in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {item.name: masked_copy(getattr(value, item.name)) for item in dataclasses.fields(value) if item.init}
        return dataclasses.replace(value, **changes)
    return value
