"""Hostile cassettes: what stands at a cassette's path may be anything a file system holds. None of it may hang the
gate, exhaust its memory, or answer from outside the cache directory; each is reported as a corrupt cassette
naming the file, the gate keeps serving, and SIGINT still stops it within the grace period.

Each case is built here: a FIFO (whose open or read would block), a symlink to /dev/zero (an endless read), a
directory, a file larger than `max_cassette_bytes`, and a symlink to a cassette outside the cache directory. The
gates run as child processes (see processes.py), because what is checked is that a signal stops them.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import openai
import pytest
import trio

from inference_gate import Mode, Settings
from tests.e2e.conftest import running_gate
from tests.e2e.processes import gate_process
from tests.servers import running_upstream
from tools.fake_upstream import FakeUpstream

CLIENT_KEY = "sk-client-key-for-tests-9876543210"
DEADLINE_S = 30
ANSWER_WITHIN_S = 10  # a hung read is what is tested for: the client gives up well before the test's deadline
CAP_BYTES = 256 * 1024  # well above the few KB of a cassette recorded here

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs, symlinks to devices and POSIX signals")


def make_fifo(path: Path, outside: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def link_to_dev_zero(path: Path, outside: Path) -> None:
    path.unlink()
    path.symlink_to("/dev/zero")


def make_directory(path: Path, outside: Path) -> None:
    path.unlink()
    path.mkdir()


def make_oversize(path: Path, outside: Path) -> None:
    with path.open("r+b") as file:  # still a valid cassette at its start: only its size is wrong
        file.truncate(CAP_BYTES + 1)


def link_out_of_the_cache(path: Path, outside: Path) -> None:
    """A symlink to a whole, valid cassette for this very request, which lies outside the cache directory."""
    shutil.move(path, outside)
    path.symlink_to(outside)


HOSTILE: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "fifo": (make_fifo, "not a regular file"),
    "symlink-to-dev-zero": (link_to_dev_zero, "outside the cache directory"),
    "directory": (make_directory, "not a regular file"),
    "oversize": (make_oversize, "max_cassette_bytes"),
    "symlink-out-of-the-cache": (link_out_of_the_cache, "outside the cache directory"),
}


async def ask(base_url: str, content: str) -> tuple[str, str]:
    """The outcome header and the answer's text."""
    async with openai.AsyncOpenAI(
        base_url=base_url, api_key=CLIENT_KEY, max_retries=0, timeout=ANSWER_WITHIN_S
    ) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": content}]
        )
        return raw.headers["x-inference-gate"], raw.parse().choices[0].message.content


async def record_two(settings: Settings, tmp_path: Path) -> Path:
    """Record `first` and `second`; the path of the cassette for `first`."""
    upstream = FakeUpstream()
    async with running_upstream(upstream):
        recording = replace(settings, upstream=upstream.url)
        async with running_gate(recording, Mode.RECORD) as gate:
            await ask(gate.base_url, "first")
            await ask(gate.base_url, "second")
    [first] = [path for path in settings.cache_dir.rglob("*.json") if path.name.startswith("first.")]
    return first


@pytest.mark.parametrize("case", HOSTILE)
async def test_a_hostile_cassette_is_reported_corrupt_and_sigint_still_stops_the_gate(
    record_settings: Settings, tmp_path: Path, case: str
):
    build, reason = HOSTILE[case]
    settings = replace(record_settings, max_cassette_bytes=CAP_BYTES)
    with trio.fail_after(DEADLINE_S):
        path = await record_two(settings, tmp_path)
        build(path, tmp_path / "outside.json")
        async with gate_process(settings, Mode.REPLAY, tmp_path / "replay.log") as gate:
            with pytest.raises(openai.InternalServerError) as raised:
                await ask(gate.base_url, "first")
            still_serving = await ask(gate.base_url, "second")
            gate.process.send_signal(signal.SIGINT)
            assert await gate.wait_for_exit() == 0  # within processes.EXIT_TIMEOUT_S, the grace period and a little
    error = raised.value
    assert error.body["code"] == "corrupt_cassette"
    assert path.name in error.body["message"] and reason in error.body["message"]
    assert "Traceback" not in gate.log()
    assert still_serving[0] == "hit" and still_serving[1].startswith("Echo: second")


@pytest.mark.parametrize("case", HOSTILE)
async def test_a_hostile_cassette_is_recorded_over_or_passed_through_in_record_mode_and_sigint_still_stops_the_gate(
    record_settings: Settings, tmp_path: Path, case: str
):
    build, _ = HOSTILE[case]
    settings = replace(record_settings, max_cassette_bytes=CAP_BYTES)
    outside = tmp_path / "outside.json"
    upstream = FakeUpstream()
    with trio.fail_after(DEADLINE_S):
        path = await record_two(settings, tmp_path)
        build(path, outside)
        outside_before = outside.read_bytes() if outside.exists() else None
        async with running_upstream(upstream):
            recording = replace(settings, upstream=upstream.url)
            async with gate_process(recording, Mode.RECORD, tmp_path / "record.log") as gate:
                outcome, text = await ask(gate.base_url, "first")
                gate.process.send_signal(signal.SIGINT)
                assert await gate.wait_for_exit() == 0
    assert text.startswith("Echo: first")
    assert upstream.calls("/v1/chat/completions") == 1  # what stood there was no answer: it was asked again
    if case == "directory":  # nothing replaces a directory: the answer is passed through, and says why
        assert outcome == "passthrough"
        assert path.is_dir()
    else:  # the cassette is written over what stood there, never through a link
        assert outcome == "recorded"
        assert path.is_file() and not path.is_symlink()
    assert (outside.read_bytes() if outside.exists() else None) == outside_before
    assert "Traceback" not in gate.log()
