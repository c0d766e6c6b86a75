"""Fixtures shared by every test module."""

import socket

import pytest
import trio

from inference_gate.core.routes import KEY_VARIABLES


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh home directory and no provider's API key in the environment, so nothing real is read or written."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))
    for variables in KEY_VARIABLES.values():
        for variable in variables:
            monkeypatch.delenv(variable, raising=False)
    return home


class NoNameResolves(trio.abc.HostnameResolver):
    """A resolver for which every name is unknown, as the system's says for a `.invalid` name.

    Numeric addresses never reach a custom resolver, so 127.0.0.1 keeps working; names fail without a DNS
    query leaving the machine.
    """

    async def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async def getnameinfo(self, sockaddr, flags):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


@pytest.fixture
async def offline_resolver():
    """Name resolution that fails locally, for tests of an unresolvable upstream."""
    previous = trio.socket.set_custom_hostname_resolver(NoNameResolves())
    yield
    trio.socket.set_custom_hostname_resolver(previous)
