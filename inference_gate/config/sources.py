"""Where the settings come from, and which source won.

Precedence, lowest first: the built-in defaults (`Settings()`), the per-user file (`~/.InferenceGate/config.yaml`
or `--config`), the project's `[tool.inference-gate]` in `pyproject.toml`, the project's `inference-gate.yaml` at
the root of the cache directory (project.py says why the project's files win), the environment (the providers'
API keys only), then the command line. `load_settings` applies the layers in that order and records, for every
setting, the place that gave its final value (one of the files, `env:ANTHROPIC_API_KEY`, `cli`), so `config show`
can answer "why is the port 9000?".

Every layer goes through the same per-setting parsers, so a bad value reads the same wherever it came from:
one line naming the place, the key and what was expected.

A file's keys are the `Settings` field names, except the API keys: keys are never stored in a config file, which
is easy to copy or commit by accident. A relative `cache_dir` is relative to the working directory of the
process that uses it, not to the config file, so one user-wide file gives every project its own cache.
"""

from __future__ import annotations

import difflib
import functools
import os
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from inference_gate.config.parsers import InvalidValue
from inference_gate.config.project import (
    ProjectFileError,
    find_pyproject,
    project_file_path,
    read_pyproject_table,
    shaping_warnings,
)
from inference_gate.config.settings import API_KEY_ENV, DIALECT_KEY_SETTINGS, SETTING_SPECS, Settings
from inference_gate.core.routes import key_from_environment

SOURCE_DEFAULT = "default"
SOURCE_USER_FILE = "user-file"
SOURCE_PYPROJECT = "pyproject.toml"
SOURCE_PROJECT_FILE = "project-file"
SOURCE_CLI = "cli"


class ConfigError(Exception):
    """A setting that cannot be used, with a one-line message meant for the user."""


@dataclass
class LoadedSettings:
    """The merged settings, and for each field name the source of its value: `default`, one of the files (whose
    paths `files` gives, None for one that was not found), `env:<VARIABLE>` or `cli`."""

    settings: Settings
    sources: dict[str, str]
    warnings: list[str]
    config_path: Path
    files: dict[str, Path | None] = field(default_factory=dict)


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
    project_dir: Path | None = None,
) -> LoadedSettings:
    """Merge defaults < per-user file < pyproject.toml < inference-gate.yaml < environment < `overrides`.

    Without `config_path` the default per-user file is read if it exists; a path that is given must exist. The
    nearest `pyproject.toml` is looked for from `project_dir` (the working directory if None) up, and
    `inference-gate.yaml` in the cache directory that the per-user file and `overrides` name. An override of None
    means "not given". Raises `ConfigError` for anything the user must fix; unknown file keys only produce
    warnings, so a file written for a newer version still loads.
    """
    defaults = Settings()
    values = {field.name: getattr(defaults, field.name) for field in fields(Settings)}
    sources = dict.fromkeys(values, SOURCE_DEFAULT)
    warnings: list[str] = []
    overrides = {key: value for key, value in (overrides or {}).items() if value is not None}
    for key in overrides:
        if key not in SETTING_SPECS:
            raise ValueError(f"{key!r} is not a setting")

    path = default_config_path() if config_path is None else config_path
    user_values = _read_config_file(path, required=config_path is not None)
    _apply_file(user_values, (SOURCE_USER_FILE, str(path)), values, sources, warnings)

    pyproject = find_pyproject(Path.cwd() if project_dir is None else project_dir)
    try:
        pyproject_values = read_pyproject_table(pyproject) if pyproject is not None else {}
    except ProjectFileError as error:
        raise ConfigError(str(error)) from None
    if pyproject is not None:
        place = f"{pyproject} [tool.inference-gate]"
        _apply_file(pyproject_values, (SOURCE_PYPROJECT, place), values, sources, warnings)
        if "cache_dir" in pyproject_values:  # relative to the project, wherever in it the command runs
            values["cache_dir"] = pyproject.parent / values["cache_dir"]

    cache_dir = _parse("cache_dir", overrides["cache_dir"], place="--cache-dir") if "cache_dir" in overrides else None
    cache_dir = cache_dir or values["cache_dir"]
    project_file = project_file_path(cache_dir)
    project_values = _read_config_file(project_file, required=False)
    if "cache_dir" in project_values:
        raise ConfigError(
            f"{project_file}: cache_dir: the cache directory is where this file is found, so it cannot name "
            "another; set cache_dir in pyproject.toml, the per-user file or with --cache-dir"
        )
    _apply_file(project_values, (SOURCE_PROJECT_FILE, str(project_file)), values, sources, warnings)
    project_keys = {str(key) for key in (*pyproject_values, *project_values)}
    user_rules = {str(key) for key, value in user_values.items() if value}  # an empty list is no rule
    warnings.extend(shaping_warnings(path, user_rules, project_keys, cache_dir))

    environ = os.environ if environ is None else environ
    for dialect, setting in DIALECT_KEY_SETTINGS.items():
        key, variable = key_from_environment(dialect, environ)
        if key:
            values[setting] = key
            sources[setting] = f"env:{variable}"

    for key, raw_value in overrides.items():
        values[key] = _parse(key, raw_value, place=option_name(key))
        sources[key] = SOURCE_CLI

    files = {
        SOURCE_USER_FILE: path if path.is_file() else None,
        SOURCE_PYPROJECT: pyproject if pyproject_values else None,
        SOURCE_PROJECT_FILE: project_file if project_file.is_file() else None,
    }
    return LoadedSettings(replace(defaults, **values), sources, warnings, path, files)


