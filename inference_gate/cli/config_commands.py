"""`config path`, `config init` and `config show`: where the config file is, a commented one to start from,
and the settings in effect with the source of each."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import yaml
from cleo.commands.command import Command
from cleo.helpers import option
from cleo.io.inputs.option import Option
from cleo.io.outputs.output import Type as OutputType

from inference_gate.cli.common import config_path_from_io, masked_api_key, setting_options, settings_from_io
from inference_gate.config.project import project_file_path
from inference_gate.config.settings import SETTING_SPECS
from inference_gate.config.sources import (
    SOURCE_PROJECT_FILE,
    SOURCE_PYPROJECT,
    SOURCE_USER_FILE,
    LoadedSettings,
    default_config_path,
    write_default_config,
)


def _chosen_config_path(command: Command) -> Path:
    return config_path_from_io(command.io) or default_config_path()


class ConfigPathCommand(Command):
    name = "config path"
    description = "Print the path of the config file (the --config one if given)."

    def handle(self) -> int:
        # Only the path, so that `$EDITOR "$(inference-gate config path)"` works.
        self.io.write_line(str(_chosen_config_path(self)), type=OutputType.RAW)
        return 0


class ConfigInitCommand(Command):
    name = "config init"
    description = "Write a config file with every setting at its default, each one explained."
    options: ClassVar[list[Option]] = [option("force", description="Overwrite the file if it exists.")]

    def handle(self) -> int:
        path = _chosen_config_path(self)
        if write_default_config(path, force=self.option("force")):
            self.io.write_line(f"Wrote {path}", type=OutputType.RAW)
        else:
            message = f"{path} already exists; left it untouched (--force overwrites it)"
            self.io.write_line(message, type=OutputType.RAW)
        return 0


class ConfigShowCommand(Command):
    name = "config show"
    description = (
        "Print the settings in effect and where each came from: default, the user file, pyproject.toml, the "
        "project file (inference-gate.yaml in the cache directory), env or cli."
    )
    options: ClassVar[list[Option]] = setting_options("host", "port", "upstream", "cache_dir", "api_key")

    def handle(self) -> int:
        loaded = settings_from_io(self.io)
        rows = [("setting", "source", "value")]
        for name, spec in SETTING_SPECS.items():
            value = getattr(loaded.settings, name)
            shown = masked_api_key(value) if spec.secret else _format_value(value)
            rows.append((name, loaded.sources[name], shown))
        name_width = max(len(name) for name, _, _ in rows)
        source_width = max(len(source) for _, source, _ in rows)

        for line in file_lines(loaded):
            self.io.write_line(line, type=OutputType.RAW)
        for name, source, shown in rows:
            line = f"{name:<{name_width}}  {source:<{source_width}}  {shown}"
            self.io.write_line(line, type=OutputType.RAW)
        return 0


def file_lines(loaded: LoadedSettings) -> list[str]:
    """Which file each file source in the table is, or that there is none."""
    user_file = loaded.files.get(SOURCE_USER_FILE)
    pyproject = loaded.files.get(SOURCE_PYPROJECT)
    project_file = loaded.files.get(SOURCE_PROJECT_FILE)
    project_path = project_file_path(loaded.settings.cache_dir)
    return [
        f"{SOURCE_USER_FILE}: {loaded.config_path}" + ("" if user_file else " (not found)"),
        f"{SOURCE_PYPROJECT}: "
        + (f"{pyproject} [tool.inference-gate]" if pyproject else "none with [tool.inference-gate]"),
        f"{SOURCE_PROJECT_FILE}: {project_path}" + ("" if project_file else " (not found)"),
    ]


def _format_value(value: object) -> str:
    """Values as they would be written in the config file, so one can be copied there: an unset value is `null`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return _flow_yaml(value)
    if isinstance(value, list):
        return "[" + ", ".join(item if isinstance(item, str) else _flow_yaml(item) for item in value) + "]"
    return str(value)


def _flow_yaml(value: object) -> str:
    """A `normalize` rule on one line, in YAML flow style: `{path: body.x, pattern: a+, replace: b}`."""
    return yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=2**31).strip()
