from dataclasses import fields
from pathlib import Path, PureWindowsPath

import pytest

from inference_gate.config.settings import SETTING_SPECS, Settings
from inference_gate.config.sources import (
    DEFAULT_CONFIG_TEMPLATE,
    ConfigError,
    default_config_path,
    load_settings,
    write_default_config,
)

REDACT_EXPECTED = "a list of 'headers.<name>', 'query.<name>' or 'body.<json path>' strings"
URL_EXPECTED = "an http:// or https:// URL with a host and no credentials, query or fragment"
REPLAY_SPEED_EXPECTED = "a positive number (1 is the recorded pace, 2 twice as fast), or null for no pacing"
ALL_FIELDS = [field.name for field in fields(Settings)]
SECRET_FIELDS = {name for name, spec in SETTING_SPECS.items() if spec.secret}


def write_config(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# where the file is


def test_default_config_path_is_under_the_home_directory(home):
    assert default_config_path() == home / ".InferenceGate" / "config.yaml"


def test_default_config_path_follows_path_home_on_windows(monkeypatch):
    # On Windows Path.home() is %USERPROFILE%; the path is built from it, never from a hard-coded "~/".
    monkeypatch.setattr(Path, "home", lambda: PureWindowsPath(r"C:\Users\alice"))
    assert str(default_config_path()) == r"C:\Users\alice\.InferenceGate\config.yaml"


# precedence


def test_missing_default_file_gives_the_defaults(home):
    loaded = load_settings(environ={})
    assert loaded.settings == Settings()
    assert loaded.sources == dict.fromkeys(ALL_FIELDS, "default")
    assert loaded.warnings == []
    assert loaded.config_path == home / ".InferenceGate" / "config.yaml"


def test_default_file_is_read_when_present(home):
    path = home / ".InferenceGate" / "config.yaml"
    path.parent.mkdir()
    write_config(path, "port: 9000\n")
    loaded = load_settings(environ={})
    assert loaded.settings.port == 9000
    assert loaded.sources["port"] == "user-file"


def test_file_values_are_typed_and_recorded_as_file(tmp_path):
    path = write_config(
        tmp_path / "c.yaml",
        "host: 0.0.0.0\n"
        "upstream: http://127.0.0.1:9999/openai\n"
        "cache_dir: cassettes\n"
        "verbose: true\n"
        "redact: [headers.openai-organization, 'body.messages[*].content']\n"
        "max_body_bytes: 1024\n"
        "request_timeout_s: 5\n",
    )
    loaded = load_settings(config_path=path, environ={})
    settings = loaded.settings
    assert settings.host == "0.0.0.0"
    assert settings.upstream == "http://127.0.0.1:9999/openai"
    assert settings.cache_dir == Path("cassettes")  # relative: resolved against the working directory later
    assert settings.verbose is True
    assert settings.redact == ["headers.openai-organization", "body.messages[*].content"]
    assert settings.max_body_bytes == 1024
    assert settings.request_timeout_s == 5.0
    assert isinstance(settings.request_timeout_s, float)
    from_file = {"host", "upstream", "cache_dir", "verbose", "redact", "max_body_bytes", "request_timeout_s"}
    assert {name for name, source in loaded.sources.items() if source == "user-file"} == from_file
    assert loaded.sources["port"] == "default"


def test_cache_dir_expands_the_home_directory(tmp_path, home):
    path = write_config(tmp_path / "c.yaml", "cache_dir: ~/cassettes\n")
    assert load_settings(config_path=path, environ={}).settings.cache_dir == home / "cassettes"


def test_environment_supplies_the_api_key(home):
    loaded = load_settings(environ={"OPENAI_API_KEY": "sk-env"})
    assert loaded.settings.api_key == "sk-env"
    assert loaded.sources["api_key"] == "env:OPENAI_API_KEY"


def test_empty_api_key_variable_counts_as_unset(home):
    loaded = load_settings(environ={"OPENAI_API_KEY": ""})
    assert loaded.settings.api_key is None
    assert loaded.sources["api_key"] == "default"


def test_process_environment_is_the_default(home, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-process")
    assert load_settings().settings.api_key == "sk-process"


def test_command_line_beats_file_and_environment(tmp_path):
    path = write_config(tmp_path / "c.yaml", "port: 9000\nhost: 0.0.0.0\n")
    loaded = load_settings(
        config_path=path,
        environ={"OPENAI_API_KEY": "sk-env"},
        overrides={"port": "9100", "api_key": "sk-cli", "host": None},
    )
    assert loaded.settings.port == 9100
    assert loaded.settings.api_key == "sk-cli"
    assert loaded.settings.host == "0.0.0.0"  # None means "not given": the file's value stays
    assert loaded.sources["port"] == "cli"
    assert loaded.sources["api_key"] == "cli"
    assert loaded.sources["host"] == "user-file"


def test_overrides_accept_typed_values(home):
    overrides = {"port": 9100, "cache_dir": Path("~/c"), "verbose": True, "idle_timeout_s": 1}
    settings = load_settings(environ={}, overrides=overrides).settings
    assert (settings.port, settings.cache_dir, settings.verbose) == (9100, home / "c", True)
    assert settings.idle_timeout_s == 1.0


def test_unknown_override_is_a_programming_error(home):
    with pytest.raises(ValueError, match="'prot' is not a setting"):
        load_settings(environ={}, overrides={"prot": 1})


# errors


def test_missing_explicit_config_file_is_an_error(tmp_path):
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError) as caught:
        load_settings(config_path=path, environ={})
    assert str(caught.value) == f"{path}: config file not found"


def test_malformed_yaml_names_the_file_and_the_line(tmp_path):
    path = write_config(tmp_path / "c.yaml", "host: 0.0.0.0\nport: [1\nverbose: true\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config_path=path, environ={})
    message = str(caught.value)
    assert message.startswith(f"{path}: invalid YAML at line ")
    assert "\n" not in message


def test_yaml_with_a_forbidden_character_is_one_line(tmp_path):
    path = write_config(tmp_path / "c.yaml", "host: \x00\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config_path=path, environ={})
    assert str(caught.value).startswith(f"{path}: invalid YAML: unacceptable character")
    assert "\n" not in str(caught.value)


def test_file_that_is_not_utf8_is_an_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"host: \xff\n")
    with pytest.raises(ConfigError, match="not valid UTF-8"):
        load_settings(config_path=path, environ={})


def test_unreadable_config_path_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_settings(config_path=tmp_path, environ={})  # a directory


@pytest.mark.parametrize(("text", "kind"), [("- port\n", "list"), ("just words\n", "str"), ("42\n", "int")])
def test_top_level_must_be_a_mapping(tmp_path, text, kind):
    path = write_config(tmp_path / "c.yaml", text)
    with pytest.raises(ConfigError) as caught:
        load_settings(config_path=path, environ={})
    assert str(caught.value) == f"{path}: expected a mapping of setting names to values, got {kind}"


def test_empty_file_gives_the_defaults(tmp_path):
    path = write_config(tmp_path / "c.yaml", "# nothing set yet\n")
    loaded = load_settings(config_path=path, environ={})
    assert loaded.settings == Settings()
    assert set(loaded.sources.values()) == {"default"}


def test_wrong_port_type_names_file_key_and_expectation(tmp_path):
    path = write_config(tmp_path / "c.yaml", "port: abc\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config_path=path, environ={})
    assert str(caught.value) == f"{path}: port: expected an integer from 0 to 65535 (0 picks a free port), got 'abc'"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("port: -1", "an integer from 0 to 65535 (0 picks a free port), got -1"),
        ("port: 65536", "an integer from 0 to 65535 (0 picks a free port), got 65536"),
        ("port: true", "an integer from 0 to 65535 (0 picks a free port), got True"),
        ("port: 80.5", "an integer from 0 to 65535 (0 picks a free port), got 80.5"),
        ("verbose: maybe", "true or false, got 'maybe'"),
        ("verbose: 1", "true or false, got 1"),
        ("host: ''", "a non-empty string, got ''"),
        ("host: 8", "a non-empty string, got 8"),
        ("test_model: [a]", "a non-empty string, got ['a']"),
        ("upstream: ftp://example.com", URL_EXPECTED + ", got 'ftp://example.com'"),
        ("upstream: api.openai.com", URL_EXPECTED + ", got 'api.openai.com'"),
        ("upstream: 'https://'", URL_EXPECTED + ", got 'https://'"),
        ("upstream: 'https://u:p@example.com'", URL_EXPECTED + ", got 'https://u:p@example.com'"),
        ("cache_dir: 5", "a non-empty string, got 5"),
        ("max_body_bytes: 0", "a positive integer number of bytes, got 0"),
        ("max_head_bytes: -1", "a positive integer number of bytes, got -1"),
        ("max_head_bytes: 1kb", "a positive integer number of bytes, got '1kb'"),
        ("max_recorded_bytes: 0", "a positive integer number of bytes, got 0"),
        ("max_connections: 0", "a positive integer, or null to derive it, got 0"),
        ("max_connections: many", "a positive integer, or null to derive it, got 'many'"),
        ("request_timeout_s: 0", "a positive number of seconds, got 0"),
        ("idle_timeout_s: -2.5", "a positive number of seconds, got -2.5"),
        ("upstream_read_timeout_s: .nan", "a positive number of seconds, got nan"),
        ("shutdown_grace_s: soon", "a positive number of seconds, got 'soon'"),
        ("replay_speed: 0", REPLAY_SPEED_EXPECTED + ", got 0"),
        ("replay_speed: -2", REPLAY_SPEED_EXPECTED + ", got -2"),
        ("replay_speed: fast", REPLAY_SPEED_EXPECTED + ", got 'fast'"),
        ("replay_speed: .inf", REPLAY_SPEED_EXPECTED + ", got inf"),
        ("replay_speed: true", REPLAY_SPEED_EXPECTED + ", got True"),
        ("replay_spread: tokens", "even or bytes, got 'tokens'"),
        ("redact: headers.x", REDACT_EXPECTED + ", got 'headers.x'"),
        ("redact: [1]", REDACT_EXPECTED + ", got [1]"),
        ("redact: [auth]", REDACT_EXPECTED + ", got ['auth']"),
        ("redact: [body.]", REDACT_EXPECTED + ", got ['body.']"),
        ("fault_rate: 1.5", "a number from 0 to 1 (0.1 is one in ten), got 1.5"),
        ("fault_rate: -0.1", "a number from 0 to 1 (0.1 is one in ten), got -0.1"),
        ("fault_rate: .nan", "a number from 0 to 1 (0.1 is one in ten), got nan"),
        ("fault_rate: often", "a number from 0 to 1 (0.1 is one in ten), got 'often'"),
        ("fault_seed: 1.5", "an integer, got 1.5"),
    ],
)
def test_wrong_values_are_one_line_errors(tmp_path, line, expected):
    path = write_config(tmp_path / "c.yaml", line + "\n")
    key = line.partition(":")[0]
    with pytest.raises(ConfigError) as caught:
        load_settings(config_path=path, environ={})
    assert str(caught.value) == f"{path}: {key}: expected {expected}"


def test_replay_speed_is_unset_by_default_and_reads_from_the_file_and_the_command_line(tmp_path):
    assert load_settings(config_path=write_config(tmp_path / "none.yaml", ""), environ={}).settings.replay_speed is None
    path = write_config(tmp_path / "c.yaml", "replay_speed: 2\nreplay_spread: bytes\n")
    settings = load_settings(config_path=path, environ={}).settings
    assert (settings.replay_speed, settings.replay_spread) == (2.0, "bytes")
    assert load_settings(config_path=path, environ={}, overrides={"replay_speed": "0.5"}).settings.replay_speed == 0.5
    with pytest.raises(ConfigError) as caught:
        load_settings(config_path=path, environ={}, overrides={"replay_speed": "0"})
    assert str(caught.value) == f"--replay-speed: expected {REPLAY_SPEED_EXPECTED}, got '0'"


def test_api_key_in_the_file_is_refused(tmp_path):
    path = write_config(tmp_path / "c.yaml", "api_key: sk-secret\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config_path=path, environ={})
    message = str(caught.value)
    assert message.startswith(f"{path}: api_key: API keys are never stored in a settings file")
    assert "OPENAI_API_KEY" in message
    assert "--api-key" in message
    assert "sk-secret" not in message


def test_bad_command_line_value_names_the_option(home):
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={}, overrides={"cache_dir": ""})
    assert str(caught.value) == "--cache-dir: expected a non-empty string, got ''"


def test_unknown_keys_warn_and_suggest_a_close_key(tmp_path):
    path = write_config(tmp_path / "c.yaml", "prot: 9000\nzzz: 1\nport: 9001\n")
    loaded = load_settings(config_path=path, environ={})
    assert loaded.warnings == [
        f"{path}: unknown key 'prot' ignored (did you mean 'port'?)",
        f"{path}: unknown key 'zzz' ignored",
    ]
    assert loaded.settings.port == 9001


# the default file


def test_write_default_config_creates_the_directory(tmp_path):
    path = tmp_path / "new" / "dir" / "config.yaml"
    assert write_default_config(path) is True
    assert path.read_text(encoding="utf-8") == DEFAULT_CONFIG_TEMPLATE


def test_write_default_config_leaves_an_existing_file_alone(tmp_path):
    path = write_config(tmp_path / "config.yaml", "port: 9000\n")
    assert write_default_config(path) is False
    assert path.read_text(encoding="utf-8") == "port: 9000\n"


def test_write_default_config_with_force_overwrites(tmp_path):
    path = write_config(tmp_path / "config.yaml", "port: 9000\n")
    assert write_default_config(path, force=True) is True
    assert path.read_text(encoding="utf-8") == DEFAULT_CONFIG_TEMPLATE


def test_default_config_loads_back_to_the_defaults_with_every_key_set(tmp_path):
    path = tmp_path / "config.yaml"
    write_default_config(path)
    loaded = load_settings(config_path=path, environ={})
    assert loaded.settings == Settings()
    assert loaded.warnings == []
    assert loaded.sources == {name: "default" if name in SECRET_FIELDS else "user-file" for name in ALL_FIELDS}


def test_default_config_explains_every_key():
    lines = DEFAULT_CONFIG_TEMPLATE.splitlines()
    keys = [(index, line.partition(":")[0]) for index, line in enumerate(lines) if line[:1].isalpha()]
    assert [key for _, key in keys] == [name for name in ALL_FIELDS if name not in SECRET_FIELDS]
    for index, key in keys:
        assert lines[index - 1].startswith("# "), f"{key} has no comment above it"


# key rules


def test_ignore_and_normalize_rules_are_read_from_the_file(tmp_path):
    path = write_config(
        tmp_path / "c.yaml",
        "ignore: [body.metadata, query.request_id]\n"
        "normalize:\n  - {path: 'body.messages[*].content', pattern: '\\d+', replace: '<n>'}\n",
    )
    settings = load_settings(config_path=path, environ={}).settings
    assert settings.ignore == ["body.metadata", "query.request_id"]
    assert settings.normalize == [{"path": "body.messages[*].content", "pattern": "\\d+", "replace": "<n>"}]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("ignore: [headers.x-trace]", "ignore rule 1: headers are not part of the request key"),
        ("ignore: [body.a, user]", "ignore rule 2: `user` is not a key path"),
        ("normalize: [{path: body.a, pattern: '(', replace: x}]", "normalize rule 1 (body.a): bad regex '('"),
        ("normalize: [{path: body.a, pattern: a, replace: '\\1'}]", "normalize rule 1 (body.a): bad replacement"),
        ("normalize: [{path: body.a}]", "normalize rule 1: expected a mapping with exactly `path`"),
    ],
)
def test_a_bad_key_rule_is_one_line_naming_the_file_and_the_rule(tmp_path, text, named):
    path = write_config(tmp_path / "c.yaml", text + "\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config_path=path, environ={})
    message = str(caught.value)
    assert message.startswith(f"{path}: {text.partition(':')[0]}: expected valid key rules ({named}")
    assert "\n" not in message


def test_key_rules_that_are_not_a_list_are_refused(tmp_path):
    path = write_config(tmp_path / "c.yaml", "ignore: body.user\n")
    with pytest.raises(ConfigError, match=r"ignore: expected a list of 'body\.<json path>'"):
        load_settings(config_path=path, environ={})


# project settings: pyproject.toml and inference-gate.yaml


def project(tmp_path: Path, *, pyproject: str = "", project_file: str = "") -> Path:
    """A project folder with a `pyproject.toml` and a cache directory holding `inference-gate.yaml`."""
    root = tmp_path / "project"
    (root / "cache").mkdir(parents=True)
    if pyproject:
        write_config(root / "pyproject.toml", pyproject)
    if project_file:
        write_config(root / "cache" / "inference-gate.yaml", project_file)
    return root


def test_project_files_win_over_the_user_file_and_the_yaml_over_pyproject(tmp_path):
    user = write_config(tmp_path / "user.yaml", "takes: 2\nport: 9000\nstore_file_contents: true\n")
    root = project(
        tmp_path,
        pyproject='[tool.inference-gate]\ntakes = 3\nignore = ["body.user"]\n',
        project_file="ignore: [body.metadata]\n",
    )
    loaded = load_settings(config_path=user, environ={}, project_dir=root, overrides={"cache_dir": root / "cache"})
    assert loaded.settings.port == 9000
    assert loaded.settings.takes == 3
    assert loaded.settings.ignore == ["body.metadata"]
    assert (loaded.sources["port"], loaded.sources["takes"], loaded.sources["ignore"]) == (
        "user-file",
        "pyproject.toml",
        "project-file",
    )
    assert loaded.files == {
        "user-file": user,
        "pyproject.toml": root / "pyproject.toml",
        "project-file": root / "cache" / "inference-gate.yaml",
    }
    assert loaded.warnings == []


def test_the_command_line_still_wins_over_the_project(tmp_path):
    root = project(tmp_path, project_file="takes: 3\n")
    overrides = {"cache_dir": root / "cache", "takes": 5}
    loaded = load_settings(config_path=write_config(tmp_path / "u.yaml", ""), environ={}, overrides=overrides)
    assert (loaded.settings.takes, loaded.sources["takes"]) == (5, "cli")


def test_pyproject_may_name_the_cache_directory_relative_to_itself(tmp_path):
    root = project(tmp_path, pyproject='[tool.inference-gate]\ncache_dir = "cache"\n', project_file="takes: 4\n")
    nested = root / "tests"
    nested.mkdir()
    loaded = load_settings(config_path=write_config(tmp_path / "u.yaml", ""), environ={}, project_dir=nested)
    assert loaded.settings.cache_dir == root / "cache"
    assert (loaded.settings.takes, loaded.sources["takes"]) == (4, "project-file")


def test_the_project_file_cannot_name_another_cache_directory(tmp_path):
    root = project(tmp_path, project_file="cache_dir: elsewhere\n")
    with pytest.raises(ConfigError, match=r"inference-gate\.yaml: cache_dir: the cache directory is where this file"):
        load_settings(environ={}, project_dir=root, overrides={"cache_dir": root / "cache"})


@pytest.mark.parametrize("key", ["api_key", "anthropic_api_key"])
def test_api_keys_in_a_project_file_are_refused(tmp_path, key):
    root = project(tmp_path, project_file=f"{key}: sk-in-the-repo-0123456789\n")
    with pytest.raises(ConfigError, match=f"inference-gate.yaml: {key}: API keys are never stored"):
        load_settings(environ={}, project_dir=root, overrides={"cache_dir": root / "cache"})


def test_a_bad_project_value_names_the_project_file(tmp_path):
    root = project(tmp_path, pyproject='[tool.inference-gate]\ntakes = 0\n')
    with pytest.raises(ConfigError, match=r"pyproject.toml \[tool.inference-gate\]: takes: expected a positive"):
        load_settings(environ={}, project_dir=root)


def test_a_key_rule_only_in_the_user_file_is_applied_and_warned_about(tmp_path):
    user = write_config(tmp_path / "u.yaml", "normalize: [{path: body.x, pattern: a, replace: b}]\nignore: []\n")
    root = project(tmp_path)
    loaded = load_settings(config_path=user, environ={}, project_dir=root, overrides={"cache_dir": root / "cache"})
    assert loaded.settings.normalize == [{"path": "body.x", "pattern": "a", "replace": "b"}]
    assert len(loaded.warnings) == 1  # the empty `ignore` is no rule
    assert loaded.warnings[0].startswith(f"KEY RULE IN A PERSONAL FILE: {user}: normalize shapes cassettes")


@pytest.mark.parametrize(
    ("environ", "setting", "source"),
    [
        ({"ANTHROPIC_API_KEY": "sk-ant-0123456789abcdef"}, "anthropic_api_key", "env:ANTHROPIC_API_KEY"),
        ({"GOOGLE_API_KEY": "AIza0123456789abcdef"}, "gemini_api_key", "env:GOOGLE_API_KEY"),
        ({"AZURE_OPENAI_API_KEY": "az0123456789abcdef"}, "azure_api_key", "env:AZURE_OPENAI_API_KEY"),
    ],
)
def test_each_provider_key_comes_from_its_own_variable(home, environ, setting, source):
    loaded = load_settings(environ=environ)
    assert (getattr(loaded.settings, setting), loaded.sources[setting]) == (next(iter(environ.values())), source)
    assert loaded.settings.api_key is None


def test_upstreams_are_read_and_a_bad_route_is_refused_by_name(tmp_path):
    ollama = "upstreams:\n  ollama: {url: 'http://localhost:11434', prefix: /ollama}\n"
    good = write_config(tmp_path / "good.yaml", ollama)
    assert load_settings(config_path=good, environ={}).settings.upstreams == {
        "ollama": {"url": "http://localhost:11434", "prefix": "/ollama"}
    }
    bad = write_config(tmp_path / "bad.yaml", "upstreams:\n  ollama: http://localhost:11434\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: upstreams: expected valid routes \(ollama: a route that is not"):
        load_settings(config_path=bad, environ={})
