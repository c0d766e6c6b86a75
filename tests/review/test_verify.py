"""review/verify.py: which cassettes a run checks, the verdicts from plain answers, and the report's formats."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from inference_gate.core.cassette import RecordedResponse
from inference_gate.core.dialects import Dialect
from inference_gate.core.drift import Level
from inference_gate.core.routes import RouteTable
from inference_gate.review.audit import CredentialScanner
from inference_gate.review.verify import VerifyError, judge, keyless_routes, plan_verify, render
from inference_gate.store.cassette_store import CassetteStore, MissingCacheDirError
from tests.cassettes import record

WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
PROMPTS = [f"Question number {number}" for number in range(10)]
KEY = "sk-proj-" + "a1B2c3D4e5" * 5


def answer(text: str, *, status: int = 200, **extra: object) -> RecordedResponse:
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}
    payload = body if status == 200 else {"error": {"message": text}}
    headers = {"content-type": "application/json"}
    return RecordedResponse(status, headers, orjson.dumps({**payload, **extra}))


def chat(prompt: str) -> dict:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]}


@pytest.fixture
def store(tmp_path: Path) -> CassetteStore:
    store = CassetteStore(tmp_path / "cache")
    for prompt in PROMPTS:
        record(store, chat(prompt), answer(f"Answer to {prompt}"), path="/v1/chat/completions", recorded_at="2026")
    return store


def names(plan) -> list[str]:
    return [target.slot.name for target in plan.targets]


def test_every_cassette_is_planned_as_the_request_it_stores(store: CassetteStore):
    plan = plan_verify(store)
    assert len(plan.targets) == plan.cassettes == len(PROMPTS) and plan.skipped == ()
    request = plan.targets[0].question
    assert (request.method, request.target) == ("POST", "/v1/chat/completions")
    assert orjson.loads(request.body)["messages"][0]["content"] in PROMPTS


def test_a_sample_is_the_same_for_the_same_seed_and_differs_between_seeds(store: CassetteStore):
    picks = {seed: names(plan_verify(store, sample=3, seed=seed)) for seed in range(8)}
    assert names(plan_verify(store, sample=3, seed=5)) == picks[5]
    assert all(len(chosen) == 3 for chosen in picks.values())
    assert len({tuple(chosen) for chosen in picks.values()}) > 1
    assert len(names(plan_verify(store, sample=50))) == len(PROMPTS)


def test_a_sample_of_zero_and_a_missing_directory_are_refused(store: CassetteStore, tmp_path: Path):
    with pytest.raises(VerifyError, match="at least 1"):
        plan_verify(store, sample=0)
    with pytest.raises(MissingCacheDirError, match="does not exist"):
        plan_verify(CassetteStore(tmp_path / "cahce"))


def test_unreadable_redacted_and_audio_session_cassettes_are_skipped_with_the_reason(tmp_path: Path):
    store = CassetteStore(tmp_path / "cache")
    record(store, chat("<redacted>"), answer("x"), path="/v1/chat/completions", recorded_at="2026")
    (store.root / "chat.completions" / "broken.0123456789abcdef.json").write_text("{", encoding="utf-8")
    audio = {"type": "input_audio_buffer.append", "audio": {"omitted_audio": {"sha256": "00", "bytes": 3}}}
    session = {"format_version": 1, "kind": "websocket_session", "key": "k", "request": {"path": "/v1/realtime"},
               "frames": [{"from": "client", "at_ms": 0, "data": audio}]}  # fmt: skip
    (store.root / "realtime").mkdir()
    (store.root / "realtime" / "session.0123456789abcdef.json").write_bytes(orjson.dumps(session))
    reasons = dict(plan_verify(store).skipped)
    assert len(reasons) == 3
    assert reasons["chat.completions/broken.0123456789abcdef.json"].startswith("unreadable:")
    assert "redacted" in next(reason for name, reason in reasons.items() if "redacted" in name)
    assert reasons["realtime/session.0123456789abcdef.json"].startswith("a WebSocket session whose client audio")


def answers_for(plan, overrides: dict[int, RecordedResponse | str]) -> list[RecordedResponse | str]:
    """Each target's recorded answer again (new ids would not change it), with `overrides` by position."""
    fresh = []
    for index, target in enumerate(plan.targets):
        fresh.append(overrides.get(index, target.cassette.takes[0].response))
    return fresh


