import pytest
from cleo.testers.application_tester import ApplicationTester

from inference_gate.cli.app import GateApplication


def run(args: str) -> ApplicationTester:
    tester = ApplicationTester(GateApplication())
    tester.execute(args)
    return tester


@pytest.mark.parametrize("args", ["--help", "--config missing.yaml --help", ""])
def test_help_alone_lists_the_commands(home, args):
    tester = run(args)
    output = tester.io.fetch_output()
    assert tester.status_code == 0
    assert "Available commands:" in output
    for name in ("start", "replay", "cache list", "config show"):
        assert f"  {name} " in output


@pytest.mark.parametrize("args", ["cache --help", "help cache"])
def test_help_on_a_namespace_lists_its_commands(home, args):
    tester = run(args)
    output = tester.io.fetch_output()
    assert tester.status_code == 0
    assert 'Available commands for the "cache" namespace:' in output
    assert [line.split()[:2] for line in output.splitlines() if line.startswith("  cache ")] == [
        ["cache", "audit"],
        ["cache", "clear"],
        ["cache", "diff"],
        ["cache", "info"],
        ["cache", "list"],
        ["cache", "prune"],
        ["cache", "rekey"],
        ["cache", "show"],
    ]


def test_help_on_a_command_is_still_its_own(home):
    tester = run("cache list --help")
    assert "Usage:\n  cache list [options]" in tester.io.fetch_output()
