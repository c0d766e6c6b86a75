"""The network guard: its policy as plain decisions, then its socket wrappers on this process's sockets.

No test here reaches a real host. Name lookups go to a stand-in resolver installed beneath the guard, which
records what it is asked and answers 127.0.0.1; connections go to listeners on 127.0.0.1, and whether a refused
one left the machine is read from the listener's queue (nothing to accept means no handshake happened).
"""

from __future__ import annotations

import contextvars
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from inference_gate.pytest_plugin.network_guard import (
    PROVIDER_REASON,
    STRICT_REASON,
    UPSTREAM_REASON,
    Endpoint,
    GuardLevel,
    GuardPolicy,
    NetworkGuard,
    NetworkGuardError,
    mark_gate_context,
    normal_host,
)
from tests.pytest_plugin.test_plugin import project, recording, run, run_in_a_fresh_process  # noqa: F401 - fixtures

pytest_plugins = ["pytester"]

GATE = Endpoint("127.0.0.1", 8123)


def policy(level: GuardLevel = GuardLevel.ON, *, upstreams: tuple[str, ...] = (), allowed: tuple[str, ...] = ()):
    return GuardPolicy.build(level, gate=GATE, upstream_urls=upstreams, allowed_hosts=allowed)


@pytest.mark.parametrize(
    "host", ["api.openai.com", "API.OpenAI.com.", "api.anthropic.com", "generativelanguage.googleapis.com",
             "my-resource.openai.azure.com", "my-resource.cognitiveservices.azure.com"],
)  # fmt: skip
def test_the_providers_official_hosts_are_refused_by_name(host: str) -> None:
    assert policy().refusal_for_name(host, 443) == PROVIDER_REASON


@pytest.mark.parametrize("host", ["db.internal", "localhost", "example.com", "openai.com.evil.test"])
def test_other_hosts_pass_at_the_default_level(host: str) -> None:
    assert policy().refusal_for_name(host, 5432) is None


def test_a_configured_upstream_is_refused_at_its_port_by_name_and_by_address() -> None:
    guard_policy = policy(upstreams=("https://llm.corp.test", "http://10.1.2.3:8000/v1"))
    assert guard_policy.refusal_for_name("llm.corp.test", 443) == UPSTREAM_REASON
    assert guard_policy.refusal_for_name("llm.corp.test", None) == UPSTREAM_REASON
    assert guard_policy.refusal_for_name("llm.corp.test", 5432) is None
    assert guard_policy.refusal_for_address("10.1.2.3", 8000) == UPSTREAM_REASON
    assert guard_policy.refusal_for_name("10.1.2.3", 8000) == UPSTREAM_REASON
    assert guard_policy.refusal_for_address("10.1.2.3", 22) is None


def test_an_upstream_on_this_machine_blocks_only_its_port() -> None:
    guard_policy = policy(upstreams=("http://localhost:11434",))
    assert guard_policy.refusal_for_name("localhost", 11434) == UPSTREAM_REASON
    assert guard_policy.refusal_for_address("127.0.0.1", 11434) == UPSTREAM_REASON
    assert guard_policy.refusal_for_address("::1", 11434) == UPSTREAM_REASON
    assert guard_policy.refusal_for_name("localhost", None) is None
    assert guard_policy.refusal_for_address("127.0.0.1", 5432) is None


def test_strict_lets_through_only_the_gate_and_the_allowed_hosts() -> None:
    guard_policy = policy(GuardLevel.STRICT, allowed=("db.internal", "10.9.9.9"))
    assert guard_policy.refusal_for_address("127.0.0.1", GATE.port) is None
    assert guard_policy.refusal_for_address("127.0.0.1", 5432) == STRICT_REASON
    assert guard_policy.refusal_for_name("example.com", 443) == STRICT_REASON
    assert guard_policy.refusal_for_name("DB.internal", 5432) is None
    assert guard_policy.refusal_for_address("10.9.9.9", 5432) is None
    assert guard_policy.refusal_for_address("10.0.0.1", 5432, allowed_addresses=frozenset({"10.0.0.1"})) is None


