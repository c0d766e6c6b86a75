"""The request key: which recorded exchange answers a request.

The key is the SHA-256 of a canonical form of the request:

    inference-gate/key/v1
    <METHOD> <path>
    <query pairs, sorted, url-encoded>
    json:<body parsed and re-serialised with sorted keys and no whitespace>   (a JSON body)
    bytes:<body as sent>                                                     (any other body)

So key order and whitespace in a JSON body never change the key, while every value does (`stream`, `model`,
`temperature`, the messages...). Headers are not part of the key: the SDK's `x-stainless-*` headers change from
run to run, and the API key must not decide what is replayed. orjson's output is the same on every machine and
Python version, so a key computed in CI equals the one computed when the cassette was recorded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson

KEY_SCHEME = b"inference-gate/key/v1\n"


@dataclass(frozen=True, slots=True)
class CanonicalRequest:
    """A request reduced to what identifies it, with its key.

    `json_body` is the parsed body when `is_json`; the raw `body` is kept for forwarding upstream.
    """

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    body: bytes
    is_json: bool
    json_body: Any
    key: str


def canonical_query(query: str) -> tuple[tuple[str, str], ...]:
    """The query's pairs in sorted order, so `?b=2&a=1` and `?a=1&b=2` are the same request."""
    return tuple(sorted(parse_qsl(query, keep_blank_values=True)))


def parse_json_body(body: bytes) -> tuple[bool, Any]:
    """(True, value) when the body is JSON orjson can read, else (False, None).

    An empty body is not JSON. Integers wider than 64 bits are outside what orjson reads; such a body is then
    keyed by its bytes, which is stable too.
    """
    if not body:
        return False, None
    try:
        return True, orjson.loads(body)
    except orjson.JSONDecodeError:
        return False, None


def canonicalize(method: str, target: str, body: bytes) -> CanonicalRequest:
    """Parse the request once and compute its key."""
    path, _, query_string = target.partition("?")
    query = canonical_query(query_string)
    is_json, json_body = parse_json_body(body)
    digest = hashlib.sha256(KEY_SCHEME)
    digest.update(f"{method.upper()} {path}\n{urlencode(query)}\n".encode())
    if is_json:
        digest.update(b"json:")
        digest.update(orjson.dumps(json_body, option=orjson.OPT_SORT_KEYS))
    else:
        digest.update(b"bytes:")
        digest.update(body)
    return CanonicalRequest(
        method=method.upper(),
        path=path,
        query=query,
        body=body,
        is_json=is_json,
        json_body=json_body,
        key=digest.hexdigest(),
    )
