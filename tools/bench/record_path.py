"""The record path, rows (e) and (e'): misses forwarded to tools/fake_upstream.py and recorded, one at a time,
each with a new prompt; what the gate adds over calling the fake upstream directly, to the first byte and to the
last (which includes making the cassette durable)."""

from __future__ import annotations

import functools
import time
from pathlib import Path

from inference_gate.store.cassette_store import CassetteStore
from tools.bench.load import first_byte_text, latency_text
from tools.bench.processes import BenchError
from tools.bench.report import Row, Target
from tools.bench.requests import chat_request, run_load_now
from tools.bench.run import BenchRun
from tools.loadgen import LoadRequest, LoadResult

RECORD_WARMUP_REQUESTS = 20
RECORD_ROUNDS = 4
CASSETTE_WRITE_WAIT_S = 5.0


def record_path(run: BenchRun, upstream_port: int, gate_port: int, record_dir: Path) -> None:
    """(e) and (e'): sequential misses with new prompts, straight to the fake upstream and through the gate, in
    alternating rounds so that both see the same background load."""
    samples_per_round = run.profile.record_samples // RECORD_ROUNDS
    counters = {upstream_port: 0, gate_port: 0}

    def next_request(port: int) -> LoadRequest:
        counters[port] += 1  # both sides send the same sequence of prompts
        return chat_request(f"Record path sample {counters[port]}: say something short about caching.")

    results: dict[int, LoadResult] = {port: LoadResult([], 0.0) for port in counters}
    for round_index in range(RECORD_ROUNDS + 1):
        for port, result in results.items():
            count = RECORD_WARMUP_REQUESTS if round_index == 0 else samples_per_round
            measured = run_load_now(port, functools.partial(next_request, port), connections=1, request_count=count)
            if measured.failed_count:
                raise BenchError(f"record path: {measured.failed_count} requests to port {port} failed")
            if round_index > 0:
                result.latencies_s += measured.latencies_s
                result.first_byte_latencies_s += measured.first_byte_latencies_s
    expected = 2 + counters[gate_port]  # the chat and stream cassettes recorded before
    # The gate writes a cassette just after the response ends, so the last one may still be on its way.
    deadline = time.monotonic() + CASSETTE_WRITE_WAIT_S
    while CassetteStore(record_dir).count() != expected:
        if time.monotonic() > deadline:
            raise BenchError(f"the record path did not leave {expected} cassettes in {record_dir}")
        time.sleep(0.01)
    direct, gated = results[upstream_port], results[gate_port]
    added_p50_ms = (gated.percentile_s(0.5) - direct.percentile_s(0.5)) * 1000
    added_p99_ms = (gated.percentile_s(0.99) - direct.percentile_s(0.99)) * 1000
    run.report.rows.append(
        Row(
            "(e)",
            f"record path, {gated.request_count} misses, 1 connection",
            latency_text(gated),
            f"{latency_text(direct)} (fake upstream direct)",
            f"adds {added_p50_ms:+.2f} ms at p50, {added_p99_ms:+.2f} ms at p99",
        )
    )
    run.report.targets.append(
        Target("(e) record path adds at p50", f"{added_p50_ms:.2f} ms", "<= 1.00 ms", added_p50_ms <= 1.0)
    )
    added_first_byte_ms = (gated.first_byte_percentile_s(0.5) - direct.first_byte_percentile_s(0.5)) * 1000
    run.report.rows.append(
        Row(
            "(e')",
            "record path, the misses of (e): time to the first byte",
            first_byte_text(gated),
            f"{first_byte_text(direct)} (fake upstream direct)",
            f"adds {added_first_byte_ms:+.2f} ms to the first byte, {added_p50_ms:+.2f} ms to the last, at p50",
        )
    )
    run.report.targets.append(
        Target(
            "(e') record path adds to the first byte at p50",
            f"{added_first_byte_ms:.2f} ms",
            "<= 1.00 ms",
            added_first_byte_ms <= 1.0,
        )
    )
