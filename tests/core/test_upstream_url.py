"""The upstream base URL: what the gate can forward to, refused at load time when it cannot be honoured."""

import pytest

from inference_gate.core.upstream_url import UpstreamURL


def test_a_plain_https_url_has_the_default_port_and_no_prefix():
    url = UpstreamURL.parse("https://api.openai.com")
    assert url == UpstreamURL("https", "api.openai.com", 443, "")
    assert url.host_header == b"api.openai.com"
    assert url.origin == "https://api.openai.com"


def test_a_path_is_a_prefix_without_its_trailing_slash_and_a_port_shows_in_the_host_header():
    url = UpstreamURL.parse("HTTP://127.0.0.1:8080/openai/")
    assert (url.scheme, url.port, url.path_prefix) == ("http", 8080, "/openai")
    assert url.host_header == b"127.0.0.1:8080"


def test_an_ipv6_host_is_bracketed_and_an_international_name_is_sent_in_idna():
    assert UpstreamURL.parse("http://[::1]:9000").host_header == b"[::1]:9000"
    assert UpstreamURL.parse("https://bücher.example").host == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://example.com", "must start with http:// or https://"),
        ("https://", "has no host"),
        ("https://user:pw@example.com", "must not contain credentials"),
        ("https://example.com?x=1", "must not contain credentials, a query"),
        ("https://example.com:99999", "invalid port"),
    ],
)
def test_a_url_the_client_cannot_honour_is_refused_saying_why(url, says):
    with pytest.raises(ValueError, match=says):
        UpstreamURL.parse(url)
