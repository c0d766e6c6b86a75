"""The bench's table: rows of figures with their references, and targets with a verdict each."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Row:
    """One measurement in the table: what it is, its figure, its reference, and how they compare."""

    label: str
    scenario: str
    measured: str
    reference: str = ""
    comparison: str = ""


@dataclass(frozen=True, slots=True)
class Target:
    """A goal and whether it was met; `passed` is None when the run did not measure it (`measured` says why)."""

    name: str
    measured: str
    goal: str
    passed: bool | None


@dataclass(slots=True)
class Report:
    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)

    def add_ratio_target(self, name: str, ratio: float, goal: float) -> None:
        self.targets.append(Target(name, f"{ratio:.2f}", f">= {goal:.2f}", ratio >= goal))

    def print(self, header_lines: list[str]) -> None:
        print()
        print("\n".join(header_lines))
        print()
        rows = [("row", "scenario", "measured", "reference", "ratio / difference")]
        rows += [(r.label, r.scenario, r.measured, r.reference, r.comparison) for r in sorted(self.rows, key=_label)]
        _print_columns(rows)
        print()
        targets = [("target", "measured", "goal", "result")]
        for target in sorted(self.targets, key=_row_label_of_target):
            result = "SKIP" if target.passed is None else "PASS" if target.passed else "FAIL"
            targets.append((target.name, target.measured, target.goal, result))
        _print_columns(targets)


def _label(row: Row) -> str:
    return _in_order(row.label)


def _row_label_of_target(target: Target) -> str:
    """`(b)` for "(b) replay hits vs baseline": targets are listed in the order of the rows they judge."""
    return _in_order(target.name.partition(" ")[0])


def _in_order(label: str) -> str:
    """`(c')` sorts just after `(c)`, not before it as its bytes would."""
    return label.strip("()")


def _print_columns(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def first_line(error: Exception) -> str:
    """The first line of an error, for a row that says why it was skipped."""
    return str(error).splitlines()[0]
