"""Synthetic cassettes, many of them, for the start-up and `cache list` benchmarks.

Each cassette is what `inference-gate start` records for a chat completion answered by tools/fake_upstream.py:
the request is keyed by `canonicalize`, named by `CassetteStore.locate`, its response is the fake's answer
filtered by the same header allow-list, and the file is `cassette_to_bytes` of it. So the gate and `cache list`
read them exactly as they read a real recording. One request in four is streamed, as in a typical test suite.

The files are written with a plain write rather than `CassetteStore.save`: its temporary file, fsync and link
per cassette are what make a recording crash-safe, and would make 100,000 fixture files take minutes.

    python -m tools.make_cassettes /tmp/cassettes 10000
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import orjson

from inference_gate.core.cassette import Cassette, RecordedResponse, cassette_to_bytes, record_exchange
from inference_gate.core.keys import CanonicalRequest, canonicalize
from inference_gate.core.redact import stored_response_headers
from inference_gate.core.sse import SSEEvent
from inference_gate.store.cassette_store import CassetteStore
from tools.fake_replies import (
    CHAT_COMPLETIONS,
    JSON_CONTENT_TYPE,
    SSE_CONTENT_TYPE,
    chat_completion,
    chat_completion_chunks,
    openai_headers,
)

SYNTHETIC_MODEL = "gpt-4o-mini"
STREAMED_EVERY = 4
RECORDED_AT = "2026-01-01T00:00:00Z"


def synthetic_request_body(index: int) -> bytes:
    """The request body of cassette number `index`, as an SDK would send it."""
    body: dict[str, object] = {
        "model": SYNTHETIC_MODEL,
        "messages": [
            {"role": "system", "content": "You are a terse assistant used by a test suite."},
            {"role": "user", "content": f"Synthetic question {index}: what is {index} times {index}?"},
        ],
        "temperature": 0,
    }
    if is_streamed(index):
        body["stream"] = True
    return orjson.dumps(body)


def is_streamed(index: int) -> bool:
    return index % STREAMED_EVERY == STREAMED_EVERY - 1


def synthetic_cassette(index: int) -> tuple[CanonicalRequest, Cassette]:
    """Cassette number `index` and the canonical request it answers."""
    body_bytes = synthetic_request_body(index)
    canonical = canonicalize("POST", CHAT_COMPLETIONS, body_bytes)
    if is_streamed(index):
        chunks = chat_completion_chunks(canonical.json_body, body_bytes)
        events = [SSEEvent(orjson.dumps(chunk).decode()) for chunk in chunks] + [SSEEvent("[DONE]")]
        headers = stored_response_headers(openai_headers(body_bytes, SSE_CONTENT_TYPE))
        response = RecordedResponse(status=200, headers=headers, events=events)
    else:
        answer = orjson.dumps(chat_completion(canonical.json_body, body_bytes))
        headers = stored_response_headers(openai_headers(body_bytes, JSON_CONTENT_TYPE))
        response = RecordedResponse(status=200, headers=headers, body=answer)
    cassette = record_exchange(
        canonical,
        response,
        recorded_at=RECORDED_AT,
        headers={"content-type": "application/json"},
        query=canonical.query,
        json_body=canonical.json_body,
    )
    return canonical, cassette


def make_cassettes(cache_dir: Path, count: int) -> list[Path]:
    """Write cassettes 0 to `count - 1` into `cache_dir`; returns their paths, in index order."""
    store = CassetteStore(cache_dir)
    paths: list[Path] = []
    made_folders: set[Path] = set()
    for index in range(count):
        canonical, cassette = synthetic_cassette(index)
        path = store.locate(canonical).path
        if path.parent not in made_folders:
            path.parent.mkdir(parents=True, exist_ok=True)
            made_folders.add(path.parent)
        path.write_bytes(cassette_to_bytes(cassette))
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description="Write synthetic chat-completion cassettes into a directory.")
    parser.add_argument("cache_dir", type=Path)
    parser.add_argument("count", type=int)
    arguments = parser.parse_args()
    started = time.perf_counter()
    make_cassettes(arguments.cache_dir, arguments.count)
    elapsed_s = time.perf_counter() - started
    print(f"wrote {arguments.count} cassettes into {arguments.cache_dir} in {elapsed_s:.1f} s")


if __name__ == "__main__":
    main()
