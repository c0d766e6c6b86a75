"""`inference-gate verify`: has the live API drifted from the cassettes? The plan, the verdicts and the report.

A run has three steps, and this module does the first and the last:

1. `plan_verify` reads the cassette directory and chooses what to check: every cassette, or `sample` of them
   chosen by `seed` (the same seed picks the same cassettes from the same directory). Each becomes the request it
   stores, ready to send again. A cassette that cannot be sent as it was recorded is skipped, with the reason:
   an unreadable file, a request holding a `redact`ed value (the real one is gone), an upload (its files are
   stored by hash), a WebSocket session (a conversation, which verify does not replay yet).
2. The proxy sends the requests (proxy/verify_runner.py: the recorder's upstream path, bounded, `Retry-After`
   honoured). Sending needs the HTTP client, which the layer rule keeps out of review/.
3. `judge` compares each answer with its cassette (core/drift.py) and, with `refresh`, rewrites the cassettes
   whose answer changed through the store's refresh path (`CassetteStore.put_take`, as `start --refresh` does:
   a file is rewritten only when a material value changed). Without `refresh` nothing is written.

The report is text for a person, markdown for a CI job's summary, or JSON for scripts; every rendering is
passed through the audit's masking (`CredentialScanner.mask`, with the watched key variables' values), since
an upstream's error message or a reply may carry a credential and a job summary is published.
"""

from __future__ import annotations

import collections
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import orjson

from inference_gate.core.cassette import (
    Cassette,
    CassetteError,
    RecordedResponse,
    Take,
    cassette_document,
    cassette_from_bytes,
    cassette_to_dict,
)
from inference_gate.core.drift import Drift, Level, compare_answers, compare_sessions
from inference_gate.core.http_models import HttpRequest
from inference_gate.core.routes import RouteTable
from inference_gate.core.session_cassette import SessionCassette, is_session_document, session_from_document
from inference_gate.core.websocket_session import AUDIO_FIELDS, OMITTED_AUDIO, Sender, SessionFrame, omit_audio
from inference_gate.review.audit import CredentialScanner
from inference_gate.review.rekey import is_redacted
from inference_gate.store.cassette_store import (
    CassetteStore,
    SecretLeakError,
    Slot,
    TakeWrite,
    require_cache_dir,
)

DEFAULT_FAIL_ON = Level.SHAPE
FORMATS = ("text", "markdown", "json")
MARKDOWN_CELL_CHARS = 300


class VerifyError(Exception):
    """A run that cannot start: no such directory, nothing to check. The message is one line for the user."""


@dataclass(frozen=True, slots=True)
class VerifyTarget:
    """A cassette to check, and the request it stores, as it is sent again; or a WebSocket session, played again
    from its client frames."""

    slot: Slot
    document: dict[str, Any]
    question: HttpRequest | SessionCassette  # what the runner sends
    cassette: Cassette | None = None  # a request's cassette; None for a session


@dataclass(frozen=True, slots=True)
class VerifyPlan:
    store: CassetteStore
    targets: tuple[VerifyTarget, ...]
    skipped: tuple[tuple[str, str], ...]
    cassettes: int  # how many cassettes the directory holds
    sample: int | None = None
    seed: int = 0


@dataclass(frozen=True, slots=True)
class Verdict:
    name: str
    drift: Drift
    rewritten: bool = False
    not_written: str | None = None  # with `refresh`, why a changed cassette was left as it was


@dataclass(frozen=True, slots=True)
class VerifyReport:
    plan: VerifyPlan
    verdicts: tuple[Verdict, ...]
    refresh: bool = False
    counts: dict[Level, int] = field(default_factory=dict)

    def fails(self, fail_on: Level) -> bool:
        """Whether any cassette drifted to `fail_on` or further (what makes the exit code non-zero)."""
        return any(verdict.drift.level.rank >= fail_on.rank for verdict in self.verdicts)


# --- 1. the plan ----------------------------------------------------------------------------------------------


def plan_verify(store: CassetteStore, *, sample: int | None = None, seed: int = 0) -> VerifyPlan:
    """What a run checks in `store`: every cassette that can be sent again, or `sample` of them chosen by `seed`.
    Raises MissingCacheDirError when the directory is not there."""
    if sample is not None and sample < 1:
        raise VerifyError(f"--sample must be at least 1, not {sample}")
    require_cache_dir(store.root)
    slots = store.slots()
    targets, skipped = [], []
    for slot in slots:
        target = _target(store, slot)
        if isinstance(target, str):
            skipped.append((slot.name, target))
        else:
            targets.append(target)
    if sample is not None and sample < len(targets):
        chosen = set(random.Random(seed).sample(range(len(targets)), sample))
        targets = [target for index, target in enumerate(targets) if index in chosen]
    return VerifyPlan(store, tuple(targets), tuple(skipped), len(slots), sample, seed)


