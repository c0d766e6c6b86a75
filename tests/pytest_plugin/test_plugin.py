"""The pytest plugin, end to end: a tiny project whose tests call the official `openai` SDK through
`OPENAI_BASE_URL`, run by `pytester` against the fake upstream in tools/.

The story shares one recording: the module fixture records the project once with the upstream up, then stops
the upstream; every later test copies that cache and replays it. Most runs are in this process, which is
quick and shows that the plugin puts `os.environ` back and leaves no thread (the last test checks both); a
replay and the xdist run use fresh processes, as a user's suite does.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import shutil
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest
import trio

import inference_gate
from inference_gate.pytest_plugin import GATE_THREAD_NAME
from tools.fake_upstream import FakeUpstream

pytest_plugins = ["pytester"]

TEST_KEY = "sk-plugin-test-key-0123456789"
RUN_TIMEOUT_S = 120
# The inner pytest runs import this checkout's package, whether or not it is the installed one.
PYTHONPATH = os.pathsep.join([str(Path(inference_gate.__file__).parent.parent), os.environ.get("PYTHONPATH", "")])

ASK = """
from openai import OpenAI


def ask(prompt):
    client = OpenAI(max_retries=0)
    messages = [{"role": "user", "content": prompt}]
    return client.chat.completions.create(model="gpt-4o-mini", messages=messages).choices[0].message.content
"""
HELLO = '\n\ndef test_hello():\n    assert ask("Say hello")\n'
BYE = '\n\ndef test_bye():\n    assert ask("Say goodbye")\n'
NEW = '\n\ndef test_new():\n    assert ask("Say something new")\n'


def plugin_args() -> list[str]:
    """`-p` for the plugin unless its entry point is installed, where `-p` would register it a second time."""
    installed = importlib.metadata.entry_points(group="pytest11", name="inference_gate")
    return [] if installed else ["-p", "inference_gate.pytest_plugin"]


@contextmanager
def fake_upstream(upstream: FakeUpstream | None = None) -> Iterator[str]:
    """The fake upstream's URL (the fake OpenAI API unless another is given), served from a thread of its own for
    the block's duration."""
    upstream = upstream or FakeUpstream()
    started = threading.Event()
    running: dict[str, object] = {}

    async def serve() -> None:
        with trio.CancelScope() as scope:
            running["token"], running["scope"] = trio.lowlevel.current_trio_token(), scope
            async with trio.open_nursery() as nursery:
                running["port"] = await nursery.start(functools.partial(upstream.serve))
                started.set()

    thread = threading.Thread(target=trio.run, args=(serve,))
    thread.start()
    assert started.wait(RUN_TIMEOUT_S)
    try:
        yield f"http://127.0.0.1:{running['port']}"
    finally:
        trio.from_thread.run_sync(running["scope"].cancel, trio_token=running["token"])
        thread.join(RUN_TIMEOUT_S)


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(the cache recorded from the hello and bye tests, the record run's output); the upstream is gone after."""
    project = tmp_path_factory.mktemp("recording")
    (project / "test_chat.py").write_text(ASK + HELLO + BYE)
    environ = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_", "OPENAI_"))}
    environ.update(HOME=str(project), OPENAI_API_KEY=TEST_KEY, PYTHONPATH=PYTHONPATH)
    with fake_upstream() as upstream_url:
        run = subprocess.run(
            [sys.executable, "-m", "pytest", *plugin_args(), "-p", "no:cacheprovider", "--inference-gate=record",
             f"--inference-gate-upstream={upstream_url}"],
            cwd=project, env=environ, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
        )  # fmt: skip
    return project / ".inference_cache", run.stdout + run.stderr


@pytest.fixture
def project(pytester: pytest.Pytester, recording: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the recorded project (hello and bye) in pytester's directory, replayable with no upstream."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("INFERENCE_GATE_MODE", raising=False)
    monkeypatch.setenv("PYTHONPATH", PYTHONPATH)
    shutil.copytree(recording[0], pytester.path / ".inference_cache")
    pytester.makepyfile(test_chat=ASK + HELLO + BYE)
    return pytester.path / ".inference_cache"


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """A run in this process, which is quick; the plugin leaves no trace (the last test checks)."""
    return pytester.runpytest_inprocess(*plugin_args(), "-p", "no:cacheprovider", *args)


def run_in_a_fresh_process(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(*plugin_args(), "-p", "no:cacheprovider", *args, timeout=RUN_TIMEOUT_S)


def cassettes(cache_dir: Path) -> list[str]:
    return sorted(path.relative_to(cache_dir).as_posix() for path in cache_dir.glob("*/*.json"))


def test_the_entry_point_registers_the_plugin_module() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"]["pytest11"] == {"inference_gate": "inference_gate.pytest_plugin"}


def test_record_with_the_upstream_up_writes_one_cassette_per_test(recording: tuple[Path, str]) -> None:
    cache_dir, output = recording
    assert "2 passed" in output
    assert "record mode" in output and "hits 0, recorded 2, misses 0" in output
    names = cassettes(cache_dir)
    assert [name.rsplit(".", 2)[0] for name in names] == ["chat.completions/say-goodbye", "chat.completions/say-hello"]


def test_replay_with_the_upstream_stopped_hits_every_cassette_and_maps_tests_to_them(
    pytester: pytest.Pytester, project: Path
) -> None:
    result = run_in_a_fresh_process(pytester, "--inference-gate=replay", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*= inference-gate =*",
            "replay mode, cassettes in *: hits 2, recorded 0, misses 0",
            "cassettes used, by test:",
            "  test_chat.py::test_bye: chat.completions/say-goodbye.*.json",
            "  test_chat.py::test_hello: chat.completions/say-hello.*.json",
        ]
    )


def test_a_new_prompt_fails_its_test_with_the_miss_and_the_summary_names_it(
    pytester: pytest.Pytester, project: Path
) -> None:
    pytester.makepyfile(test_chat=ASK + HELLO + BYE + NEW)
    result = run(pytester, "--inference-gate=replay", "--inference-gate-upstream=http://127.0.0.1:9/v0")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*NotFoundError: Error code: 404 - No cassette for POST /v1/chat/completions*"
            "To record it, run `pytest --inference-gate=record --inference-gate-upstream=http://127.0.0.1:9/v0`*",
            "replay mode, cassettes in *: hits 2, recorded 0, misses 1",
            "MISS test_chat.py::test_new: POST /v1/chat/completions chat.completions gpt-4o-mini 'Say something new'",
            "    closest cassette: chat.completions/say-*.json differs at messages[[]0[]].content*",
        ]
    )


