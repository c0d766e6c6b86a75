"""Row (m): replayed WebSocket sessions. A `responses.connect()` session of 50 frames (one `response.create`, then
the 49 events that answer it) is recorded through the gate in `start` from tools/fake_websocket.py, then played
again and again, each time on a new connection (upgrade, frames, close), by `CONNECTIONS` clients of
tools/ws_loadgen.py against three servers in interleaved runs:
- the gate in `replay`;
- tools/baseline_ws_server.py, a bare trio + wsproto server sending the very messages the gate sent;
- aimock, serving the same answer from a fixture of its own (it records a WebSocket session only for GPT-Live, so
  for the Responses API's WebSocket mode it builds the events from the fixture's text). Its fixture cuts the text
  into the same 4-character deltas, so that it sends as many messages as the gate; the row checks that it did.
Each is read as whole sessions per second and server messages per second.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import trio

from tools.baseline_ws_server import CannedSession
from tools.bench.installs import aimock_executable, aimock_version
from tools.bench.load import CONNECTIONS
from tools.bench.processes import HOST, BenchError, free_port, running
from tools.bench.report import Row, Target, first_line
from tools.bench.requests import API_KEY, COMMAND_TIMEOUT_S
from tools.bench.run import BenchRun
from tools.fake_replies import TEXT_DELTA_CHARS, response_events
from tools.ws_loadgen import (
    ScriptTurn,
    SessionFailed,
    SessionLoadResult,
    SessionScript,
    play_session,
    run_session_load,
)

SESSION_FRAMES = 50
MODEL = "gpt-4o-mini"


@dataclass(frozen=True, slots=True)
class SessionFigures:
    """One server's best run."""

    result: SessionLoadResult

    def text(self) -> str:
        result = self.result
        return (
            f"{result.sessions_per_s:,.0f} sessions/s, {result.messages_per_s:,.0f} msg/s, "
            f"p50 {result.percentile_ms(0.5):.1f} ms, p99 {result.percentile_ms(0.99):.1f} ms"
        )


def prompt_for_frames(frames: int) -> str:
    """A prompt whose answer, with the `response.create` that asks for it, is `frames` messages."""
    for length in range(1, 10_000):
        prompt = "Say " + "a" * length
        if 1 + len(response_events({"model": MODEL, "input": prompt}, b"")) == frames:
            return prompt
    raise BenchError(f"no prompt gives a {frames}-frame session")


def session_script(prompt: str) -> SessionScript:
    create = orjson.dumps({"type": "response.create", "model": MODEL, "input": prompt}).decode()
    headers = [("authorization", f"Bearer {API_KEY}")]
    return SessionScript("/v1/responses", headers, [ScriptTurn(create, "response.completed")])


def play_now(port: int, script: SessionScript) -> list[str]:
    """The server messages of one session; BenchError when the session fails."""

    async def bounded() -> list[str]:
        with trio.fail_after(COMMAND_TIMEOUT_S):
            return await play_session(HOST, port, script)

    try:
        return trio.run(bounded)
    except (SessionFailed, OSError) as error:
        raise BenchError(f"a WebSocket session with {HOST}:{port} failed: {error}") from None


def load_now(port: int, script: SessionScript, duration_s: float) -> SessionLoadResult:
    async def bounded() -> SessionLoadResult:
        with trio.fail_after(duration_s + COMMAND_TIMEOUT_S):
            return await run_session_load(HOST, port, script, connections=CONNECTIONS, duration_s=duration_s)

    return trio.run(bounded)


def answer_text(messages: list[str]) -> str:
    return "".join(event.get("delta", "") for event in map(orjson.loads, messages) if event["type"].endswith(".delta"))


