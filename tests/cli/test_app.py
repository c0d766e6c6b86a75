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


@pytest.mark.parametrize(
    ("args", "opening"),
    [
        ("cache", "The cassettes in a cache directory"),
        ("cache -h", "The cassettes in a cache directory"),
        ("help cache", "The cassettes in a cache directory"),
        ("config", "The settings: which are in effect"),
        ("help config", "The settings: which are in effect"),
    ],
)
def test_a_namespace_alone_or_asked_about_has_a_help_of_its_own(home, args, opening):
    tester = run(args)
    output = tester.io.fetch_output()
    assert tester.status_code == 0
    assert output.startswith(opening)
    namespace = args.split()[-1] if args.startswith("help") else args.split()[0]
    assert f'Available commands for the "{namespace}" namespace:' in output


def test_the_program_alone_says_how_to_use_it(home):
    output = run("").io.fetch_output()
    assert "Usage:\n  inference-gate COMMAND [options] [arguments]" in output
    assert "inference-gate replay" in output and "command [options]" not in output


@pytest.mark.parametrize("command", ["cache list", "start", "replay", "test-gate", "config show", "cache rekey"])
def test_h_means_help_in_every_command(home, command):
    tester = run(f"{command} -h")
    assert tester.status_code == 0
    assert f"Usage:\n  {command} [options]" in tester.io.fetch_output()
