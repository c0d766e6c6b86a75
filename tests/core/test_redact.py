import re
from pathlib import Path

import orjson
import pytest

from inference_gate.core.redact import (
    MIN_CREDENTIAL_CHARS,
    REDACTED,
    STORED_REQUEST_HEADERS,
    STORED_RESPONSE_HEADER_PREFIXES,
    STORED_RESPONSE_HEADERS,
    client_credentials,
    leaked_secret,
    parse_redact_path,
    redact_request,
    stored_request_headers,
    stored_response_headers,
)


def test_credentials_and_unknown_request_headers_are_never_stored():
    headers = [
        (b"authorization", b"Bearer sk-secret"),
        (b"x-api-key", b"k"),
        (b"api-key", b"k"),
        (b"cookie", b"a=b"),
        (b"x-stainless-os", b"Linux"),
        (b"openai-beta", b"assistants=v2"),
        (b"content-type", b"application/json"),
    ]
    assert stored_request_headers(headers) == {"openai-beta": "assistants=v2", "content-type": "application/json"}


def test_response_keeps_openai_metadata_and_drops_cookies_and_cdn_noise():
    headers = [
        (b"content-type", b"application/json"),
        (b"openai-processing-ms", b"12"),
        (b"x-request-id", b"req_1"),
        (b"x-ratelimit-remaining-tokens", b"100"),
        (b"set-cookie", b"__cf_bm=x"),
        (b"cf-ray", b"abc"),
        (b"server", b"cloudflare"),
    ]
    assert stored_response_headers(headers) == {
        "content-type": "application/json",
        "openai-processing-ms": "12",
        "x-request-id": "req_1",
        "x-ratelimit-remaining-tokens": "100",
    }


def test_repeated_headers_are_joined():
    assert stored_request_headers([(b"openai-beta", b"a"), (b"openai-beta", b"b")]) == {"openai-beta": "a, b"}


def test_redact_paths_parse():
    assert parse_redact_path("messages[*].content") == ["messages", "*", "content"]
    assert parse_redact_path("messages[0].content") == ["messages", 0, "content"]
    assert parse_redact_path("user") == ["user"]


def test_redact_masks_body_paths_and_headers_without_touching_the_originals():
    body = {"user": "alice", "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}
    headers = {"openai-project": "proj_1"}
    stored_headers, _, stored_body = redact_request(
        headers, (), body, ["body.user", "body.messages[*].content", "headers.OpenAI-Project", "body.absent.path"]
    )
    assert stored_body == {"user": REDACTED, "messages": [{"role": "user", "content": REDACTED}] * 2}
    assert stored_headers == {"openai-project": REDACTED}
    assert body["user"] == "alice" and headers["openai-project"] == "proj_1"


def test_redact_with_an_index_masks_only_that_item():
    _, _, stored = redact_request(
        {}, (), {"messages": [{"content": "a"}, {"content": "b"}]}, ["body.messages[1].content"]
    )
    assert stored == {"messages": [{"content": "a"}, {"content": REDACTED}]}


LONG_KEY = "k" * MIN_CREDENTIAL_CHARS


def test_redact_masks_a_stored_query_value_by_name():
    query = (("api-version", "2024-06-01"), ("tenant", "acme"))
    _, stored_query, _ = redact_request({}, query, None, ["query.tenant"])
    assert stored_query == [("api-version", "2024-06-01"), ("tenant", REDACTED)]
    assert query[1] == ("tenant", "acme")


def test_client_credentials_are_every_credential_the_client_sent():
    headers = [
        (b"authorization", f"Basic {LONG_KEY}1".encode()),
        (b"api-key", f"{LONG_KEY}2".encode()),
        (b"x-api-key", f"{LONG_KEY}3".encode()),
        (b"x-goog-api-key", f"{LONG_KEY}4".encode()),
        (b"cookie", f"session={LONG_KEY}5; theme=dark".encode()),
        (b"openai-project", LONG_KEY.encode()),
    ]
    found = client_credentials(headers, [("key", f"{LONG_KEY}6")])
    assert sorted(found) == ["dark", *(f"{LONG_KEY}{n}" for n in range(1, 7))]


@pytest.mark.parametrize("placeholder", ["x", "test", "fake", "1", "gpt", "k" * (MIN_CREDENTIAL_CHARS - 1)])
def test_a_value_shorter_than_a_credential_is_not_looked_for(placeholder):
    assert not leaked_secret(f'{{"content": "{placeholder}"}}'.encode(), [placeholder])


def test_leak_check():
    assert leaked_secret(f'{{"a": "{LONG_KEY}"}}'.encode(), [LONG_KEY])
    assert not leaked_secret(f'{{"a": "{LONG_KEY[:-1]}"}}'.encode(), [LONG_KEY, ""])


def test_anthropic_headers_that_change_the_answer_are_stored_and_its_key_is_not():
    request = [
        (b"x-api-key", b"sk-ant-secret"),
        (b"anthropic-version", b"2023-06-01"),
        (b"anthropic-beta", b"prompt-caching-2024-07-31"),
        (b"x-stainless-os", b"Linux"),
    ]
    assert stored_request_headers(request) == {
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "prompt-caching-2024-07-31",
    }
    response = [
        (b"request-id", b"req_011"),
        (b"anthropic-ratelimit-requests-remaining", b"49"),
        (b"anthropic-organization-id", b"org-uuid"),
        (b"cf-ray", b"abc-AMS"),
    ]
    assert stored_response_headers(response) == {
        "request-id": "req_011",
        "anthropic-ratelimit-requests-remaining": "49",
    }


def test_the_readme_lists_every_header_a_cassette_stores():
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    start = readme.index("- Only the response headers worth keeping are stored:")
    bullet = " ".join(readme[start : readme.index("\n- ", start + 3)].split())
    listed = set(re.findall(r"`([a-z-]+\*?)`", bullet))
    prefixes = {f"{prefix}*" for prefix in STORED_RESPONSE_HEADER_PREFIXES}
    stored = {*STORED_REQUEST_HEADERS, *STORED_RESPONSE_HEADERS, *prefixes}
    assert listed == stored


def test_ephemeral_keys_are_masked_in_a_stored_body():
    from inference_gate.core.redact import MASKED_EPHEMERAL_KEY, without_ephemeral_keys

    body = orjson.dumps({"value": "ek_68af2e7c0bd4819", "session": {"client_secret": {"value": "ek_abcdefgh1234"}},
                         "note": "ek_ is the prefix"})
    masked = orjson.loads(without_ephemeral_keys(body))
    assert masked["value"] == masked["session"]["client_secret"]["value"] == MASKED_EPHEMERAL_KEY
    assert masked["note"] == "ek_ is the prefix"
    plain = b'{"value": "x"}'
    assert without_ephemeral_keys(plain) is plain
    assert without_ephemeral_keys(b'"ek_ not json') == b'"ek_ not json'
