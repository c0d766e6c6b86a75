"""Row (g): the gate's start-up with 0, 10,000 and 100,000 cassettes: from process start to the first answered
request, and the peak memory (VmHWM) at that moment."""

from __future__ import annotations

import statistics
import time

from tools.bench.installs import cassette_set
from tools.bench.processes import GATE_BANNER, running
from tools.bench.report import Row, Target
from tools.bench.requests import CHAT_PATH, fetch_now
from tools.bench.run import BenchRun
from tools.loadgen import LoadRequest
from tools.make_cassettes import synthetic_request_body

LARGE_STORE = 100_000


def startup(run: BenchRun) -> None:
    """(g): seconds from process start to the first answer, and the peak RSS then; medians over the runs."""
    for count in run.profile.startup_counts:
        cache_dir = cassette_set(count) if count else run.work_dir / "no-cassettes"
        cache_dir.mkdir(exist_ok=True)  # replay refuses a cache directory that does not exist
        first_request = LoadRequest(
            "POST", CHAT_PATH, [(b"content-type", b"application/json")], synthetic_request_body(0)
        )
        expected_status = 200 if count else 404
        first_answer_s: list[float] = []
        peak_rss_bytes: list[int] = []
        for _ in range(run.profile.startup_runs):
            started = time.perf_counter()
            with running(run.gate("replay", cache_dir)) as gate:
                response = fetch_now(gate.read_port(GATE_BANNER), first_request)
                first_answer_s.append(time.perf_counter() - started)
                peak_rss_bytes.append(gate.peak_rss_bytes())
                if response.status != expected_status:
                    raise gate.failure(f"answered {response.status} to the first request, not {expected_status}")
        answer_s, rss_mb = statistics.median(first_answer_s), statistics.median(peak_rss_bytes) / 1e6
        measured = f"first answer {answer_s:.2f} s, peak RSS {rss_mb:.0f} MB"
        run.report.rows.append(Row("(g)", f"start-up, {count:,} cassettes", measured))
        if count == LARGE_STORE:
            run.report.targets += [
                Target("(g) 100k cassettes: first answer", f"{answer_s:.2f} s", "<= 1.00 s", answer_s <= 1.0),
                Target("(g) 100k cassettes: peak RSS", f"{rss_mb:.0f} MB", "<= 100 MB", rss_mb <= 100),
            ]
    if LARGE_STORE not in run.profile.startup_counts:
        run.report.targets.append(Target("(g) 100k cassettes", "not measured (--quick)", "<= 1 s, 100 MB", None))
