"""The route table: which upstream answers a request, and whose key the gate sends it with.

One gate serves every dialect on one port. A request's path already says its dialect (dialects.py), so each
dialect has a route of its own, to its provider's official host unless the `upstreams` setting names another:

    upstreams:
      anthropic: https://api.anthropic.com               # a dialect's route: name -> URL
      ollama: {url: "http://localhost:11434", prefix: /ollama}   # a named route: name -> {url, prefix}

OpenAI-compatible servers share OpenAI's paths, so a path cannot tell them apart: a named route claims a path
prefix instead. `/ollama/v1/chat/completions` goes to `http://localhost:11434/v1/chat/completions`; the prefix is
removed before forwarding and kept in the request key, so an Ollama answer never replays for OpenAI.

Each route has the gate's key for its provider when the gate has one (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`,
`GEMINI_API_KEY` or `GOOGLE_API_KEY`, `AZURE_OPENAI_API_KEY`); a route without one passes the client's own
credential through, so a missing key never stops the gate, it only changes whose key is used. A named route
always passes the client's credential through: the server behind it is the user's own.

Azure has no official host, each resource has its endpoint: without `upstreams.azure`, Azure's paths take the
OpenAI route (its URL and key), which is where a gate of one upstream sent them before routes existed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from inference_gate.core.dialects import Dialect, route_of
from inference_gate.core.upstream_url import UpstreamURL

OFFICIAL_UPSTREAMS: dict[Dialect, str] = {
    Dialect.OPENAI: "https://api.openai.com",
    Dialect.ANTHROPIC: "https://api.anthropic.com",
    Dialect.GEMINI: "https://generativelanguage.googleapis.com",
}
"""Where each dialect's route goes when the config names no upstream for it; Azure has no such host."""

KEY_VARIABLES: dict[Dialect, tuple[str, ...]] = {
    Dialect.OPENAI: ("OPENAI_API_KEY",),
    Dialect.ANTHROPIC: ("ANTHROPIC_API_KEY",),
    Dialect.GEMINI: ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    Dialect.AZURE: ("AZURE_OPENAI_API_KEY",),
}
"""The environment variables the gate takes each provider's key from, the first set one winning (Google's SDK
reads them in this order too)."""

ROUTE_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
_PREFIX_SEGMENT = re.compile(r"^[A-Za-z0-9._~-]+$")
_DIALECT_PATH_STARTS = frozenset({"openai", "models"})  # Azure's paths, and Gemini's unversioned ones


class RouteConfigError(ValueError):
    """An `upstreams` entry the gate cannot use; the message names the entry and says what was expected."""


@dataclass(frozen=True, slots=True)
class UpstreamRoute:
    """One upstream the gate forwards to: its name, the URL, the path prefix that selects it (named routes only)
    and the gate's own key for it (None: the client's credential passes through)."""

    name: str
    url: str
    prefix: str = ""
    api_key: str | None = None

    @property
    def passes_client_credential(self) -> bool:
        return not self.api_key


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """An `upstreams` entry as the config gives it, checked: the URL and, for a named route, its prefix."""

    url: str
    prefix: str = ""


def parse_upstreams(value: object) -> dict[str, RouteSpec]:
    """The `upstreams` setting: dialect names map to a URL, other names to `{url, prefix}`.

    Raises RouteConfigError naming the entry at fault: an unknown dialect spelled as a plain URL would otherwise
    quietly route nothing, and two routes claiming one prefix would make the choice depend on the file's order.
    """
    if not isinstance(value, Mapping):
        raise RouteConfigError("a mapping of route names to URLs or {url, prefix}")
    specs: dict[str, RouteSpec] = {}
    for name, entry in value.items():
        if not isinstance(name, str) or not ROUTE_NAME.match(name):
            raise RouteConfigError(f"route name {name!r}: lower-case letters, digits, '-' and '_', starting a letter")
        specs[name] = _route_spec(name, entry)
    prefixes = [spec.prefix for spec in specs.values() if spec.prefix]
    for prefix in prefixes:
        if prefixes.count(prefix) > 1:
            raise RouteConfigError(f"prefix {prefix} is claimed by more than one route")
    return specs


def _route_spec(name: str, entry: object) -> RouteSpec:
    is_dialect = name in Dialect.__members__.values()
    if isinstance(entry, str):
        if not is_dialect:
            raise RouteConfigError(
                f"{name}: a route that is not a dialect ({', '.join(Dialect)}) needs {{url, prefix}}, because "
                "only a prefix tells its requests from OpenAI's"
            )
        return RouteSpec(_checked_url(name, entry))
    if not isinstance(entry, Mapping) or not set(entry) <= {"url", "prefix"} or "url" not in entry:
        raise RouteConfigError(f"{name}: a URL, or {{url, prefix}}")
    url = _checked_url(name, entry["url"])
    if is_dialect:
        if "prefix" in entry:
            raise RouteConfigError(f"{name}: a dialect's route is chosen by its paths and takes no prefix")
        return RouteSpec(url)
    return RouteSpec(url, _checked_prefix(name, entry.get("prefix")))


