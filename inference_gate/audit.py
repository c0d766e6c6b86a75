"""`cache audit`: credentials that reached a cassette, found before the cassette reaches a commit.

The gate never writes its key or the client's bearer token (see store.py), but a cassette can still carry a
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
  list, when at least `MIN_ENV_VALUE_CHARS` long (shorter ones would match ordinary text).

A key's shape includes its length and, for `sk-` keys, a digit: a prompt about scikit-learn (`sk-learn`) or a
slug like `sk-my-notes` is not a key. Masked values (`sk-abc****1234`, `<redacted>`) do not match.

All patterns are one regular expression run once over each file's bytes: a clean file, the common case, costs
one pass and no parsing. Only a file with a finding is parsed, to name the JSON path of each value. A finding
shows the value masked, never whole, and the allow-list (`audit_allow`) drops known false positives by value
or by location.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from inference_gate.nearest import flatten_json
from inference_gate.store import CassetteStore

KEY_VARIABLES = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AZURE_OPENAI_API_KEY")
MIN_ENV_VALUE_CHARS = 32
UNKNOWN_PATH = "?"

_CREDENTIAL_PARAMETERS = rb"api[-_]?key|key|access[-_]token|token|sig|signature|client[-_]secret|secret|password"
_HEADERS = rb"proxy-authorization|authorization|x-api-key|api-key|x-goog-api-key|set-cookie|cookie"
_TOKEN_START = rb"(?<![A-Za-z0-9_-])"
_TOKEN_END = rb"(?![A-Za-z0-9_-])"
# (group, kind, pattern); a group's value is the whole match unless a `<group>_value` group is in it.
_PATTERNS: tuple[tuple[str, str, bytes], ...] = (
    ("anthropic", "Anthropic API key", _TOKEN_START + rb"sk-ant-[A-Za-z0-9_-]{20,}"),
    (
        "openai",
        "OpenAI API key",
        _TOKEN_START + rb"sk-(?:proj-|svcacct-|admin-)?(?=[A-Za-z_-]*[0-9])[A-Za-z0-9_-]{20,}" + _TOKEN_END,
    ),
    ("google", "Google API key", _TOKEN_START + rb"AIza[0-9A-Za-z_-]{35}" + _TOKEN_END),
    ("aws", "AWS access key", rb"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])"),
    ("github", "GitHub token", _TOKEN_START + rb"(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})"),
    ("jwt", "JWT", rb"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    ("bearer", "Bearer token", rb"(?i:bearer)\s+[A-Za-z0-9._~+/=-]{16,}"),
    (
        "header",
        "header",
        rb"(?i:(?P<header_name>" + _HEADERS + rb'))"?\s*:\s*"?(?P<header_value>(?:[A-Za-z]+ )?[^\s"\\,;]{8,})',
    ),
    (
        "url",
        "credential query parameter",
        rb"[?&](?i:(?P<url_name>" + _CREDENTIAL_PARAMETERS + rb"))=(?P<url_value>[^&\s\"\\#]{8,})",
    ),
    (
        "pair",
        "credential query parameter",
        rb'\[\s*"(?i:(?P<pair_name>' + _CREDENTIAL_PARAMETERS + rb'))"\s*,\s*"(?P<pair_value>[^"\\]{8,})"',
    ),
)


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


def watched_values(environ: Mapping[str, str], extra_variables: Sequence[str] = ()) -> dict[str, str]:
    """The current values of the key variables and `extra_variables` that are long enough to be credentials."""
    values = {}
    for variable in (*KEY_VARIABLES, *extra_variables):
        value = environ.get(variable, "")
        if len(value) >= MIN_ENV_VALUE_CHARS:
            values[variable] = value
    return values


class CredentialScanner:
    """The audit's patterns, with the watched environment values and the allow-list, compiled once."""

    def __init__(self, env_values: Mapping[str, str] | None = None, allow: Sequence[str] = ()) -> None:
        self.allow = tuple(allow)
        self._kinds = {group: kind for group, kind, _ in _PATTERNS}
        parts = []
        for index, (variable, value) in enumerate((env_values or {}).items()):
            self._kinds[f"env{index}"] = f"value of ${variable}"
            parts.append(rb"(?P<env%d>%s)" % (index, re.escape(value.encode())))
        parts += [rb"(?P<%s>%s)" % (group.encode(), pattern) for group, _, pattern in _PATTERNS]
        self._pattern = re.compile(b"|".join(parts))

    def scan(self, name: str, data: bytes) -> tuple[list[Finding], int]:
        """The findings in one file's bytes, and how many more the allow-list dropped."""
        matches = list(self._pattern.finditer(data))
        if not matches:
            return [], 0
        found = []
        for match in matches:
            group = match.lastgroup or ""
            value = (match.groupdict().get(f"{group}_value") or match.group(group)).decode("utf-8", "replace")
            kind = self._kinds[group]
            if group in ("header", "url", "pair"):
                parameter = match.group(f"{group}_name").decode().lower()
                kind = f"{parameter} header" if group == "header" else f"{kind} {parameter!r}"
            found.append((kind, value))
        paths = _paths_of(data, [value for _, value in found])
        findings = [
            Finding(name, path, kind, mask(value), value) for (kind, value), path in zip(found, paths, strict=True)
        ]
        kept = [finding for finding in findings if not self.is_allowed(finding)]
        return kept, len(findings) - len(kept)

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
    paths = CassetteStore(cache_dir).cassette_paths()
    return audit_files(((f"{path.parent.name}/{path.name}", path) for path in paths), scanner)
