"""`start` and `replay`: in this process through cleo's tester, and as `python -m inference_gate` in a
child process stopped with real signals, recording from the fake upstream in the test's trio loop."""

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
import trio
from cleo.io.buffered_io import BufferedIO
from cleo.testers.application_tester import ApplicationTester

from inference_gate.cli.app import GateApplication
from inference_gate.cli.serve_commands import banner, gate_logging, route_lines
from inference_gate.config.settings import Settings
from inference_gate.core.errors import GateError
from inference_gate.core.policy import Mode
from inference_gate.http.upstream import UpstreamPool
from inference_gate.proxy.ledger import OUTSIDE_TESTS
from inference_gate.serve.prompt_test import prompt_the_gate
from tests.servers import running_upstream
from tools.fake_upstream import FakeUpstream

REPO_ROOT = Path(__file__).parents[2]
API_KEY = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789wxyz"
STARTUP_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
TEST_DEADLINE_S = 30.0

posix_signals = pytest.mark.skipif(sys.platform == "win32", reason="sends POSIX signals")


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    """Run in a fresh directory: `start` creates the default cache directory where it runs."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def cache_dir(tmp_path):
    """An empty cache directory: `replay` refuses a missing one."""
    path = tmp_path / "cassettes"
    path.mkdir()
    return path


def free_port() -> int:
    """A loopback port that was free a moment ago, for a test that must know the port before the gate starts."""
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        return probe_socket.getsockname()[1]


def run(args: str) -> ApplicationTester:
    tester = ApplicationTester(GateApplication())
    tester.execute(args)
    return tester


def files_under(root: Path) -> list[str]:
    """Every file, temporary ones included, relative to `root`."""
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file())


def chat_body(prompt: str) -> bytes:
    return orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]})


# The child process


class GateProcess:
    """`python -m inference_gate ...` running as a child, with its output read as it comes."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self._stdout = bytearray()

    async def banner(self) -> tuple[str, int]:
        """The banner line and the port it names, once the gate listens."""
        with trio.fail_after(STARTUP_TIMEOUT_S):
            while b"\n" not in self._stdout:
                chunk = await self.process.stdout.receive_some()
                if not chunk:
                    stderr = (await _read_all(self.process.stderr)).decode()
                    raise AssertionError(f"the gate exited before its banner: {stderr}")
                self._stdout += chunk
        line = self._stdout.partition(b"\n")[0].decode()
        match = re.search(r"listening on http://127\.0\.0\.1:(\d+)/v1", line)
        assert match, line
        return line, int(match[1])

    async def stop(self, signum: int) -> tuple[int, str, str]:
        """Send `signum`; the exit code, all of stdout and all of stderr once the process has ended."""
        self.process.send_signal(signum)
        return await self.finish()

    async def finish(self) -> tuple[int, str, str]:
        with trio.fail_after(STOP_TIMEOUT_S):
            self._stdout += await _read_all(self.process.stdout)
            stderr = await _read_all(self.process.stderr)
            code = await self.process.wait()
        return code, self._stdout.decode(), stderr.decode()


async def _read_all(stream: trio.abc.ReceiveStream) -> bytes:
    data = bytearray()
    while chunk := await stream.receive_some():
        data += chunk
    return bytes(data)


def script_env(home: Path, api_key: str | None = None) -> dict[str, str]:
    env = {**os.environ, "HOME": str(home), "USERPROFILE": str(home)}
    env.pop("OPENAI_API_KEY", None)
    if api_key is not None:
        env["OPENAI_API_KEY"] = api_key
    return env


@asynccontextmanager
async def gate_process(*args: str, home: Path, api_key: str | None = None):
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "inference_gate", *args],
        cwd=REPO_ROOT,
        env=script_env(home, api_key),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        yield GateProcess(process)
    finally:
        if process.returncode is None:
            process.kill()
        with trio.move_on_after(STOP_TIMEOUT_S, shield=True):
            await process.wait()
        process.stdout.close()
        process.stderr.close()


