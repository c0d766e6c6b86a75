"""What of a request and a response may reach the disk.

Cassettes are committed to git, so storage works from allow-lists: a header is stored only if it is known to be
safe and useful. Authorization, API keys, cookies and everything unknown never reach a cassette, whatever the
client or the upstream sends.

On top of that, the user's `redact` setting masks request-body JSON paths, request headers and query values in
the *stored* request. The request key is still computed from the real request, so two requests that differ only
in a redacted value get different keys but show the same masked value in their cassettes: the trade-off is that
a reviewer can no longer see what told them apart.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from inference_gate.core.dialects import CLIENT_CREDENTIAL_HEADERS
from inference_gate.core.http_models import Headers

REDACTED = "<redacted>"

# Anthropic's `anthropic-version` and `anthropic-beta` change what the API does, so a reviewer must see them.
STORED_REQUEST_HEADERS = frozenset(
    {"content-type", "openai-beta", "openai-organization", "openai-project", "anthropic-version", "anthropic-beta"}
)
STORED_RESPONSE_HEADERS = frozenset({"content-type", "x-request-id", "request-id", "apim-request-id"})
STORED_RESPONSE_HEADER_PREFIXES = ("openai-", "x-ratelimit-", "anthropic-ratelimit-")

_PATH_TOKEN = re.compile(r"\[(\*|\d+)\]|\.?([^.\[\]]+)")


# The shortest value the secret check treats as a credential: real OpenAI, Anthropic and Azure keys are at
# least this long, and anything shorter ("x", "test", "gpt") occurs in ordinary cassettes by chance.
MIN_CREDENTIAL_CHARS = 32


def is_credential_length(value: str) -> bool:
    """Whether `value` is long enough to be a real key, and so to be searched for in what is written."""
    return len(value) >= MIN_CREDENTIAL_CHARS


def _join_repeated(headers: Headers, keep: Callable[[str], bool]) -> dict[str, str]:
    stored: dict[str, str] = {}
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin-1").lower()
        if keep(name):
            value = raw_value.decode("latin-1")
            stored[name] = f"{stored[name]}, {value}" if name in stored else value
    return stored


def stored_request_headers(headers: Headers) -> dict[str, str]:
    """The request headers a cassette keeps: those that change what the API does, never credentials."""
    return _join_repeated(headers, STORED_REQUEST_HEADERS.__contains__)


def is_stored_response_header(name: str) -> bool:
    """Content type and the provider's own metadata (ids, rate limits); never cookies, framing or CDN noise."""
    return name in STORED_RESPONSE_HEADERS or name.startswith(STORED_RESPONSE_HEADER_PREFIXES)


def stored_response_headers(headers: Headers) -> dict[str, str]:
    """The response headers a cassette keeps."""
    return _join_repeated(headers, is_stored_response_header)


def parse_redact_path(path: str) -> list[str | int]:
    """`messages[*].content` -> ['messages', '*', 'content']; `[*]` matches every item of a list."""
    tokens: list[str | int] = []
    for index, name in _PATH_TOKEN.findall(path):
        if name:
            tokens.append(name)
        else:
            tokens.append("*" if index == "*" else int(index))
    return tokens


def _mask(value: Any, tokens: list[str | int]) -> None:
    head, rest = tokens[0], tokens[1:]
    if isinstance(value, dict) and isinstance(head, str) and head in value:
        children = [head]
    elif isinstance(value, list) and head == "*":
        children = list(range(len(value)))
    elif isinstance(value, list) and isinstance(head, int) and 0 <= head < len(value):
        children = [head]
    else:
        return
    for child in children:
        if rest:
            _mask(value[child], rest)
        else:
            value[child] = REDACTED


def redact_body(json_body: Any, rules: Sequence[str]) -> Any:
    """A copy of the request body with the `body.<json path>` rules applied (the body itself when none apply)."""
    body_paths = [path for kind, _, path in (rule.partition(".") for rule in rules) if kind == "body" and path]
    if not body_paths:
        return json_body
    json_body = copy.deepcopy(json_body)
    for path in body_paths:
        _mask(json_body, parse_redact_path(path))
    return json_body


def redact_request(
    headers: dict[str, str], query: Sequence[tuple[str, str]], json_body: Any, rules: Sequence[str]
) -> tuple[dict[str, str], list[tuple[str, str]], Any]:
    """The stored headers, query pairs and body with the user's `redact` rules applied.

    A rule is `headers.<name>`, `query.<name>` or `body.<json path>`; the original objects are left untouched.
    """
    header_names = _rule_paths(rules, "headers", str.lower)
    if any(name in headers for name in header_names):
        headers = {name: REDACTED if name in header_names else value for name, value in headers.items()}
    query_names = _rule_paths(rules, "query", str)
    stored_query = [(name, REDACTED if name in query_names else value) for name, value in query]
    return headers, stored_query, redact_body(json_body, rules)


def _rule_paths(rules: Sequence[str], kind: str, normalise: Callable[[str], str]) -> frozenset[str]:
    split_rules = (rule.partition(".") for rule in rules)
    return frozenset(normalise(path) for rule_kind, _, path in split_rules if rule_kind == kind)


def client_credentials(headers: Headers, query_credentials: Sequence[tuple[str, str]]) -> list[str]:
    """Every credential the client sent: the token of `Authorization` (any scheme), `api-key`, `x-api-key`,
    `x-goog-api-key`, each cookie's value, and the credential query values.

    These are what the last check looks for when the client's credentials are forwarded, in case the upstream
    echoes one back.
    """
    values: list[str] = [value for _, value in query_credentials]
    for raw_name, raw_value in headers:
        value = raw_value.decode("latin-1").strip()
        if raw_name == b"authorization":
            scheme, _, token = value.partition(" ")
            values.append(token.strip() or scheme)
        elif raw_name in CLIENT_CREDENTIAL_HEADERS:
            values.append(value)
        elif raw_name == b"cookie":
            values.extend(cookie.partition("=")[2].strip() for cookie in value.split(";"))
    return values


def leaked_secret(data: bytes, secrets: Sequence[str]) -> bool:
    """True if any secret long enough to be a credential appears in the bytes about to be written: the last line
    of defence. Shorter values ("x", "test") are placeholders that ordinary cassettes contain by chance."""
    return any(is_credential_length(secret) and secret.encode("utf-8") in data for secret in secrets)


# An ephemeral Realtime key, as `POST /v1/realtime/client_secrets` mints it for a browser to connect with.
_EPHEMERAL_KEY = re.compile(r"^ek_[A-Za-z0-9_-]{8,}$")
MASKED_EPHEMERAL_KEY = "ek_" + REDACTED


def without_ephemeral_keys(body: bytes) -> bytes:
    """A response body with every ephemeral key (`ek_...`) in it masked, for the cassette.

    The client that asked got the real key live; a replay hands out the masked one, which the gate (which ignores
    credentials on replay, and sends its own key upstream when it has one) does not need. A body that is not JSON,
    or holds no such key, comes back as it is.
    """
    if b'"ek_' not in body:
        return body
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    return orjson.dumps(_masked_ephemeral(document))


def _masked_ephemeral(value: Any) -> Any:
    if isinstance(value, str):
        return MASKED_EPHEMERAL_KEY if _EPHEMERAL_KEY.match(value) else value
    if isinstance(value, dict):
        return {name: _masked_ephemeral(child) for name, child in value.items()}
    if isinstance(value, list):
        return [_masked_ephemeral(child) for child in value]
    return value
