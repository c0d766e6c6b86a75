"""What every command shares: setting options, settings from the parsed command line, and stderr lines.

A command that lets the command line override settings lists them with `setting_options(...)` and calls
`settings_from_io(self.io)`; nothing else is needed for the precedence and the `cli` source to be right.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from itertools import pairwise
from pathlib import Path

from cleo.io.inputs.option import Option
from cleo.io.io import IO
from cleo.io.outputs.output import Type as OutputType

from inference_gate.config.settings import SETTING_SPECS, Settings
from inference_gate.config.sources import LoadedSettings, load_settings, option_name
from inference_gate.store.cassette_store import require_cache_dir

CONFIG_OPTION = "config"

def setting_options(*field_names: str, descriptions: Mapping[str, str] | None = None) -> list[Option]:
    """Options that override the named settings, spelled like the field (`cache_dir` -> `--cache-dir`).

    Their default is None rather than the setting's default, so that `settings_from_io` can tell an option
    the user gave from one they did not, and lower layers (file, environment) still apply; the built-in
    default is shown in the help instead. `descriptions` rewords an option's help for a command that uses the
    setting differently.
    """
    options = []
    for field_name in field_names:
        spec = SETTING_SPECS[field_name]
        description = (descriptions or {}).get(field_name, spec.help)
        if spec.default is not None:
            description += f" [default: {spec.default}]"
        name = option_name(field_name)
        options.append(Option(name, spec.shortcut, flag=False, requires_value=True, description=description))
    return options


def config_path_from_io(io: IO) -> Path | None:
    """The file named by the global `--config` option, or None for the default file."""
    value = io.input.option(CONFIG_OPTION)
    return None if value is None else Path(value)


def settings_from_io(io: IO) -> LoadedSettings:
    """The settings for this invocation: defaults < config file < environment < the options given.

    Every option named after a setting counts, including the global `--verbose` flag. cleo reports an option
    that was not given as its default: None for a value, False for a flag, [] for a list; those are skipped.
    The loader's warnings go to stderr here, so every command shows them the same way.
    """
    overrides: dict[str, object] = {}
    for field in fields(Settings):
        name = option_name(field.name).removeprefix("--")
        if io.input.has_option(name):
            value = io.input.option(name)
            overrides[field.name] = None if value is False or value == [] else value
    loaded = load_settings(config_path=config_path_from_io(io), overrides=overrides)
    for warning in loaded.warnings:
        write_warning(io, warning)
    return loaded


def existing_cache_dir(io: IO) -> Path:
    """The cache directory of this invocation, absolute; MissingCacheDirError (one line, exit 1) when it is not
    a directory, so that a typo is not reported as an empty cache."""
    return require_cache_dir(settings_from_io(io).settings.cache_dir.absolute())


def one_line(error: BaseException) -> str:
    """The error's message on one line.

    cleo puts suggestions on lines of their own ("Did you mean one of these?" then one name a line); a line
    that does not end a sentence is joined to the next with a comma, so the names stay apart.
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    message = lines[0]
    for previous, line in pairwise(lines):
        message += (" " if previous.endswith((".", "?", "!", ":")) else ", ") + line
    return message


def write_error(io: IO, error: BaseException | str) -> None:
    """`error: <message>` on stderr, written raw so that `<...>` in a message is not taken for a style tag."""
    message = error if isinstance(error, str) else one_line(error)
    io.write_error_line(f"error: {message}", type=OutputType.RAW)


def write_warning(io: IO, message: str) -> None:
    io.write_error_line(f"warning: {message}", type=OutputType.RAW)


def masked_api_key(api_key: str | None) -> str:
    """How an API key is shown: never the key, only whether it is set and, for a long key, its last 4
    characters, which is enough to tell two keys apart."""
    if api_key is None:
        return "not set"
    if len(api_key) < 12:
        return "set"
    prefix = "sk-" if api_key.startswith("sk-") else ""
    return f"set ({prefix}...{api_key[-4:]})"


def cassette_count_text(count: int) -> str:
    return f"{count} cassette{'' if count == 1 else 's'}"