async def wait_for_requests(fake: FakeUpstream, count: int) -> None:
    while len(fake.requests) < count:
        await trio.sleep(0.01)


# start and replay as child processes


@posix_signals
async def test_script_replay_answers_until_sigterm(home, cache_dir):
    with trio.fail_after(TEST_DEADLINE_S):
        async with gate_process("replay", "--port", "0", "--cache-dir", str(cache_dir), home=home) as gate:
            line, port = await gate.banner()
            missed = await prompt_the_gate(Settings(port=port))
            code, stdout, stderr = await gate.stop(signal.SIGTERM)
    assert port != 0
    assert line == f"replay mode, listening on http://127.0.0.1:{port}/v1, cache {cache_dir} (0 cassettes)"
    assert (missed.status, missed.gate_outcome) == (404, "miss")
    assert code == 0
    assert stdout == f"{line}\nstopped\n"
    assert stderr == ""


@posix_signals
async def test_script_start_records_and_a_replay_gate_replays(home, cache_dir):
    with trio.fail_after(TEST_DEADLINE_S):
        async with running_upstream(FakeUpstream()) as fake:
            args = [
                "-v",
                "start",
                "--port",
                "0",
                "--cache-dir",
                str(cache_dir),
                "--upstream",
                fake.url,
            ]
            async with gate_process(*args, home=home, api_key=API_KEY) as gate:
                line, port = await gate.banner()
                recorded = await prompt_the_gate(Settings(port=port))
                hit = await prompt_the_gate(Settings(port=port))
                code, stdout, stderr = await gate.stop(signal.SIGINT)
        replay_args = ["replay", "--port", "0", "--cache-dir", str(cache_dir)]
        async with gate_process(*replay_args, home=home) as replay_gate:
            replay_line, replay_port = await replay_gate.banner()
            replayed = await prompt_the_gate(Settings(port=replay_port))
            replay_code, _, _ = await replay_gate.stop(signal.SIGINT)

    assert line == (
        f"record mode, listening on http://127.0.0.1:{port}/v1, cache {cache_dir} (0 cassettes), "
        f"upstream {fake.url}"
    )
    assert (recorded.gate_outcome, hit.gate_outcome, replayed.gate_outcome) == ("recorded", "hit", "hit")
    assert replayed.reply == "OK."
    assert fake.requests[0].headers["authorization"] == f"Bearer {API_KEY}"
    assert (code, replay_code) == (0, 0)
    routes = "\n".join(route_lines(Settings(upstream=fake.url, api_key=API_KEY)))
    assert stdout == f"{line}\n{routes}\nstopped\n"
    assert f"  openai: /v1/..., /openai/... -> {fake.url} (gate's key)" in routes
    # --verbose: one line per request, and nothing else.
    log_lines = stderr.splitlines()
    assert len(log_lines) == 2
    assert re.match(
        r"^\d\d:\d\d:\d\d POST /v1/chat/completions recorded 200 [\d.]+ms chat\.completions/", log_lines[0]
    )
    assert re.match(
        r"^\d\d:\d\d:\d\d POST /v1/chat/completions hit 200 [\d.]+ms chat\.completions/", log_lines[1]
    )
    [cassette] = files_under(cache_dir)
    assert cassette.startswith("chat.completions/this-is-a-test-prompt")
    assert replay_line.endswith(f"cache {cache_dir} (1 cassette)")
    assert API_KEY not in (cache_dir / cassette).read_text(encoding="utf-8")