def test_injected_faults_fail_the_tests_as_errors_that_still_use_their_cassettes(
    pytester: pytest.Pytester, project: Path
) -> None:
    result = run(pytester, "--inference-gate=replay", "--inference-gate-fault-rate=1", "-v")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "replay mode, cassettes in *: hits 0, recorded 0, misses 0, errors 2",
            "fault injection on: 100% of answers from cassettes fail on purpose (seed 0)",
            "cassettes used, by test:",
            "  test_chat.py::test_bye: chat.completions/say-goodbye.*.json",
            "  test_chat.py::test_hello: chat.completions/say-hello.*.json",
        ]
    )
    assert "Injected fault" in result.stdout.str()


def test_prune_after_a_test_is_removed_deletes_only_its_cassette(pytester: pytest.Pytester, project: Path) -> None:
    before = cassettes(project)
    pytester.makepyfile(test_chat=ASK + HELLO)
    result = run(pytester, "--inference-gate=replay", "--inference-gate-prune")
    result.assert_outcomes(passed=1)
    bye = next(name for name in before if "say-goodbye" in name)
    result.stdout.fnmatch_lines(["pruned the cassettes no test used (1):", f"  {bye}"])
    assert cassettes(project) == [name for name in before if name != bye]


def test_prune_after_a_k_run_refuses_and_says_why(pytester: pytest.Pytester, project: Path) -> None:
    before = cassettes(project)
    result = run(pytester, "--inference-gate=replay", "--inference-gate-prune", "-k", "hello")
    result.assert_outcomes(passed=1, deselected=1)
    result.stdout.fnmatch_lines(["prune refused, nothing deleted: tests were selected with -k 'hello'"])
    assert cassettes(project) == before


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["test_chat.py::test_hello"], "prune refused, nothing deleted: only these tests were asked for: *"),
        (["-x"], "prune refused, nothing deleted: the run stopped early (stopping after 1 failures); tests failed: 1"),
        (["."], "prune: every cassette was used, nothing deleted"),
    ],
)
def test_prune_refuses_a_partial_run_but_not_the_rootdir_named(
    pytester: pytest.Pytester, project: Path, args: list[str], said: str
) -> None:
    before = cassettes(project)
    if "-x" in args:
        pytester.makepyfile(test_chat=ASK + NEW + HELLO + BYE)
    result = run(pytester, "--inference-gate=replay", "--inference-gate-prune", *args)
    result.stdout.fnmatch_lines([said])
    assert cassettes(project) == before