def _checked_url(name: str, url: object) -> str:
    if not isinstance(url, str):
        raise RouteConfigError(f"{name}: the URL must be a string")
    try:
        UpstreamURL.parse(url)
    except ValueError as error:
        raise RouteConfigError(f"{name}: {error}") from None
    return url


def _checked_prefix(name: str, prefix: object) -> str:
    """`/ollama`: path segments that no dialect's own path starts with, so that no request is ambiguous."""
    expected = f"{name}: prefix must be a path such as /{name}"
    if not isinstance(prefix, str) or not prefix.startswith("/"):
        raise RouteConfigError(expected)
    segments = prefix.strip("/").split("/")
    if not all(_PREFIX_SEGMENT.match(segment) for segment in segments):
        raise RouteConfigError(expected)
    if _is_version_segment(segments[0]) or segments[0] in _DIALECT_PATH_STARTS:
        raise RouteConfigError(f"{name}: prefix {prefix} starts like a dialect's own paths; choose a name")
    return "/" + "/".join(segments)


def _is_version_segment(segment: str) -> bool:
    """Whether dialects.py reads `segment` as a path's version (`v1`, `v1beta`), where endpoint names start."""
    return route_of(f"/{segment}/endpoint").endpoint == "endpoint"


@dataclass(frozen=True, slots=True)
class RouteTable:
    """Every route of one gate: the dialects' own, then the named ones, as the banner lists them."""

    dialect_routes: Mapping[Dialect, UpstreamRoute]
    named_routes: tuple[UpstreamRoute, ...] = ()

    @classmethod
    def build(
        cls,
        upstreams: Mapping[str, RouteSpec],
        *,
        openai_url: str,
        keys: Mapping[Dialect, str | None],
    ) -> RouteTable:
        """The routes for the `upstreams` setting; `openai_url` is the OpenAI route's URL (the `upstream`
        setting, which the `upstreams` map's `openai` entry overrides) and `keys` the gate's key per dialect."""
        openai = UpstreamRoute(
            Dialect.OPENAI.value, upstreams[Dialect.OPENAI].url if Dialect.OPENAI in upstreams else openai_url,
            api_key=keys.get(Dialect.OPENAI),
        )  # fmt: skip
        routes = {Dialect.OPENAI: openai}
        for dialect in (Dialect.ANTHROPIC, Dialect.GEMINI):
            url = upstreams[dialect].url if dialect in upstreams else OFFICIAL_UPSTREAMS[dialect]
            routes[dialect] = UpstreamRoute(dialect.value, url, api_key=keys.get(dialect))
        if Dialect.AZURE in upstreams:
            routes[Dialect.AZURE] = UpstreamRoute(
                Dialect.AZURE.value, upstreams[Dialect.AZURE].url, api_key=keys.get(Dialect.AZURE)
            )
        else:
            routes[Dialect.AZURE] = openai
        named = tuple(
            UpstreamRoute(name, spec.url, spec.prefix)
            for name, spec in upstreams.items()
            if name not in Dialect.__members__.values()
        )
        return cls(routes, named)

    def route_for(self, target: str) -> tuple[UpstreamRoute, str]:
        """The route of a request target, and the target to send it (a named route's prefix removed)."""
        for route in self.named_routes:
            rest = target.removeprefix(route.prefix)
            if rest != target and rest[:1] in ("", "/", "?"):
                return route, rest if rest.startswith("/") else "/" + rest
        return self.dialect_routes[route_of(target.partition("?")[0]).dialect], target

    def route_name(self, path: str) -> str:
        """The name of the route that answers `path`: what a cassette records and `cache list` shows."""
        return self.route_for(path)[0].name

    @property
    def routes(self) -> list[UpstreamRoute]:
        """Each route once (Azure without its own endpoint is the OpenAI route), dialects first."""
        unique = {route.name: route for route in (*self.dialect_routes.values(), *self.named_routes)}
        return list(unique.values())

    def describe(self) -> list[str]:
        """One line per route for the banner: where its paths go, and whose credential it sends."""
        lines = []
        for route in self.routes:
            paths = f"{route.prefix}/..." if route.prefix else _DIALECT_PATHS[route.name]
            if route.name == Dialect.OPENAI and self.dialect_routes[Dialect.AZURE] is route:
                paths += ", /openai/..."
            whose = "client's credential passed through" if route.passes_client_credential else "gate's key"
            lines.append(f"{route.name}: {paths} -> {route.url} ({whose})")
        return lines


_DIALECT_PATHS = {
    Dialect.OPENAI.value: "/v1/...",
    Dialect.ANTHROPIC.value: "/v1/messages...",
    Dialect.GEMINI.value: "/v1beta/models/...",
    Dialect.AZURE.value: "/openai/...",
}


def key_from_environment(dialect: Dialect, environ: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The gate's key for `dialect` and the variable it came from; an empty variable counts as unset, as
    `OPENAI_API_KEY= cmd` is the usual way to hide one."""
    for variable in KEY_VARIABLES[dialect]:
        if environ.get(variable):
            return environ[variable], variable
    return None, None
