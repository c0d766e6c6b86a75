import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from cleo.testers.application_tester import ApplicationTester

from inference_gate.cli.app import GateApplication
from inference_gate.cli.cache_commands import human_size
from inference_gate.core.cassette import RecordedResponse, Take
from inference_gate.core.outcome import Answer, Outcome
from inference_gate.core.sse import SSEEvent
from inference_gate.proxy.ledger import OUTSIDE_TESTS, Ledger
from inference_gate.store.cassette_store import CassetteStore
from tests.cassettes import record

REPO_ROOT = Path(__file__).parents[2]
CORRUPT_NAME = "chat.completions/torn.0000000000000000.json"


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    """A wide terminal unless a test says otherwise, so table rows are not cut."""
    monkeypatch.setenv("COLUMNS", "250")


def save(store: CassetteStore, path: str, body: dict, response: RecordedResponse, recorded_at: str) -> str:
    """Save a cassette and return its name, relative to the store."""
    file = record(store, body, response, path=path, recorded_at=recorded_at)
    return file.relative_to(store.root).as_posix()


def json_response(body: dict) -> RecordedResponse:
    return RecordedResponse(200, {"content-type": "application/json"}, body=orjson.dumps(body))


@pytest.fixture
def cache_dir(tmp_path) -> Path:
    return tmp_path / "cassettes"


@pytest.fixture
def names(cache_dir) -> dict[str, str]:
    """Three cassettes and a corrupt file, by role."""
    store = CassetteStore(cache_dir)
    french = save(
        store,
        "/v1/chat/completions",
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello\nin French"}]},
        json_response({"choices": [{"index": 0, "message": {"role": "assistant", "content": "Bonjour !"}}]}),
        "2026-11-27T10:00:00Z",
    )
    chunks = [{"choices": [{"index": 0, "delta": {"content": piece}}]} for piece in ("Soft ", "rain\nfalls")]
    haiku = save(
        store,
        "/v1/chat/completions",
        {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "A haiku"}]},
        RecordedResponse(
            200,
            {"content-type": "text/event-stream"},
            events=[
                *(SSEEvent(data=orjson.dumps(chunk).decode()) for chunk in chunks),
                SSEEvent(data="[DONE]"),
            ],
        ),
        "2026-11-25T08:30:00Z",
    )
    embedding = save(
        store,
        "/v1/embeddings",
        {"model": "text-embedding-3-small", "input": "hello"},
        json_response({"data": [{"embedding": [0.1, 0.2]}]}),
        "2026-11-26T12:00:00Z",
    )
    (cache_dir / CORRUPT_NAME).write_bytes(b'{"format_version": 1, "key": "abc"')
    return {"french": french, "haiku": haiku, "embedding": embedding}


def run(args: str, *, inputs: str | None = None, interactive: bool = True) -> ApplicationTester:
    tester = ApplicationTester(GateApplication())
    tester.execute(args, inputs=inputs, interactive=interactive)
    return tester