@posix_signals
async def test_script_start_refresh_rerecords_and_says_what_it_changed_on_shutdown(home, cache_dir):
    with trio.fail_after(TEST_DEADLINE_S):
        async with running_upstream(FakeUpstream()) as fake:
            args = ["start", "--port", "0", "--cache-dir", str(cache_dir), "--upstream", fake.url]
            async with gate_process(*args, home=home, api_key=API_KEY) as gate:
                _, port = await gate.banner()
                await prompt_the_gate(Settings(port=port))
                await gate.stop(signal.SIGINT)
            before = {name: (cache_dir / name).read_bytes() for name in files_under(cache_dir)}
            async with gate_process(*args, "--refresh", "--takes", "2", home=home, api_key=API_KEY) as gate:
                line, port = await gate.banner()
                refreshed = await prompt_the_gate(Settings(port=port))
                code, stdout, _ = await gate.stop(signal.SIGINT)

    assert line.startswith("refresh mode, ") and line.endswith(
        f"upstream {fake.url}, every request re-recorded; files rewritten only when the answer changed"
    )
    assert refreshed.gate_outcome == "recorded" and len(fake.requests) == 2
    assert code == 0
    routes = "\n".join(route_lines(Settings(upstream=fake.url, api_key=API_KEY)))
    assert stdout == f"{line}\n{routes}\nrefreshed 1 cassette(s): 1 unchanged, 0 changed, 0 new\nstopped\n"
    assert {name: (cache_dir / name).read_bytes() for name in files_under(cache_dir)} == before


@posix_signals
async def test_script_ledger_is_written_at_shutdown_with_every_answer_under_one_pseudo_test(home, cache_dir):
    ledger_path = home / "ledger.json"
    with trio.fail_after(TEST_DEADLINE_S):
        async with running_upstream(FakeUpstream()) as fake:
            args = ["start", "--port", "0", "--cache-dir", str(cache_dir), "--upstream", fake.url]
            async with gate_process(*args, "--ledger", str(ledger_path), home=home, api_key=API_KEY) as gate:
                _, port = await gate.banner()
                await prompt_the_gate(Settings(port=port))
                await prompt_the_gate(Settings(port=port))
                assert not ledger_path.exists()
                code, _, _ = await gate.stop(signal.SIGTERM)
    assert code == 0
    [cassette] = files_under(cache_dir)
    assert orjson.loads(ledger_path.read_bytes()) == {
        "version": 1,
        "tests": {
            OUTSIDE_TESTS: {
                "counts": {"hit": 1, "recorded": 1},
                "cassettes": [cassette],
                "created": [cassette],
                "misses": [],
            }
        },
    }


async def _send_in_background(port: int, prompt: str, outcome: list) -> None:
    """Send one chat completion to the gate; append its status and body, or the error that ended it."""
    pool = UpstreamPool(f"http://127.0.0.1:{port}", connect_timeout_s=5, read_timeout_s=TEST_DEADLINE_S)
    headers = [(b"content-type", b"application/json"), (b"authorization", b"Bearer " + API_KEY.encode())]
    try:
        async with pool.request("POST", "/v1/chat/completions", headers, chat_body(prompt)) as response:
            body = b"".join([chunk async for chunk in response.body_chunks()])
        outcome.append((response.status, body))
    except GateError as error:
        outcome.append(error)
    finally:
        await pool.aclose()


@posix_signals
async def test_script_sigterm_lets_an_exchange_in_flight_finish_and_be_recorded(home, cache_dir):
    outcome: list = []
    with trio.fail_after(TEST_DEADLINE_S):
        async with running_upstream(FakeUpstream()) as fake, trio.open_nursery() as clients:
            fake.hold = trio.Event()  # the fake answers only once this is set
            args = [
                "start",
                "--port",
                "0",
                "--cache-dir",
                str(cache_dir),
                "--upstream",
                fake.url,
            ]
            async with gate_process(*args, home=home, api_key=API_KEY) as gate:
                _, port = await gate.banner()
                clients.start_soon(_send_in_background, port, "Finish me", outcome)
                await wait_for_requests(fake, 1)
                gate.process.send_signal(signal.SIGTERM)
                await trio.sleep(0.3)  # the gate has stopped listening and waits for the exchange
                assert gate.process.returncode is None
                fake.hold.set()
                code, stdout, stderr = await gate.finish()
    [(status, body)] = outcome
    assert status == 200
    assert orjson.loads(body)["choices"][0]["message"]["content"].startswith("Echo: Finish me")
    assert (code, stderr) == (0, "")
    assert stdout.endswith("\nstopped\n")
    [cassette] = files_under(cache_dir)
    assert cassette.startswith("chat.completions/finish-me.")


