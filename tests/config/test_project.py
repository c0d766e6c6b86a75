from pathlib import Path

import pytest

from inference_gate.config.project import (
    ProjectFileError,
    find_pyproject,
    project_file_path,
    read_pyproject_table,
    shaping_warnings,
)


def test_the_project_file_sits_at_the_root_of_the_cache_directory(tmp_path):
    assert project_file_path(tmp_path / "cache") == tmp_path / "cache" / "inference-gate.yaml"


def test_the_nearest_pyproject_is_found_from_a_subfolder(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n", encoding="utf-8")
    nested = tmp_path / "src" / "pkg"
    nested.mkdir(parents=True)
    assert find_pyproject(nested) == tmp_path / "pyproject.toml"


def test_the_tool_table_is_read_and_a_project_without_one_gives_nothing(tmp_path):
    path = tmp_path / "pyproject.toml"
    path.write_text('[tool.inference-gate]\ntakes = 2\nignore = ["body.user"]\n', encoding="utf-8")
    assert read_pyproject_table(path) == {"takes": 2, "ignore": ["body.user"]}
    path.write_text("[tool.ruff]\nline-length = 120\n", encoding="utf-8")
    assert read_pyproject_table(path) == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [("[tool.inference-gate\n", "invalid TOML"), ('[tool]\ninference-gate = "x"\n', "must be a table")],
)
def test_a_bad_pyproject_is_one_line_naming_it(tmp_path, text, message):
    path = tmp_path / "pyproject.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProjectFileError, match=message) as raised:
        read_pyproject_table(path)
    assert str(raised.value).startswith(str(path))
    assert "\n" not in str(raised.value)


def test_a_key_rule_only_in_the_user_file_is_warned_about_loudly_with_where_to_move_it():
    warnings = shaping_warnings(Path("/h/config.yaml"), {"ignore", "port"}, set(), Path("cache"))
    assert warnings == [
        "KEY RULE IN A PERSONAL FILE: /h/config.yaml: ignore shapes cassettes but only this machine knows it, so a "
        "replay anywhere else misses what it shaped; move it to cache/inference-gate.yaml"
    ]


def test_a_key_rule_the_project_also_sets_is_said_to_be_overridden():
    warnings = shaping_warnings(Path("/h/c.yaml"), {"redact"}, {"redact"}, Path("cache"))
    assert warnings == ["/h/c.yaml: redact is overridden by the project's settings and ignored"]


def test_personal_settings_in_the_user_file_draw_no_warning():
    assert shaping_warnings(Path("/h/c.yaml"), {"port", "verbose", "test_prompt"}, set(), Path("c")) == []