def run_script(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    """The real entry point; stdin is not a terminal, as in CI."""
    env = {**os.environ, "HOME": str(home), "USERPROFILE": str(home), "COLUMNS": "250"}
    env.pop("OPENAI_API_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "inference_gate", *args],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )


def columns(line: str) -> list[str]:
    """A table line split on its two-space column gaps."""
    return [cell.strip() for cell in line.split("  ") if cell.strip()]


# cache list


def test_list_is_a_table_in_name_order(home, cache_dir, names):
    tester = run(f"cache list --cache-dir {cache_dir}")
    assert tester.status_code == 0
    lines = tester.io.fetch_output().splitlines()
    assert columns(lines[0]) == ["NAME", "ENDPOINT", "MODEL", "STREAM", "RECORDED", "PROMPT", "REPLY"]
    rows = {columns(line)[0]: columns(line) for line in lines[1:-1]}
    assert list(rows) == sorted([*names.values(), CORRUPT_NAME])
    assert rows[names["french"]][1:] == [
        "chat.completions",
        "gpt-4o-mini",
        "no",
        "2026-11-27T10:00:00Z",
        "Say hello in French",
        "Bonjour !",
    ]
    assert rows[names["haiku"]][1:] == [
        "chat.completions",
        "gpt-4o",
        "yes",
        "2026-11-25T08:30:00Z",
        "A haiku",
        "Soft rain falls",
    ]
    assert rows[names["embedding"]][1:] == [
        "embeddings",
        "text-embedding-3-small",
        "no",
        "2026-11-26T12:00:00Z",
    ]
    assert rows[CORRUPT_NAME][1].startswith("corrupt: not valid JSON (")
    assert lines[-1] == f"4 cassettes (1 corrupt) in {cache_dir}"
    assert all(line == line.rstrip() for line in lines)
    # The columns line up: every cassette's model starts where the heading's does.
    model_column = lines[0].index("MODEL")
    assert lines[1 + sorted(rows).index(names["french"])][model_column:].startswith("gpt-4o-mini")


def test_list_cuts_previews_to_the_terminal_width(home, cache_dir, names, monkeypatch):
    store = CassetteStore(cache_dir)
    save(
        store,
        "/v1/chat/completions",
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Tell me a long story " * 10}]},
        json_response({"choices": [{"index": 0, "message": {"content": "Once upon a time " * 20}}]}),
        "2026-11-27T11:00:00Z",
    )
    monkeypatch.setenv("COLUMNS", "220")
    lines = run(f"cache list --cache-dir {cache_dir}").io.fetch_output().splitlines()
    [story] = [line for line in lines if "tell-me-a-long-story" in line]
    assert len(story) == 220
    assert story.endswith("…")
    assert "Tell me a long story Tell me" in story and "Tell me a long story " * 10 not in story
    assert all(len(line) <= 220 for line in lines[:-1] if "corrupt:" not in line)  # the footer is not a row


def test_list_shows_control_characters_escaped(home, cache_dir):
    body = {"model": "gpt-4o\x07", "messages": [{"role": "user", "content": "\x1b[2Kwiped\x9b"}]}
    save(CassetteStore(cache_dir), "/v1/chat/completions", body, json_response({}), "2026-11-27T10:00:00Z")

    tester = run(f"cache list --cache-dir {cache_dir}")

    output = tester.io.fetch_output()
    assert "\\x1b[2Kwiped\\x9b" in output
    assert "gpt-4o\\x07" in output
    assert not any(char in output for char in "\x1b\x07\x9b")


def test_list_json_has_every_field_for_scripts(home, cache_dir, names):
    tester = run(f"cache list --json --cache-dir {cache_dir}")
    assert tester.status_code == 0
    listing = orjson.loads(tester.io.fetch_output())
    assert [entry["name"] for entry in listing] == sorted([*names.values(), CORRUPT_NAME])
    by_name = {entry["name"]: entry for entry in listing}
    french = by_name[names["french"]]
    assert french["prompt"] == "Say hello\nin French"  # whole, newlines kept
    assert (french["model"], french["stream"], french["status"], french["reply"]) == (
        "gpt-4o-mini",
        False,
        200,
        "Bonjour !",
    )
    assert len(french["key"]) == 64
    assert french["size_bytes"] == (cache_dir / names["french"]).stat().st_size
    corrupt = by_name[CORRUPT_NAME]
    assert set(corrupt) == {"name", "size_bytes", "error"}
    assert corrupt["error"].startswith("not valid JSON (")


def test_list_of_no_cassettes(home, cache_dir):
    cache_dir.mkdir()
    tester = run(f"cache list --cache-dir {cache_dir}")
    assert tester.status_code == 0
    assert tester.io.fetch_output() == f"no cassettes in {cache_dir}\n"
    assert run(f"cache list --json --cache-dir {cache_dir}").io.fetch_output() == "[]\n"


def test_list_uses_the_default_cache_dir_in_the_working_directory(home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".inference_cache").mkdir()
    tester = run("cache list")
    assert tester.io.fetch_output() == f"no cassettes in {tmp_path / '.inference_cache'}\n"


def test_list_bad_option_is_one_line(home):
    tester = run("cache list --jsn")
    assert tester.status_code != 0
    assert tester.io.fetch_error() == 'error: The option "--jsn" does not exist\n'


# cache info


def test_info_summarises_the_store(home, cache_dir, names):
    tester = run(f"cache info --cache-dir {cache_dir}")
    assert tester.status_code == 0
    total_bytes = sum(path.stat().st_size for path in cache_dir.rglob("*.json"))
    assert tester.io.fetch_output().splitlines() == [
        f"cache dir:  {cache_dir}",
        "cassettes:  4",
        "corrupt:    1",
        f"size:       {human_size(total_bytes)} ({total_bytes:,} bytes)",
        "oldest:     2026-11-25T08:30:00Z",
        "newest:     2026-11-27T10:00:00Z",
        "endpoints:",
        "  chat.completions  2",
        "  embeddings        1",
        "models:",
        "  gpt-4o                  1",
        "  gpt-4o-mini             1",
        "  text-embedding-3-small  1",
    ]


def test_info_of_no_cassettes(home, cache_dir):
    cache_dir.mkdir()
    tester = run(f"cache info --cache-dir {cache_dir}")
    assert tester.status_code == 0
    assert tester.io.fetch_output() == f"no cassettes in {cache_dir}\n"


@pytest.mark.parametrize(
    ("size_bytes", "shown"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (3_565_124, "3.4 MiB"), (5 * 1024**3, "5.0 GiB")],
)
def test_human_size(size_bytes, shown):
    assert human_size(size_bytes) == shown


# cache clear


def test_clear_with_yes_removes_only_cassettes(home, cache_dir, names):
    (cache_dir / "README.md").write_text("my notes\n", encoding="utf-8")
    tester = run(f"cache clear --yes --cache-dir {cache_dir}", interactive=False)
    assert tester.status_code == 0
    assert tester.io.fetch_output() == f"removed 4 cassettes from {cache_dir}\n"
    assert [path.name for path in cache_dir.rglob("*")] == ["README.md"]


def test_clear_refuses_without_yes_when_not_interactive(home, cache_dir, names):
    tester = run(f"cache clear --cache-dir {cache_dir}", interactive=False)
    assert tester.status_code == 1
    assert tester.io.fetch_output() == ""
    assert tester.io.fetch_error() == (
        "error: refusing to clear without --yes when not interactive; nothing removed\n"
    )
    assert len(list(cache_dir.rglob("*.json"))) == 4


def test_clear_asks_first(home, cache_dir, names):
    declined = run(f"cache clear --cache-dir {cache_dir}", inputs="no\n")
    assert declined.status_code == 0
    assert declined.io.fetch_error() == f"Remove 4 cassettes from {cache_dir}? (yes/no) [no] "
    assert declined.io.fetch_output() == "nothing removed\n"
    assert len(list(cache_dir.rglob("*.json"))) == 4

    confirmed = run(f"cache clear --cache-dir {cache_dir}", inputs="yes\n")
    assert confirmed.status_code == 0
    assert confirmed.io.fetch_output() == f"removed 4 cassettes from {cache_dir}\n"
    assert list(cache_dir.rglob("*.json")) == []


def test_clear_of_no_cassettes_asks_nothing(home, cache_dir):
    cache_dir.mkdir()
    tester = run(f"cache clear --cache-dir {cache_dir}", interactive=False)
    assert tester.status_code == 0
    assert tester.io.fetch_output() == f"no cassettes in {cache_dir}\n"


# the real entry point


def test_script_list_and_info(home, cache_dir, names):
    listed = run_script("cache", "list", "--cache-dir", str(cache_dir), home=home)
    as_json = run_script("cache", "list", "--json", "--cache-dir", str(cache_dir), home=home)
    info = run_script("cache", "info", "--cache-dir", str(cache_dir), home=home)
    assert (listed.returncode, as_json.returncode, info.returncode) == (0, 0, 0)
    assert listed.stderr == as_json.stderr == info.stderr == ""
    assert listed.stdout.splitlines()[-1] == f"4 cassettes (1 corrupt) in {cache_dir}"
    assert "Say hello in French" in listed.stdout
    assert len(orjson.loads(as_json.stdout)) == 4
    assert "corrupt:    1\n" in info.stdout


def test_script_clear_needs_yes_without_a_terminal(home, cache_dir, names):
    refused = run_script("cache", "clear", "--cache-dir", str(cache_dir), home=home)
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr == "error: refusing to clear without --yes when not interactive; nothing removed\n"
    assert len(list(cache_dir.rglob("*.json"))) == 4
    cleared = run_script("cache", "clear", "--yes", "--cache-dir", str(cache_dir), home=home)
    assert (cleared.returncode, cleared.stdout) == (0, f"removed 4 cassettes from {cache_dir}\n")
    assert list(cache_dir.rglob("*.json")) == []


def test_script_bad_cache_dir_value_is_one_line(home):
    result = run_script("cache", "info", "--cache-dir", " ", home=home)
    assert result.returncode != 0
    assert result.stderr == "error: --cache-dir: expected a non-empty string, got ' '\n"


# cache prune


def write_ledger(path: Path, used: list[str]) -> Path:
    ledger = Ledger()
    for name in used:
        ledger.add(OUTSIDE_TESTS, Answer("POST", "/v1/chat/completions", 200, Outcome.HIT, cassette=name))
    path.write_bytes(orjson.dumps(ledger.as_json()))
    return path


def test_prune_lists_the_unused_cassettes_and_deletes_nothing_without_apply(home, cache_dir, names, tmp_path):
    ledger = write_ledger(tmp_path / "ledger.json", [names["french"], names["haiku"]])
    tester = run(f"cache prune --cache-dir {cache_dir} --ledger {ledger}")
    assert tester.status_code == 0
    assert tester.io.fetch_output() == (
        f"{CORRUPT_NAME}\n{names['embedding']}\n"
        f"2 cassettes no request used in {cache_dir}; run again with --apply to remove them\n"
    )
    assert (cache_dir / names["embedding"]).exists()


def test_prune_with_apply_deletes_only_the_unused_cassettes(home, cache_dir, names, tmp_path):
    ledger = write_ledger(tmp_path / "ledger.json", [names["french"], names["haiku"], CORRUPT_NAME])
    tester = run(f"cache prune --cache-dir {cache_dir} --ledger {ledger} --apply")
    assert tester.status_code == 0
    assert tester.io.fetch_output() == f"{names['embedding']}\nremoved 1 cassette no request used from {cache_dir}\n"
    remaining = sorted(path.relative_to(cache_dir).as_posix() for path in cache_dir.glob("*/*.json"))
    assert remaining == sorted([names["french"], names["haiku"], CORRUPT_NAME])


def test_prune_refuses_a_ledger_with_no_request(home, cache_dir, names, tmp_path):
    ledger = write_ledger(tmp_path / "ledger.json", [])
    tester = run(f"cache prune --cache-dir {cache_dir} --ledger {ledger} --apply")
    assert tester.status_code == 1
    assert tester.io.fetch_error() == (
        "error: refusing to prune, nothing removed: no request went through the gate, so every cassette would "
        "look unused\n"
    )
    assert (cache_dir / names["embedding"]).exists()


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (None, "error: cannot read the ledger {path}: No such file or directory\n"),
        (b"not json", "error: {path}: not JSON (invalid literal, expected 'null': line 1 column 1 (char 0))\n"),
        (b"[]", "error: {path}: not an inference-gate ledger of format version 1\n"),
    ],
)
def test_prune_reports_an_unreadable_ledger_in_one_line(home, cache_dir, names, tmp_path, content, error):
    path = tmp_path / "ledger.json"
    if content is not None:
        path.write_bytes(content)
    tester = run(f"cache prune --cache-dir {cache_dir} --ledger {path}")
    assert tester.status_code == 1
    assert tester.io.fetch_error() == error.format(path=path)