def websocket_sessions(run: BenchRun) -> None:
    """Row (m) and its targets; where a server cannot be had, the row says why and the run goes on."""
    try:
        script = session_script(prompt_for_frames(SESSION_FRAMES))
        gate_port, replayed = record_and_replay(run, script)
    except BenchError as error:
        print(f"skipping (m): {error}", flush=True)
        run.report.rows.append(Row("(m)", "replayed WebSocket sessions", f"skipped: {first_line(error)}"))
        return
    session_file = run.work_dir / "websocket-session.json"
    session_file.write_bytes(CannedSession(opening=[], answers=[replayed]).to_json())
    baseline_port = run.serve_script("baseline websocket", "baseline_ws_server", [str(session_file)])
    if play_now(baseline_port, script) != replayed:
        raise BenchError("the baseline WebSocket server did not send the gate's messages")
    ports = {"gate": gate_port, "baseline": baseline_port}
    aimock_note = ""
    try:
        ports["aimock"] = serve_aimock_session(run, script, replayed)
        aimock_note = f"aimock {aimock_version()}"
    except BenchError as error:
        print(f"skipping aimock in (m): {error}", flush=True)
        aimock_note = f"aimock skipped: {first_line(error)}"
    figures = compare_sessions(run, script, ports)
    scenario = f"replayed WebSocket sessions (responses.connect, {SESSION_FRAMES} frames, {CONNECTIONS} clients)"
    gate, baseline = figures["gate"], figures["baseline"]
    ratio = gate.result.sessions_per_s / baseline.result.sessions_per_s
    run.report.rows.append(Row("(m)", scenario, gate.text(), f"{baseline.text()} (baseline)", f"{ratio:.2f}"))
    if "aimock" in figures:
        aimock = figures["aimock"]
        versus = gate.result.sessions_per_s / aimock.result.sessions_per_s
        run.report.rows.append(
            Row("(m')", "aimock, the same session", aimock.text(), f"{gate.text()} (gate)", f"{versus:.2f}")
        )
        run.report.add_ratio_target("(m) WebSocket replay sessions vs aimock", versus, 1.0)
    else:
        run.report.rows.append(Row("(m')", "aimock, the same session", aimock_note))
        run.report.targets.append(Target("(m) WebSocket replay sessions vs aimock", "not measured", ">= 1.00", None))


def record_and_replay(run: BenchRun, script: SessionScript) -> tuple[int, list[str]]:
    """The session recorded through the gate in `start`, then the port of a gate replaying it alone, and the
    messages it replays, checked to be those recorded."""
    upstream_port = run.serve_script("fake websocket upstream", "fake_websocket", ["--expected-api-key", API_KEY])
    record_dir = run.work_dir / "websocket-cassettes"
    start_port = run.serve_gate("start", record_dir, upstream=f"http://{HOST}:{upstream_port}")
    recorded = play_now(start_port, script)
    if len(recorded) != SESSION_FRAMES - 1:
        raise BenchError(
            f"recording the session through the gate gave {len(recorded)} messages, not {SESSION_FRAMES - 1}"
        )
    replay_port = run.serve_gate("replay", record_dir)
    replayed = play_now(replay_port, script)
    if [orjson.loads(message) for message in replayed] != [orjson.loads(message) for message in recorded]:
        raise BenchError("the gate's replay of the session differs from its recording")
    return replay_port, replayed


def serve_aimock_session(run: BenchRun, script: SessionScript, replayed: list[str]) -> int:
    """aimock serving the session's answer from a fixture, checked to send as many messages with the same text."""
    llmock = str(aimock_executable())
    fixtures = run.work_dir / "aimock-websocket-fixtures"
    fixtures.mkdir()
    prompt = orjson.loads(script.turns[0].client or "{}")["input"]
    fixture = {"match": {"userMessage": prompt}, "response": {"content": answer_text(replayed)}}
    fixture["chunkSize"] = TEXT_DELTA_CHARS
    (fixtures / "session.json").write_bytes(orjson.dumps({"fixtures": [fixture]}))
    port = free_port()
    argv = [llmock, "--host", HOST, "--port", str(port), "--fixtures", str(fixtures), "--log-level", "silent"]
    server = run.servers.enter_context(running(run.child("aimock websocket", argv)))
    server.wait_until_listening(port)
    served = play_now(port, script)
    if len(served) != len(replayed) or answer_text(served) != answer_text(replayed):
        raise BenchError(f"aimock sent {len(served)} messages, not the gate's {len(replayed)} with the same text")
    return port


def compare_sessions(run: BenchRun, script: SessionScript, ports: dict[str, int]) -> dict[str, SessionFigures]:
    """Each server's best run of `load_rounds`, measured in turn, after a warm-up of each."""
    profile = run.profile
    if profile.warmup_duration_s:
        for port in ports.values():
            load_now(port, script, profile.warmup_duration_s)
    best: dict[str, SessionLoadResult] = {}
    for _ in range(profile.load_rounds):
        for name, port in ports.items():
            result = load_now(port, script, profile.load_duration_s)
            if result.failed:
                raise BenchError(f"{result.failed} WebSocket sessions with {name} failed under load")
            if name not in best or result.sessions > best[name].sessions:
                best[name] = result
    return {name: SessionFigures(result) for name, result in best.items()}