def test_prune_after_a_failure_refuses(pytester: pytest.Pytester, project: Path) -> None:
    before = cassettes(project)
    pytester.makepyfile(test_chat=ASK + HELLO + NEW)
    result = run(pytester, "--inference-gate=replay", "--inference-gate-prune")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["prune refused, nothing deleted: tests failed: 1"])
    assert cassettes(project) == before


def test_xdist_workers_each_replay_and_the_controller_prunes(pytester: pytest.Pytester, project: Path) -> None:
    before = cassettes(project)
    pytester.makepyfile(test_chat=ASK + HELLO + "\n\ndef test_hello_again():\n    assert ask('Say hello')\n")
    result = run_in_a_fresh_process(pytester, "--inference-gate=replay", "--inference-gate-prune", "-n", "2", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "replay mode, cassettes in *: hits 2, recorded 0, misses 0",
            "  test_chat.py::test_hello: chat.completions/say-hello.*.json",
            "  test_chat.py::test_hello_again: chat.completions/say-hello.*.json",
            "pruned the cassettes no test used (1):",
        ]
    )
    assert cassettes(project) == [name for name in before if "say-hello" in name]


def test_the_fixture_gives_the_running_gate(pytester: pytest.Pytester, project: Path) -> None:
    pytester.makepyfile(
        test_fixture="""
        import os

        def test_gate(inference_gate):
            assert os.environ["OPENAI_BASE_URL"] == inference_gate.base_url == inference_gate.url + "/v1"
            assert inference_gate.url.startswith("http://127.0.0.1:")
            assert inference_gate.mode.value == "replay"
            assert inference_gate.cache_dir == inference_gate.cache_dir.absolute()
            assert inference_gate.cache_dir.name == ".inference_cache"
            assert os.environ["OPENAI_API_KEY"]
            for name in ("ANTHROPIC_BASE_URL", "GOOGLE_GEMINI_BASE_URL", "AZURE_OPENAI_ENDPOINT"):
                assert os.environ[name] == inference_gate.url
        """
    )
    run(pytester, "--inference-gate=replay", "test_fixture.py").assert_outcomes(passed=1)


def test_the_anthropic_and_azure_sdks_built_with_no_arguments_reach_the_gate(
    pytester: pytest.Pytester, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    pytester.makepyfile(
        test_others="""
        import anthropic
        import openai
        import pytest

        def test_claude():
            with pytest.raises(anthropic.NotFoundError, match="No cassette"):
                anthropic.Anthropic(max_retries=0).messages.create(
                    model="claude-sonnet-4-5", max_tokens=16, messages=[{"role": "user", "content": "Hi Claude"}]
                )

        def test_azure():
            client = openai.AzureOpenAI(api_version="2024-10-21", max_retries=0)
            with pytest.raises(openai.NotFoundError, match="No cassette"):
                client.chat.completions.create(model="my-deployment", messages=[{"role": "user", "content": "Hi"}])
        """
    )
    result = run(pytester, "--inference-gate=replay", "test_others.py")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "replay mode, cassettes in *: hits 0, recorded 0, misses 2",
            "MISS test_others.py::test_azure: POST /openai/deployments/my-deployment/chat/completions *",
            "*",
            "MISS test_others.py::test_claude: POST /v1/messages messages claude-sonnet-4-5 'Hi Claude'",
        ]
    )


