"""Regenerate `cassettes_example/`: the gate records them itself, against the fake upstream, with the real SDK.

    python -m tools.record_examples            # rewrites cassettes_example/
    python -m tools.record_examples --check    # fails if regenerating would change a byte

The recording clock is fixed, the timing clock steps `TIMING_STEP_S` each time the gate reads it (a stream then
records its first event one step after the request and its end two steps after, a whole body one step after),
and the fake upstream derives every byte from the request, so regenerating gives the same bytes; `--check` is
how a change to the cassette format or the fake shows up in review.

The set covers what a new user tries first: the exchange `inference-gate test-gate` sends by default (so that
`inference-gate replay --cache-dir cassettes_example` then `inference-gate test-gate` works with no key), and the
README's examples: a chat, a streamed chat, a Responses API exchange streamed and not, and a tool call.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import openai
import trio

from inference_gate import Gate, Mode, Settings
from inference_gate.serve.prompt_test import prompt_the_gate
from inference_gate.store.cassette_store import CassetteStore
from tools.fake_upstream import FakeUpstream

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = REPO_ROOT / "cassettes_example"
RECORDED_AT = datetime(2026, 1, 1, tzinfo=UTC)
TIMING_STEP_S = 0.4
EXAMPLE_KEY = "sk-example-not-a-real-key"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


async def record_examples(cache_dir: Path) -> None:
    """Record every example exchange into `cache_dir` through a real gate, then stop both servers."""
    upstream = FakeUpstream()
    async with trio.open_nursery() as upstream_nursery:
        await upstream_nursery.start(upstream.serve)
        settings = Settings(cache_dir=cache_dir, upstream=upstream.url, host="127.0.0.1", port=0)
        ticks = itertools.count()
        gate = Gate(settings, Mode.RECORD, clock=lambda: RECORDED_AT, monotonic=lambda: next(ticks) * TIMING_STEP_S)
        shutdown = trio.Event()
        async with trio.open_nursery() as gate_nursery:
            port = await gate_nursery.start(lambda task_status: gate.run(shutdown=shutdown, task_status=task_status))
            await _send_examples(settings, port)
            shutdown.set()
        upstream_nursery.cancel_scope.cancel()


async def _send_examples(settings: Settings, port: int) -> None:
    """The example exchanges: the test-gate prompt, then the README's SDK calls."""
    probe = await prompt_the_gate(replace(settings, port=port))
    if not probe.succeeded:
        raise RuntimeError(f"the test-gate exchange failed: {probe.error_message}")
    base_url = f"http://127.0.0.1:{port}/v1"
    async with openai.AsyncOpenAI(base_url=base_url, api_key=EXAMPLE_KEY, max_retries=0) as client:
        await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Say hello in French"}],
            temperature=0,
        )
        stream = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[
                {"role": "system", "content": "You are a poet."},
                {"role": "user", "content": "Write a haiku about caching"},
            ],
            temperature=0.7,
            stream=True,
            stream_options={"include_usage": True},
        )
        [chunk async for chunk in stream]
        await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "What is the weather in Paris?"}],
            tools=[WEATHER_TOOL],
        )
        await client.responses.create(model="gpt-4o-mini", input="Tell me a one-line joke about HTTP")
        events = await client.responses.create(
            model="gpt-4o-mini", input="Explain SSE in one sentence", stream=True
        )
        [event async for event in events]


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in CassetteStore(directory).cassette_paths()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with cassettes_example/ instead of writing")
    arguments = parser.parse_args()
    if arguments.check:
        with tempfile.TemporaryDirectory() as scratch:
            trio.run(record_examples, Path(scratch))
            fresh, committed = snapshot(Path(scratch)), snapshot(EXAMPLES_DIR)
        if fresh != committed:
            changed = sorted(set(fresh) ^ set(committed) | {n for n in fresh if fresh[n] != committed.get(n)})
            print("cassettes_example/ is out of date; run python -m tools.record_examples:", *changed, sep="\n  ")
            return 1
        print(f"cassettes_example/ is up to date ({len(committed)} cassettes)")
        return 0
    CassetteStore(EXAMPLES_DIR).clear()
    trio.run(record_examples, EXAMPLES_DIR)
    print(f"recorded {CassetteStore(EXAMPLES_DIR).count()} cassettes into {EXAMPLES_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
