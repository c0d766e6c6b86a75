"""The network guard: under the plugin, a test that reaches for a provider itself fails at once, naming the host.

A replay must never call a provider. Yet a client built with a hard-coded `base_url` (or by a library that builds
its own) ignores the variables that point SDKs at the gate; before the guard such a test passed in replay, and
the summary said `hits 0, recorded 0, misses 0`.

Like pytest-socket, the guard works at the socket level, beneath every HTTP client:

- at resolution, `socket.getaddrinfo` refuses a blocked host name before any DNS query is made;
- at connect, `socket.socket.connect` and `connect_ex` refuse a blocked address before any packet leaves: an
  upstream configured by IP address, or a name handed straight to `connect` (which resolves it in C, without
  `getaddrinfo`).

It has two levels. `on` (the default in replay) blocks the official provider hosts and the upstreams the gate is
configured with, and leaves everything else alone: a suite's database, its local services, other APIs. `strict`
blocks everything but the gate, unix sockets and the hosts the user allows, like pytest-recording's
`--block-network`. An allowed host is let through at either level.

A refusal raises `NetworkGuardError`, which is pytest's own test failure (a `BaseException`): SDKs retry on any
`Exception` and would turn the refusal into a generic connection error after their back-off, where this fails the
test at once with the host in its message. Each refusal is also kept (`take_refusals`), so that the plugin fails
a test whose code caught and swallowed it.

The gate itself runs in this process, in a thread, and in record mode calls upstreams: its trio run calls
`mark_gate_context`, trio copies that context into the gate's tasks and worker threads, and the guard lets it
through.
"""

from __future__ import annotations

import contextvars
import enum
import ipaddress
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest

GUARD_OPTION = "--inference-gate-guard"
ALLOW_OPTION = "--inference-gate-allow-host"
ALLOW_INI = "inference_gate_allow_hosts"

PROVIDER_HOSTS = frozenset({"api.openai.com", "api.anthropic.com", "generativelanguage.googleapis.com"})
"""The official hosts of the dialects the gate speaks (core.dialects)."""
PROVIDER_DOMAINS = (".openai.azure.com", ".cognitiveservices.azure.com")
"""Azure OpenAI has no one host: each resource has its own name under these domains."""

PROVIDER_REASON = "it is a provider's official host"
UPSTREAM_REASON = "it is an upstream the gate is configured with"
STRICT_REASON = "strict mode lets through only the gate, unix sockets and the allowed hosts"

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})
_GATE_CONTEXT: contextvars.ContextVar[bool] = contextvars.ContextVar("inference_gate_guard_exempt", default=False)


class GuardLevel(enum.Enum):
    ON = "on"
    STRICT = "strict"
    OFF = "off"


class NetworkGuardError(pytest.fail.Exception):  # type: ignore[misc,name-defined]
    """A connection the network guard refused; a test failure that `except Exception` does not catch."""


