"""The `inference-gate` application: its commands, its global options, and how it reports errors.

To add a command, add its class to `COMMANDS`.
"""

from __future__ import annotations

from cleo.application import Application
from cleo.commands.command import Command
from cleo.commands.list_command import ListCommand
from cleo.descriptors.text_descriptor import TextDescriptor
from cleo.io.inputs.argv_input import ArgvInput
from cleo.io.inputs.definition import Definition
from cleo.io.inputs.option import Option
from cleo.io.io import IO

from inference_gate import __version__
from inference_gate.cli.cache_commands import (
    CacheAuditCommand,
    CacheClearCommand,
    CacheDiffCommand,
    CacheInfoCommand,
    CacheListCommand,
    CachePruneCommand,
    CacheRekeyCommand,
    CacheShowCommand,
)
from inference_gate.cli.common import CONFIG_OPTION, write_error
from inference_gate.cli.config_commands import ConfigInitCommand, ConfigPathCommand, ConfigShowCommand
from inference_gate.cli.prompt_test_commands import GateTestCommand, UpstreamTestCommand
from inference_gate.cli.run_commands import RunCommand
from inference_gate.cli.serve_commands import ReplayCommand, StartCommand
from inference_gate.cli.verify_commands import VerifyCommand

COMMANDS: tuple[type[Command], ...] = (
    ConfigPathCommand,
    ConfigInitCommand,
    ConfigShowCommand,
    StartCommand,
    ReplayCommand,
    RunCommand,
    GateTestCommand,
    UpstreamTestCommand,
    CacheListCommand,
    CacheInfoCommand,
    CacheClearCommand,
    CacheDiffCommand,
    CacheShowCommand,
    CacheAuditCommand,
    CachePruneCommand,
    CacheRekeyCommand,
    VerifyCommand,
)


class GateApplication(Application):
    """cleo's application with a usage that names the program, a global `--config PATH` option, a namespace
    (`cache`, `config`) that lists its commands when given alone, and errors reported as one line unless
    `--verbose` is given. `-h` is `--help` everywhere, as in every cleo program."""

    def __init__(self) -> None:
        super().__init__("inference-gate", __version__)
        for command_class in COMMANDS:
            self.add(command_class())
        self.add(GateListCommand())

    @property
    def help(self) -> str:
        return (
            f"InferenceGate {__version__}: a local record-and-replay proxy for the OpenAI API and its cousins.\n\n"
            "  inference-gate start        record what no cassette answers yet, replay the rest\n"
            "  inference-gate replay       answer from cassettes only, never calling the upstream (CI)\n"
            "  inference-gate cache        the commands that review, rekey and prune cassettes\n"
            "  inference-gate COMMAND -h   the options of one command"
        )

    @property
    def _default_definition(self) -> Definition:
        definition = super()._default_definition
        config_option = Option(
            f"--{CONFIG_OPTION}",
            flag=False,
            requires_value=True,
            description="Config file to use instead of ~/.InferenceGate/config.yaml.",
        )
        definition.add_option(config_option)
        return definition

    def _run(self, io: IO) -> int:
        if isinstance(io.input, ArgvInput):
            io.set_input(_copy_of(io.input, self._namespace_as_list(io.input._tokens)))
        return super()._run(io)

    def _namespace_as_list(self, tokens: list[str]) -> list[str]:
        """The tokens, with a namespace asked about (`cache`, `help cache`, `cache --help`) turned into `list`.

        cleo answers `--help` alone with the help of its `list` command, and `cache`, `cache --help` or
        `help cache` with "command not found"; a user asking any of them wants the commands, which
        `list [namespace]` shows.
        """
        words = _positional(tokens)
        asks_help = "--help" in tokens or "-h" in tokens
        namespaces = set(self.get_namespaces())
        if len(words) == 2 and words[0] == "help" and words[1] in namespaces:
            return ["list", words[1]]
        if len(words) == 1 and words[0] in namespaces:
            return ["list", words[0]]
        if asks_help and not words:
            return ["list"]
        return tokens

    def render_error(self, error: Exception, io: IO) -> None:
        if io.is_verbose():
            super().render_error(error, io)
        write_error(io, error)


NAMESPACE_HELP = {
    "cache": (
        "The cassettes in a cache directory (-c, default .inference_cache): review them (list, info, show, diff,\n"
        "audit), move them to the key rules in force (rekey), and remove them (prune, clear). A directory that\n"
        "does not exist is an error: only recording creates it."
    ),
    "config": (
        "The settings: which are in effect and where each came from (show), the config file in use (path), and a\n"
        "default file with every key commented (init). Defaults < config file < environment < command line."
    ),
}
PROGRAM_USAGE = "  inference-gate COMMAND [options] [arguments]"


class GateListCommand(ListCommand):
    """cleo's `list`, whose usage line names the program (`inference-gate COMMAND ...`) instead of `command`, and
    which opens a namespace's listing (`inference-gate cache`) with what that namespace is for."""

    def handle(self) -> int:
        namespace = self.argument("namespace")
        intro = NAMESPACE_HELP.get(namespace, self.application.help) if namespace else self.application.help
        _ProgramUsageDescriptor(self.application.help, intro).describe(self._io, self.application, namespace=namespace)
        return 0


class _ProgramUsageDescriptor(TextDescriptor):
    """cleo's text descriptor with two texts of its output replaced: the usage line, and the application's help
    (for a namespace's own)."""

    def __init__(self, application_help: str, intro: str) -> None:
        super().__init__()
        self._application_help = application_help
        self._intro = intro

    def _write(self, content: str, decorated: bool = True) -> None:
        if content == f"{self._application_help}\n\n":
            content = f"{self._intro}\n\n"
        super()._write(content.replace("  command [options] [arguments]", PROGRAM_USAGE), decorated)


def _copy_of(original: ArgvInput, tokens: list[str]) -> ArgvInput:
    """A new command-line input holding `tokens`, with the original's stream and interactivity.

    cleo's tester passes a StringInput, which has no script name; cleo's own re-parsing of a two-word command
    ("config show") drops the first token as the script name, so one is always put in place.
    """
    copy = ArgvInput([original.script_name or "", *tokens])
    copy.set_stream(original.stream)
    copy.interactive(original.is_interactive())
    return copy


def _positional(tokens: list[str]) -> list[str]:
    """The tokens that are not options, skipping the value of a global `--config PATH`."""
    words = []
    skip_next = False
    for token in tokens:
        if skip_next:
            skip_next = False
        elif token == f"--{CONFIG_OPTION}":
            skip_next = True
        elif not token.startswith("-"):
            words.append(token)
    return words


def main() -> None:
    """Console script entry point; cleo exits the process with the command's status."""
    GateApplication().run()