def _apply_file(
    file_values: Mapping[object, object],
    source: tuple[str, str],
    values: dict[str, object],
    sources: dict[str, str],
    warnings: list[str],
) -> None:
    """One file's layer: each known key parsed and recorded as coming from the file (`source` is its label and
    the place errors name), unknown keys warned about, and API keys refused."""
    label, place = source
    for key, raw_value in file_values.items():
        if key in SETTING_SPECS and SETTING_SPECS[key].secret:
            raise ConfigError(
                f"{place}: {key}: API keys are never stored in a settings file; set them in the environment "
                f"({API_KEY_ENV}, ANTHROPIC_API_KEY, ...) or pass --api-key"
            )
        if key not in SETTING_SPECS:
            warnings.append(_unknown_key_warning(place, key))
            continue
        values[str(key)] = _parse(str(key), raw_value, place=f"{place}: {key}")
        sources[str(key)] = label


def write_default_config(path: Path, *, force: bool = False) -> bool:
    """Write the commented default config file; False (and nothing written) if it exists and not `force`."""
    if path.exists() and not force:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_default_config_template(), encoding="utf-8")
    return True


def _read_config_file(path: Path, *, required: bool) -> dict[object, object]:
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):  # the latter: a file where a folder on the path should be
        if required:
            raise ConfigError(f"{path}: config file not found") from None
        return {}
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the config file is not valid UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    import yaml  # here, not at the top: most runs, the pytest plugin's among them, have no config file to parse

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


def _unknown_key_warning(place: str, key: object) -> str:
    warning = f"{place}: unknown key {str(key)!r} ignored"
    known = [name for name, spec in SETTING_SPECS.items() if not spec.secret]
    close = difflib.get_close_matches(str(key), known, n=1)
    return f"{warning} (did you mean {close[0]!r}?)" if close else warning


def _parse(key: str, raw_value: object, *, place: str) -> object:
    try:
        return SETTING_SPECS[key].parser(raw_value)
    except InvalidValue as exc:
        raise ConfigError(f"{place}: expected {exc.expected}, got {raw_value!r}") from None


@functools.cache
def _default_config_template() -> str:
    """Every setting but the secret ones at its default, with its help as the comment above it."""
    import yaml  # see _read_config_file

    lines = [
        "# InferenceGate configuration: your personal settings (port, verbose, the test prompt).",
        "#",
        "# The settings that shape cassettes (ignore, normalize, redact, takes, store_file_contents, upstreams)",
        "# belong to the project, so that they travel with the cassettes: inference-gate.yaml at the root of the",
        "# cache directory, or [tool.inference-gate] in pyproject.toml. A key rule set only here is warned about.",
        "# Precedence, lowest first: built-in defaults, this file, pyproject.toml, inference-gate.yaml, the",
        "# environment, the command line.",
        "# `inference-gate config show` prints the settings in effect and where each one came from.",
        f"# API keys are never stored here: set {API_KEY_ENV} (ANTHROPIC_API_KEY, ...) or pass --api-key.",
    ]
    for spec in SETTING_SPECS.values():
        if spec.secret:
            continue
        value = str(spec.default) if isinstance(spec.default, Path) else spec.default
        lines.append("")
        lines.extend("# " + line for line in textwrap.wrap(spec.help, width=110))
        lines.append(yaml.safe_dump({spec.name: value}, width=110, allow_unicode=True).rstrip("\n"))
    return "\n".join(lines) + "\n"


def __getattr__(name: str) -> str:
    """`DEFAULT_CONFIG_TEMPLATE`, built on first use: it runs every setting through yaml, which a run without a
    config file to write or read (the pytest plugin's, most often) never needs."""
    if name == "DEFAULT_CONFIG_TEMPLATE":
        return _default_config_template()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