def mark_gate_context() -> None:
    """Let the current context, and every task and thread that inherits it, through the guard: the gate's own."""
    _GATE_CONTEXT.set(True)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A host (a lower-case name, or an IP address as written) and a port; None: any port."""

    host: str
    port: int | None


@dataclass(frozen=True, slots=True)
class Refusal:
    """One connection the guard refused: where to, and why."""

    host: str
    port: int | None
    reason: str

    @property
    def destination(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    def message(self, level: GuardLevel) -> str:
        advice = (
            ""
            if self.reason == STRICT_REASON
            else "Requests to a provider must go through the gate: build the client with no base_url (the SDKs' "
            "base-URL variables point at the gate) or with the `inference_gate` fixture's base_url. "
        )
        return (
            f"inference-gate network guard ({level.value}): refused a connection to {self.destination}: "
            f"{self.reason}. {advice}To allow this host: {ALLOW_OPTION}={self.host} (or the {ALLOW_INI} ini list); "
            f"to switch the guard off: {GUARD_OPTION}=off."
        )


@dataclass(frozen=True)
class GuardPolicy:
    """Which names and addresses a level refuses: pure decisions, with no socket in sight."""

    level: GuardLevel
    gate: Endpoint
    upstreams: tuple[Endpoint, ...] = ()
    allowed_hosts: frozenset[str] = frozenset()

    @classmethod
    def build(
        cls, level: GuardLevel, *, gate: Endpoint, upstream_urls: Iterable[str], allowed_hosts: Iterable[str]
    ) -> GuardPolicy:
        """A policy for `level` that knows the gate's own address, the configured upstreams (URLs) and the hosts
        the user allows (names or IP addresses)."""
        upstreams = tuple(endpoint for url in upstream_urls if (endpoint := endpoint_of(url)) is not None)
        return cls(level, gate, upstreams, frozenset(normal_host(host) for host in allowed_hosts if host.strip()))

    def refusal_for_name(self, host: str, port: int | None) -> str | None:
        """Why resolving (or connecting to) the name `host` for `port` is refused; None if it is not."""
        host = normal_host(host)
        if self.level is GuardLevel.OFF or host in self.allowed_hosts:
            return None
        if _is_ip_address(host):
            return self.refusal_for_address(host, port)
        if is_provider_host(host):
            return PROVIDER_REASON
        if any(self._matches_upstream(upstream, host, port) for upstream in self.upstreams):
            return UPSTREAM_REASON
        if self.level is GuardLevel.STRICT:
            return STRICT_REASON
        return None

    def refusal_for_address(
        self, address: str, port: int | None, *, allowed_addresses: frozenset[str] = frozenset()
    ) -> str | None:
        """Why connecting to the IP address `address` at `port` is refused; None if it is not.
        `allowed_addresses` are those an allowed name resolved to."""
        address = normal_host(address)
        if self.level is GuardLevel.OFF or address in self.allowed_hosts or address in allowed_addresses:
            return None
        if Endpoint(address, port) == self.gate:
            return None
        if any(self._matches_upstream_address(upstream, address, port) for upstream in self.upstreams):
            return UPSTREAM_REASON
        if self.level is GuardLevel.STRICT:
            return STRICT_REASON
        return None

    @staticmethod
    def _matches_upstream(upstream: Endpoint, host: str, port: int | None) -> bool:
        """A name matches an upstream of that name at its port. A lookup that names no port matches too, unless
        the upstream is on this machine, whose name other local services share."""
        if upstream.host != host:
            return False
        if port is None:
            return host not in _LOOPBACK_NAMES
        return upstream.port in (None, port)

    @staticmethod
    def _matches_upstream_address(upstream: Endpoint, address: str, port: int | None) -> bool:
        if upstream.host in _LOOPBACK_NAMES:
            same_host = ipaddress.ip_address(address).is_loopback
        else:
            same_host = upstream.host == address
        return same_host and port is not None and upstream.port in (None, port)


def is_provider_host(host: str) -> bool:
    return host in PROVIDER_HOSTS or host.endswith(PROVIDER_DOMAINS)


def endpoint_of(url: str) -> Endpoint | None:
    """The host and port a configured upstream URL connects to; None for a URL without a host."""
    parts = urlsplit(url)
    if not parts.hostname:
        return None
    try:
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:  # a port out of range: the gate refuses such a URL itself
        return None
    return Endpoint(normal_host(parts.hostname), port)


def normal_host(host: str | bytes) -> str:
    """A host as the policy compares it: text, lower case, without a trailing dot or IPv6 brackets, an IPv4
    address mapped into IPv6 written as IPv4."""
    text = host.decode("idna") if isinstance(host, bytes) else host
    text = text.strip().strip("[]").rstrip(".").lower()
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return text
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped or address)


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _port_number(port: object) -> int | None:
    """A getaddrinfo or connect port as a number: `443`, `b"443"`, `"https"`; None when none is named."""
    if isinstance(port, int):
        return port
    if isinstance(port, bytes):
        port = port.decode("ascii", "replace")
    if isinstance(port, str):
        if port.isdigit():
            return int(port)
        return _DEFAULT_PORTS.get(port.lower())
    return None


@dataclass
class NetworkGuard:
    """The policy applied to this process's sockets from `install` to `uninstall`."""

    policy: GuardPolicy
    _refusals: list[Refusal] = field(default_factory=list)
    _allowed_addresses: set[str] = field(default_factory=set)
    _originals: dict[str, Callable[..., Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self) -> None:
        """Wrap `socket.getaddrinfo` and `socket.socket.connect`/`connect_ex`; a no-op at level `off`."""
        if self.policy.level is GuardLevel.OFF or self._originals:
            return
        self._originals = {
            "getaddrinfo": socket.getaddrinfo,
            "connect": socket.socket.connect,
            "connect_ex": socket.socket.connect_ex,
        }
        getaddrinfo, connect, connect_ex = (self._originals[name] for name in ("getaddrinfo", "connect", "connect_ex"))
        guard = self

        def guarded_getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if host is None or _GATE_CONTEXT.get():
                return getaddrinfo(host, port, *args, **kwargs)
            name = normal_host(host)
            guard._check(name, _port_number(port), is_name=True)
            results = getaddrinfo(host, port, *args, **kwargs)
            if name in guard.policy.allowed_hosts:
                with guard._lock:
                    guard._allowed_addresses.update(normal_host(result[4][0]) for result in results)
            return results

        def guarded_connect(sock: socket.socket, address: Any) -> Any:
            guard._check_connect(sock, address)
            return connect(sock, address)

        def guarded_connect_ex(sock: socket.socket, address: Any) -> Any:
            guard._check_connect(sock, address)
            return connect_ex(sock, address)

        socket.getaddrinfo = guarded_getaddrinfo
        socket.socket.connect = guarded_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = guarded_connect_ex  # type: ignore[method-assign]

    def uninstall(self) -> None:
        """Put back what `install` wrapped."""
        if not self._originals:
            return
        socket.getaddrinfo = self._originals["getaddrinfo"]  # type: ignore[assignment]
        socket.socket.connect = self._originals["connect"]  # type: ignore[method-assign]
        socket.socket.connect_ex = self._originals["connect_ex"]  # type: ignore[method-assign]
        self._originals = {}

    def take_refusals(self) -> list[Refusal]:
        """The refusals since the last call, oldest first (the plugin asks after each test)."""
        with self._lock:
            refusals, self._refusals = self._refusals, []
        return refusals

    def _check_connect(self, sock: socket.socket, address: Any) -> None:
        if _GATE_CONTEXT.get() or sock.family == getattr(socket, "AF_UNIX", None):
            return
        if not isinstance(address, tuple) or len(address) < 2 or not isinstance(address[0], str | bytes):
            return
        host = normal_host(address[0])
        self._check(host, _port_number(address[1]), is_name=not _is_ip_address(host))

    def _check(self, host: str, port: int | None, *, is_name: bool) -> None:
        if is_name:
            reason = self.policy.refusal_for_name(host, port)
        else:
            with self._lock:
                allowed = frozenset(self._allowed_addresses)
            reason = self.policy.refusal_for_address(host, port, allowed_addresses=allowed)
        if reason is None:
            return
        refusal = Refusal(host, port, reason)
        with self._lock:
            self._refusals.append(refusal)
        raise NetworkGuardError(refusal.message(self.policy.level))


def add_guard_options(group: Any, parser: pytest.Parser) -> None:
    """The guard's command-line options and ini keys, in the plugin's option group."""
    group.addoption(
        GUARD_OPTION,
        dest="inference_gate_guard",
        metavar="LEVEL",
        help="Network guard: 'on' fails a test that connects to a provider's host or a configured upstream itself "
        "(default in replay), 'strict' lets through only the gate, unix sockets and allowed hosts, 'off' (default "
        "in record and refresh). Default: ini inference_gate_guard.",
    )
    group.addoption(
        ALLOW_OPTION,
        dest="inference_gate_allow_hosts",
        metavar="HOST",
        action="append",
        default=[],
        help=f"A host name or IP address the network guard lets through; may be repeated (and ini {ALLOW_INI}).",
    )
    parser.addini("inference_gate_guard", "Network guard level: on, strict or off (default: on in replay).")
    parser.addini(ALLOW_INI, "Hosts the network guard lets through, one a line.", type="linelist")


def guard_level(config: pytest.Config, *, replay: bool) -> GuardLevel:
    """The level asked for on the command line, else in the ini file, else `on` in replay and `off` otherwise."""
    name = config.getoption("inference_gate_guard") or config.getini("inference_gate_guard")
    if not name:
        return GuardLevel.ON if replay else GuardLevel.OFF
    try:
        return GuardLevel(name)
    except ValueError:
        choices = ", ".join(level.value for level in GuardLevel)
        raise pytest.UsageError(f"{GUARD_OPTION}: unknown level {name!r}; choose one of {choices}") from None


def allowed_hosts(config: pytest.Config) -> list[str]:
    return [*config.getini(ALLOW_INI), *config.getoption("inference_gate_allow_hosts")]