def test_an_allowed_host_passes_at_every_level_and_off_refuses_nothing() -> None:
    assert policy(allowed=("api.openai.com",)).refusal_for_name("api.openai.com", 443) is None
    assert policy(GuardLevel.OFF).refusal_for_name("api.openai.com", 443) is None


def test_hosts_are_compared_in_one_written_form() -> None:
    assert normal_host(b"API.openai.com.") == "api.openai.com"
    assert normal_host("[::FFFF:10.1.2.3]") == "10.1.2.3"
    assert normal_host("[::1]") == "::1"


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A stand-in beneath the guard: every name resolves to 127.0.0.1 and is recorded; no DNS is asked."""
    asked: list[str] = []

    def resolve(host, port, *args, **kwargs):
        asked.append(normal_host(host))
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", int(port or 0)))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    return asked


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.create_server(("127.0.0.1", 0))
    server.setblocking(False)
    with server:
        yield server


def accepted(server: socket.socket) -> bool:
    """Whether a connection is waiting: a connect that returned has completed its handshake, so it is there."""
    try:
        connection, _ = server.accept()
    except BlockingIOError:
        return False
    connection.close()
    return True


def installed(guard_policy: GuardPolicy) -> NetworkGuard:
    guard = NetworkGuard(guard_policy)
    guard.install()
    return guard


@pytest.fixture
def guards() -> Iterator[list[NetworkGuard]]:
    """Guards a test installs, taken off again whatever the test does."""
    installed_guards: list[NetworkGuard] = []
    yield installed_guards
    for guard in reversed(installed_guards):
        guard.uninstall()


def test_a_provider_name_is_refused_before_the_resolver_is_asked(resolver: list[str], guards) -> None:
    guards.append(guard := installed(policy()))
    with pytest.raises(NetworkGuardError, match=r"api\.openai\.com:443: it is a provider's official host") as error:
        socket.getaddrinfo("api.openai.com", 443)
    assert "--inference-gate-allow-host=api.openai.com" in str(error.value)
    assert "--inference-gate-guard=off" in str(error.value)
    assert socket.getaddrinfo("db.internal", 5432)[0][4] == ("127.0.0.1", 5432)
    assert resolver == ["db.internal"]
    assert [refusal.destination for refusal in guard.take_refusals()] == ["api.openai.com:443"]
    assert guard.take_refusals() == []


def test_the_refusal_escapes_an_except_exception(resolver: list[str], guards) -> None:
    """SDKs retry on any `Exception`; the refusal is a test failure, which they do not catch."""
    guards.append(installed(policy()))
    with pytest.raises(NetworkGuardError):
        try:
            socket.create_connection(("api.anthropic.com", 443))
        except Exception:  # what a retry loop does
            pytest.fail("the refusal was caught as an ordinary exception")


def test_an_upstream_address_is_refused_before_any_packet_leaves(listener: socket.socket, guards) -> None:
    port = listener.getsockname()[1]
    guards.append(installed(policy(upstreams=(f"http://127.0.0.1:{port}",))))
    with socket.socket() as client, pytest.raises(NetworkGuardError, match=f"127.0.0.1:{port}"):
        client.connect(("127.0.0.1", port))
    assert not accepted(listener)


def test_connect_ex_is_guarded_like_connect(listener: socket.socket, guards) -> None:
    port = listener.getsockname()[1]
    guards.append(installed(policy(upstreams=(f"http://127.0.0.1:{port}",))))
    with socket.socket() as client, pytest.raises(NetworkGuardError):
        client.connect_ex(("127.0.0.1", port))
    assert not accepted(listener)


def test_other_local_services_are_left_alone(listener: socket.socket, guards) -> None:
    guards.append(installed(policy(upstreams=("http://127.0.0.1:9",))))
    with socket.create_connection(listener.getsockname()):
        assert accepted(listener)


def test_strict_refuses_a_local_service_unless_allowed(resolver: list[str], listener: socket.socket, guards) -> None:
    port = listener.getsockname()[1]
    guards.append(strict := installed(policy(GuardLevel.STRICT)))
    with socket.socket() as client, pytest.raises(NetworkGuardError, match="strict mode"):
        client.connect(("127.0.0.1", port))
    assert not accepted(listener)
    strict.uninstall()
    guards.append(installed(policy(GuardLevel.STRICT, allowed=("db.internal",))))
    with socket.create_connection(("db.internal", port)):  # resolved by an allowed name: its address is allowed
        assert accepted(listener)


def test_strict_lets_unix_sockets_through(tmp_path, guards) -> None:
    path = str(tmp_path / "service.sock")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(path)
        server.listen()
        guards.append(installed(policy(GuardLevel.STRICT)))
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(path)
            accepted, _ = server.accept()
            with accepted:
                client.sendall(b"ping")
                assert accepted.recv(4) == b"ping"


def test_the_gates_own_context_and_its_threads_pass(resolver: list[str], guards) -> None:
    guards.append(installed(policy(GuardLevel.STRICT)))
    results: list[object] = []

    def as_the_gate() -> None:
        mark_gate_context()
        results.append(socket.getaddrinfo("api.openai.com", 443)[0][4])
        worker = threading.Thread(target=contextvars.copy_context().run, args=(inherited,))
        worker.start()
        worker.join()

    def inherited() -> None:
        results.append(socket.getaddrinfo("api.anthropic.com", 443)[0][4])

    thread = threading.Thread(target=contextvars.copy_context().run, args=(as_the_gate,))
    thread.start()
    thread.join()
    assert results == [("127.0.0.1", 443), ("127.0.0.1", 443)]
    with pytest.raises(NetworkGuardError):  # this thread was never marked
        socket.getaddrinfo("api.openai.com", 443)


def test_uninstall_puts_the_socket_functions_back(resolver: list[str]) -> None:
    before = (socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex)
    guard = installed(policy())
    assert socket.getaddrinfo is not before[0]
    guard.uninstall()
    assert (socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex) == before


def test_level_off_installs_nothing() -> None:
    before = socket.getaddrinfo
    guard = installed(policy(GuardLevel.OFF))
    assert socket.getaddrinfo is before
    guard.uninstall()


# The plugin's guard, end to end: a project whose tests call the official SDK, replayed by pytester from the
# recording that test_plugin.py makes. Its conftest puts a stand-in resolver beneath the guard that maps every
# name to 127.0.0.1 and writes down each name it is asked for: no run here can reach a real host, and a name the
# guard refused must never reach the resolver.
STAND_IN_RESOLVER = """
import socket
from pathlib import Path

