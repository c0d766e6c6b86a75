"""`cache diff`, `cache show` and `cache audit` on cassettes recorded through the gate, in a real git repository.

Each scenario records with the official SDK through a gate in front of the fake upstream, commits, records
again, and asks the CLI what changed. The fake answers from the prompt alone, so a "changed reply" is made
by changing the fake's answer for one prompt between the two recordings.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import openai
import orjson
import pytest
import trio
from cleo.testers.application_tester import ApplicationTester

from inference_gate import Mode, Settings
from inference_gate.cli.app import GateApplication
from tests.cassettes import EXAMPLES, example_name
from tests.e2e.conftest import running_gate
from tests.gitrepo import commit_all, init_repository
from tests.golden import updating_golden_files
from tests.servers import running_upstream
from tools import fake_replies, fake_upstream

GOLDEN_MARKDOWN = Path(__file__).parent / "golden" / "cache_diff.md"
GATE_KEY = "sk-gate-key-for-tests-0123456789"
CHANGED_REPLY = "Bonjour tout le monde ! — reworded by a newer model"

FRENCH = "Say hello in French"
COLOURS = "Name three colours"
CAPITAL = "What is the capital of France? Answer in one word."
EDITED_CAPITAL = "What is the capital of Spain? Answer in one word."
COUNT = "Count to three"
JOKE = "Tell me a joke about caches"
FRENCH_REPLY = fake_replies.reply_text(FRENCH)  # before a test changes the fake's answer


async def record(cache_dir: Path, prompts: list[str], *, streamed: tuple[str, ...] = ()) -> None:
    """Record one chat completion per prompt through a gate in front of the fake upstream."""
    upstream = fake_upstream.FakeUpstream(expected_api_key=GATE_KEY)
    settings = Settings(cache_dir=cache_dir, api_key=GATE_KEY, upstream_read_timeout_s=10.0)
    with trio.fail_after(30):
        async with (
            running_upstream(upstream),
            running_gate(replace(settings, upstream=upstream.url), Mode.RECORD) as gate,
            openai.AsyncOpenAI(base_url=gate.base_url, api_key="sk-client-not-stored", max_retries=0) as client,
        ):
            for prompt in prompts:
                stream = prompt in streamed
                result = await client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": prompt}],
                    temperature=0,
                    stream=stream,
                    **({"stream_options": {"include_usage": True}} if stream else {}),
                )
                if stream:
                    [chunk async for chunk in result]


def cassette_named(cache_dir: Path, prompt: str) -> Path:
    slug = "-".join(prompt.lower().replace("?", "").replace(".", "").split())[:30]
    [path] = [path for path in cache_dir.rglob("*.json") if path.name.startswith(slug)]
    return path


@pytest.fixture
def repo(tmp_path, home, monkeypatch) -> Path:
    repo = init_repository(tmp_path / "project")
    monkeypatch.chdir(repo)
    return repo


@pytest.fixture
async def scenario(repo, monkeypatch) -> dict[str, str]:
    """A first commit of four cassettes, then a working tree where one was removed, one prompt edited, one
    reply changed on re-recording and one cassette added. Returns the first commit's id."""
    cache_dir = repo / ".inference_cache"
    await record(cache_dir, [FRENCH, COLOURS, CAPITAL, COUNT], streamed=(COLOURS,))
    first = commit_all(repo, "first recording")
    cassette_named(cache_dir, COUNT).unlink()
    cassette_named(cache_dir, CAPITAL).unlink()
    cassette_named(cache_dir, FRENCH).unlink()
    original = fake_replies.reply_text
    monkeypatch.setattr(
        fake_replies, "reply_text", lambda prompt: CHANGED_REPLY if prompt == FRENCH else original(prompt)
    )
    await record(cache_dir, [FRENCH, EDITED_CAPITAL, JOKE])
    return {"first": first}


def run(args: str) -> ApplicationTester:
    tester = ApplicationTester(GateApplication())
    tester.execute(args)
    return tester


# cache diff


