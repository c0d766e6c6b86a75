import pytest

from inference_gate.core.dialects import Dialect
from inference_gate.core.forwarding import (
    HOP_BY_HOP,
    client_response_headers,
    upstream_request_headers,
    upstream_target,
)

SDK_REQUEST_HEADERS = [
    (b"host", b"127.0.0.1:8080"),
    (b"accept-encoding", b"gzip, deflate"),
    (b"connection", b"keep-alive"),
    (b"accept", b"application/json"),
    (b"content-type", b"application/json"),
    (b"user-agent", b"OpenAI/Python 1.109.0"),
    (b"x-stainless-lang", b"python"),
    (b"x-stainless-retry-count", b"0"),
    (b"authorization", b"Bearer sk-client"),
    (b"openai-organization", b"org-1"),
    (b"openai-project", b"proj-1"),
    (b"openai-beta", b"assistants=v2"),
    (b"content-length", b"42"),
]


def names(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    return [name for name, _ in headers]


def test_request_drops_every_hop_by_hop_header() -> None:
    headers = [(name, b"x") for name in sorted(HOP_BY_HOP)] + [(b"content-type", b"application/json")]

    assert upstream_request_headers(headers, api_key=None) == [
        (b"content-type", b"application/json"),
        (b"accept-encoding", b"identity"),
    ]


def test_request_drops_headers_named_in_connection() -> None:
    headers = [(b"connection", b"close, X-Private-Hop"), (b"x-private-hop", b"1"), (b"x-kept", b"2")]

    assert upstream_request_headers(headers, api_key=None) == [
        (b"x-kept", b"2"),
        (b"accept-encoding", b"identity"),
    ]


def test_request_drops_host_and_content_length_and_asks_for_identity() -> None:
    forwarded = upstream_request_headers(SDK_REQUEST_HEADERS, api_key=None)

    assert b"host" not in names(forwarded)
    assert b"content-length" not in names(forwarded)
    assert [value for name, value in forwarded if name == b"accept-encoding"] == [b"identity"]


def test_request_keeps_end_to_end_headers_in_order() -> None:
    forwarded = upstream_request_headers(SDK_REQUEST_HEADERS, api_key=None)

    assert forwarded == [
        (b"accept", b"application/json"),
        (b"content-type", b"application/json"),
        (b"user-agent", b"OpenAI/Python 1.109.0"),
        (b"x-stainless-lang", b"python"),
        (b"x-stainless-retry-count", b"0"),
        (b"authorization", b"Bearer sk-client"),
        (b"openai-organization", b"org-1"),
        (b"openai-project", b"proj-1"),
        (b"openai-beta", b"assistants=v2"),
        (b"accept-encoding", b"identity"),
    ]


def test_request_with_api_key_replaces_client_authorization() -> None:
    forwarded = upstream_request_headers(SDK_REQUEST_HEADERS, api_key="sk-gate")

    assert [value for name, value in forwarded if name == b"authorization"] == [b"Bearer sk-gate"]


def test_request_with_api_key_adds_authorization_when_client_sent_none() -> None:
    forwarded = upstream_request_headers([(b"content-type", b"application/json")], api_key="sk-gate")

    assert (b"authorization", b"Bearer sk-gate") in forwarded


def test_request_without_api_key_passes_client_authorization() -> None:
    forwarded = upstream_request_headers(SDK_REQUEST_HEADERS, api_key=None)

    assert [value for name, value in forwarded if name == b"authorization"] == [b"Bearer sk-client"]


UPSTREAM_RESPONSE_HEADERS = [
    (b"date", b"Tue, 01 Apr 2025 10:00:00 GMT"),
    (b"content-type", b"application/json"),
    (b"transfer-encoding", b"chunked"),
    (b"connection", b"keep-alive"),
    (b"content-encoding", b"gzip"),
    (b"content-length", b"120"),
    (b"openai-organization", b"org-1"),
    (b"openai-processing-ms", b"312"),
    (b"openai-version", b"2020-10-01"),
    (b"x-request-id", b"req_123"),
    (b"x-ratelimit-remaining-requests", b"9999"),
    (b"retry-after", b"2"),
    (b"retry-after-ms", b"1500"),
    (b"x-should-retry", b"false"),
    (b"set-cookie", b"__cf_bm=abc; path=/"),
    (b"set-cookie", b"_cfuvid=def; path=/"),
    (b"server", b"cloudflare"),
]


def test_response_keeps_what_sdks_use_and_drops_framing_encoding_and_cookies() -> None:
    assert client_response_headers(UPSTREAM_RESPONSE_HEADERS) == [
        (b"date", b"Tue, 01 Apr 2025 10:00:00 GMT"),
        (b"content-type", b"application/json"),
        (b"openai-organization", b"org-1"),
        (b"openai-processing-ms", b"312"),
        (b"openai-version", b"2020-10-01"),
        (b"x-request-id", b"req_123"),
        (b"x-ratelimit-remaining-requests", b"9999"),
        (b"retry-after", b"2"),
        (b"retry-after-ms", b"1500"),
        (b"x-should-retry", b"false"),
        (b"server", b"cloudflare"),
    ]


def test_response_drops_every_hop_by_hop_header_and_those_named_in_connection() -> None:
    headers = [(name, b"x") for name in sorted(HOP_BY_HOP)]
    headers += [(b"connection", b"x-hop"), (b"x-hop", b"1"), (b"x-request-id", b"req_1")]

    assert client_response_headers(headers) == [(b"x-request-id", b"req_1")]


@pytest.mark.parametrize(
    ("credential", "dialect"),
    [(b"api-key", Dialect.AZURE), (b"x-api-key", Dialect.ANTHROPIC), (b"x-goog-api-key", Dialect.GEMINI)],
)
def test_gate_key_replaces_the_placeholder_in_the_clients_own_scheme(credential: bytes, dialect: Dialect) -> None:
    client = [(b"content-type", b"application/json"), (credential, b"placeholder")]

    forwarded = upstream_request_headers(client, api_key="gate-key", dialect=dialect)

    assert [(name, value) for name, value in forwarded if name in (credential, b"authorization")] == [
        (credential, b"gate-key")
    ]


def test_gate_key_drops_every_client_credential_not_just_the_one_it_replaces() -> None:
    client = [(b"authorization", b"Bearer placeholder"), (b"x-api-key", b"other"), (b"api-key", b"third")]

    forwarded = upstream_request_headers(client, api_key="gate-key", dialect=Dialect.ANTHROPIC)

    assert b"placeholder" not in b"".join(value for _, value in forwarded)
    assert b"other" not in b"".join(value for _, value in forwarded)
    assert b"third" not in b"".join(value for _, value in forwarded)
    # One header carries the gate's key: the first credential header the client sent.
    assert [(name, value) for name, value in forwarded if value.endswith(b"gate-key")] == [
        (b"authorization", b"Bearer gate-key")
    ]


def test_without_gate_key_every_client_credential_passes() -> None:
    client = [(b"x-api-key", b"client-key"), (b"anthropic-version", b"2023-06-01")]

    assert upstream_request_headers(client, api_key=None, dialect=Dialect.ANTHROPIC)[:2] == client


def test_gate_key_drops_the_clients_query_credentials_and_keeps_the_rest() -> None:
    target = "/v1beta/models/m:streamGenerateContent?alt=sse&key=placeholder&api-version=1"

    assert upstream_target(target, api_key="gate-key") == "/v1beta/models/m:streamGenerateContent?alt=sse&api-version=1"
    assert upstream_target("/v1beta/models/m:generateContent?key=placeholder", api_key="gate-key") == (
        "/v1beta/models/m:generateContent"
    )
    assert upstream_target(target, api_key=None) == target
