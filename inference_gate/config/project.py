"""The project's settings files: the settings that travel with the repository, and where they are found.

The key rules decide every request's key, so a rule known to one developer's machine only makes CI miss on every
request it shaped. The settings that shape cassettes therefore live with them:

- `inference-gate.yaml` at the root of the cache directory, beside the cassettes it shaped, in any language's
  repository; a rule change and its `cache rekey --apply` land in one commit;
- `[tool.inference-gate]` in a Python project's `pyproject.toml` (the nearest one, from the working directory
  up, as pytest and ruff find theirs; the plugin reads the one in its rootdir).

Both may hold any setting but the API keys, which never go in a file that is committed; `cache_dir` only in
`pyproject.toml` (relative to its folder), since the cache directory is what finds `inference-gate.yaml`. When
both set a value, `inference-gate.yaml` wins: it is the one
next to the cassettes, read by every gate whatever language runs it, while `pyproject.toml` is read only where a
Python tool looks. Both win over the per-user file, as a repository's git config wins over the global one.

The per-user file (`~/.InferenceGate/config.yaml`) keeps what is personal: port, verbose, the test prompt. A key
rule found only there is warned about at every start-up, and still applied (see `shaping_warnings`).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

PROJECT_FILE_NAME = "inference-gate.yaml"
PYPROJECT_NAME = "pyproject.toml"
PYPROJECT_TABLE = ("tool", "inference-gate")

KEY_SHAPING_SETTINGS = ("ignore", "normalize", "redact")
"""The settings without which a replay misses what was recorded: `ignore` and `normalize` change the request
key, `redact` the cassette's file name (its slug is made from the redacted prompt)."""


class ProjectFileError(Exception):
    """A project settings file that cannot be read; the message is one line naming the file."""


def project_file_path(cache_dir: Path) -> Path:
    """`<cache_dir>/inference-gate.yaml`. It sits at the root, where the store never looks for cassettes (they
    are one folder deep), so listing, auditing, pruning and clearing leave it alone."""
    return cache_dir / PROJECT_FILE_NAME


def find_pyproject(start: Path) -> Path | None:
    """The nearest `pyproject.toml` in `start` or above it."""
    for folder in (start, *start.parents):
        candidate = folder / PYPROJECT_NAME
        if candidate.is_file():
            return candidate
    return None


def read_pyproject_table(path: Path) -> dict[object, object]:
    """The `[tool.inference-gate]` table of a `pyproject.toml`, empty when it has none."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ProjectFileError(f"{path}: cannot read it: {getattr(error, 'strerror', None) or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ProjectFileError(f"{path}: invalid TOML: {error}") from None
    table: object = document
    for name in PYPROJECT_TABLE:
        table = table.get(name, {}) if isinstance(table, dict) else {}
    if not isinstance(table, dict):
        raise ProjectFileError(f"{path}: [tool.inference-gate] must be a table of setting names to values")
    return table


def shaping_warnings(user_file: Path, user_keys: set[str], project_keys: set[str], cache_dir: Path) -> list[str]:
    """The loud warnings about key rules in the per-user file.

    Such a rule is warned about and still applied, not refused: cassettes recorded under it need it to replay on
    this machine, and refusing would stop every gate at the upgrade. The warning is repeated at every start-up
    until the rule moves to the project file, because CI, which has no such file, misses every request it shaped.
    A rule the project also sets is overridden by the project's, and said so.
    """
    warnings = []
    for key in KEY_SHAPING_SETTINGS:
        if key not in user_keys:
            continue
        if key in project_keys:
            warnings.append(f"{user_file}: {key} is overridden by the project's settings and ignored")
        else:
            warnings.append(
                f"KEY RULE IN A PERSONAL FILE: {user_file}: {key} shapes cassettes but only this machine knows it, "
                f"so a replay anywhere else misses what it shaped; move it to {project_file_path(cache_dir)}"
            )
    return warnings
