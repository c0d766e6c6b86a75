"""Where the settings come from, and which source won.

Precedence, lowest first: the built-in defaults (`Settings()`), the YAML config file, the environment
(`OPENAI_API_KEY` only), then the command line. `load_settings` applies the layers in that order and records,
for every setting, the layer that gave its final value, so `config show` can answer "why is the port 9000?".

Every layer goes through the same per-setting parsers, so a bad value reads the same wherever it came from:
one line naming the place, the key and what was expected.

The file's keys are the `Settings` field names, except `api_key`: keys are never stored in a config file,
which is easy to copy or commit by accident. A relative `cache_dir` is relative to the working directory of
the process that uses it, not to the config file, so one user-wide file gives every project its own cache.
"""

from __future__ import annotations

import difflib
import os
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path

import yaml

from inference_gate.config.parsers import InvalidValue
from inference_gate.config.settings import API_KEY_ENV, SETTING_SPECS, Settings

SOURCE_DEFAULT = "default"
SOURCE_FILE = "file"
SOURCE_ENV = "env"
SOURCE_CLI = "cli"


class ConfigError(Exception):
    """A setting that cannot be used, with a one-line message meant for the user."""


@dataclass
class LoadedSettings:
    """The merged settings, and for each field name the source of its value."""

    settings: Settings
    sources: dict[str, str]
    warnings: list[str]
    config_path: Path


def default_config_path() -> Path:
    """`~/.InferenceGate/config.yaml`; on Windows `Path.home()` is `%USERPROFILE%`."""
    return Path.home() / ".InferenceGate" / "config.yaml"


def option_name(field_name: str) -> str:
    """The command-line spelling of a setting, used to name it in errors: `cache_dir` -> `--cache-dir`."""
    return "--" + field_name.replace("_", "-")


def load_settings(
    *,
    config_path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> LoadedSettings:
    """Merge defaults < config file < environment < `overrides` (the command line).

    Without `config_path` the default file is read if it exists; a path that is given must exist. An override
    of None means "not given". Raises `ConfigError` for anything the user must fix; unknown file keys only
    produce warnings, so a file written for a newer version still loads.
    """
    defaults = Settings()
    values = {field.name: getattr(defaults, field.name) for field in fields(Settings)}
    sources = dict.fromkeys(values, SOURCE_DEFAULT)
    warnings: list[str] = []

    path = default_config_path() if config_path is None else config_path
    file_values = _read_config_file(path, required=config_path is not None)
    for key, raw_value in file_values.items():
        if key == "api_key":
            raise ConfigError(
                f"{path}: api_key: API keys are never stored in the config file; "
                f"set {API_KEY_ENV} or pass --api-key"
            )
        if key not in SETTING_SPECS:
            warnings.append(_unknown_key_warning(path, key))
            continue
        values[key] = _parse(key, raw_value, place=f"{path}: {key}")
        sources[key] = SOURCE_FILE

    api_key = (os.environ if environ is None else environ).get(API_KEY_ENV)
    if api_key:  # an empty variable counts as unset: `OPENAI_API_KEY= cmd` is the usual way to hide it
        values["api_key"] = api_key
        sources["api_key"] = SOURCE_ENV

    for key, raw_value in (overrides or {}).items():
        if key not in SETTING_SPECS:
            raise ValueError(f"{key!r} is not a setting")
        if raw_value is None:
            continue
        values[key] = _parse(key, raw_value, place=option_name(key))
        sources[key] = SOURCE_CLI

    return LoadedSettings(replace(defaults, **values), sources, warnings, path)


def write_default_config(path: Path, *, force: bool = False) -> bool:
    """Write the commented default config file; False (and nothing written) if it exists and not `force`."""
    if path.exists() and not force:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(DEFAULT_CONFIG_TEMPLATE, encoding="utf-8")
    return True


def _read_config_file(path: Path, *, required: bool) -> dict[object, object]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            raise ConfigError(f"{path}: config file not found") from None
        return {}
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the config file is not valid UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: invalid YAML{where}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {' '.join(str(exc).split())}") from None
    if document is None:  # an empty file, or one with only comments
        return {}
    if not isinstance(document, dict):
        raise ConfigError(
            f"{path}: expected a mapping of setting names to values, got {type(document).__name__}"
        )
    return document


def _unknown_key_warning(path: Path, key: object) -> str:
    warning = f"{path}: unknown key {str(key)!r} ignored"
    known = [name for name, spec in SETTING_SPECS.items() if not spec.secret]
    close = difflib.get_close_matches(str(key), known, n=1)
    return f"{warning} (did you mean {close[0]!r}?)" if close else warning


def _parse(key: str, raw_value: object, *, place: str) -> object:
    try:
        return SETTING_SPECS[key].parser(raw_value)
    except InvalidValue as exc:
        raise ConfigError(f"{place}: expected {exc.expected}, got {raw_value!r}") from None


def _default_config_template() -> str:
    """Every setting but the secret ones at its default, with its help as the comment above it."""
    lines = [
        "# InferenceGate configuration.",
        "#",
        "# Precedence, lowest first: built-in defaults, this file, the environment, the command line.",
        "# `inference-gate config show` prints the settings in effect and where each one came from.",
        f"# API keys are never stored here: set {API_KEY_ENV} or pass --api-key.",
    ]
    for spec in SETTING_SPECS.values():
        if spec.secret:
            continue
        value = str(spec.default) if isinstance(spec.default, Path) else spec.default
        lines.append("")
        lines.extend("# " + line for line in textwrap.wrap(spec.help, width=110))
        lines.append(yaml.safe_dump({spec.name: value}, width=110, allow_unicode=True).rstrip("\n"))
    return "\n".join(lines) + "\n"


DEFAULT_CONFIG_TEMPLATE = _default_config_template()
