import pytest

from inference_gate.core.dialects import Dialect
from inference_gate.core.routes import (
    OFFICIAL_UPSTREAMS,
    RouteConfigError,
    RouteSpec,
    RouteTable,
    UpstreamRoute,
    key_from_environment,
    parse_upstreams,
)

OLLAMA = {"ollama": {"url": "http://localhost:11434", "prefix": "/ollama"}}


def table(upstreams=None, *, openai_url="https://api.openai.com", **keys) -> RouteTable:
    return RouteTable.build(
        parse_upstreams(upstreams or {}),
        openai_url=openai_url,
        keys={Dialect(name): key for name, key in keys.items()},
    )


def test_the_issue_spelling_parses():
    specs = parse_upstreams({"anthropic": "https://api.anthropic.com", **OLLAMA})
    assert specs == {
        "anthropic": RouteSpec("https://api.anthropic.com"),
        "ollama": RouteSpec("http://localhost:11434", "/ollama"),
    }


@pytest.mark.parametrize(
    ("upstreams", "message"),
    [
        (["https://x"], "a mapping"),
        ({"ollama": "http://localhost:11434"}, "needs {url, prefix}"),
        ({"anthropic": {"url": "https://x", "prefix": "/a"}}, "takes no prefix"),
        ({"anthropic": "ftp://x"}, "http:// or https://"),
        ({"anthropic": "https://user:pw@x"}, "credentials"),
        ({"ollama": {"url": "http://x"}}, "prefix must be a path"),
        ({"ollama": {"url": "http://x", "prefix": "ollama"}}, "prefix must be a path"),
        ({"ollama": {"url": "http://x", "prefix": "/v1"}}, "starts like a dialect's own paths"),
        ({"ollama": {"url": "http://x", "prefix": "/openai"}}, "starts like a dialect's own paths"),
        ({"ollama": {"url": "http://x", "prefix": "/o", "key": "k"}}, "a URL, or {url, prefix}"),
        ({"Ollama": {"url": "http://x", "prefix": "/o"}}, "route name 'Ollama'"),
        ({"a": {"url": "http://x", "prefix": "/o"}, "b": {"url": "http://y", "prefix": "/o/"}}, "more than one"),
    ],
)
def test_a_bad_entry_is_refused_by_name(upstreams, message):
    with pytest.raises(RouteConfigError, match=message.replace("{", r"\{").replace("}", r"\}")):
        parse_upstreams(upstreams)


def test_defaults_need_no_config_and_a_missing_key_passes_the_client_credential():
    routes = table(openai="sk-openai")
    assert routes.route_for("/v1/chat/completions") == (
        UpstreamRoute("openai", OFFICIAL_UPSTREAMS[Dialect.OPENAI], api_key="sk-openai"),
        "/v1/chat/completions",
    )
    anthropic, target = routes.route_for("/v1/messages?beta=true")
    assert (anthropic.name, target) == ("anthropic", "/v1/messages?beta=true")
    assert anthropic.url == "https://api.anthropic.com"
    assert anthropic.passes_client_credential
    gemini, _ = routes.route_for("/v1beta/models/gemini-2.0-flash:generateContent")
    assert (gemini.name, gemini.url) == ("gemini", "https://generativelanguage.googleapis.com")


def test_each_dialect_has_its_own_key():
    routes = table(openai="o-key", anthropic="a-key", gemini="g-key")
    assert routes.route_for("/v1/responses")[0].api_key == "o-key"
    assert routes.route_for("/v1/messages/count_tokens")[0].api_key == "a-key"
    assert routes.route_for("/v1beta/models/m:streamGenerateContent")[0].api_key == "g-key"


def test_azure_without_an_endpoint_takes_the_openai_route_as_a_one_upstream_gate_did():
    routes = table(openai_url="https://res.openai.azure.com", openai="o-key", azure="az-key")
    route, _ = routes.route_for("/openai/deployments/d/chat/completions")
    assert (route.name, route.url, route.api_key) == ("openai", "https://res.openai.azure.com", "o-key")


def test_azure_with_an_endpoint_uses_its_own_key():
    routes = table({"azure": "https://res.openai.azure.com"}, openai="o-key", azure="az-key")
    route, _ = routes.route_for("/openai/v1/chat/completions")
    assert (route.name, route.url, route.api_key) == ("azure", "https://res.openai.azure.com", "az-key")


def test_the_upstreams_openai_entry_overrides_the_upstream_setting():
    routes = table({"openai": "http://127.0.0.1:9"}, openai_url="https://api.openai.com")
    assert routes.route_for("/v1/chat/completions")[0].url == "http://127.0.0.1:9"


@pytest.mark.parametrize(
    ("target", "forwarded"),
    [
        ("/ollama/v1/chat/completions", "/v1/chat/completions"),
        ("/ollama/v1/models?x=1", "/v1/models?x=1"),
        ("/ollama", "/"),
    ],
)
def test_a_named_route_is_chosen_by_its_prefix_which_is_removed(target, forwarded):
    route, sent = table(OLLAMA, openai="o-key").route_for(target)
    assert (route.name, sent) == ("ollama", forwarded)
    assert route.passes_client_credential


def test_a_prefix_matches_whole_segments_only():
    route, sent = table(OLLAMA).route_for("/ollamax/v1/chat/completions")
    assert (route.name, sent) == ("openai", "/ollamax/v1/chat/completions")


def test_the_banner_lines_name_every_route_once_and_whose_credential_it_sends():
    lines = table(OLLAMA, openai="o-key").describe()
    assert lines == [
        "openai: /v1/..., /openai/... -> https://api.openai.com (gate's key)",
        "anthropic: /v1/messages... -> https://api.anthropic.com (client's credential passed through)",
        "gemini: /v1beta/models/... -> https://generativelanguage.googleapis.com (client's credential passed "
        "through)",
        "ollama: /ollama/... -> http://localhost:11434 (client's credential passed through)",
    ]


@pytest.mark.parametrize(
    ("environ", "found"),
    [
        ({"GEMINI_API_KEY": "g1", "GOOGLE_API_KEY": "g2"}, ("g1", "GEMINI_API_KEY")),
        ({"GEMINI_API_KEY": "", "GOOGLE_API_KEY": "g2"}, ("g2", "GOOGLE_API_KEY")),
        ({}, (None, None)),
    ],
)
def test_the_gemini_key_comes_from_the_first_variable_set(environ, found):
    assert key_from_environment(Dialect.GEMINI, environ) == found
