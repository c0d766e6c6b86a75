"""Sequential `chat.completions.create` calls of the official openai SDK on one client, timed: the bench's row (j).

It runs in the bench's own virtualenv (the SDK and vcrpy, kept out of the project's dev extra), as a child of
`python -m tools.bench`, and imports nothing from this repository. It prints one JSON line:
`{"calls": N, "elapsed_s": S, "content": "<the last answer's message content>", "sdk_version": "..."}`.

    python tools/sdk_calls.py request.json --base-url http://127.0.0.1:8080/v1 --calls 500
    python tools/sdk_calls.py request.json --base-url http://127.0.0.1:9999/v1 --vcr-record answer.yaml
    python tools/sdk_calls.py request.json --base-url http://127.0.0.1:9999/v1 --vcr-replay answer.yaml --calls 500

`request.json` holds the keyword arguments of `create` (model, messages). With --vcr-record, one call goes to
--base-url and vcrpy writes it into the cassette. With --vcr-replay, vcrpy answers every call in this process
from that cassette (`allow_playback_repeats`, and `record_mode="none"` so that nothing reaches the network);
a run where vcrpy did not answer every call fails, as its timing would not be vcrpy's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import openai
import vcr


def main() -> None:
    parser = argparse.ArgumentParser(description="Time sequential SDK calls on one client.")
    parser.add_argument("request_file", type=Path, help="the keyword arguments of chat.completions.create, as JSON")
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", default="sk-bench-placeholder")
    parser.add_argument("--calls", type=int, default=500, help="timed calls")
    parser.add_argument("--warmup-calls", type=int, default=20, help="untimed calls before them")
    vcr_mode = parser.add_mutually_exclusive_group()
    vcr_mode.add_argument("--vcr-record", type=Path, help="record one call into this vcrpy cassette, untimed")
    vcr_mode.add_argument("--vcr-replay", type=Path, help="answer every call from this vcrpy cassette")
    arguments = parser.parse_args()
    if arguments.calls < 1 or arguments.warmup_calls < 0:
        parser.error("--calls must be at least 1 and --warmup-calls at least 0")
    request = json.loads(arguments.request_file.read_text())
    client = openai.OpenAI(api_key=arguments.api_key, base_url=arguments.base_url, max_retries=0)

    if arguments.vcr_record:
        with _vcr_cassette(arguments.vcr_record, "once"):
            answer = client.chat.completions.create(**request)
        _report(1, 0.0, answer.choices[0].message.content)
        return

    with _vcr_cassette(arguments.vcr_replay, "none") if arguments.vcr_replay else contextlib.nullcontext() as cassette:
        for _ in range(arguments.warmup_calls):
            client.chat.completions.create(**request)
        started = time.perf_counter()
        for _ in range(arguments.calls):
            answer = client.chat.completions.create(**request)
        elapsed_s = time.perf_counter() - started
    all_calls = arguments.warmup_calls + arguments.calls
    if cassette is not None and cassette.play_count != all_calls:
        sys.exit(f"vcrpy answered {cassette.play_count} of {all_calls} calls")
    _report(arguments.calls, elapsed_s, answer.choices[0].message.content)


def _report(calls: int, elapsed_s: float, content: str | None) -> None:
    print(json.dumps({"calls": calls, "elapsed_s": elapsed_s, "content": content, "sdk_version": openai.__version__}))


def _vcr_cassette(path: Path, record_mode: str) -> contextlib.AbstractContextManager:
    return vcr.use_cassette(str(path), record_mode=record_mode, allow_playback_repeats=True)


if __name__ == "__main__":
    main()
