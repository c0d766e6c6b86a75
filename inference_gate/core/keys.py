"""The request key: which recorded exchange answers a request.

The key is the SHA-256 of a canonical form of the request:

    inference-gate/key/v2
    rules:<the key rules in force: KeyRules.canonical_form, which includes KEY_RULES_VERSION>
    <METHOD> <path>
    <query pairs after the key rules, credentials left out, sorted, url-encoded>
    json:<body after the key rules, re-serialised with sorted keys and no whitespace>       (a JSON body)
    multipart:<[[name, filename, content type, content SHA-256], ...] of its fields, as JSON> (multipart/form-data)
    bytes:<body as sent>                                                                    (any other body)

So key order and whitespace in a JSON body never change the key, nor does a multipart boundary, while every value
does (`stream`, `model`, `temperature`, the messages...) unless a key rule says otherwise (key_rules.py). The rules
are in the form because changing them changes what a key means. Headers are not part of the key: the SDK's
`x-stainless-*` headers change from run to run, and the API key must not decide what is replayed.

For the same reason, credential query parameters (`?key=` for Gemini, `?api-key=`, `?sig=`...) are not in the key
either: a user's key must not decide which cassette answers, and the same request recorded by two developers must
get the same name. They are kept apart in `CanonicalRequest.credentials`, out of `query`, so that what is stored
from `query` never holds one, and the last check before a write can look for their values.

A Responses request that continues an earlier answer (`previous_response_id`) is keyed by the cassette that
holds that answer rather than by the id the upstream minted for it, when the caller knows that cassette
(`chained`): see chains.py. The form of a request that does not chain is unchanged by this.

A JSON body may nest at most MAX_JSON_DEPTH containers deep; a deeper one raises JsonTooDeepError rather than
reaching a recursion limit somewhere later. orjson's output is the same on every machine and Python version, so
a key computed in CI equals the one computed when the cassette was recorded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson

from inference_gate.core.chains import chained_response_id, with_chain_reference
from inference_gate.core.key_rules import KeyRules
from inference_gate.core.multipart import FormField, is_multipart, key_form, parse_multipart

KEY_SCHEME = b"inference-gate/key/v2\n"

MAX_JSON_DEPTH = 128
"""Well inside orjson's limits (it reads 1,024 levels and writes 254) and Python's recursion limit."""

CREDENTIAL_QUERY_PARAMETERS = frozenset(
    {
        "access-token",
        "access_token",
        "api-key",
        "api_key",
        "apikey",
        "client-secret",
        "client_secret",
        "id_token",
        "key",
        "password",
        "refresh_token",
        "secret",
        "sig",
        "signature",
        "token",
        "x-api-key",
        "x-goog-api-key",
    }
)
"""Query parameter names (compared case-insensitively) that carry a credential; `api-version` and the like do not."""


class JsonTooDeepError(ValueError):
    """A JSON body nested deeper than MAX_JSON_DEPTH."""

    def __init__(self) -> None:
        super().__init__(f"The JSON body is nested more than {MAX_JSON_DEPTH} levels deep, the gate's limit.")


@dataclass(frozen=True, slots=True)
class CanonicalRequest:
    """A request reduced to what identifies it, with its key.

    `query`, `json_body` and `form` are the real request (for the cassette), with credential query parameters
    moved to `credentials`; the raw `body` is kept for forwarding upstream. `key_query` and `key_json_body` are
    what the key was computed from, after the key rules, and `rule_changes` the paths where the rules changed
    something (`body.messages[0].content`, `query.request_id`).
    """

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    credentials: tuple[tuple[str, str], ...]
    body: bytes
    is_json: bool
    json_body: Any
    form: tuple[FormField, ...] | None
    key_query: tuple[tuple[str, str], ...]
    key_json_body: Any
    rule_changes: tuple[str, ...]
    key: str


def canonical_query(query: str) -> tuple[tuple[str, str], ...]:
    """The query's pairs in sorted order, so `?b=2&a=1` and `?a=1&b=2` are the same request."""
    return tuple(sorted(parse_qsl(query, keep_blank_values=True)))


def is_credential_parameter(name: str) -> bool:
    return name.lower() in CREDENTIAL_QUERY_PARAMETERS


def parsed_nests_deeper_than(source: bytes | str, value: Any, limit: int) -> bool:
    """`nests_deeper_than` for `value` parsed from the JSON text `source`, walked only when `source` has more than
    `limit` opening brackets: each nested list or dict opens with one (brackets inside strings only add to the
    count), so a body with fewer cannot nest deeper, and counting bytes costs far less than walking every value."""
    if isinstance(source, bytes):
        brackets = source.count(b"[") + source.count(b"{")
    else:
        brackets = source.count("[") + source.count("{")
    return brackets > limit and nests_deeper_than(value, limit)


