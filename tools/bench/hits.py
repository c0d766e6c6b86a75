"""Replay hits under load, rows (b), (c), (d), (i) and (c'): the gate against tools/baseline_server.py sending the
very bytes the gate sent, and aimock, all in the same interleaved runs."""

from __future__ import annotations

from tools.baseline_server import CannedReply
from tools.bench.aimock import AimockReplay
from tools.bench.report import Row
from tools.bench.requests import STREAM_EVENT_COUNT, StreamShape
from tools.bench.run import BenchRun
from tools.loadgen import LoadRequest


def chat_hits(
    run: BenchRun, chat: LoadRequest, reply: CannedReply, replay_port: int, start_port: int, aimock: AimockReplay | None
) -> None:
    """(b), (d) and (i)."""
    baseline_port = run.serve_baseline("chat", reply)
    run.check_baseline(baseline_port, chat, reply)
    ports = [baseline_port, replay_port, start_port] + ([aimock.port] if aimock else [])
    baseline, replay, start, *aimock_figures = run.compare_throughput(chat, ports)
    scenario = f"chat answer of {len(reply.body):,} B"
    run.add_hit_row("(b)", f"replay hit, {scenario}", replay, baseline)
    run.add_hit_row("(d)", f"start-mode hit, {scenario}", start, baseline)
    run.report.add_ratio_target("(b) replay hits vs baseline", replay.requests_per_s / baseline.requests_per_s, 0.85)
    run.report.add_ratio_target("(d) start-mode hits vs baseline", start.requests_per_s / baseline.requests_per_s, 0.8)
    if aimock is None:
        return
    [aimock_rate] = aimock_figures
    gate_ratio = replay.requests_per_s / aimock_rate.requests_per_s
    run.report.rows.append(
        Row(
            "(i)",
            f"aimock {aimock.version} replay, the answer of (b) in its own bytes, {len(aimock.chat.body):,} B",
            aimock_rate.text(),
            f"{baseline.text()} (baseline)",
            f"{aimock_rate.requests_per_s / baseline.requests_per_s:.2f}; gate (b) / aimock {gate_ratio:.2f}",
        )
    )
    run.report.add_ratio_target("(b) replay hits vs aimock", gate_ratio, 1.0)


def stream_hits(
    run: BenchRun, stream: LoadRequest, reply: CannedReply, replay_port: int, aimock: AimockReplay | None
) -> None:
    """(c) and (c')."""
    baseline_port = run.serve_baseline("stream", reply)
    run.check_baseline(baseline_port, stream, reply)
    ports = [baseline_port, replay_port]
    if aimock is not None:
        aimock_baseline_port = run.serve_baseline("aimock stream", aimock.stream)
        run.check_baseline(aimock_baseline_port, stream, aimock.stream)
        ports += [aimock.port, aimock_baseline_port]
    baseline, replay, *aimock_figures = run.compare_throughput(stream, ports)
    scenario = f"replay hit, stream of {STREAM_EVENT_COUNT} SSE events, {len(reply.body):,} B"
    run.add_hit_row("(c)", scenario, replay, baseline)
    ratio = replay.requests_per_s / baseline.requests_per_s
    run.report.add_ratio_target("(c) streamed replay hits vs baseline", ratio, 0.8)
    if aimock is None:
        return
    aimock_rate, aimock_baseline = aimock_figures
    gate_shape, aimock_shape = StreamShape.of(reply.body), StreamShape.of(aimock.stream.body)
    aimock_ratio = aimock_rate.requests_per_s / aimock_baseline.requests_per_s
    if gate_shape.is_same_work_as(aimock_shape):
        gate_ratio = replay.requests_per_s / aimock_rate.requests_per_s
        comparison = f"{aimock_ratio:.2f}; gate (c) / aimock {gate_ratio:.2f}"
        run.report.add_ratio_target("(c) streamed replay hits vs aimock", gate_ratio, 1.0)
    else:
        comparison = f"{aimock_ratio:.2f}; not the work of (c), which is {gate_shape.text()}"
        run.report.add_ratio_target("(c) streamed replay hits vs baseline (aimock re-chunks)", ratio, 1.0)
    run.report.rows.append(
        Row(
            "(c')",
            f"aimock {aimock.version} replay of the stream of (c): {aimock_shape.text()}",
            aimock_rate.text(),
            f"{aimock_baseline.text()} (baseline sending aimock's bytes)",
            comparison,
        )
    )
