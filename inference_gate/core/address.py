"""How the gate's own address is written and judged: pure helpers shared by serve/foreground.py and
serve/prompt_test.py.

They live in the core so that `test-upstream` and `test-gate` (serve/prompt_test.py) need not import the code that
runs a gate.
"""

from __future__ import annotations

import ipaddress


def host_and_port(host: str, port: int) -> str:
    """`127.0.0.1:8080`, or `[::1]:8080` for an IPv6 address, as it is written in a URL."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def gate_url(host: str, port: int) -> str:
    """The gate's base URL without `/v1`: `http://127.0.0.1:8080`."""
    return f"http://{host_and_port(host, port)}"


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach `host`; a name other than `localhost` is assumed not to be."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