@posix_signals
async def test_script_sigterm_cancels_an_exchange_past_the_grace_period_and_writes_nothing(home, cache_dir):
    config = home / "gate.yaml"
    config.write_text("shutdown_grace_s: 0.5\n", encoding="utf-8")
    outcome: list = []
    with trio.fail_after(TEST_DEADLINE_S):
        async with running_upstream(FakeUpstream()) as fake, trio.open_nursery() as clients:
            fake.hold = trio.Event()  # never set: the upstream never answers
            args = [
                "--config",
                str(config),
                "start",
                "--port",
                "0",
                "--cache-dir",
                str(cache_dir),
            ]
            async with gate_process(*args, "--upstream", fake.url, home=home, api_key=API_KEY) as gate:
                _, port = await gate.banner()
                clients.start_soon(_send_in_background, port, "Never answered", outcome)
                await wait_for_requests(fake, 1)
                code, stdout, stderr = await gate.stop(signal.SIGTERM)
            fake.hold.set()
    assert (code, stderr) == (0, "")
    assert stdout.endswith("\nstopped\n")
    assert files_under(cache_dir) == []
    [error] = outcome
    assert isinstance(error, GateError)  # the client saw its connection end without an answer


def test_script_port_in_use_is_one_line(home, cache_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "inference_gate",
                "replay",
                "--port",
                str(port),
                "--cache-dir",
                str(cache_dir),
            ],
            cwd=REPO_ROOT,
            env=script_env(home),
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == f"error: cannot listen on 127.0.0.1:{port}: address already in use\n"