def test_prune_needs_a_ledger(home, cache_dir):
    cache_dir.mkdir()
    tester = run(f"cache prune --cache-dir {cache_dir}")
    assert tester.status_code == 1
    assert "cache prune needs --ledger FILE" in tester.io.fetch_error()


def test_list_and_show_give_the_take_count_of_a_cassette_of_several_takes(home, cache_dir):
    store = CassetteStore(cache_dir)
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Roll a die"}]}
    name = save(store, "/v1/chat/completions", body, json_response({"n": 4}), "2026-11-27T10:00:00Z")
    cassette = store.load(cache_dir / name, orjson.loads((cache_dir / name).read_bytes())["key"])
    later = Take("2026-11-27T10:00:01Z", json_response({"n": 2}))
    assert store.save(cassette.with_takes([*cassette.takes, later]), cache_dir / name, replace=True)

    listed = run(f"cache list --cache-dir {cache_dir}").io.fetch_output()
    assert "2026-11-27T10:00:00Z (2 takes)" in listed
    assert orjson.loads(run(f"cache list --json --cache-dir {cache_dir}").io.fetch_output())[0]["takes"] == 2
    shown = run(f"cache show {name} --cache-dir {cache_dir}").io.fetch_output()
    assert "  takes:     2" in shown.splitlines()


