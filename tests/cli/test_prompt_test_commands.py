"""`test-gate` and `test-upstream` against gates and the fake upstream running in the test's trio loop.

A command runs its own `trio.run`, so the in-process tester runs in a worker thread; the real entry point runs
as a child process.
"""

import os
import re
import socket
import subprocess
import sys
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import pytest
import trio
from cleo.testers.application_tester import ApplicationTester

from inference_gate.cli.app import GateApplication
from inference_gate.cli.prompt_test_commands import duration
from inference_gate.config.settings import Settings
from inference_gate.core.policy import Mode
from inference_gate.proxy.gate import Gate
from tests.servers import running_upstream
from tools.fake_upstream import FakeUpstream

REPO_ROOT = Path(__file__).parents[2]
GOOD_KEY = "sk-test-good-key-0123456789"
TEST_DEADLINE_S = 30.0

NOT_LISTENING = (
    "error: no gate is listening on http://127.0.0.1:{port} — start one with `inference-gate start` or "
    "`inference-gate replay`\n"
)


def closed_port() -> int:
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        return probe_socket.getsockname()[1]


async def run(args: str) -> ApplicationTester:
    """The command in a worker thread, so that this test's trio loop keeps serving the gate it talks to."""
    tester = ApplicationTester(GateApplication())
    with trio.fail_after(TEST_DEADLINE_S):
        await trio.to_thread.run_sync(tester.execute, args)
    return tester


async def run_script(*args: str, home: Path, api_key: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": str(home), "USERPROFILE": str(home)}
    env.pop("OPENAI_API_KEY", None)
    if api_key is not None:
        env["OPENAI_API_KEY"] = api_key
    with trio.fail_after(TEST_DEADLINE_S):
        result = await trio.run_process(
            [sys.executable, "-m", "inference_gate", *args],
            cwd=REPO_ROOT,
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    result.stdout, result.stderr = result.stdout.decode(), result.stderr.decode()
    return result


@asynccontextmanager
async def running_gate(mode: Mode, cache_dir: Path, upstream: str = "http://127.0.0.1:9"):
    """A gate on a free port; yields the port."""
    async with trio.open_nursery() as nursery:
        shutdown = trio.Event()
        settings = Settings(port=0, cache_dir=cache_dir, upstream=upstream)
        yield await nursery.start(partial(Gate(settings, mode).run, shutdown=shutdown))
        shutdown.set()


def result_rows(output: str) -> dict[str, str]:
    return dict(re.match(r"^(\w+):\s+(.*)$", line).groups() for line in output.splitlines())


# test-gate


async def test_gate_records_then_replays_the_test_prompt(home, tmp_path):
    async with running_upstream(FakeUpstream()) as fake:
        async with running_gate(Mode.RECORD, tmp_path, upstream=fake.url) as port:
            recorded = await run(f"test-gate --port {port}")
        async with running_gate(Mode.REPLAY, tmp_path) as port:
            replayed = await run(f"test-gate -p {port} --host 127.0.0.1")
    assert (recorded.status_code, replayed.status_code) == (0, 0)
    assert result_rows(recorded.io.fetch_output())["answered"] == (
        "recorded (forwarded to the upstream and saved as a cassette)"
    )
    rows = result_rows(replayed.io.fetch_output())
    assert list(rows) == ["url", "model", "reply", "time", "answered"]
    assert rows["url"] == f"http://127.0.0.1:{port}/v1/chat/completions"
    assert (rows["model"], rows["reply"]) == ("gpt-4o-mini", "OK.")
    assert re.fullmatch(r"\d+ ms|\d+\.\d\d s", rows["time"])
    assert rows["answered"] == "hit (replayed from a cassette)"
    assert replayed.io.fetch_error() == ""
    assert len(fake.requests) == 1


async def test_gate_model_and_prompt_options_replace_the_settings(home, tmp_path):
    async with running_upstream(FakeUpstream()) as fake, running_gate(Mode.RECORD, tmp_path, upstream=fake.url) as port:
        tester = await run(f'test-gate --port {port} --model gpt-4o --prompt "Line one\nline two"')
    assert tester.status_code == 0
    assert fake.requests[0].json == {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "Line one\nline two"}],
    }
    output = tester.io.fetch_output()
    assert "reply:    Echo: Line one\n          line two" in output  # a reply of two lines keeps its shape


async def test_gate_miss_is_one_error_line(home, tmp_path):
    async with running_gate(Mode.REPLAY, tmp_path) as port:
        tester = await run(f"test-gate --port {port}")
    assert tester.status_code == 1
    assert tester.io.fetch_output() == ""
    error = tester.io.fetch_error()
    assert error.startswith("error: the gate answered 404 cache_miss (miss): No cassette for POST ")
    assert error.count("\n") == 1


async def test_gate_nothing_listening(home):
    port = closed_port()
    tester = await run(f"test-gate --port {port}")
    assert tester.status_code == 1
    assert tester.io.fetch_error() == NOT_LISTENING.format(port=port)