async def test_diff_text_names_each_kind_of_change(scenario):
    tester = run("cache diff")
    assert tester.status_code == 0
    lines = tester.io.fetch_output().splitlines()
    assert lines[0] == (
        "cache diff HEAD → working tree in .inference_cache: 1 added, 1 removed, 1 changed, 1 prompt changed"
    )
    [added] = [line for line in lines if line.startswith("added ")]
    assert "chat.completions/tell-me-a-joke-about-caches." in added and '"Tell me a joke about caches"' in added
    [removed] = [line for line in lines if line.startswith("removed ")]
    assert "chat.completions/count-to-three." in removed and "gpt-4o-mini" in removed
    [pair] = [line for line in lines if line.startswith("prompt changed ")]
    assert "what-is-the-capital-of-france" in pair and "-> chat.completions/what-is-the-capital-of-spain" in pair
    assert (
        '  request.body.messages[1].content: "What is the capital of France? Answer in one word." -> '
        '"What is the capital of Spain? Answer in one word."'
    ) in lines
    [changed] = [index for index, line in enumerate(lines) if line.startswith("changed ")]
    assert "say-hello-in-french" in lines[changed]
    assert lines[changed + 1] == (
        "  reply: [-Echo: Say hello in French-]{+Bonjour tout le monde !+} — "
        "[-héllo wörld 你好 🌍-]{+reworded by a newer model+}"
    )
    assert lines[changed + 2 :] == []  # same usage, same finish reason: nothing else to say
    assert not any("name-three-colours" in line for line in lines)  # unchanged


async def test_diff_exit_code_says_whether_anything_changed(scenario, repo):
    assert run("cache diff --exit-code").status_code == 1
    commit_all(repo, "second recording")
    tester = run("cache diff --exit-code")
    assert tester.status_code == 0
    assert tester.io.fetch_output() == "cache diff HEAD → working tree in .inference_cache: no changes\n"


async def test_diff_markdown_matches_the_golden_file(scenario):
    """The golden file names cassettes by their keys: after a key-rule change, regenerate it with
    `INFERENCE_GATE_UPDATE_GOLDEN=1 python -m pytest tests/cli/test_cache_review_commands.py` and review its diff."""
    tester = run("cache diff --format markdown")
    assert tester.status_code == 0
    output = tester.io.fetch_output()
    if updating_golden_files():
        GOLDEN_MARKDOWN.write_text(output, encoding="utf-8")
    assert output == GOLDEN_MARKDOWN.read_text(encoding="utf-8")


async def test_diff_json_for_scripts(scenario):
    tester = run("cache diff --json")
    diff = orjson.loads(tester.io.fetch_output())
    assert (diff["base"], diff["target"], diff["cache_dir"]) == ("HEAD", "working tree", ".inference_cache")
    assert [entry["prompt"] for entry in diff["added"]] == [JOKE]
    assert [entry["prompt"] for entry in diff["removed"]] == [COUNT]
    [pair] = diff["prompt_changed"]
    assert pair["differences"] == [{"field": "request.body.messages[1].content", "old": CAPITAL, "new": EDITED_CAPITAL}]
    assert pair["removed"].startswith("chat.completions/what-is-the-capital-of-france")
    [changed] = diff["changed"]
    reply = changed["changes"][0]
    assert reply == {"field": "reply", "old": FRENCH_REPLY, "new": CHANGED_REPLY}
    assert diff["volatile_only"] == []


async def test_diff_between_two_revisions(scenario, repo):
    second = commit_all(repo, "second recording")
    cassette_named(repo / ".inference_cache", JOKE).unlink()
    for spec in (f"{scenario['first']}..{second}", f"{scenario['first']}..", "HEAD~1..HEAD"):
        diff = orjson.loads(run(f"cache diff {spec} --json").io.fetch_output())
        assert [entry["prompt"] for entry in diff["added"]] == [JOKE], spec  # the working tree is not used
        assert len(diff["changed"]) == 1 and len(diff["prompt_changed"]) == 1
    backwards = orjson.loads(run(f"cache diff {second}..{scenario['first']} --json").io.fetch_output())
    assert [entry["prompt"] for entry in backwards["added"]] == [COUNT]
    assert backwards["changed"][0]["changes"][0]["new"] == FRENCH_REPLY


