"""Row (f): mitmdump --server-replay serving the answer of (b) from a flow file it recorded itself, measured in
the same interleaved runs as the gate's replay (the gate of (b), still running)."""

from __future__ import annotations

from tools.baseline_server import CannedReply
from tools.bench.installs import mitmdump_executable
from tools.bench.load import Throughput
from tools.bench.processes import HOST, URL_LINE, BenchError, free_port, running
from tools.bench.report import Row, Target, first_line
from tools.bench.requests import fetch_now
from tools.bench.run import BenchRun
from tools.loadgen import LoadRequest


def mitmdump_hits(run: BenchRun, chat: LoadRequest, reply: CannedReply, replay_port: int) -> None:
    """(f), or a row that says why it was skipped."""
    try:
        gate, mitm = mitmdump_throughput(run, chat, reply, replay_port)
    except BenchError as error:
        print(f"skipping (f): {error}", flush=True)
        run.report.rows.append(Row("(f)", "mitmdump --server-replay", f"skipped: {first_line(error)}"))
        run.report.targets.append(Target("(b) replay hits vs mitmdump", "not measured", ">= 6x", None))
        return
    ratio = gate.requests_per_s / mitm.requests_per_s
    scenario = f"mitmdump --server-replay, chat answer of {len(reply.body):,} B"
    reference = f"{gate.text()} (gate replay, interleaved)"
    run.report.rows.append(Row("(f)", scenario, mitm.text(), reference, f"gate / mitmdump {ratio:.1f}x"))
    run.report.targets.append(Target("(b) replay hits vs mitmdump", f"{ratio:.1f}x", ">= 6x", ratio >= 6))


def mitmdump_throughput(
    run: BenchRun, request: LoadRequest, reply: CannedReply, replay_port: int
) -> tuple[Throughput, Throughput]:
    """mitmdump records the answer while reverse-proxying to a baseline server, then replays it alone, measured
    in turn with the gate on `replay_port`: the gate's figures, then mitmdump's."""
    mitmdump = str(mitmdump_executable())
    flows = run.work_dir / "chat.flows"
    upstream_port = free_port()  # the baseline's while recording; nothing listens there during the replay
    common = ["-q", "--listen-host", HOST, "--mode", f"reverse:http://{HOST}:{upstream_port}"]
    common += ["--set", "connection_strategy=lazy"]
    baseline_arguments = [str(run.reply_file("mitm", reply)), "--port", str(upstream_port)]
    with running(run.script("baseline for mitmdump", "baseline_server", baseline_arguments)) as baseline:
        baseline.read_port(URL_LINE)
        port = free_port()
        argv = [mitmdump, *common, "--listen-port", str(port), "--save-stream-file", str(flows)]
        with running(run.child("mitmdump recording", argv)) as recorder:
            recorder.wait_until_listening(port)
            if fetch_now(port, request).body != reply.body:
                raise recorder.failure("did not pass the baseline's answer through")
    port = free_port()
    argv = [mitmdump, *common, "--listen-port", str(port), "--server-replay", str(flows)]
    argv += ["--set", "server_replay_reuse=true", "--set", "server_replay_extra=kill"]
    with running(run.child("mitmdump server-replay", argv)) as replayer:
        replayer.wait_until_listening(port)
        if fetch_now(port, request).body != reply.body:
            raise replayer.failure("did not replay the recorded answer")
        gate, mitm = run.compare_throughput(request, [replay_port, port])
        return gate, mitm