def test_judge_gives_each_cassette_its_level_and_writes_nothing(store: CassetteStore):
    plan = plan_verify(store)
    before = {path: path.read_bytes() for path in store.cassette_paths()}
    overrides = {0: answer("Other words"), 1: answer("x", service_tier="default"), 2: "connection refused"}
    report = judge(plan, answers_for(plan, overrides), clock=lambda: WHEN)
    levels = [verdict.drift.level for verdict in report.verdicts]
    assert levels[:3] == [Level.WORDING, Level.SHAPE, Level.ERROR] and set(levels[3:]) == {Level.SAME}
    assert report.counts == {Level.SAME: 7, Level.WORDING: 1, Level.BEHAVIOUR: 0, Level.SHAPE: 1, Level.ERROR: 1}
    assert report.fails(Level.SHAPE) and report.fails(Level.ERROR) and not judge(
        plan, answers_for(plan, {0: answer("Other words")}), clock=lambda: WHEN
    ).fails(Level.BEHAVIOUR)
    assert {path: path.read_bytes() for path in store.cassette_paths()} == before


def test_refresh_rewrites_the_changed_cassettes_only(store: CassetteStore):
    plan = plan_verify(store)
    before = {target.slot.path: target.slot.path.read_bytes() for target in plan.targets}
    overrides = {0: answer("Other words"), 1: answer("x", status=500)}
    report = judge(plan, answers_for(plan, overrides), refresh=True, clock=lambda: WHEN)
    rewritten = [path for path, data in before.items() if path.read_bytes() != data]
    assert rewritten == [plan.targets[0].slot.path]
    assert [verdict.rewritten for verdict in report.verdicts][:2] == [True, False]
    assert "Other words" in rewritten[0].read_text(encoding="utf-8")


def test_refresh_never_writes_a_key(store: CassetteStore):
    plan = plan_verify(store)
    report = judge(plan, answers_for(plan, {0: answer(f"Your key is {KEY}")}), refresh=True, secrets=[KEY],
                   clock=lambda: WHEN)  # fmt: skip
    assert report.verdicts[0].not_written == "the answer holds an API key"
    assert KEY not in plan.targets[0].slot.path.read_text(encoding="utf-8")


@pytest.fixture
def report(store: CassetteStore):
    plan = plan_verify(store, sample=4, seed=1)
    overrides = {0: answer(f"Reworded with {KEY}"), 1: answer("The | pipe", service_tier="default")}
    return judge(plan, answers_for(plan, overrides), clock=lambda: WHEN)


def test_every_format_masks_what_the_audit_flags(report):
    for output_format in ("text", "markdown", "json"):
        rendered = render(report, output_format, CredentialScanner())
        assert KEY not in rendered and "sk-pro…" in rendered


def test_the_text_report_counts_and_lists_worst_first(report):
    lines = render(report, "text", CredentialScanner()).splitlines()
    counts = "2 same, 1 wording, 0 behaviour, 1 shape, 0 error"
    assert lines[0].endswith(f": 4 of 10 cassettes (a sample of 4, seed 1): {counts}")
    assert lines[1].startswith("shape      chat.completions/") and lines[2] == "  body.service_tier: added"


def test_the_markdown_report_is_a_table_whose_cells_hold(report):
    text = render(report, "markdown", CredentialScanner())
    assert text.startswith("## inference-gate verify\n")
    assert "| shape | 1 |" in text and "| same | 2 |" in text
    rows = [line for line in text.splitlines() if line.startswith("| `chat.completions/")]
    assert len(rows) == 2 and all(row.count(" | ") == 2 for row in rows)  # a pipe in a value is escaped
    assert "**shape**" in rows[0] and "`body.service_tier` added" in rows[0]
    assert "<details><summary>2 same</summary>" in text


def test_the_json_report_is_for_scripts(report):
    document = orjson.loads(render(report, "json", CredentialScanner()))
    assert document["counts"] == {"same": 2, "wording": 1, "behaviour": 0, "shape": 1, "error": 0}
    assert (document["checked"], document["cassettes"], document["sample"], document["seed"]) == (4, 10, 4, 1)
    shape = next(verdict for verdict in document["verdicts"] if verdict["level"] == "shape")
    assert shape["differences"][0] == {"level": "shape", "where": "body.service_tier", "what": "added"}


def test_the_routes_without_a_key_are_named(store: CassetteStore):
    plan = plan_verify(store)
    keyless = RouteTable.build({}, openai_url="https://api.openai.com", keys={})
    keyed = RouteTable.build({}, openai_url="https://api.openai.com", keys={Dialect.OPENAI: KEY})
    assert keyless_routes(plan, keyless) == ["openai"] and keyless_routes(plan, keyed) == []