def test_the_environment_chooses_the_mode_and_the_command_line_wins(
    pytester: pytest.Pytester, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini("[pytest]\ninference_gate_mode = record\n")
    monkeypatch.setenv("INFERENCE_GATE_MODE", "replay")
    run(pytester).stdout.fnmatch_lines(["replay mode, cassettes in *: hits 2, recorded 0, misses 0"])
    off = run(pytester, "--inference-gate=off")
    off.assert_outcomes(failed=2)  # no gate: the SDK has no key and nowhere to go
    assert not any(line.strip("= ") == "inference-gate" for line in off.stdout.lines)  # no summary section


def test_the_ini_chooses_the_directory_relative_to_the_rootdir(
    pytester: pytest.Pytester, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.rename(pytester.path / "cassettes")
    pytester.makeini("[pytest]\ninference_gate_dir = cassettes\n")
    (pytester.path / "sub").mkdir()
    pytester.makepyfile(**{"sub/test_chat": ASK + HELLO})
    (pytester.path / "test_chat.py").unlink()
    monkeypatch.chdir(pytester.path / "sub")
    run(pytester).assert_outcomes(failed=1)
    result = run(pytester, "--inference-gate=replay")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"replay mode, cassettes in {pytester.path / 'cassettes'}: hits 1, *"])


def test_the_replay_speed_option_paces_replayed_answers(pytester: pytest.Pytester, project: Path) -> None:
    for name in cassettes(project):
        document = orjson.loads((project / name).read_bytes())
        document["response"]["timing"] = {"total_ms": 1000}
        (project / name).write_bytes(orjson.dumps(document))
    pytester.makepyfile(
        test_paced=ASK + """

import time


def test_hello_takes_half_its_recorded_second():
    assert ask("Say goodbye")  # the client's and the gate's first request, whose set-up is not the pace
    started = time.monotonic()
    assert ask("Say hello")
    assert time.monotonic() - started >= 0.4
"""
    )
    # Only a lower bound, which pacing guarantees and a slow machine cannot break; that an unpaced replay answers
    # at once is tests/e2e/test_pacing.py's to show, not a wall-clock race here.
    run(pytester, "--inference-gate=replay", "--inference-gate-replay-speed=2", "test_paced.py").assert_outcomes(
        passed=1
    )


