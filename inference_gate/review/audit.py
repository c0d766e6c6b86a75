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

A clean file, the common case, costs one lower-casing pass and one search per pattern, and no parsing: every
pattern starts with a literal (see `_Pattern`), which `re` skips to directly. Only a file with a finding is
parsed, to name the JSON path of each value. A finding shows the value masked, never whole, and the allow-list
(`audit_allow`) drops known false positives by value or by location. A credential split across stream events
(a few characters per chunk) or hidden in a base64 body is not found: the audit reads the file as stored.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from inference_gate.core.keys import CREDENTIAL_QUERY_PARAMETERS
from inference_gate.core.nearest import flatten_json
from inference_gate.core.redact import is_credential_length
from inference_gate.store.cassette_store import CassetteStore

KEY_VARIABLES = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AZURE_OPENAI_API_KEY")
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
        """The findings in one file's bytes, and how many more the allow-list dropped."""
        found = self._matches(data)
        if not found:
            return [], 0
        paths = _paths_of(data, [value for _, _, kind, value in found])
        findings = [
            Finding(name, path, kind, mask(value), value)
            for (_, _, kind, value), path in zip(found, paths, strict=True)
        ]
        kept = [finding for finding in findings if not self.is_allowed(finding)]
        return kept, len(findings) - len(kept)

    def _matches(self, data: bytes) -> list[tuple[int, int, str, str]]:
        """(start, end, kind, value) of each credential, in file order, overlapping matches resolved."""
        candidates: list[tuple[int, int, int, str, str]] = []  # start, precedence, end, kind, value
        for precedence, (kind, value) in enumerate(self._watched):
            start = data.find(value)
            while start != -1:
                candidates.append((start, precedence, start + len(value), kind, value.decode("utf-8", "replace")))
                start = data.find(value, start + 1)
        lowered = data.lower()
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


def audit_files(files: Iterable[tuple[str, Path]], scanner: CredentialScanner) -> AuditReport:
    """Scan each `(name, path)`; a file that cannot be read is a finding, since it was not audited."""
    findings: list[Finding] = []
    scanned = allowed = 0
    for name, path in files:
        try:
            data = path.read_bytes()
        except OSError as error:
            findings.append(Finding(name, UNKNOWN_PATH, f"unreadable file ({error.strerror})", "", ""))
            continue
        scanned += 1
        found, dropped = scanner.scan(name, data)
        findings += found
        allowed += dropped
    return AuditReport(scanned, tuple(findings), allowed)


def audit_store(cache_dir: Path, scanner: CredentialScanner) -> AuditReport:
    """Scan every cassette file under `cache_dir`, named as `cache list` names them."""
    return audit_files(((slot.name, slot.path) for slot in CassetteStore(cache_dir).slots()), scanner)
