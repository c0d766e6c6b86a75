"""The InferenceGate benchmark: how a cache hit compares with a bare trio + h11 server, and how the gate compares
with the tools a team would use instead, on single requests and on a whole pytest suite.

    python -m tools.bench            # about 8 to 10 minutes
    python -m tools.bench --quick    # every step once, briefly: a smoke run, not figures to quote

Every figure is measured in one run on this machine, and most are read against a reference measured in the
same run, because absolute numbers say more about the machine than about the gate. One module per row family:

(b) replay hits of a non-streamed chat answer (about 2 KB), 32 keep-alive connections: the gate in `replay`
    mode against tools/baseline_server.py, a bare trio + h11 server sending the very bytes the gate sent, framed
    by h11 on every request (hits.py);
(c) the same for a streamed chat answer of 100 SSE events, which both send chunked;
(c') aimock replaying the stream of (c), recorded from the same fake upstream. aimock re-chunks a stream it
    replays, so the row says whether its stream is the same work as the gate's (the same events, about the
    same bytes); where it is not, its reference is the baseline server sending aimock's own bytes;
(d) hits in record-and-replay mode (`start`), against the same baseline as (b);
(e) the record path: misses forwarded to tools/fake_upstream.py and recorded, one at a time, each with a new
    prompt; the latency the gate adds over calling the fake upstream directly (record_path.py);
(e') the same run, split: what the gate adds to the time to the response's first byte, and to its last byte
    (which includes making the cassette durable);
(f) mitmdump --server-replay serving the answer of (b), from a flow file it recorded itself, in interleaved runs
    with the gate of (b) (mitmdump.py);
(g) start-up with 0, 10,000 and 100,000 cassettes: from process start to the first answered request, and the
    peak memory (VmHWM) at that moment (startup.py);
(h) `inference-gate cache list` and `cache info` over 10,000 cassettes: wall time (listing.py);
(i) aimock (@copilotkit/aimock, a Node mock with record and replay) serving the answer of (b), recorded through
    it from the fake upstream, in the same interleaved runs as (b) (aimock.py);
(j) the official openai SDK making sequential `chat.completions.create` calls on one client (tools/sdk_calls.py):
    through the gate in replay, through aimock, and under vcrpy in-process, which costs only the SDK's own work
    (sdk.py);
(k) the gate's peak memory while 20 clients read a 20 MB replayed stream at 1 MB/s each, then hang up
    (slow_readers.py);
(l) a generated pytest suite (tools/make_suite.py) run four ways: the SDK on canned bytes in memory (the floor),
    the pytest plugin in replay, vcrpy + pytest-recording, and cassetter; and pytest's start-up with the plugin
    active and not (suite.py);
(m) replayed WebSocket sessions: a 50-frame `responses.connect()` session recorded from tools/fake_websocket.py,
    played whole (upgrade, frames, close) by 32 clients of tools/ws_loadgen.py against the gate in `replay`,
    tools/baseline_ws_server.py sending the very messages the gate sent, and aimock serving the same answer
    from a fixture: sessions and messages per second (websocket.py).

Servers run as child processes pinned to one core and the load generator on another, so that on a two-core
machine they never compete for a core (this, and reading peak memory from /proc, make the bench Linux-only).
The load generator is wrk when installed, else tools/loadgen.py. Throughput runs are interleaved (one side, the
other, ...) and the best run of each counts, so that a burst of other work on the machine spoils one run rather
than one side of a ratio; the suite's runs are interleaved too, and their medians count. Synthetic cassette sets,
mitmproxy's own virtualenv, the SDK rows' virtualenvs and aimock's npm folder are kept in
~/.cache/inference-gate-bench, so that a second run skips making them. A reference that cannot be installed (no
node or npm, say) leaves its rows saying why, and the rest of the run goes on.
"""
