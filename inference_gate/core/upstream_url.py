"""The upstream base URL: the one rule for what the gate can forward to, used by config loading and the client.

It lives in the core, not in the client, so that a URL the client could not honour (credentials, a query) is
refused when the settings are loaded, with the same message wherever it was given.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class UpstreamURL:
    """Where the gate forwards misses: `https://host/openai` has the path prefix `/openai`."""

    scheme: str
    host: str
    port: int
    path_prefix: str

    @classmethod
    def parse(cls, url: str) -> UpstreamURL:
        """Parse an upstream base URL, rejecting anything the client cannot honour exactly."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            raise ValueError(f"upstream URL {url!r} must start with http:// or https://")
        if not parts.hostname:
            raise ValueError(f"upstream URL {url!r} has no host")
        if parts.username is not None or parts.query or parts.fragment:
            raise ValueError(f"upstream URL {url!r} must not contain credentials, a query or a fragment")
        try:
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"upstream URL {url!r} has an invalid port: {exc}") from None
        return cls(
            scheme=scheme,
            host=parts.hostname.encode("idna").decode("ascii"),
            port=_DEFAULT_PORTS[scheme] if port is None else port,
            path_prefix=parts.path.rstrip("/"),
        )

    @property
    def host_header(self) -> bytes:
        """The Host header: the host, with the port only when it is not the scheme's default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port != _DEFAULT_PORTS[self.scheme]:
            host = f"{host}:{self.port}"
        return host.encode("ascii")

    @property
    def origin(self) -> str:
        """`scheme://host[:port]`, for error messages."""
        return f"{self.scheme}://{self.host_header.decode('ascii')}"
