"""Which headers cross the proxy, in each direction.

A proxy joins two separate HTTP connections, so headers that describe one connection (hop-by-hop headers,
RFC 9110 section 7.6.1) and the headers that frame a body must not leak to the other side: the gate frames
every body itself. Everything else is end-to-end and passes untouched, because the OpenAI SDKs and the API
both rely on it (organisation and project routing, beta flags, request ids, retry hints).
"""

from __future__ import annotations

from urllib.parse import unquote_plus

from inference_gate.core.dialects import (
    CLIENT_CREDENTIAL_HEADERS,
    Dialect,
    auth_header,
    auth_value,
)
from inference_gate.core.http_models import Headers
from inference_gate.core.keys import is_credential_parameter

HOP_BY_HOP: frozenset[bytes] = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)

# The upstream client sets Host and Content-Length for its own connection, and the gate asks for an
# uncompressed body so that cassettes hold readable text.
_REQUEST_HEADERS_SET_BY_GATE = frozenset({b"host", b"content-length", b"accept-encoding"})

# The gate decodes gzip/deflate and re-frames the body; cookies are CDN noise that no SDK needs.
_RESPONSE_HEADERS_DROPPED = frozenset({b"content-length", b"content-encoding", b"set-cookie"})


def upstream_request_headers(
    client_headers: Headers, *, api_key: str | None, dialect: Dialect = Dialect.OPENAI
) -> Headers:
    """The headers to send upstream for a request whose client sent `client_headers`.

    With `api_key`, the gate authenticates with its own key in the header scheme the client used (Azure's
    `api-key`, Anthropic's `x-api-key`, Gemini's `x-goog-api-key`, else `Authorization: Bearer`), and every
    credential the client sent, a placeholder, is dropped: a real upstream refuses a request that carries
    two keys, or checks the wrong one. Without `api_key`, the client's own credentials pass through.
    """
    dropped = HOP_BY_HOP | _REQUEST_HEADERS_SET_BY_GATE | _named_in_connection(client_headers)
    if api_key:
        dropped |= CLIENT_CREDENTIAL_HEADERS
    headers = [(name, value) for name, value in client_headers if name not in dropped]
    headers.append((b"accept-encoding", b"identity"))
    if api_key:
        scheme = auth_header(dialect, client_headers)
        headers.append((scheme, auth_value(scheme, api_key)))
    return headers


def upstream_target(target: str, *, api_key: str | None) -> str:
    """The request target to send upstream: with the gate's own `api_key`, without the client's credential
    query parameters (Gemini's `?key=`), which hold a placeholder; otherwise exactly as the client sent it."""
    path, separator, query = target.partition("?")
    if not api_key or not separator:
        return target
    kept = [
        pair
        for pair in query.split("&")
        if not is_credential_parameter(unquote_plus(pair.partition("=")[0]))
    ]
    return f"{path}?{'&'.join(kept)}" if kept else path


def client_response_headers(upstream_headers: Headers) -> Headers:
    """The headers of a live upstream response that the gate passes back to its client."""
    dropped = HOP_BY_HOP | _RESPONSE_HEADERS_DROPPED | _named_in_connection(upstream_headers)
    return [(name, value) for name, value in upstream_headers if name not in dropped]


def _named_in_connection(headers: Headers) -> frozenset[bytes]:
    """Header names listed in `Connection:`, which the sender declared hop-by-hop for this connection."""
    names: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            names.update(token.strip().lower() for token in value.split(b","))
    names.discard(b"")
    return frozenset(names)


# A browser cannot set headers on a WebSocket, so Realtime accepts the key as a subprotocol offered by the client.
INSECURE_KEY_SUBPROTOCOL_PREFIX = "openai-insecure-api-key."
# The handshake headers the upstream WebSocket client sets for its own connection.
_WEBSOCKET_HANDSHAKE_HEADERS = frozenset(
    {b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-extensions", b"sec-websocket-protocol"}
)


def upstream_websocket_headers(
    client_headers: Headers, *, api_key: str | None, dialect: Dialect = Dialect.OPENAI
) -> Headers:
    """The headers to open the upstream WebSocket with: as for a request (`upstream_request_headers`), without
    the handshake headers, which belong to each side's own connection."""
    headers = upstream_request_headers(client_headers, api_key=api_key, dialect=dialect)
    return [(name, value) for name, value in headers if name not in _WEBSOCKET_HANDSHAKE_HEADERS]


def upstream_subprotocols(offered: list[str], *, api_key: str | None) -> list[str]:
    """The subprotocols to offer upstream: the client's, without its key when the gate sends its own."""
    if not api_key:
        return list(offered)
    return [protocol for protocol in offered if not protocol.startswith(INSECURE_KEY_SUBPROTOCOL_PREFIX)]


def subprotocol_credentials(offered: list[str]) -> list[str]:
    """The keys a client offered as subprotocols, which must never reach the disk."""
    return [
        protocol.removeprefix(INSECURE_KEY_SUBPROTOCOL_PREFIX)
        for protocol in offered
        if protocol.startswith(INSECURE_KEY_SUBPROTOCOL_PREFIX)
    ]