def nests_deeper_than(value: Any, limit: int) -> bool:
    """True if `value` holds more than `limit` nested lists and dicts; iterative, so any depth is safe."""
    pending = [(value, 1)] if isinstance(value, (dict, list)) else []
    while pending:
        container, depth = pending.pop()
        if depth > limit:
            return True
        children = container.values() if isinstance(container, dict) else container
        pending.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def parse_json_body(body: bytes) -> tuple[bool, Any]:
    """(True, value) when the body is JSON orjson can read, else (False, None).

    An empty body is not JSON. Integers wider than 64 bits are outside what orjson reads; such a body is then
    keyed by its bytes, which is stable too. A body nested deeper than MAX_JSON_DEPTH raises JsonTooDeepError,
    including one so deep that orjson stops reading it.
    """
    if not body:
        return False, None
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        if str(error).startswith("depth limit exceeded"):
            raise JsonTooDeepError() from None
        return False, None
    if parsed_nests_deeper_than(body, value, MAX_JSON_DEPTH):
        raise JsonTooDeepError()
    return True, value


def _digest(method: str, path: str, key_query: tuple[tuple[str, str], ...], rules: KeyRules, body_line: bytes) -> str:
    """The SHA-256 of the canonical form; `body_line` is its last line, `json:...`, `multipart:...` or `bytes:...`."""
    digest = hashlib.sha256(KEY_SCHEME)
    digest.update(b"rules:" + rules.canonical_form + b"\n")
    digest.update(f"{method.upper()} {path}\n{urlencode(key_query)}\n".encode())
    digest.update(body_line)
    return digest.hexdigest()


def _split_target(target: str) -> tuple[str, tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    """(path, query pairs without credentials, credential pairs)."""
    path, _, query_string = target.partition("?")
    pairs = canonical_query(query_string)
    query = tuple(pair for pair in pairs if not is_credential_parameter(pair[0]))
    return path, query, tuple(pair for pair in pairs if is_credential_parameter(pair[0]))


def canonicalize(
    method: str,
    target: str,
    body: bytes,
    *,
    content_type: str | None = None,
    rules: KeyRules | None = None,
    chained: Callable[[str], str | None] | None = None,
) -> CanonicalRequest:
    """Parse the request once and compute its key under `rules` (KeyRules.default() when None).

    `chained` gives the key of the cassette that produced a response id, or None for an id it does not know; with
    it, a request that continues such an answer is keyed by that cassette (chains.py).

    Raises JsonTooDeepError for a JSON body nested too deep, and multipart.MultipartError for a
    multipart/form-data body (by `content_type`) that cannot be parsed.
    """
    rules = KeyRules.default() if rules is None else rules
    path, query, credentials = _split_target(target)
    form = parse_multipart(body, content_type) if content_type and is_multipart(content_type) else None
    is_json, json_body = parse_json_body(body) if form is None else (False, None)
    keyed = rules.apply(json_body, query)
    producer = _producer(json_body, chained) if is_json else None
    if producer is not None:
        keyed = replace(keyed, json_body=with_chain_reference(keyed.json_body, producer))
    if is_json:
        body_line = b"json:" + orjson.dumps(keyed.json_body, option=orjson.OPT_SORT_KEYS)
    elif form is not None:
        body_line = b"multipart:" + orjson.dumps(key_form(form))
    else:
        body_line = b"bytes:" + body
    return CanonicalRequest(
        method=method.upper(),
        path=path,
        query=query,
        credentials=credentials,
        body=body,
        is_json=is_json,
        json_body=json_body,
        form=form,
        key_query=keyed.query,
        key_json_body=keyed.json_body,
        rule_changes=keyed.changed_paths,
        key=_digest(method, path, keyed.query, rules, body_line),
    )


def _producer(json_body: Any, chained: Callable[[str], str | None] | None) -> str | None:
    """The key of the cassette whose answer the request continues, when the request chains and it is known."""
    chained_id = chained_response_id(json_body)
    if chained is None or chained_id is None or not isinstance(json_body, dict):
        return None
    return chained(chained_id)


def multipart_key(method: str, target: str, form_key: list[list[str | None]], *, rules: KeyRules | None = None) -> str:
    """The key `canonicalize` gives a multipart request whose form has this key form.

    A cassette stores a form by its files' hashes, not their bytes (multipart.stored_form), so recomputing the key
    of a recorded upload, after a rule change, starts from `multipart.key_form_of_stored` rather than the body.
    """
    rules = KeyRules.default() if rules is None else rules
    path, query, _ = _split_target(target)
    key_query = rules.apply(None, query).query
    return _digest(method, path, key_query, rules, b"multipart:" + orjson.dumps(form_key))