ASKED = Path(__file__).parent / "resolver-asked.txt"
_real_getaddrinfo = socket.getaddrinfo


def _stand_in(host, port, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else host
    if name not in (None, "127.0.0.1"):
        with ASKED.open("a") as asked:
            asked.write(name + "\\n")
    return _real_getaddrinfo(None if name is None else "127.0.0.1", port, *args, **kwargs)


def pytest_configure(config):
    socket.getaddrinfo = _stand_in


def pytest_unconfigure(config):
    socket.getaddrinfo = _real_getaddrinfo
"""
HARD_CODED = """
import socket

from openai import OpenAI


def test_hard_coded_base_url():
    client = OpenAI(base_url="https://api.openai.com/v1", api_key="sk-hard-coded", max_retries=2)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello"}])


def test_swallows_the_refusal():
    try:
        OpenAI(base_url="https://api.anthropic.com/v1", api_key="sk-hard-coded", max_retries=0).models.list()
    except BaseException:
        pass


def test_a_local_service_is_left_alone():
    with socket.create_server(("127.0.0.1", 0)) as server:
        with socket.create_connection(server.getsockname(), timeout=5):
            pass
"""
UNGUARDED = """
import openai
import pytest


def test_hard_coded_base_url_reaches_the_resolver():
    client = openai.OpenAI(base_url="https://api.openai.com/v1", api_key="sk-hard-coded", max_retries=0)
    with pytest.raises(openai.APIConnectionError):  # the stand-in sent it to 127.0.0.1:443, where nothing listens
        client.models.list()
"""


@pytest.fixture
def replayable(request: pytest.FixtureRequest) -> Path:
    """test_plugin.py's recorded project, copied into pytester's directory."""
    return request.getfixturevalue("project")


@pytest.fixture
def guarded_project(pytester: pytest.Pytester, replayable: Path) -> pytest.Pytester:
    pytester.makeconftest(STAND_IN_RESOLVER)
    pytester.makepyfile(test_hard_coded=HARD_CODED)
    return pytester


def asked_of_the_resolver(pytester: pytest.Pytester) -> list[str]:
    asked = pytester.path / "resolver-asked.txt"
    return asked.read_text().split() if asked.exists() else []


def test_replay_fails_a_hard_coded_base_url_at_once_and_leaves_local_services_alone(
    guarded_project: pytest.Pytester,
) -> None:
    result = run(guarded_project, "--inference-gate=replay")
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*refused a connection to api.openai.com:443: it is a provider's official host*",
            "*refused a connection to api.anthropic.com:443: it is a provider's official host*",
            "replay mode, cassettes in *: hits 2, recorded 0, misses 0",
            "FAILED test_hard_coded.py::test_hard_coded_base_url - *",
            "FAILED test_hard_coded.py::test_swallows_the_refusal - *",
        ]
    )
    assert "--inference-gate-allow-host=api.openai.com" in result.stdout.str()
    assert "APIConnectionError" not in result.stdout.str()  # no retry loop turned it into a connection error
    assert asked_of_the_resolver(guarded_project) == []


@pytest.mark.parametrize("args", [["--inference-gate-guard=off"], ["--inference-gate-allow-host=api.openai.com"]])
def test_the_guard_switched_off_or_the_host_allowed_lets_the_lookup_through(
    pytester: pytest.Pytester, replayable: Path, args: list[str]
) -> None:
    pytester.makeconftest(STAND_IN_RESOLVER)
    pytester.makepyfile(test_unguarded=UNGUARDED)
    run(pytester, "--inference-gate=replay", *args, "test_unguarded.py").assert_outcomes(passed=1)
    assert asked_of_the_resolver(pytester) == ["api.openai.com"]


def test_strict_blocks_a_local_service_unless_allowed_and_never_the_gate(guarded_project: pytest.Pytester) -> None:
    strict = run(guarded_project, "--inference-gate=replay", "--inference-gate-guard=strict", "-k", "local or hello")
    strict.assert_outcomes(passed=1, failed=1, deselected=3)
    strict.stdout.fnmatch_lines(["*refused a connection to 127.0.0.1:*: strict mode lets through only the gate*"])
    allowed = run(
        guarded_project, "--inference-gate=replay", "--inference-gate-guard=strict",
        "--inference-gate-allow-host=127.0.0.1", "-k", "local or hello",
    )  # fmt: skip
    allowed.assert_outcomes(passed=2, deselected=3)


def test_an_unknown_level_is_one_usage_error_line(pytester: pytest.Pytester, replayable: Path) -> None:
    result = run(pytester, "--inference-gate=replay", "--inference-gate-guard=loud")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --inference-gate-guard: unknown level 'loud'; choose one of on, strict, off"])


def test_each_xdist_worker_guards_its_own_tests(guarded_project: pytest.Pytester) -> None:
    result = run_in_a_fresh_process(guarded_project, "--inference-gate=replay", "-n", "2")
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines(["*refused a connection to api.openai.com:443: it is a provider's official host*"])
    assert asked_of_the_resolver(guarded_project) == []