def _target(store: CassetteStore, slot: Slot) -> VerifyTarget | str:
    """The cassette at `slot` ready to send again, or why it cannot be."""
    try:
        data = store.read_bytes(slot.path)
        document = cassette_document(data)
        if is_session_document(document):
            return _session_target(slot, document)
        cassette = cassette_from_bytes(data)
    except (OSError, CassetteError) as error:
        return f"unreadable: {error}"
    request = cassette.request
    if request.form is not None:
        return "an upload: its files are stored by name and hash, not sent again"
    if is_redacted(cassette):
        return "its request holds a redacted value, which cannot be sent as recorded"
    query = urlencode([(name, value) for name, value in request.query])
    headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in request.headers.items()]
    target = f"{request.path}?{query}" if query else request.path
    return VerifyTarget(slot, document, HttpRequest(request.method, target, headers, request.body), cassette)


def _session_target(slot: Slot, document: dict[str, Any]) -> VerifyTarget | str:
    try:
        session = session_from_document(document)
    except (CassetteError, ValueError) as error:
        return f"unreadable: {error}"
    if any(frame.sender is Sender.CLIENT and _omits_audio(frame.data) for frame in session.frames):
        return "a WebSocket session whose client audio is stored by digest only, which cannot be sent again"
    return VerifyTarget(slot, document, session)


def keyless_routes(plan: VerifyPlan, routes: RouteTable) -> list[str]:
    """The routes (routes.py) the plan's requests take that hold no key of the gate's: with no client to pass a
    credential through, their requests go without one, and a real upstream refuses them."""
    targets = [
        target.question.path if isinstance(target.question, SessionCassette) else target.question.target
        for target in plan.targets
    ]
    taken = {routes.route_for(target)[0] for target in targets}
    return sorted(route.name for route in taken if route.api_key is None)


# --- 3. the verdicts ------------------------------------------------------------------------------------------


def judge(
    plan: VerifyPlan,
    answers: Sequence[RecordedResponse | tuple[SessionFrame, ...] | str],
    *,
    refresh: bool = False,
    secrets: Sequence[str] = (),
    clock: Callable[[], datetime],
) -> VerifyReport:
    """Each target's drift from its answer (a response, or why none came); with `refresh`, each cassette whose
    answer changed, and did not fail, gets it in place of the take it was compared with. `secrets` are the keys
    in play, which the store refuses to write."""
    store = plan.store
    recorded_at = clock().strftime("%Y-%m-%dT%H:%M:%SZ")
    verdicts = []
    for target, answer in zip(plan.targets, answers, strict=True):
        if isinstance(answer, str):
            verdicts.append(Verdict(target.slot.name, Drift.failed(answer)))
            continue
        if isinstance(target.question, SessionCassette):
            if not isinstance(answer, tuple):
                raise TypeError(f"{target.slot.name}: a session is answered by its server frames")
            verdicts.append(_session_verdict(target.slot.name, target.question, answer, refresh=refresh))
            continue
        cassette = target.cassette
        if cassette is None or not isinstance(answer, RecordedResponse):
            raise TypeError(f"{target.slot.name}: a request's cassette is answered by a response")
        fresh = Cassette(cassette.key, cassette.request, [Take(recorded_at, answer)]).with_summary()
        drift = compare_answers(target.document, cassette_to_dict(fresh))
        verdict = Verdict(target.slot.name, drift)
        if refresh and drift.level not in (Level.SAME, Level.ERROR):
            verdict = _rewritten(store, target, fresh, verdict, secrets)
        verdicts.append(verdict)
    counts = collections.Counter(verdict.drift.level for verdict in verdicts)
    return VerifyReport(plan, tuple(verdicts), refresh, {level: counts[level] for level in Level})


def _omits_audio(data: Any) -> bool:
    """Whether a stored event's audio is there only as its digest and size (websocket_session.omit_audio)."""
    name = AUDIO_FIELDS.get(data.get("type")) if isinstance(data, dict) else None
    return name is not None and isinstance(data.get(name), dict) and OMITTED_AUDIO in data[name]


def _session_verdict(
    name: str, session: SessionCassette, frames: tuple[SessionFrame, ...], *, refresh: bool
) -> Verdict:
    """A session's drift, its server events compared with their audio by digest on both sides."""

    def server_events(of: Sequence[SessionFrame]) -> list[Any]:
        return [omit_audio(frame.data) if frame.data is not None else frame.text for frame in of
                if frame.sender is Sender.SERVER]  # fmt: skip

    drift = compare_sessions(session.path, server_events(session.frames), server_events(frames))
    not_written = "verify does not rewrite WebSocket sessions" if refresh and drift.level is not Level.SAME else None
    return Verdict(name, drift, not_written=not_written)


