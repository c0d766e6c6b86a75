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
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from inference_gate.settings import Settings

API_KEY_ENV = "OPENAI_API_KEY"

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
        if key not in _PARSERS:
            warnings.append(_unknown_key_warning(path, key))
            continue
        values[key] = _parse(key, raw_value, place=f"{path}: {key}")
        sources[key] = SOURCE_FILE

    api_key = (os.environ if environ is None else environ).get(API_KEY_ENV)
    if api_key:  # an empty variable counts as unset: `OPENAI_API_KEY= cmd` is the usual way to hide it
        values["api_key"] = api_key
        sources["api_key"] = SOURCE_ENV

    for key, raw_value in (overrides or {}).items():
        if key not in _PARSERS:
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
    known = [name for name in _PARSERS if name != "api_key"]
    close = difflib.get_close_matches(str(key), known, n=1)
    return f"{warning} (did you mean {close[0]!r}?)" if close else warning


class _InvalidValue(Exception):
    """Raised by a parser with what it expected; `_parse` adds where the value came from."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


def _parse(key: str, raw_value: object, *, place: str) -> object:
    try:
        return _PARSERS[key](raw_value)
    except _InvalidValue as exc:
        raise ConfigError(f"{place}: expected {exc.expected}, got {raw_value!r}") from None


# Each parser accepts the value as YAML gives it and as the command line gives it (a string), and returns
# the typed value or raises _InvalidValue.


def _integer(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def _port(value: object) -> int:
    number = _integer(value)
    if number is None or not 0 <= number <= 65535:
        raise _InvalidValue("an integer from 0 to 65535 (0 picks a free port)")
    return number


def _size_bytes(value: object) -> int:
    number = _integer(value)
    if number is None or number <= 0:
        raise _InvalidValue("a positive integer number of bytes")
    return number


def _duration_s(value: object) -> float:
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not math.isfinite(number) or number <= 0:
        raise _InvalidValue("a positive number of seconds")
    return number


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise _InvalidValue("true or false")
    return value


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _InvalidValue("a non-empty string")
    return value


def _upstream_url(value: object) -> str:
    if isinstance(value, str):
        parts = urlsplit(value)
        if parts.scheme in ("http", "https") and parts.hostname:
            return value
    raise _InvalidValue("an http:// or https:// URL")


def _directory(value: object) -> Path:
    if isinstance(value, Path):
        return value.expanduser()
    return Path(_text(value)).expanduser()


def _redact_rules(value: object) -> list[str]:
    """Rules are `headers.<name>` or `body.<json path>` (see redact.py); a mistyped rule would silently
    redact nothing, so it is refused here."""
    expected = "a list of 'headers.<name>' or 'body.<json path>' strings"
    if not isinstance(value, list):
        raise _InvalidValue(expected)
    for rule in value:
        if not isinstance(rule, str):
            raise _InvalidValue(expected)
        kind, _, path = rule.partition(".")
        if kind not in ("headers", "body") or not path:
            raise _InvalidValue(expected)
    return list(value)


def _text_list(value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise _InvalidValue("a list of non-empty strings")
    return list(value)


_PARSERS: dict[str, Callable[[object], object]] = {
    "host": _text,
    "port": _port,
    "upstream": _upstream_url,
    "cache_dir": _directory,
    "api_key": _text,
    "verbose": _boolean,
    "test_model": _text,
    "test_prompt": _text,
    "redact": _redact_rules,
    "max_head_bytes": _size_bytes,
    "max_body_bytes": _size_bytes,
    "request_timeout_s": _duration_s,
    "idle_timeout_s": _duration_s,
    "upstream_connect_timeout_s": _duration_s,
    "upstream_read_timeout_s": _duration_s,
    "shutdown_grace_s": _duration_s,
    "audit_env": _text_list,
    "audit_allow": _text_list,
}


# Hand-written so that every key carries its explanation; tests check that it loads back to `Settings()`.
DEFAULT_CONFIG_TEMPLATE = """\
# InferenceGate configuration.
#
# Precedence, lowest first: built-in defaults, this file, the environment, the command line.
# `inference-gate config show` prints the settings in effect and where each one came from.
# API keys are never stored here: set OPENAI_API_KEY or pass --api-key.

# Address the gate listens on; 127.0.0.1 keeps it private to this machine.
host: 127.0.0.1

# TCP port the gate listens on (0-65535; 0 picks a free port and the banner shows it).
port: 8080

# Where cache misses are forwarded: an http:// or https:// URL.
upstream: https://api.openai.com

# Directory of recorded cassettes. A relative path is relative to the directory the gate runs in, so each
# project keeps its own cache; ~ stands for your home directory.
cache_dir: .inference_cache

# Print more detail about what the gate does.
verbose: false

# Model that `test-upstream` and `test-gate` ask.
test_model: gpt-4o-mini

# Prompt that `test-upstream` and `test-gate` send.
test_prompt: >-
  This is a test prompt. Reply with **ONLY** "OK." to confirm that everything is ok.
  DO NOT output anything else.

# Values masked in the stored request of every cassette: 'headers.<name>' or 'body.<json path>',
# for example [headers.openai-organization, "body.messages[*].content"].
redact: []

# Largest request line plus headers the gate accepts, in bytes.
max_head_bytes: 65536

# Largest body the gate accepts, in bytes.
max_body_bytes: 33554432

# Seconds a client has to send a whole request.
request_timeout_s: 30.0

# Seconds an idle keep-alive connection stays open.
idle_timeout_s: 60.0

# Seconds to wait while connecting to the upstream.
upstream_connect_timeout_s: 10.0

# Seconds to wait for each read from the upstream; streamed answers may pause between events.
upstream_read_timeout_s: 300.0

# Seconds that requests in flight get to finish when the gate shuts down.
shutdown_grace_s: 5.0

# More environment variables whose values `cache audit` looks for in cassettes (32 characters or longer).
audit_env: []

# `cache audit` false positives: the flagged value itself, or a location glob NAME or NAME:JSON_PATH.
audit_allow: []
"""
