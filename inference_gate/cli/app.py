"""The `inference-gate` application: its commands, its global options, and how it reports errors.

To add a command, add its class to `COMMANDS`.
"""

from __future__ import annotations

from cleo.application import Application
from cleo.commands.command import Command
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
from inference_gate.cli.serve_commands import ReplayCommand, StartCommand
from inference_gate.cli.verify_commands import VerifyCommand

COMMANDS: tuple[type[Command], ...] = (
    ConfigPathCommand,
    ConfigInitCommand,
    ConfigShowCommand,
    StartCommand,
    ReplayCommand,
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
    """cleo's application with three changes: `--help` has no `-h` shortcut (commands use `-h` for `--host`),
    a global `--config PATH` option, and errors reported as one line unless `--verbose` is given."""

    def __init__(self) -> None:
        super().__init__("inference-gate", __version__)
        for command_class in COMMANDS:
            self.add(command_class())

    @property
    def _default_definition(self) -> Definition:
        definition = super()._default_definition
        help_option = Option(
            "--help",
            flag=True,
            description="Display help for the given command, or the list of commands when none is given.",
        )
        config_option = Option(
            f"--{CONFIG_OPTION}",
            flag=False,
            requires_value=True,
            description="Config file to use instead of ~/.InferenceGate/config.yaml.",
        )
        options = [help_option if option.name == "help" else option for option in definition.options]
        definition.set_options([*options, config_option])
        return definition

    def _run(self, io: IO) -> int:
        if isinstance(io.input, ArgvInput):
            io.set_input(_LongHelpOnlyInput.copy_of(io.input, self._help_as_list(io.input._tokens)))
        return super()._run(io)

    def _help_as_list(self, tokens: list[str]) -> list[str]:
        """The tokens, with a request for help on the application or on a namespace turned into `list`.

        cleo answers `--help` alone with the help of its `list` command, and `cache --help` or `help cache`
        with "command not found"; a newcomer asking either wants the commands, which `list [namespace]` shows.
        """
        words = _positional(tokens)
        namespaces = set(self.get_namespaces())
        if len(words) == 2 and words[0] == "help" and words[1] in namespaces:
            return ["list", words[1]]
        if "--help" in tokens and len(words) <= 1 and set(words) <= namespaces:
            return ["list", *words]
        return tokens

    def render_error(self, error: Exception, io: IO) -> None:
        if io.is_verbose():
            super().render_error(error, io)
        write_error(io, error)


class _LongHelpOnlyInput(ArgvInput):
    """Command-line input on which only `--help` asks for help.

    cleo decides "help was asked for" by looking for the raw tokens `--help` or `-h` before it knows the
    command, so `start -h 0.0.0.0` would print help instead of setting the host; the definition alone cannot
    change that.
    """

    @classmethod
    def copy_of(cls, original: ArgvInput, tokens: list[str]) -> _LongHelpOnlyInput:
        # cleo's tester passes a StringInput, which has no script name; cleo's own re-parsing of a two-word
        # command ("config show") drops the first token as the script name, so one is always put in place.
        copy = cls([original.script_name or "", *tokens])
        copy.set_stream(original.stream)
        copy.interactive(original.is_interactive())
        return copy

    def has_parameter_option(self, values: str | list[str], only_params: bool = False) -> bool:
        wanted = [values] if isinstance(values, str) else values
        return super().has_parameter_option([value for value in wanted if value != "-h"], only_params)


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