async def test_blank_prompt_is_refused(home):
    tester = await run('test-gate --prompt " "')
    assert tester.status_code == 1
    assert tester.io.fetch_error() == "error: --prompt: expected a non-empty string, got ' '\n"


# test-upstream


async def test_upstream_with_a_good_key(home):
    async with running_upstream(FakeUpstream(expected_api_key=GOOD_KEY)) as fake:
        tester = await run(f"test-upstream --upstream {fake.url} --api-key {GOOD_KEY}")
    assert tester.status_code == 0
    rows = result_rows(tester.io.fetch_output())
    assert list(rows) == ["url", "model", "reply", "time"]
    assert (rows["url"], rows["reply"]) == (f"{fake.url}/v1/chat/completions", "OK.")
    assert fake.requests[0].headers["authorization"] == f"Bearer {GOOD_KEY}"


async def test_upstream_with_a_bad_key_prints_the_upstreams_message(home, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
    async with running_upstream(FakeUpstream(expected_api_key=GOOD_KEY)) as fake:
        tester = await run(f"test-upstream --upstream {fake.url}")
    assert tester.status_code == 1
    assert tester.io.fetch_output() == ""
    assert tester.io.fetch_error() == (
        "error: the upstream answered 401 invalid_api_key: Incorrect API key provided: sk-wrong. "
        "You can find your API key at https://platform.openai.com/account/api-keys.\n"
    )


async def test_upstream_without_a_key_sends_nothing(home):
    async with running_upstream(FakeUpstream()) as fake:
        tester = await run(f"test-upstream --upstream {fake.url} --model gpt-4o")
    assert tester.status_code == 1
    assert tester.io.fetch_error() == (
        "error: no API key is set (set OPENAI_API_KEY or pass --api-key); nothing was sent\n"
    )
    assert fake.requests == []


async def test_upstream_unreachable(home):
    port = closed_port()
    tester = await run(f"test-upstream --upstream http://127.0.0.1:{port} --api-key {GOOD_KEY}")
    assert tester.status_code == 1
    assert tester.io.fetch_error() == (
        f"error: could not connect to upstream http://127.0.0.1:{port}: Connection refused\n"
    )


@pytest.mark.parametrize(("elapsed_s", "shown"), [(0.0004, "0 ms"), (0.8404, "840 ms"), (2.314, "2.31 s")])
def test_duration(elapsed_s, shown):
    assert duration(elapsed_s) == shown


# the real entry point


async def test_script_test_gate_hit_miss_and_nothing_listening(home, tmp_path):
    async with running_upstream(FakeUpstream()) as fake, running_gate(Mode.RECORD, tmp_path, upstream=fake.url) as port:
        recorded = await run_script("test-gate", "--port", str(port), home=home)
    async with running_gate(Mode.REPLAY, tmp_path) as port:
        hit = await run_script("test-gate", "--port", str(port), home=home)
        missed = await run_script("test-gate", "--port", str(port), "--prompt", "Not recorded", home=home)
    nothing = await run_script("test-gate", "--port", str(port), home=home)

    assert (recorded.returncode, hit.returncode) == (0, 0)
    assert result_rows(hit.stdout)["answered"] == "hit (replayed from a cassette)"
    assert result_rows(hit.stdout)["reply"] == "OK."
    assert missed.returncode == 1
    assert missed.stdout == ""
    assert missed.stderr.startswith("error: the gate answered 404 cache_miss (miss): No cassette for POST ")
    assert missed.stderr.count("\n") == 1
    assert nothing.returncode == 1
    assert nothing.stderr == NOT_LISTENING.format(port=port)


@asynccontextmanager
async def fake_upstream_script(*args: str):
    """`python -m tools.fake_upstream` as a child process; yields the URL it prints."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "tools.fake_upstream", "--port", "0", *args],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
    )
    try:
        with trio.fail_after(TEST_DEADLINE_S):
            output = b""
            while b"\n" not in output:
                chunk = await process.stdout.receive_some()
                assert chunk, "the fake upstream exited before printing its URL"
                output += chunk
        yield output.decode().strip()
    finally:
        process.kill()
        with trio.move_on_after(TEST_DEADLINE_S, shield=True):
            await process.wait()
        process.stdout.close()


async def test_script_test_upstream_keys(home):
    async with fake_upstream_script("--expected-api-key", GOOD_KEY) as url:
        good = await run_script("test-upstream", "--upstream", url, home=home, api_key=GOOD_KEY)
        bad = await run_script("test-upstream", "--upstream", url, "--api-key", "sk-bad", home=home)
        none = await run_script("test-upstream", "--upstream", url, home=home)
    assert good.returncode == 0, good.stderr
    assert result_rows(good.stdout)["reply"] == "OK."
    assert bad.returncode == 1
    assert bad.stdout == ""
    assert bad.stderr == (
        "error: the upstream answered 401 invalid_api_key: Incorrect API key provided: sk-bad. "
        "You can find your API key at https://platform.openai.com/account/api-keys.\n"
    )
    assert none.returncode == 1
    assert (
        none.stderr == "error: no API key is set (set OPENAI_API_KEY or pass --api-key); nothing was sent\n"
    )