async def test_diff_ignores_volatile_values(scenario, repo):
    commit_all(repo, "second recording")
    path = cassette_named(repo / ".inference_cache", COLOURS)
    cassette = orjson.loads(path.read_bytes())
    cassette["recorded_at"] = "2030-01-01T00:00:00Z"
    cassette["response"]["headers"]["x-request-id"] = "req_another"
    for event in cassette["response"]["events"]:
        if isinstance(event["data"], dict):
            event["data"].update(id="chatcmpl-another", created=1, system_fingerprint="fp_new", obfuscation="x")
    path.write_bytes(orjson.dumps(cassette, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    tester = run("cache diff --exit-code")
    assert tester.status_code == 0
    assert "no changes (1 re-recorded with only volatile values changed)" in tester.io.fetch_output()


def test_diff_outside_a_repository_is_one_line(home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tester = run("cache diff")
    assert tester.status_code == 2
    assert tester.io.fetch_error() == f"error: {tmp_path} is not inside a git work tree\n"


def test_diff_of_an_unknown_revision_is_one_line(repo):
    (repo / "README").write_text("x\n", encoding="utf-8")
    commit_all(repo, "start")
    tester = run("cache diff no-such-branch")
    assert tester.status_code == 2
    assert tester.io.fetch_error() == "error: unknown revision 'no-such-branch'\n"


def test_diff_of_a_cache_dir_outside_the_repository_is_one_line(repo, tmp_path):
    (repo / "README").write_text("x\n", encoding="utf-8")
    commit_all(repo, "start")
    elsewhere = tmp_path / "elsewhere"
    tester = run(f"cache diff --cache-dir {elsewhere}")
    assert tester.status_code == 2
    assert tester.io.fetch_error() == (
        f"error: the cache directory {elsewhere} is not inside the git repository {repo}\n"
    )


def test_diff_bad_format_is_one_line(repo):
    tester = run("cache diff --format html")
    assert tester.status_code == 2
    assert tester.io.fetch_error() == "error: --format must be text or markdown, not 'html'\n"


# cache show


async def test_show_reads_a_streamed_cassette_as_a_person_does(repo):
    await record(repo / ".inference_cache", [COLOURS], streamed=(COLOURS,))
    tester = run("cache show name-three-colours")
    assert tester.status_code == 0
    lines = tester.io.fetch_output().splitlines()
    assert lines[0].startswith("chat.completions/name-three-colours.")
    assert "  endpoint:  chat.completions (POST /v1/chat/completions)" in lines
    assert "  stream:    yes" in lines and "  takes:     1" in lines
    assert "  settings:  temperature=0" in lines
    system, user = lines.index("  system:"), lines.index("  user:")
    assert (lines[system + 1], lines[user + 1]) == ("    Be brief.", f"    {COLOURS}")
    assert f"    {fake_replies.reply_text(COLOURS)}" in lines  # reassembled from the chunks
    assert "  finish:    stop" in lines
    [usage] = [line for line in lines if line.startswith("  usage:")]
    assert "prompt_tokens=" in usage and "total_tokens=" in usage


def test_show_shortens_long_values_and_says_by_how_much(home, tmp_path):
    source = EXAMPLES / example_name("chat.completions", "say-hello-in-french")
    cassette = orjson.loads(source.read_bytes())
    cassette["request"]["body"]["messages"][-1]["content"] = "word " * 200
    path = tmp_path / "long.json"
    path.write_bytes(orjson.dumps(cassette))
    lines = run(f"cache show {path}").io.fetch_output().splitlines()
    assert "    " + ("word " * 80) + "… (600 more characters)" in lines


def test_show_json_and_errors(home, tmp_path):
    name = example_name("chat.completions", "say-hello-in-french")
    tester = run(f"cache show {name} --json --cache-dir {EXAMPLES}")
    assert orjson.loads(tester.io.fetch_output()) == orjson.loads((EXAMPLES / name).read_bytes())
    missing = run(f"cache show nothing-like-this --cache-dir {EXAMPLES}")
    assert missing.status_code == 1
    assert missing.io.fetch_error() == f"error: no cassette named 'nothing-like-this' in {EXAMPLES}\n"
    ambiguous = run(f"cache show chat.completions --cache-dir {EXAMPLES}")
    assert ambiguous.io.fetch_error().startswith("error: 4 cassettes in ")
    (tmp_path / "torn.json").write_bytes(b"{")
    assert run(f"cache show {tmp_path / 'torn.json'}").io.fetch_error().startswith("error: ")


# cache audit


def test_audit_of_the_example_cassettes_is_clean(home):
    tester = run(f"cache audit --cache-dir {EXAMPLES}")
    assert tester.status_code == 0
    assert tester.io.fetch_output() == f"no credentials found in 6 files in {EXAMPLES}\n"


def test_audit_names_file_path_and_kind_and_masks_the_value(home, tmp_path, monkeypatch):
    cache_dir = tmp_path / "cache"
    (cache_dir / "chat.completions").mkdir(parents=True)
    source = EXAMPLES / example_name("chat.completions", "say-hello-in-french")
    cassette = orjson.loads(source.read_bytes())
    key = "sk-proj-" + "Ab3" * 20
    cassette["request"]["body"]["messages"][0]["content"] = f"my key is {key}"
    (cache_dir / "chat.completions" / source.name).write_bytes(orjson.dumps(cassette, option=orjson.OPT_INDENT_2))
    tester = run(f"cache audit --cache-dir {cache_dir}")
    assert tester.status_code == 1
    output = tester.io.fetch_output()
    assert key not in output
    assert output.splitlines() == [
        f"chat.completions/{source.name}  request.body.messages[0].content  OpenAI API key  sk-pro…3Ab3 (68 chars)",
        f"1 credential found in 1 of 1 file in {cache_dir}",
    ]
    listing = orjson.loads(run(f"cache audit --json --cache-dir {cache_dir}").io.fetch_output())
    assert listing["findings"] == [
        {
            "name": f"chat.completions/{source.name}",
            "path": "request.body.messages[0].content",
            "kind": "OpenAI API key",
            "masked": "sk-pro…3Ab3 (68 chars)",
        }
    ]
    config = home / "allow.yaml"
    config.write_text('audit_allow: ["chat.completions/say-hello-*:request.body.*"]\n', encoding="utf-8")
    allowed = run(f"cache audit --config {config} --cache-dir {cache_dir}")
    assert allowed.status_code == 0
    assert "1 allowed by audit_allow" in allowed.io.fetch_output()


def test_audit_looks_for_the_variables_named_in_the_config(home, tmp_path, monkeypatch):
    cache_dir = tmp_path / "cache"
    (cache_dir / "chat.completions").mkdir(parents=True)
    secret = "my-own-service-credential-" + "x7" * 10
    monkeypatch.setenv("MY_SERVICE_TOKEN", secret)
    source = EXAMPLES / example_name("chat.completions", "say-hello-in-french")
    (cache_dir / "chat.completions" / source.name).write_bytes(
        source.read_bytes().replace(b"Say hello", secret.encode())
    )
    assert run(f"cache audit --cache-dir {cache_dir}").status_code == 0  # not a known shape, not watched
    config = home / "audit.yaml"
    config.write_text("audit_env: [MY_SERVICE_TOKEN]\n", encoding="utf-8")
    tester = run(f"cache audit --config {config} --cache-dir {cache_dir}")
    assert tester.status_code == 1
    assert "value of $MY_SERVICE_TOKEN" in tester.io.fetch_output()


# every review output masks what the audit flags

PLANTED_KEY = "sk-proj-" + "Zx9_Yw8-Vu7" * 4


def test_no_review_output_prints_a_planted_key(repo):
    cache_dir = repo / ".inference_cache"
    shutil.copytree(EXAMPLES, cache_dir)
    commit_all(repo, "examples")
    french = cache_dir / example_name("chat.completions", "say-hello-in-french")
    cassette = orjson.loads(french.read_bytes())
    cassette["response"]["body"]["choices"][0]["message"]["content"] = f"Your key: {PLANTED_KEY}"
    french.write_bytes(orjson.dumps(cassette, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    # An added cassette whose prompt preview is cut inside the key (the cut keeps its first characters only).
    cassette["request"]["body"]["messages"][0]["content"] = "Please remember this for me, a key: " + PLANTED_KEY
    cassette["summary"]["prompt"] = cassette["request"]["body"]["messages"][0]["content"]
    (cache_dir / "chat.completions" / "please-remember.0123456789abcdef.json").write_bytes(
        orjson.dumps(cassette, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    )
    commands = [
        "cache diff",
        "cache diff --format markdown",
        "cache diff --json",
        "cache list",
        "cache list --json",
        "cache show say-hello-in-french",
        "cache show say-hello-in-french --json",
        "cache show please-remember",
    ]
    for command in commands:
        tester = run(command)
        output = tester.io.fetch_output()
        assert tester.status_code == 0, command
        assert PLANTED_KEY[:12] not in output, command
        assert "Zx9_Yw8" not in output, command
        if "list" not in command:  # the table cuts previews to the terminal's width
            assert "sk-pro…" in output, command


def test_diff_of_a_cache_dir_that_is_nowhere_is_one_line(repo):
    (repo / "README").write_text("a first commit\n")
    commit_all(repo, "first")
    tester = run("cache diff -c .inference_cahce")
    assert tester.status_code == 2
    assert tester.io.fetch_error() == (
        "error: no cache directory .inference_cahce in the working tree, and no cassettes under it at HEAD\n"
    )


async def test_diff_of_a_cache_dir_deleted_since_the_revision_lists_its_cassettes_as_removed(scenario, repo):
    shutil.rmtree(repo / ".inference_cache")
    tester = run("cache diff")
    assert tester.status_code == 0
    assert tester.io.fetch_output().startswith("cache diff HEAD → working tree in .inference_cache: 4 removed")