def _rewritten(
    store: CassetteStore, target: VerifyTarget, fresh: Cassette, verdict: Verdict, secrets: Sequence[str]
) -> Verdict:
    """The verdict once the fresh answer replaced the take it was compared with, or why it did not."""
    try:
        write, _ = store.put_take(
            fresh,
            target.slot.path,
            take_index=verdict.drift.take,
            takes_wanted=len(target.cassette.takes),
            refresh=True,
            secrets=secrets,
        )
    except SecretLeakError:
        return replace(verdict, not_written="the answer holds an API key")
    except OSError as error:
        return replace(verdict, not_written=f"the cassette could not be written: {error.strerror or error}")
    return replace(verdict, rewritten=write in (TakeWrite.CHANGED, TakeWrite.NEW))


# --- the report -----------------------------------------------------------------------------------------------


def _counts_text(report: VerifyReport) -> str:
    return ", ".join(f"{report.counts[level]} {level.value}" for level in Level)


def _scope(plan: VerifyPlan) -> str:
    checked = len(plan.targets)
    sampled = f" (a sample of {plan.sample}, seed {plan.seed})" if plan.sample is not None else ""
    return f"{checked} of {plan.cassettes} cassette{'' if plan.cassettes == 1 else 's'}{sampled}"


def render(report: VerifyReport, output_format: str, scanner: CredentialScanner) -> str:
    """The report in `output_format` (`FORMATS`), with every credential the audit would flag masked."""
    renderers = {"text": render_text, "markdown": render_markdown, "json": render_json}
    return scanner.mask(renderers[output_format](report))


def render_text(report: VerifyReport) -> str:
    plan = report.plan
    lines = [f"verify {plan.store.root}: {_scope(plan)}: {_counts_text(report)}"]
    for verdict in sorted(report.verdicts, key=_worst_first):
        lines.append(f"{verdict.drift.level.value:<9}  {verdict.name}{_written_note(verdict)}")
        lines += [f"  {difference.where}: {difference.what}" for difference in verdict.drift.differences]
    lines += [f"skipped    {name}: {reason}" for name, reason in plan.skipped]
    return "\n".join(lines)


def _written_note(verdict: Verdict) -> str:
    if verdict.not_written:
        return f"  (not rewritten: {verdict.not_written})"
    return "  (rewritten)" if verdict.rewritten else ""


def _worst_first(verdict: Verdict) -> tuple[int, str]:
    return -verdict.drift.level.rank, verdict.name


def _cell(text: str) -> str:
    """Text that stays inside one markdown table cell: pipes escaped, newlines as spaces, cut if long."""
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= MARKDOWN_CELL_CHARS else text[: MARKDOWN_CELL_CHARS - 1] + "…"


def _code(text: str) -> str:
    """Inline code in a table cell; text holding a backtick is fenced with two."""
    text = _cell(text)
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def render_markdown(report: VerifyReport) -> str:
    """A heading, the counts per level, one row per cassette that is not `same`, worst first, then the `same` and
    the skipped ones in collapsed lists."""
    plan = report.plan
    lines = [
        "## inference-gate verify",
        "",
        f"Checked {_scope(plan)} in {_code(str(plan.store.root))} against the live upstream.",
        "",
        "| level | cassettes |",
        "| --- | ---: |",
        *(f"| {level.value} | {report.counts[level]} |" for level in Level),
    ]
    verdicts = sorted(report.verdicts, key=_worst_first)
    changed = [verdict for verdict in verdicts if verdict.drift.level is not Level.SAME]
    if changed:
        lines += ["", "| cassette | level | what differs |", "| --- | --- | --- |"]
        for verdict in changed:
            what = "<br>".join(
                f"{_code(difference.where)} {_cell(difference.what)}" for difference in verdict.drift.differences
            )
            level = verdict.drift.level.value
            lines.append(f"| {_code(verdict.name)}{_cell(_written_note(verdict))} | **{level}** | {what} |")
    same = [verdict.name for verdict in verdicts if verdict.drift.level is Level.SAME]
    if same:
        lines += ["", f"<details><summary>{len(same)} same</summary>", ""]
        lines += [f"- {_code(name)}" for name in same]
        lines += ["", "</details>"]
    if plan.skipped:
        lines += ["", f"<details><summary>{len(plan.skipped)} skipped</summary>", ""]
        lines += [f"- {_code(name)}: {_cell(reason)}" for name, reason in plan.skipped]
        lines += ["", "</details>"]
    return "\n".join(lines)


def render_json(report: VerifyReport) -> str:
    plan = report.plan
    document = {
        "cache_dir": str(plan.store.root),
        "cassettes": plan.cassettes,
        "checked": len(plan.targets),
        "sample": plan.sample,
        "seed": plan.seed,
        "refresh": report.refresh,
        "counts": {level.value: report.counts[level] for level in Level},
        "verdicts": [
            {
                "name": verdict.name,
                "level": verdict.drift.level.value,
                "take": verdict.drift.take,
                "rewritten": verdict.rewritten,
                "not_written": verdict.not_written,
                "differences": [
                    {"level": difference.level.value, "where": difference.where, "what": difference.what}
                    for difference in verdict.drift.differences
                ],
            }
            for verdict in report.verdicts
        ],
        "skipped": [{"name": name, "reason": reason} for name, reason in plan.skipped],
    }
    return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode()