def test_script_bad_port_is_one_line(home):
    result = subprocess.run(
        [sys.executable, "-m", "inference_gate", "start", "--port", "http"],
        cwd=REPO_ROOT,
        env=script_env(home),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert result.stderr == "error: --port: expected an integer from 0 to 65535 (0 picks a free port), got 'http'\n"


# start and replay in this process


@pytest.fixture
def taken_port():
    """A port on every address that something else already listens on."""
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        yield taken.getsockname()[1]


def test_port_in_use_is_one_error_line(home, cache_dir, taken_port):
    tester = run(f"replay --port {taken_port} --cache-dir {cache_dir}")
    assert tester.status_code == 1
    assert tester.io.fetch_output() == ""
    assert (
        tester.io.fetch_error() == f"error: cannot listen on 127.0.0.1:{taken_port}: address already in use\n"
    )


def test_verbose_adds_the_traceback(home, cache_dir, taken_port):
    tester = run(f"-v replay --port {taken_port} --cache-dir {cache_dir}")
    assert tester.status_code == 1
    error = tester.io.fetch_error()
    assert "ListenError" in error
    assert error.count("\n") > 1
    assert error.splitlines()[-1] == f"error: cannot listen on 127.0.0.1:{taken_port}: address already in use"


def test_record_mode_off_loopback_warns_loudly_and_notes_the_missing_key(home, taken_port):
    tester = run(f"start --host 0.0.0.0 --port {taken_port} --upstream http://127.0.0.1:9")
    assert tester.status_code == 1
    assert tester.io.fetch_error().splitlines() == [
        "warning: RECORD MODE IS LISTENING ON 0.0.0.0, NOT ON LOOPBACK: anyone who can reach this address "
        "can send requests to http://127.0.0.1:9 and spend the API key owner's money",
        "note: no API key set (OPENAI_API_KEY or --api-key): each client's own Authorization header is "
        "passed to the upstream",
        f"error: cannot listen on 0.0.0.0:{taken_port}: address already in use",
    ]


def test_record_mode_with_a_key_on_loopback_says_nothing_extra(home, taken_port):
    tester = run(f"start --port {taken_port} --api-key {API_KEY}")
    assert (
        tester.io.fetch_error() == f"error: cannot listen on 127.0.0.1:{taken_port}: address already in use\n"
    )


def test_replay_off_loopback_is_not_a_risk(home, cache_dir, taken_port):
    tester = run(f"replay --host 0.0.0.0 --port {taken_port} --cache-dir {cache_dir}")
    assert (
        tester.io.fetch_error() == f"error: cannot listen on 0.0.0.0:{taken_port}: address already in use\n"
    )


def test_replay_of_a_missing_cache_dir_is_one_line(home, tmp_path):
    missing = tmp_path / "typo"
    tester = run(f"replay --port 0 --cache-dir {missing}")
    assert tester.status_code == 1
    assert tester.io.fetch_error() == (
        f"error: cache directory {missing} does not exist (replay mode needs recorded cassettes)\n"
    )
    assert not missing.exists()


@pytest.mark.parametrize("command", ["start", "replay"])
def test_a_cache_dir_that_is_a_file_is_refused(home, tmp_path, command):
    not_a_dir = tmp_path / "cassettes.json"
    not_a_dir.write_text("{}")
    tester = run(f"{command} --port 0 --cache-dir {not_a_dir}")
    assert tester.status_code == 1
    assert tester.io.fetch_error().endswith(f"error: cache directory {not_a_dir} is not a directory\n")


def test_start_refuses_an_unwritable_cache_dir(home, tmp_path):
    read_only = tmp_path / "read-only"
    read_only.mkdir(mode=0o500)
    if os.access(read_only, os.W_OK):
        pytest.skip("running as a user who can write to a read-only directory (root)")
    tester = run(f"start --port 0 --cache-dir {read_only} --api-key {API_KEY}")
    assert tester.status_code == 1
    assert tester.io.fetch_error().startswith(f"error: cache directory {read_only} cannot be written: ")


def test_start_refuses_a_cache_dir_below_a_file(home, tmp_path):
    (tmp_path / "file").write_text("")
    below_a_file = tmp_path / "file" / "cassettes"
    tester = run(f"start --port 0 --cache-dir {below_a_file} --api-key {API_KEY}")
    assert tester.status_code == 1
    assert tester.io.fetch_error() == f"error: cache directory {below_a_file} cannot be written: Not a directory\n"


def test_start_creates_a_missing_cache_dir_before_listening(home, tmp_path, taken_port):
    new_dir = tmp_path / "new" / "cassettes"
    tester = run(f"start --port {taken_port} --cache-dir {new_dir} --api-key {API_KEY}")
    assert "cannot listen" in tester.io.fetch_error()
    assert new_dir.is_dir()
    assert list(new_dir.iterdir()) == []


def test_start_refuses_a_gate_key_too_short_to_keep_out_of_cassettes(home, cache_dir):
    tester = run(f"start --port 0 --cache-dir {cache_dir} --api-key sk-short")
    assert tester.status_code == 1
    assert tester.io.fetch_error() == (
        "error: the API key is 8 characters long; the gate needs at least 32 to keep it out of cassettes "
        "(real OpenAI, Anthropic and Azure keys are longer)\n"
    )


def test_start_help_shows_the_built_in_defaults(home):
    tester = run("start --help")
    help_text = " ".join(tester.io.fetch_output().split())
    for default in (
        "[default: 127.0.0.1]",
        "[default: 8080]",
        "[default: https://api.openai.com]",
        "[default: .inference_cache]",
    ):
        assert default in help_text


def test_replay_has_no_upstream_options(home):
    tester = run("replay --upstream http://127.0.0.1:9")
    assert tester.status_code != 0
    assert tester.io.fetch_error() == 'error: The option "--upstream" does not exist\n'


@posix_signals
def test_replay_in_process_logs_each_request_and_stops_on_sigterm(home, cache_dir):
    """The whole command in this thread; another thread waits for the port, sends a request and signals.

    A no-op SIGTERM handler stays installed around the run, so a signal that arrives after the gate's own
    handler is gone cannot end the test process.
    """
    port = free_port()
    heads: list[bytes] = []

    def request_then_signal() -> None:
        try:
            heads.append(request_when_listening(port))
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    previous_handler = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    client = threading.Thread(target=request_then_signal, daemon=True)
    try:
        client.start()
        tester = run(f"-v replay --port {port} --cache-dir {cache_dir}")
        client.join(STOP_TIMEOUT_S)
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    assert tester.status_code == 0
    assert tester.io.fetch_output() == (
        f"replay mode, listening on http://127.0.0.1:{port}/v1, cache {cache_dir} (0 cassettes)\nstopped\n"
    )
    assert heads[0].startswith(b"HTTP/1.1 404 ")
    [log_line] = tester.io.fetch_error().splitlines()
    assert re.match(
        r"^\d\d:\d\d:\d\d GET /v1/models miss 404 [\d.]+ms get\.models/[0-9a-f]{16}\.json$", log_line
    )


def request_when_listening(port: int) -> bytes:
    """Connect as soon as the port accepts (within the startup timeout), send one request, return the head."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        try:
            client = socket.create_connection(("127.0.0.1", port), timeout=STOP_TIMEOUT_S)
            break
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    with client:
        client.sendall(b"GET /v1/models HTTP/1.1\r\nhost: gate\r\nconnection: close\r\n\r\n")
        response = b""
        while b"\r\n\r\n" not in response and (chunk := client.recv(65536)):
            response += chunk
    return response


# the banner and the log lines


def test_banner_names_the_mode_url_cache_and_upstream(tmp_path):
    settings = Settings(host="::1", cache_dir=tmp_path, upstream="https://api.openai.com")
    assert banner(settings, Mode.RECORD, 8123, 1) == (
        f"record mode, listening on http://[::1]:8123/v1, cache {tmp_path} (1 cassette), "
        "upstream https://api.openai.com"
    )
    assert banner(settings, Mode.REPLAY, 8123, 2) == (
        f"replay mode, listening on http://[::1]:8123/v1, cache {tmp_path} (2 cassettes)"
    )
    assert banner(replace(settings, takes=3), Mode.RECORD, 8123, 1).endswith(
        "upstream https://api.openai.com, up to 3 takes per request"
    )


def test_banner_says_when_replays_are_paced(tmp_path):
    paced = Settings(cache_dir=tmp_path, replay_speed=2.0)
    assert banner(paced, Mode.REPLAY, 8123, 2).endswith("(2 cassettes), replays paced at 2x the recorded speed")
    assert banner(paced, Mode.RECORD, 8123, 2).endswith("replays paced at 2x the recorded speed")
    assert "paced" not in banner(paced, Mode.REFRESH, 8123, 2)  # refresh answers nothing from a cassette
    assert "paced" not in banner(Settings(cache_dir=tmp_path), Mode.REPLAY, 8123, 2)


@pytest.mark.parametrize("command", ["start", "replay"])
def test_start_and_replay_take_the_pacing_options(command):
    definition = GateApplication().find(command).definition
    assert definition.has_option("replay-speed") and definition.has_option("replay-spread")


def test_relative_cache_dirs_are_shown_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = banner(Settings(cache_dir=Path(".inference_cache")), Mode.REPLAY, 8080, 0)
    assert line.endswith(f"cache {tmp_path / '.inference_cache'} (0 cassettes)")


def test_banner_says_when_faults_are_injected_and_with_which_seed(tmp_path):
    settings = Settings(cache_dir=tmp_path, fault_rate=0.25, fault_seed=7)
    faults = "fault injection on: 25% of answers from cassettes fail on purpose (seed 7)"
    assert banner(settings, Mode.REPLAY, 8123, 2).endswith(f"(2 cassettes), {faults}")
    assert banner(settings, Mode.RECORD, 8123, 2).endswith(f"upstream https://api.openai.com, {faults}")
    assert "fault injection" not in banner(replace(settings, fault_rate=0.0), Mode.REPLAY, 8123, 2)
    # Refresh mode answers nothing from cassettes, so nothing fails on purpose there.
    assert "fault injection" not in banner(settings, Mode.REFRESH, 8123, 2)


def test_replay_refuses_a_fault_rate_above_one_in_one_line(home, cache_dir):
    tester = run(f"replay --cache-dir {cache_dir} --fault-rate 2")
    assert tester.status_code != 0
    expected = "a number from 0 to 1 (0.1 is one in ten)"
    assert tester.io.fetch_error() == f"error: --fault-rate: expected {expected}, got '2'\n"


def _log_with_an_exception(logger: logging.Logger) -> None:
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        logger.exception("recording POST /v1/chat/completions failed")


def test_default_logging_shows_problems_on_one_line_each():
    io = BufferedIO()
    logger = logging.getLogger("inference_gate")
    level_before = logger.level
    with gate_logging(io, verbose=False):
        logger.info("GET /v1/models hit 200 0.1ms x.json")
        logging.getLogger("inference_gate.server").debug("connection ended")
        logger.warning("corrupt cassette: %s", "a.json: not valid JSON\n(line 1)")
        _log_with_an_exception(logger)
    logger.warning("after the run")
    assert io.fetch_error().splitlines() == [
        "warning: corrupt cassette: a.json: not valid JSON (line 1)",
        "error: recording POST /v1/chat/completions failed (ValueError: boom second line)",
    ]
    assert logger.level == level_before
    assert not any(type(handler).__name__ == "_IOLogHandler" for handler in logger.handlers)


def test_verbose_logging_shows_each_request_with_its_time_and_tracebacks():
    io = BufferedIO()
    logger = logging.getLogger("inference_gate")
    with gate_logging(io, verbose=True):
        logger.info("GET /v1/models hit 200 0.1ms x.json")
        _log_with_an_exception(logger)
    lines = io.fetch_error().splitlines()
    assert re.match(r"^\d\d:\d\d:\d\d GET /v1/models hit 200 0\.1ms x\.json$", lines[0])
    assert lines[1] == "error: recording POST /v1/chat/completions failed"
    assert lines[2] == "Traceback (most recent call last):"
    assert lines[-2:] == ["ValueError: boom", "second line"]


def test_route_lines_say_where_each_route_goes_and_whose_credential_it_sends():
    settings = Settings(
        api_key="sk-openai-0123456789abcdef",
        upstreams={"ollama": {"url": "http://localhost:11434", "prefix": "/ollama"}},
    )
    assert route_lines(settings) == [
        "routes:",
        "  openai: /v1/..., /openai/... -> https://api.openai.com (gate's key)",
        "  anthropic: /v1/messages... -> https://api.anthropic.com (client's credential passed through)",
        "  gemini: /v1beta/models/... -> https://generativelanguage.googleapis.com "
        "(client's credential passed through)",
        "  ollama: /ollama/... -> http://localhost:11434 (client's credential passed through)",
    ]


def test_a_short_key_for_any_provider_is_refused_before_listening(home, cache_dir, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "short")
    tester = run(f"start --port 0 --cache-dir {cache_dir}")
    assert tester.status_code == 1
    assert tester.io.fetch_error() == (
        "error: the anthropic API key is 5 characters long; the gate needs at least 32 to keep it out of cassettes "
        "(real OpenAI, Anthropic and Azure keys are longer)\n"
    )