@pytest.mark.parametrize(
    "command",
    [
        "cache list",
        "cache list --json",
        "cache info",
        "cache audit",
        "cache rekey",
        "cache clear --yes",
        "cache prune --ledger ledger.json",
        "cache show say-hello",
    ],
)
def test_a_cache_dir_that_does_not_exist_is_an_error_not_an_empty_cache(tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    tester = ApplicationTester(GateApplication())
    status = tester.execute(f"{command} -c .inference_cahce")
    assert status == 1
    assert tester.io.fetch_output() == ""
    assert tester.io.fetch_error() == (
        f"error: the cache directory {tmp_path / '.inference_cahce'} does not exist; only recording creates it\n"
    )
    assert not (tmp_path / ".inference_cahce").exists()


def test_rekey_apply_removes_the_temporary_files_a_killed_writer_left(home, cache_dir):
    store = CassetteStore(cache_dir)
    name = save(store, "/v1/chat/completions", {"model": "m", "input": "x"}, json_response({}), "2026-01-01T00:00:00Z")
    leftover = cache_dir / "chat.completions" / f".{Path(name).name}.k1ll3d.tmp"
    leftover.write_bytes(b'{"torn')
    listed = run(f"cache rekey --cache-dir {cache_dir}")
    assert leftover.exists()  # a plan removes nothing
    tester = run(f"cache rekey --apply --cache-dir {cache_dir}")
    assert tester.status_code == 0
    assert not leftover.exists()
    assert tester.io.fetch_output().splitlines()[0] == "removed 1 temporary file(s) that a killed writer left behind"
    assert "temporary" not in listed.io.fetch_output()


# hostile entries: what stands at a cassette's name but is no regular file inside the directory

HOSTILE_NAMES = {
    "fifo": ("chat.completions/fifo.00000000000000f1.json", "not a regular file (a FIFO)"),
    "directory": ("chat.completions/folder.00000000000000d1.json", "not a regular file (a directory)"),
    "dev-zero": ("chat.completions/zero.0000000000000001.json", "outside the cache directory"),
    "outside": ("chat.completions/outside.0000000000000002.json", "outside the cache directory"),
    "oversize": ("chat.completions/huge.0000000000000003.json", "more than max_cassette_bytes"),
}


@pytest.mark.skipif(sys.platform == "win32", reason="FIFOs and symlinks to devices")
def test_list_info_audit_and_rekey_report_hostile_entries_as_corrupt(home, cache_dir, names, tmp_path):
    paths = {case: cache_dir / name for case, (name, _) in HOSTILE_NAMES.items()}
    os.mkfifo(paths["fifo"])  # reading it would block every command for ever
    paths["directory"].mkdir()
    paths["dev-zero"].symlink_to("/dev/zero")
    (tmp_path / "elsewhere.json").write_bytes((cache_dir / names["french"]).read_bytes())
    paths["outside"].symlink_to(tmp_path / "elsewhere.json")
    with paths["oversize"].open("wb") as huge:  # sparse: costs no disk, and is never read
        huge.truncate(CassetteStore(cache_dir).max_cassette_bytes + 1)

    listed = run_script("cache", "list", "--json", "--cache-dir", str(cache_dir), home=home)
    info = run_script("cache", "info", "--cache-dir", str(cache_dir), home=home)
    audit = run_script("cache", "audit", "--cache-dir", str(cache_dir), home=home)
    rekey = run_script("cache", "rekey", "--cache-dir", str(cache_dir), home=home)

    errors = {entry["name"]: entry.get("error", "") for entry in orjson.loads(listed.stdout)}
    for name, reason in HOSTILE_NAMES.values():
        assert reason in errors[name]
        assert name in audit.stdout + audit.stderr
        assert name in rekey.stdout + rekey.stderr
    assert "corrupt:    6" in info.stdout  # the five, and the torn file the fixture leaves
    assert audit.returncode != 0  # what could not be read was not audited


# the project's settings file


def test_the_project_settings_file_is_never_taken_for_a_cassette(home, cache_dir, names, tmp_path):
    def listed() -> list[str]:
        return [row["name"] for row in orjson.loads(run(f"cache list --json -c {cache_dir}").io.fetch_output())]

    def audited() -> dict:
        return orjson.loads(run(f"cache audit --json --cache-dir {cache_dir}").io.fetch_output())

    before, audit_before = listed(), audited()
    project_file = cache_dir / "inference-gate.yaml"
    project_file.write_text('ignore: [body.user]\nredact: ["body.messages[*].content"]\n', encoding="utf-8")
    assert listed() == before
    audit = audited()  # the audit reads every file for credentials, this one too, and finds it clean
    assert (audit["scanned"], audit["findings"]) == (audit_before["scanned"] + 1, audit_before["findings"])
    ledger = write_ledger(tmp_path / "ledger.json", [names["french"]])
    pruned = run(f"cache prune --cache-dir {cache_dir} --ledger {ledger} --apply").io.fetch_output()
    assert "inference-gate.yaml" not in pruned
    cleared = run(f"cache clear --yes --cache-dir {cache_dir}", interactive=False)
    assert cleared.io.fetch_output() == f"removed 1 cassette from {cache_dir}\n"
    assert project_file.read_text(encoding="utf-8").startswith("ignore: [body.user]")


def test_list_and_info_name_a_file_not_named_like_a_cassette(home, cache_dir, names):
    renamed = cache_dir / "chat.completions" / "hand-copied.json"
    renamed.write_bytes((cache_dir / names["french"]).read_bytes())
    listed = orjson.loads(run(f"cache list --json --cache-dir {cache_dir}").io.fetch_output())
    errors = {entry["name"]: entry.get("error", "") for entry in listed}
    assert errors["chat.completions/hand-copied.json"].startswith("not named like a cassette")
    info = run(f"cache info --cache-dir {cache_dir}").io.fetch_output()
    assert "corrupt:    2" in info  # it, and the torn file the fixture leaves


def test_list_audit_and_rekey_read_cassettes_up_to_the_configured_max_cassette_bytes(home, cache_dir, names):
    """A cassette over the default cap but under the configured one is a cassette, as the gate would serve it."""
    (home / "config.yaml").write_text("max_cassette_bytes: 1\n")  # then every real cassette is too large
    config = ["--config", str(home / "config.yaml"), "--cache-dir", str(cache_dir)]
    listed = run_script("cache", "list", "--json", *config, home=home)
    audit = run_script("cache", "audit", *config, home=home)
    rekey = run_script("cache", "rekey", *config, home=home)
    errors = [entry.get("error", "") for entry in orjson.loads(listed.stdout)]
    assert len(errors) == 4 and all("more than max_cassette_bytes (1)" in error for error in errors)
    assert names["french"] in audit.stdout and "more than max_cassette_bytes (1)" in audit.stdout
    assert "more than max_cassette_bytes (1)" in rekey.stdout + rekey.stderr
