import pytest

from inference_gate.core.address import gate_url, host_and_port, is_loopback


@pytest.mark.parametrize(
    ("host", "expected"),
    [("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("localhost", True), ("LOCALHOST", True),
     ("0.0.0.0", False), ("::", False), ("192.168.1.5", False), ("gate.example", False)],
)  # fmt: skip
def test_is_loopback(host, expected):
    assert is_loopback(host) is expected


def test_urls_bracket_ipv6_addresses():
    assert host_and_port("127.0.0.1", 8080) == "127.0.0.1:8080"
    assert host_and_port("::1", 8080) == "[::1]:8080"
    assert gate_url("::1", 9000) == "http://[::1]:9000"
    assert gate_url("localhost", 80) == "http://localhost:80"
