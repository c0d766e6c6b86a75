"""The test prompt against the fake upstream and against real gates, all in-process on loopback."""

import socket
import subprocess
import sys
from contextlib import asynccontextmanager
from functools import partial

import orjson
import pytest
import trio

from inference_gate.config.settings import Settings
from inference_gate.core.policy import Mode
from inference_gate.proxy.gate import Gate
from inference_gate.serve.prompt_test import (
    PLACEHOLDER_API_KEY,
    PromptTestError,
    prompt_body,
    prompt_the_gate,
    prompt_the_upstream,
    reachable_gate_url,
)
from tests.servers import running_upstream
from tools.fake_upstream import FakeUpstream

TEST_DEADLINE_S = 10.0
GOOD_KEY = "sk-test-good-key-0123456789"


def closed_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        return probe_socket.getsockname()[1]


@asynccontextmanager
async def running_gate(settings: Settings, mode: Mode):
    """A gate on a free port; yields the settings that reach it."""
    async with trio.open_nursery() as nursery:
        shutdown = trio.Event()
        port = await nursery.start(partial(Gate(settings, mode).run, shutdown=shutdown))
        yield Settings(port=port, cache_dir=settings.cache_dir)
        shutdown.set()


async def test_upstream_answers_the_test_prompt():
    with trio.fail_after(TEST_DEADLINE_S):
        async with running_upstream(FakeUpstream(expected_api_key=GOOD_KEY)) as fake:
            result = await prompt_the_upstream(Settings(upstream=fake.url, api_key=GOOD_KEY))
    assert result.succeeded
    assert (result.status, result.reply, result.gate_outcome) == (200, "OK.", None)
    assert result.url == f"{fake.url}/v1/chat/completions"
    assert 0 < result.elapsed_s < TEST_DEADLINE_S
    [request] = fake.requests
    assert request.headers["authorization"] == f"Bearer {GOOD_KEY}"
    assert request.json == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": Settings().test_prompt}],
    }


async def test_upstream_path_prefix_is_kept():
    with trio.fail_after(TEST_DEADLINE_S):
        async with running_upstream(FakeUpstream()) as fake:
            result = await prompt_the_upstream(Settings(upstream=f"{fake.url}/openai", api_key=GOOD_KEY))
    assert result.reply == "OK."
    assert fake.requests[0].path == "/openai/v1/chat/completions"


async def test_a_bad_key_gets_the_upstreams_own_message():
    with trio.fail_after(TEST_DEADLINE_S):
        async with running_upstream(FakeUpstream(expected_api_key=GOOD_KEY)) as fake:
            result = await prompt_the_upstream(Settings(upstream=fake.url, api_key="sk-wrong"))
    assert not result.succeeded
    assert (result.status, result.error_code, result.reply) == (401, "invalid_api_key", None)
    assert result.error_message.startswith("Incorrect API key provided: sk-wrong.")


async def test_no_key_sends_nothing():
    with trio.fail_after(TEST_DEADLINE_S):
        async with running_upstream(FakeUpstream()) as fake:
            with pytest.raises(
                PromptTestError, match=r"^no API key is set \(set OPENAI_API_KEY or pass --api-key\)"
            ):
                await prompt_the_upstream(Settings(upstream=fake.url, api_key=None))
    assert fake.requests == []


async def test_nothing_listening_is_unreachable():
    port = closed_port()
    with trio.fail_after(TEST_DEADLINE_S), pytest.raises(PromptTestError) as caught:
        await prompt_the_gate(Settings(port=port))
    assert caught.value.unreachable
    assert caught.value.url == f"http://127.0.0.1:{port}/v1/chat/completions"
    assert "Connection refused" in str(caught.value)


async def test_an_answer_that_is_not_openai_shaped_is_quoted():
    async def answer_badly(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)
        body = b"<html>\nbad\n</html>"
        await stream.send_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))

    with trio.fail_after(TEST_DEADLINE_S):
        async with trio.open_nursery() as nursery:
            [listener] = await nursery.start(partial(trio.serve_tcp, answer_badly, 0, host="127.0.0.1"))
            port = listener.socket.getsockname()[1]
            result = await prompt_the_upstream(Settings(upstream=f"http://127.0.0.1:{port}", api_key=GOOD_KEY))
            nursery.cancel_scope.cancel()
    assert (result.status, result.error_code) == (502, None)
    assert result.error_message == "the answer is not a chat completion: <html> bad </html>"


async def test_through_a_recording_gate_then_a_replaying_one(tmp_path):
    with trio.fail_after(TEST_DEADLINE_S):
        async with running_upstream(FakeUpstream()) as fake:
            recording = Settings(port=0, cache_dir=tmp_path, upstream=fake.url)
            async with running_gate(recording, Mode.RECORD) as gate:
                first = await prompt_the_gate(gate)
                second = await prompt_the_gate(gate)
        async with running_gate(Settings(port=0, cache_dir=tmp_path), Mode.REPLAY) as gate:
            replayed = await prompt_the_gate(gate)
            missed = await prompt_the_gate(Settings(port=gate.port, test_prompt="Something never recorded"))
    assert (first.reply, first.gate_outcome) == ("OK.", "recorded")
    assert (second.reply, second.gate_outcome) == ("OK.", "hit")
    assert (replayed.reply, replayed.gate_outcome) == ("OK.", "hit")
    # Without a key of its own the recording gate passed the probe's placeholder through.
    assert [request.headers["authorization"] for request in fake.requests] == [
        f"Bearer {PLACEHOLDER_API_KEY}"
    ]
    assert (missed.status, missed.gate_outcome, missed.error_code) == (404, "miss", "cache_miss")
    assert missed.error_message.startswith("No cassette for POST /v1/chat/completions")


async def test_the_gate_gets_the_api_key_when_one_is_set(tmp_path):
    with trio.fail_after(TEST_DEADLINE_S):
        async with running_upstream(FakeUpstream(expected_api_key=GOOD_KEY)) as fake:
            recording = Settings(port=0, cache_dir=tmp_path, upstream=fake.url)
            async with running_gate(recording, Mode.RECORD) as gate:
                result = await prompt_the_gate(Settings(port=gate.port, api_key=GOOD_KEY, test_model="gpt-4o"))
    assert (result.reply, result.gate_outcome) == ("OK.", "recorded")
    assert fake.requests[0].headers["authorization"] == f"Bearer {GOOD_KEY}"
    assert fake.requests[0].json["model"] == "gpt-4o"


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8080"),
        ("0.0.0.0", "http://127.0.0.1:8080"),
        ("::", "http://[::1]:8080"),
        ("::1", "http://[::1]:8080"),
        ("gate.local", "http://gate.local:8080"),
    ],
)
def test_a_gate_on_every_address_is_reached_on_loopback(host, url):
    assert reachable_gate_url(Settings(host=host, port=8080)) == url


def test_the_body_is_the_same_every_time_so_it_replays():
    settings = Settings(test_model="m", test_prompt="p")
    assert prompt_body(settings) == prompt_body(Settings(test_model="m", test_prompt="p"))
    assert orjson.loads(prompt_body(settings)) == {
        "model": "m",
        "messages": [{"role": "user", "content": "p"}],
    }


def test_the_probes_do_not_import_the_serving_code():
    """`test-upstream` needs the upstream client only, not the code that runs a gate."""
    code = "import sys, inference_gate.serve.prompt_test; print('inference_gate.serve.foreground' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout == "False\n"
