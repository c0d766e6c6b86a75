import os
import subprocess
import sys
from pathlib import Path

import pytest
from cleo.testers.application_tester import ApplicationTester
from cleo.testers.command_tester import CommandTester

from inference_gate import __version__
from inference_gate.cli.app import GateApplication
from inference_gate.config.sources import DEFAULT_CONFIG_TEMPLATE

REPO_ROOT = Path(__file__).parents[2]
API_KEY = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789wxyz"


@pytest.fixture
def default_config(home):
    return home / ".InferenceGate" / "config.yaml"


def run(args: str) -> ApplicationTester:
    tester = ApplicationTester(GateApplication())
    tester.execute(args)
    return tester


def show_table(output: str) -> dict[str, tuple[str, str]]:
    """`config show` output as {setting: (source, value)}."""
    rows = {}
    for line in output.splitlines()[4:]:  # the three file lines, then the header
        name, source, value = line.split(maxsplit=2)
        rows[name] = (source, value)
    return rows


def run_script(*args: str, home: Path, api_key: str | None = None) -> subprocess.CompletedProcess[str]:
    """The real entry point in a child process, as a user would run it."""
    env = {**os.environ, "HOME": str(home), "USERPROFILE": str(home)}
    env.pop("OPENAI_API_KEY", None)
    if api_key is not None:
        env["OPENAI_API_KEY"] = api_key
    return subprocess.run(
        [sys.executable, "-m", "inference_gate", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


# config path


def test_config_path_prints_the_default_path(default_config):
    tester = run("config path")
    assert tester.status_code == 0
    assert tester.io.fetch_output() == f"{default_config}\n"


@pytest.mark.parametrize("args", ["--config {path} config path", "config path --config {path}"])
def test_config_path_prints_the_given_path(home, tmp_path, args):
    path = tmp_path / "mine.yaml"
    tester = run(args.format(path=path))
    assert tester.status_code == 0
    assert tester.io.fetch_output() == f"{path}\n"


# config init


def test_config_init_writes_the_commented_default_file(default_config):
    tester = run("config init")
    assert tester.status_code == 0
    assert default_config.read_text(encoding="utf-8") == DEFAULT_CONFIG_TEMPLATE
    assert tester.io.fetch_output() == f"Wrote {default_config}\n"


def test_config_init_leaves_an_existing_file_untouched(default_config):
    default_config.parent.mkdir()
    default_config.write_text("port: 9000\n", encoding="utf-8")
    tester = run("config init")
    assert tester.status_code == 0
    assert "already exists; left it untouched" in tester.io.fetch_output()
    assert default_config.read_text(encoding="utf-8") == "port: 9000\n"


def test_config_init_force_overwrites(default_config):
    default_config.parent.mkdir()
    default_config.write_text("port: 9000\n", encoding="utf-8")
    tester = CommandTester(GateApplication().find("config init"))
    assert tester.execute("--force") == 0
    assert default_config.read_text(encoding="utf-8") == DEFAULT_CONFIG_TEMPLATE


def test_config_init_writes_the_given_path(home, tmp_path):
    path = tmp_path / "nested" / "mine.yaml"
    assert run(f"--config {path} config init").status_code == 0
    assert path.read_text(encoding="utf-8") == DEFAULT_CONFIG_TEMPLATE


# config show


def test_config_show_without_a_file_shows_defaults(default_config):
    tester = run("config show")
    assert tester.status_code == 0
    output = tester.io.fetch_output()
    assert output.splitlines()[0] == f"user-file: {default_config} (not found)"
    rows = show_table(output)
    assert rows["port"] == ("default", "8080")
    assert rows["api_key"] == ("default", "not set")
    assert rows["verbose"] == ("default", "false")
    assert rows["redact"] == ("default", "[]")
    assert rows["replay_speed"] == ("default", "null")  # unset, as the config file spells it
    assert "None" not in output


def test_config_show_reports_each_layer_and_masks_the_key(home, tmp_path, monkeypatch):
    path = tmp_path / "c.yaml"
    path.write_text("port: 9000\nupstream: http://127.0.0.1:9999\nhost: 10.0.0.1\n", encoding="utf-8")
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    tester = run(f"--config {path} config show --host 0.0.0.0 --cache-dir cassettes")
    assert tester.status_code == 0
    output = tester.io.fetch_output()
    assert output.splitlines()[0] == f"user-file: {path}"
    rows = show_table(output)
    assert rows["host"] == ("cli", "0.0.0.0")
    assert rows["cache_dir"] == ("cli", "cassettes")
    assert rows["port"] == ("user-file", "9000")
    assert rows["upstream"] == ("user-file", "http://127.0.0.1:9999")
    assert rows["api_key"] == ("env:OPENAI_API_KEY", "set (sk-...wxyz)")
    assert rows["idle_timeout_s"] == ("default", "60.0")
    assert API_KEY not in output
    assert API_KEY[:-4] not in output


def test_config_show_writes_key_rules_as_the_file_would(home, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "ignore: [body.user]\nnormalize: [{path: 'body.messages[*].content', pattern: '\\d+', replace: <n>}]\n",
        encoding="utf-8",
    )
    rows = show_table(run(f"--config {path} config show").io.fetch_output())
    assert rows["ignore"] == ("user-file", "[body.user]")
    assert rows["normalize"] == ("user-file", "[{path: 'body.messages[*].content', pattern: \\d+, replace: <n>}]")


def test_config_show_cli_key_beats_env_and_stays_masked(home, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    tester = run("config show --api-key sk-from-the-command-line -p 9100 -v")
    rows = show_table(tester.io.fetch_output())
    assert rows["api_key"] == ("cli", "set (sk-...line)")
    assert rows["port"] == ("cli", "9100")
    assert rows["verbose"] == ("cli", "true")
    assert "sk-from-the-command-line" not in tester.io.fetch_output()


def test_config_show_aligns_its_columns(home):
    lines = run("config show").io.fetch_output().splitlines()[3:]
    value_columns = {line.index(line.split()[2]) for line in lines if len(line.split()) > 2}
    assert len(value_columns) == 1


@pytest.mark.parametrize(
    ("api_key", "shown"),
    [("sk-abcdefghijklmnop", "set (sk-...mnop)"), ("abcdefghijklmnop", "set (...mnop)"), ("sk-short", "set")],
)
def test_config_show_never_prints_a_key(home, monkeypatch, api_key, shown):
    monkeypatch.setenv("OPENAI_API_KEY", api_key)
    output = run("config show").io.fetch_output()
    assert show_table(output)["api_key"] == ("env:OPENAI_API_KEY", shown)
    assert api_key not in output


def test_config_show_warns_about_unknown_keys(default_config):
    default_config.parent.mkdir()
    default_config.write_text("prot: 9000\n", encoding="utf-8")
    tester = run("config show")
    assert tester.status_code == 0
    assert tester.io.fetch_error() == (
        f"warning: {default_config}: unknown key 'prot' ignored (did you mean 'port'?)\n"
    )


# errors


def test_bad_yaml_is_one_error_line(default_config):
    default_config.parent.mkdir()
    default_config.write_text("port: [1\nhost: x\n", encoding="utf-8")
    tester = run("config show")
    assert tester.status_code != 0
    error = tester.io.fetch_error()
    assert error.startswith(f"error: {default_config}: invalid YAML at line 2")
    assert error.count("\n") == 1


def test_wrong_type_is_one_error_line(default_config):
    default_config.parent.mkdir()
    default_config.write_text("port: abc\n", encoding="utf-8")
    tester = run("config show")
    assert tester.status_code != 0
    assert tester.io.fetch_error() == (
        f"error: {default_config}: port: expected an integer from 0 to 65535 (0 picks a free port), got 'abc'\n"
    )
    assert tester.io.fetch_output() == ""


def test_bad_command_line_value_is_one_error_line(home):
    tester = run("config show --port abc")
    assert tester.status_code != 0
    expected = "error: --port: expected an integer from 0 to 65535 (0 picks a free port), got 'abc'\n"
    assert tester.io.fetch_error() == expected


def test_missing_config_file_is_an_error(home, tmp_path):
    path = tmp_path / "absent.yaml"
    tester = run(f"--config {path} config show")
    assert tester.status_code != 0
    assert tester.io.fetch_error() == f"error: {path}: config file not found\n"


def test_verbose_adds_the_traceback(home, tmp_path):
    tester = run(f"-v --config {tmp_path / 'absent.yaml'} config show")
    assert tester.status_code != 0
    error = tester.io.fetch_error()
    assert "ConfigError" in error
    assert error.count("\n") > 1
    assert error.splitlines()[-1].startswith("error: ")


@pytest.mark.parametrize("args", ["config show --bogus", "--bogus"])
def test_unknown_option_is_one_error_line(home, args):
    tester = run(args)
    assert tester.status_code != 0
    assert tester.io.fetch_error() == 'error: The option "--bogus" does not exist\n'


def test_unknown_command_suggestions_stay_on_one_line(home):
    tester = run("config sho")
    assert tester.status_code != 0
    error = tester.io.fetch_error()
    assert error.startswith('error: The command "config')
    assert "Did you mean one of these? config path, config init, config show" in error
    assert error.count("\n") == 1


# global options


def test_version(home):
    tester = run("--version")
    assert tester.status_code == 0
    assert tester.io.fetch_output() == f"Inference Gate (version {__version__})\n"


@pytest.mark.parametrize("asking", ["--help", "-h"])
def test_help_lists_the_global_options_and_h_is_help(home, asking):
    tester = run(f"config show {asking}")
    assert tester.status_code == 0
    option_columns = [line.split()[:2] for line in tester.io.fetch_output().splitlines() if line.strip()]
    assert ["-h,", "--help"] in option_columns
    assert ["--host=HOST", "Address"] in option_columns
    assert ["--config=CONFIG", "Config"] in option_columns
    assert ["-v|vv|vvv,", "--verbose"] in option_columns


# the real entry point


def test_script_shows_file_env_and_cli(home, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("port: 9000\n", encoding="utf-8")
    args = ["--config", str(path), "config", "show", "--host", "0.0.0.0"]
    result = run_script(*args, home=home, api_key=API_KEY)
    assert result.returncode == 0, result.stderr
    rows = show_table(result.stdout)
    assert rows["port"] == ("user-file", "9000")
    assert rows["host"] == ("cli", "0.0.0.0")
    assert rows["api_key"] == ("env:OPENAI_API_KEY", "set (sk-...wxyz)")
    assert API_KEY not in result.stdout + result.stderr


def test_script_config_init_then_path(home):
    first = run_script("config", "init", home=home)
    again = run_script("config", "init", home=home)
    path = run_script("config", "path", home=home)
    default_config = home / ".InferenceGate" / "config.yaml"
    assert (first.returncode, again.returncode, path.returncode) == (0, 0, 0)
    assert first.stdout == f"Wrote {default_config}\n"
    assert "already exists" in again.stdout
    assert path.stdout == f"{default_config}\n"


@pytest.mark.parametrize(
    ("config_text", "args", "expected"),
    [
        ("port: abc\n", ["config", "show"], "port: expected an integer from 0 to 65535 (0 picks a free port), got"),
        ("port: [1\n", ["config", "show"], "invalid YAML at line 2"),
        ("", ["config", "show", "--bogus"], 'The option "--bogus" does not exist'),
    ],
)
def test_script_errors_are_one_line(home, config_text, args, expected):
    default_config = home / ".InferenceGate" / "config.yaml"
    default_config.parent.mkdir()
    default_config.write_text(config_text, encoding="utf-8")
    result = run_script(*args, home=home)
    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: ")
    assert expected in result.stderr


def test_script_version_and_help(home):
    version = run_script("--version", home=home)
    assert (version.returncode, version.stdout) == (0, f"Inference Gate (version {__version__})\n")
    help_result = run_script("--help", home=home)
    assert help_result.returncode == 0
    assert "--config" in help_result.stdout


def test_config_show_names_the_file_each_value_came_from_and_null_for_unset(home, tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "cassettes").mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        '[tool.inference-gate]\ncache_dir = "cassettes"\ntakes = 2\n', encoding="utf-8"
    )
    (project / "cassettes" / "inference-gate.yaml").write_text(
        "ignore: [body.user]\nupstreams:\n  anthropic: http://127.0.0.1:9\n", encoding="utf-8"
    )
    monkeypatch.chdir(project)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-abcdefghijklmnop")
    output = run("config show").io.fetch_output()
    lines = output.splitlines()
    assert lines[1] == f"pyproject.toml: {project / 'pyproject.toml'} [tool.inference-gate]"
    assert lines[2] == f"project-file: {project / 'cassettes' / 'inference-gate.yaml'}"
    rows = show_table(output)
    assert rows["cache_dir"] == ("pyproject.toml", str(project / "cassettes"))
    assert rows["takes"] == ("pyproject.toml", "2")
    assert rows["ignore"] == ("project-file", "[body.user]")
    assert rows["upstreams"] == ("project-file", "{anthropic: 'http://127.0.0.1:9'}")
    assert rows["anthropic_api_key"] == ("env:ANTHROPIC_API_KEY", "set (sk-...mnop)")
    assert rows["replay_speed"] == ("default", "null")
    assert "None" not in output
