"""The ledger as the lines a person reads: the pytest plugin's `inference-gate` section and the summary that
`inference-gate run` prints when its command ends are the same lines, so a suite reads alike under any runner.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from inference_gate.core.outcome import Outcome
from inference_gate.core.policy import Mode
from inference_gate.proxy.ledger import DiscardPlan, Ledger, PrunePlan

KEEP_FAILED_OPTION = "--inference-gate-keep-failed"


def summary_lines(
    ledger: Ledger, mode: Mode, cache_dir: Path, *, notes: Iterable[str] = (), by_test: bool = False
) -> list[str]:
    """The counts per outcome, then `notes` (injected faults, what a refresh did), each miss with its request and
    the closest cassette, and with `by_test` the cassettes each test used."""
    counts = ledger.counts()
    listed = ", ".join(f"{label} {counts[outcome]}" for outcome, label in _count_labels(counts))
    lines = [f"{mode.value} mode, cassettes in {cache_dir}: {listed}", *notes]
    for miss in ledger.misses():
        lines.append(f"MISS {miss.test_id}: {miss.method} {miss.path} {miss.request or ''}".rstrip())
        lines.append(f"    closest cassette: {miss.closest or 'none recorded for this endpoint'}")
    if by_test:
        lines.append("cassettes used, by test:")
        lines.extend(f"  {test_id}: {', '.join(names) or '-'}" for test_id, names in ledger.cassettes_by_test().items())
    return lines


def prune_lines(plan: PrunePlan) -> list[str]:
    if plan.refusals:
        return [f"prune refused, nothing deleted: {'; '.join(plan.refusals)}"]
    if plan.delete:
        return [f"pruned the cassettes no test used ({len(plan.delete)}):", *(f"  {name}" for name in plan.delete)]
    return ["prune: every cassette was used, nothing deleted"]


def discard_lines(plan: DiscardPlan) -> list[str]:
    """What recording only what passed did; nothing when no test that did not pass created a cassette."""
    lines = []
    if plan.discard:
        lines.append(
            f"not kept, created by tests that did not pass ({len(plan.discard)}; {KEEP_FAILED_OPTION} keeps them):"
        )
        lines.extend(f"  {name} ({', '.join(tests)})" for name, tests in plan.discard.items())
    if plan.kept:
        lines.append(f"kept, created by a test that did not pass but used by a passing one ({len(plan.kept)}):")
        lines.extend(f"  {name} (used by {', '.join(tests)})" for name, tests in plan.kept.items())
    return lines


def _count_labels(counts: Counter[Outcome]) -> list[tuple[Outcome, str]]:
    """hits, recorded and misses always; passthrough and errors only when there were some."""
    always = [(Outcome.HIT, "hits"), (Outcome.RECORDED, "recorded"), (Outcome.MISS, "misses")]
    if_any = [(Outcome.PASSTHROUGH, "passthrough"), (Outcome.ERROR, "errors")]
    return always + [(outcome, label) for outcome, label in if_any if counts[outcome]]
