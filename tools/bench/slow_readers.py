"""Row (k): the gate's peak memory while clients fall behind one large replayed stream, then hang up."""

from __future__ import annotations

import math
from pathlib import Path

import trio

from inference_gate.core.cassette import cassette_to_bytes
from inference_gate.store.cassette_store import CassetteStore
from tools.bench.processes import GATE_BANNER, HOST, running
from tools.bench.report import Row, Target
from tools.bench.requests import CHAT_PATH, REQUEST_TIMEOUT_S, expect_outcome, fetch_now
from tools.bench.run import BenchRun
from tools.loadgen import LoadRequest, read_slowly
from tools.make_cassettes import STREAMED_EVERY, is_streamed, synthetic_cassette, synthetic_request_body

SLOW_READERS = 20
SLOW_STREAM_BYTES = 20_000_000
SLOW_READ_BYTES_PER_S = 1_000_000
PEAK_RSS_GOAL_MB = 100


def slow_readers(run: BenchRun) -> None:
    """(k): the gate's peak memory while `SLOW_READERS` clients fall behind one large replayed stream."""
    cache_dir = run.work_dir / "large-stream"
    request = write_large_stream_cassette(cache_dir, SLOW_STREAM_BYTES)
    duration_s = run.profile.slow_read_s
    with running(run.gate("replay", cache_dir)) as gate:
        port = gate.read_port(GATE_BANNER)
        whole = fetch_now(port, request)
        expect_outcome(whole, b"hit", "replaying the large stream")
        after_one_read_bytes = gate.peak_rss_bytes()
        read_bytes = read_slowly_now(port, request, SLOW_READERS, duration_s)
        peak_bytes = gate.peak_rss_bytes()
    scenario = (
        f"{SLOW_READERS} clients reading a {len(whole.body) / 1e6:.0f} MB replayed stream "
        f"at {SLOW_READ_BYTES_PER_S / 1e6:.0f} MB/s for {duration_s:.0f} s"
    )
    peak_mb = peak_bytes / 1e6
    run.report.rows.append(
        Row(
            "(k)",
            scenario,
            f"peak RSS {peak_mb:.0f} MB",
            f"{after_one_read_bytes / 1e6:.0f} MB after one whole read",
            f"each client read {min(read_bytes) / 1e6:.1f} to {max(read_bytes) / 1e6:.1f} MB",
        )
    )
    goal_met = peak_mb <= PEAK_RSS_GOAL_MB
    run.report.targets.append(
        Target("(k) slow readers: peak RSS", f"{peak_mb:.0f} MB", f"<= {PEAK_RSS_GOAL_MB} MB", goal_met)
    )


def read_slowly_now(port: int, request: LoadRequest, count: int, duration_s: float) -> list[int]:
    """`count` concurrent slow readers of `request`'s response; the bytes each one read."""
    read_bytes: list[int] = []

    async def one_reader() -> None:
        read_bytes.append(
            await read_slowly(HOST, port, request, bytes_per_s=SLOW_READ_BYTES_PER_S, duration_s=duration_s)
        )

    async def all_readers() -> list[int]:
        with trio.fail_after(duration_s + REQUEST_TIMEOUT_S):
            async with trio.open_nursery() as nursery:
                for _ in range(count):
                    nursery.start_soon(one_reader)
        return read_bytes

    return trio.run(all_readers)


def write_large_stream_cassette(cache_dir: Path, min_body_bytes: int) -> LoadRequest:
    """A streamed synthetic cassette whose content events are repeated until its SSE body is at least
    `min_body_bytes` long, written where the gate looks for it; returns the request it answers."""
    index = next(index for index in range(STREAMED_EVERY) if is_streamed(index))
    canonical, cassette = synthetic_cassette(index)
    events = cassette.response.events
    assert events is not None  # is_streamed says so
    opening, content, closing = events[:1], events[1:-2], events[-2:]  # role; text deltas; finish and [DONE]
    content_bytes = sum(len(b"data: \n\n") + len(event.data.encode()) for event in content)
    cassette.response.events = opening + content * math.ceil(min_body_bytes / content_bytes) + closing
    path = CassetteStore(cache_dir).locate(canonical).path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cassette_to_bytes(cassette.with_summary()))
    return LoadRequest("POST", CHAT_PATH, [(b"content-type", b"application/json")], synthetic_request_body(index))