def test_refresh_sends_every_test_upstream_and_leaves_unchanged_cassettes_byte_for_byte(
    pytester: pytest.Pytester, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = {name: (project / name).read_bytes() for name in cassettes(project)}
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    with fake_upstream() as upstream_url:
        result = run(pytester, "--inference-gate=refresh", f"--inference-gate-upstream={upstream_url}")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([
        "refresh mode, cassettes in *: hits 0, recorded 2, misses 0",
        "refreshed 2 cassette(s): 2 unchanged, 0 changed, 0 new",
    ])
    assert {name: (project / name).read_bytes() for name in cassettes(project)} == before


RECORDED_BY_PASSING_AND_FAILING = """

import pytest


def test_a_fails_after_recording():
    assert ask("Say shared")
    assert ask("Say only failing")
    assert False, "fails after recording"


def test_b_passes_with_the_shared_answer():
    assert ask("Say shared")


def test_c_passes():
    assert ask("Say passing")


@pytest.fixture
def breaks_on_teardown():
    yield
    raise RuntimeError("teardown fails")


def test_d_errors_in_teardown(breaks_on_teardown):
    assert ask("Say teardown")
"""


def recorded_prompts(cache_dir: Path) -> list[str]:
    return sorted(name.split("/")[1].rsplit(".", 2)[0] for name in cassettes(cache_dir))


@pytest.fixture
def record_project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache and a test file whose tests record, some passing and some not."""
    for name in ("OPENAI_BASE_URL", "INFERENCE_GATE_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    monkeypatch.setenv("PYTHONPATH", PYTHONPATH)
    pytester.makepyfile(test_rec=ASK + RECORDED_BY_PASSING_AND_FAILING)
    return pytester.path / ".inference_cache"


def test_record_keeps_no_cassette_a_test_that_did_not_pass_made_alone(
    pytester: pytest.Pytester, record_project: Path
) -> None:
    with fake_upstream() as upstream_url:
        result = run(pytester, "--inference-gate=record", f"--inference-gate-upstream={upstream_url}")
    result.assert_outcomes(passed=3, failed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "record mode, cassettes in *: hits 1, recorded 4, misses 0",
            "not kept, created by tests that did not pass (2; --inference-gate-keep-failed keeps them):",
            "  chat.completions/say-only-failing.*.json (test_rec.py::test_a_fails_after_recording)",
            "  chat.completions/say-teardown.*.json (test_rec.py::test_d_errors_in_teardown)",
            "kept, created by a test that did not pass but used by a passing one (1):",
            "  chat.completions/say-shared.*.json (used by test_rec.py::test_b_passes_with_the_shared_answer)",
        ]
    )
    assert recorded_prompts(record_project) == ["say-passing", "say-shared"]


def test_keep_failed_keeps_everything_recorded(pytester: pytest.Pytester, record_project: Path) -> None:
    with fake_upstream() as upstream_url:
        result = run(
            pytester, "--inference-gate=record", f"--inference-gate-upstream={upstream_url}",
            "--inference-gate-keep-failed",
        )  # fmt: skip
    result.assert_outcomes(passed=3, failed=1, errors=1)
    assert "not kept" not in result.stdout.str()
    assert recorded_prompts(record_project) == ["say-only-failing", "say-passing", "say-shared", "say-teardown"]


def test_under_xdist_the_controller_takes_back_what_no_passing_test_used(
    pytester: pytest.Pytester, record_project: Path
) -> None:
    with fake_upstream() as upstream_url:
        result = run_in_a_fresh_process(
            pytester, "--inference-gate=record", f"--inference-gate-upstream={upstream_url}", "-n", "2"
        )
    result.assert_outcomes(passed=3, failed=1, errors=1)
    result.stdout.fnmatch_lines(["not kept, created by tests that did not pass (2; *):"])
    assert recorded_prompts(record_project) == ["say-passing", "say-shared"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--inference-gate=bogus"], "ERROR: --inference-gate: unknown mode 'bogus'; choose one of replay, record, *"),
        (
            ["--inference-gate=replay", "--inference-gate-replay-speed=0"],
            "ERROR: inference-gate: --replay-speed: expected a positive number *, got '0'",
        ),
        (
            ["--inference-gate=replay", "--inference-gate-dir=blocker/cache"],
            "ERROR: --inference-gate=replay: the cassette directory */blocker/cache does not exist; only recording *",
        ),
        (
            ["--inference-gate=replay", "--inference-gate-dir=.inference_cahce"],
            "ERROR: --inference-gate=replay: the cassette directory */.inference_cahce does not exist; *",
        ),
    ],
)
def test_bad_input_is_one_usage_error_line(
    pytester: pytest.Pytester, project: Path, args: list[str], message: str
) -> None:
    (pytester.path / "blocker").write_text("a file where the cache directory should go")
    result = run(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
    assert not (pytester.path / ".inference_cahce").exists()


def test_an_in_process_run_restores_the_environment_and_the_sockets_and_leaves_no_thread(
    pytester: pytest.Pytester, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://example.invalid/v1")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-mine")
    for name in ("ANTHROPIC_BASE_URL", "GOOGLE_GEMINI_BASE_URL", "AZURE_OPENAI_ENDPOINT", "GEMINI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    sockets = (socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex)
    run(pytester, "--inference-gate=replay").assert_outcomes(passed=2)
    assert os.environ["OPENAI_BASE_URL"] == "http://example.invalid/v1"
    assert os.environ["ANTHROPIC_API_KEY"] == "sk-ant-mine"
    for name in ("OPENAI_API_KEY", "ANTHROPIC_BASE_URL", "GOOGLE_GEMINI_BASE_URL", "AZURE_OPENAI_ENDPOINT"):
        assert name not in os.environ
    assert (socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex) == sockets
    assert [thread.name for thread in threading.enumerate() if thread.name == GATE_THREAD_NAME] == []


ASK_AS = """
from openai import OpenAI


def test_ask():
    client = OpenAI(max_retries=0)
    messages = [{"role": "user", "content": "Say hello"}]
    assert client.chat.completions.create(model="gpt-4o-mini", messages=messages, user=USER).choices
"""


def test_pyproject_alone_configures_a_suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ini keys choose the mode and the upstream, `[tool.inference-gate]` the cache directory and a key rule
    that lets a replay with another `user` hit what was recorded."""
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("INFERENCE_GATE_MODE", raising=False)
    monkeypatch.setenv("PYTHONPATH", PYTHONPATH)
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    with fake_upstream() as upstream_url:
        pytester.makepyprojecttoml(
            f'[tool.pytest.ini_options]\ninference_gate_mode = "record"\ninference_gate_upstream = "{upstream_url}"\n'
            '\n[tool.inference-gate]\ncache_dir = "cassettes"\nignore = ["body.user"]\n'
        )
        pytester.makepyfile(test_ask='USER = "alice"\n' + ASK_AS)
        recorded = run(pytester)
    recorded.assert_outcomes(passed=1)
    recorded.stdout.fnmatch_lines(["record mode, cassettes in */cassettes: hits 0, recorded 1, misses 0"])
    assert len(cassettes(pytester.path / "cassettes")) == 1

    monkeypatch.delenv("OPENAI_API_KEY")
    pytester.makepyfile(test_ask='USER = "bob"\n' + ASK_AS)
    replayed = run(pytester, "--inference-gate=replay")
    replayed.assert_outcomes(passed=1)
    replayed.stdout.fnmatch_lines(["replay mode, cassettes in */cassettes: hits 1, recorded 0, misses 0"])


SESSION_TEST = """
import json
import os

from websockets.sync.client import connect


def talk(text):
    url = os.environ["OPENAI_BASE_URL"].replace("http://", "ws://") + "/realtime?model=gpt-realtime"
    with connect(url, open_timeout=10) as socket:
        assert json.loads(socket.recv(timeout=10))["type"] == "session.created"
        item = {"type": "conversation.item.create", "item": {"content": [{"type": "input_text", "text": text}]}}
        socket.send(json.dumps(item))
        socket.send(json.dumps({"type": "response.create"}))
        return [json.loads(socket.recv(timeout=10))["type"] for _ in range(3)]


def test_session():
    assert talk("hello") == ["response.output_text.delta", "response.output_text.delta", "response.done"]


def test_changed_session():
    assert talk("howdy")
"""


def test_a_websocket_session_replays_through_the_plugin_and_its_miss_is_summarised(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inference_gate.core.session_cassette import session_to_bytes
    from tests.sessions import realtime_session

    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("INFERENCE_GATE_MODE", raising=False)
    (pytester.path / ".inference_cache" / "realtime").mkdir(parents=True)
    session_file = pytester.path / ".inference_cache" / "realtime" / "hello.0000000000000000.json"
    session_file.write_bytes(session_to_bytes(realtime_session()))
    pytester.makepyfile(test_realtime=SESSION_TEST)
    result = run(pytester, "--inference-gate=replay", "-v")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "replay mode, cassettes in *: hits 1, recorded 0, misses 1",
            "MISS test_realtime.py::test_changed_session: GET /v1/realtime realtime gpt-realtime client event 1:"
            " conversation.item.create",
            '    closest cassette: realtime/hello.0000000000000000.json differs at item.content[0].text: recorded'
            ' "hello", received "howdy"',
            "cassettes used, by test:",
            "  test_realtime.py::test_changed_session: -",
            "  test_realtime.py::test_session: realtime/hello.0000000000000000.json",
        ]
    )


def test_a_key_rule_only_in_the_per_user_file_is_warned_about_in_the_run(
    pytester: pytest.Pytester, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = pytester.path / "home"
    (home / ".InferenceGate").mkdir(parents=True)
    # A rule that changes none of these cassettes' names or keys, so the replay still hits; the warning stands.
    (home / ".InferenceGate" / "config.yaml").write_text("redact: [headers.x-team]\n", encoding="utf-8")
    monkeypatch.setenv("HOME", str(home))
    result = run(pytester, "--inference-gate=replay", "-W", "always::pytest.PytestConfigWarning")
    result.assert_outcomes(passed=2)
    warning = "*inference-gate: KEY RULE IN A PERSONAL FILE: *config.yaml: redact shapes cassettes*"
    result.stdout.fnmatch_lines([warning])
