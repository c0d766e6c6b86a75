"""`cache diff` printed: plain text for a terminal, Markdown for a pull request, JSON for a script.

The Markdown is written for GitHub's renderer (a PR comment or `$GITHUB_STEP_SUMMARY`): one short table with a
row per cassette, then a collapsed `<details>` block per change, whose reply text is a fenced `diff` block
(GitHub colours its `-` and `+` lines). Table cells escape `|` and keep to one line; code spans and fences are
made longer than any backtick run inside them, so a prompt full of backticks cannot break the layout.
"""

from __future__ import annotations

import difflib
import html
import re
from typing import Any

import orjson

from inference_gate.review.audit import masked_copy
from inference_gate.review.cassette_view import shorten
from inference_gate.review.changes import ABSENT, CassetteChanges, FieldChange, ListedCassette
from inference_gate.review.revisions import RevisionDiff

PROMPT_CELL_CHARS = 60
VALUE_CHARS = 200
REPLY_DIFF_CHARS = 2000
WORD_OR_SPACE = re.compile(r"\s+|[^\s]+")


def title(diff: RevisionDiff) -> str:
    return f"{diff.base} → {diff.target}"


def summary_counts(changes: CassetteChanges) -> str:
    counts = [
        (len(changes.added), "added"),
        (len(changes.removed), "removed"),
        (len(changes.changed), "changed"),
        (len(changes.prompt_changed), "prompt changed"),
    ]
    text = ", ".join(f"{count} {label}" for count, label in counts if count) or "no changes"
    if changes.volatile_only:
        text += f" ({len(changes.volatile_only)} re-recorded with only volatile values changed)"
    return text


# --- values ------------------------------------------------------------------------------------------------


def value_text(value: Any) -> str:
    """A value on one line: `<absent>`, a string quoted, anything else as compact JSON; cut to VALUE_CHARS."""
    if value is ABSENT:
        return "<absent>"
    return shorten(orjson.dumps(value).decode(), VALUE_CHARS)


def word_diff(old: str, new: str) -> str:
    """`[-old words-]{+new words+}` between the unchanged words, as `git diff --word-diff` shows it.

    Spaces shared between two changed runs belong to the change, so a reworded sentence reads as one
    replacement instead of one bracket per word.
    """
    old_words, new_words = WORD_OR_SPACE.findall(old), WORD_OR_SPACE.findall(new)
    opcodes = difflib.SequenceMatcher(a=old_words, b=new_words, autojunk=False).get_opcodes()
    runs: list[tuple[bool, str, str]] = []  # (unchanged, old text, new text)
    for index, (operation, old_start, old_end, new_start, new_end) in enumerate(opcodes):
        old_text, new_text = "".join(old_words[old_start:old_end]), "".join(new_words[new_start:new_end])
        between_changes = 0 < index < len(opcodes) - 1 and old_text.isspace()
        unchanged = operation == "equal" and not between_changes
        if runs and not unchanged and not runs[-1][0]:
            _, previous_old, previous_new = runs.pop()
            old_text, new_text = previous_old + old_text, previous_new + new_text
        runs.append((unchanged, old_text, new_text))
    pieces = []
    for unchanged, old_text, new_text in runs:
        if unchanged:
            pieces.append(old_text)
            continue
        pieces.append(f"[-{old_text}-]" if old_text else "")
        pieces.append(f"{{+{new_text}+}}" if new_text else "")
    return "".join(pieces)


def line_diff(old: str, new: str) -> list[str]:
    """The changed lines with two lines of context, `-`/`+`/` ` prefixed, without the `---`/`+++`/`@@`."""
    lines = difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=2)
    return [line for line in lines if not line.startswith(("---", "+++", "@@"))]


def _is_text_change(change: FieldChange) -> bool:
    return change.field == "reply" and isinstance(change.old, str) and isinstance(change.new, str)


def _tool_call_lines(change: FieldChange) -> list[str]:
    old, new = (value if isinstance(value, list) else [] for value in (change.old, change.new))
    return line_diff("\n".join(old), "\n".join(new))


# --- text --------------------------------------------------------------------------------------------------


def text_lines(diff: RevisionDiff) -> list[str]:
    changes = masked_copy(diff.changes)  # a credential in a cassette must not reach a pull request
    lines = [f"cache diff {title(diff)} in {diff.folder}: {summary_counts(changes)}"]
    for listed in changes.added:
        lines.append(f"added    {_listed_text(listed)}")
    for listed in changes.removed:
        lines.append(f"removed  {_listed_text(listed)}")
    for pair in changes.prompt_changed:
        lines.append(f"prompt changed  {pair.removed.name} -> {pair.added.name}")
        lines += [f"  {line}" for change in (*pair.differences, *pair.reply_changes) for line in _change_text(change)]
    for changed in changes.changed:
        lines.append(f"changed  {changed.name}")
        lines += [f"  {line}" for change in changed.changes for line in _change_text(change)]
    return lines


def _listed_text(listed: ListedCassette) -> str:
    prompt = shorten(" ".join(listed.prompt.split()), PROMPT_CELL_CHARS)
    return f"{listed.name}  {listed.endpoint}  {listed.model or '-'}  {orjson.dumps(prompt).decode()}"


def _change_text(change: FieldChange) -> list[str]:
    if _is_text_change(change):
        if "\n" in change.old or "\n" in change.new:
            return [f"{change.field}:", *(f"  {line}" for line in line_diff(change.old, change.new))]
        return [f"{change.field}: {shorten(word_diff(change.old, change.new), REPLY_DIFF_CHARS)}"]
    if change.field == "tool calls":
        return [f"{change.field}:", *(f"  {line}" for line in _tool_call_lines(change))]
    return [f"{change.field}: {value_text(change.old)} -> {value_text(change.new)}"]


# --- markdown ----------------------------------------------------------------------------------------------


def _cell(text: str) -> str:
    """Text for a table cell: one line, `|` escaped, HTML-escaped so `<tag>` in a prompt shows as typed."""
    return html.escape(" ".join(text.split())).replace("|", "\\|")


def _code(text: str) -> str:
    """An inline code span that survives backticks inside `text`."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    padding = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{padding}{text}{padding}{fence}"


def _fenced(language: str, lines: list[str]) -> list[str]:
    longest = max((len(run) for line in lines for run in re.findall(r"`{3,}", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{language}", *lines, fence]


def markdown(diff: RevisionDiff) -> str:
    changes = masked_copy(diff.changes)  # a credential in a cassette must not reach a pull request
    lines = [f"### Cassette changes: {_code(diff.base)} → {_code(diff.target)}", ""]
    lines.append(f"{_cell(summary_counts(changes))} in {_code(diff.folder)}.")
    if changes.has_changes:
        lines += ["", "| change | cassette | endpoint | model | what |", "| --- | --- | --- | --- | --- |"]
        for listed in changes.added:
            lines.append(_listed_row("added", listed))
        for listed in changes.removed:
            lines.append(_listed_row("removed", listed))
        for pair in changes.prompt_changed:
            names = f"{_code(pair.removed.name)} → {_code(pair.added.name)}"
            fields = ", ".join(_cell(change.field) for change in (*pair.differences, *pair.reply_changes))
            lines.append(
                f"| prompt changed | {names} | {pair.added.endpoint} | {_cell(pair.added.model or '-')} | {fields} |"
            )
        for changed in changes.changed:
            fields = ", ".join(_cell(change.field) for change in changed.changes)
            model = _cell(changed.model or "-")
            lines.append(f"| changed | {_code(changed.name)} | {changed.endpoint} | {model} | {fields} |")
        for pair in changes.prompt_changed:
            lines += _details(f"prompt changed: {pair.added.name}", [*pair.differences, *pair.reply_changes])
        for changed in changes.changed:
            lines += _details(f"changed: {changed.name}", list(changed.changes))
    return "\n".join(lines) + "\n"


def _listed_row(kind: str, listed: ListedCassette) -> str:
    prompt = _cell(shorten(" ".join(listed.prompt.split()), PROMPT_CELL_CHARS))
    return f"| {kind} | {_code(listed.name)} | {listed.endpoint} | {_cell(listed.model or '-')} | {prompt} |"


def _details(summary: str, changes: list[FieldChange]) -> list[str]:
    """A collapsed block: GitHub needs the blank lines around Markdown inside HTML to render it."""
    lines = ["", f"<details><summary>{html.escape(summary)}</summary>", ""]
    for change in changes:
        if _is_text_change(change):
            lines += [f"**{change.field}**", "", *_fenced("diff", line_diff(change.old, change.new)), ""]
        elif change.field == "tool calls":
            lines += [f"**{change.field}**", "", *_fenced("diff", _tool_call_lines(change)), ""]
        else:
            old, new = _code(value_text(change.old)), _code(value_text(change.new))
            lines += [f"- **{_cell(change.field)}**: {old} → {new}", ""]
    return [*lines, "</details>"]


# --- json --------------------------------------------------------------------------------------------------


def as_json(diff: RevisionDiff) -> dict[str, Any]:
    """The whole diff for a script; a side that does not have a value has no `old` or `new` key."""
    changes = masked_copy(diff.changes)  # a credential in a cassette must not reach a pull request
    return {
        "base": diff.base,
        "target": diff.target,
        "cache_dir": diff.folder,
        "added": [_listed_json(listed) for listed in changes.added],
        "removed": [_listed_json(listed) for listed in changes.removed],
        "prompt_changed": [
            {
                "removed": pair.removed.name,
                "added": pair.added.name,
                "differences": [_change_json(change) for change in pair.differences],
                "reply_changes": [_change_json(change) for change in pair.reply_changes],
            }
            for pair in changes.prompt_changed
        ],
        "changed": [
            {
                "name": changed.name,
                "endpoint": changed.endpoint,
                "model": changed.model,
                "changes": [_change_json(change) for change in changed.changes],
            }
            for changed in changes.changed
        ],
        "volatile_only": list(changes.volatile_only),
    }


def _listed_json(listed: ListedCassette) -> dict[str, Any]:
    return {"name": listed.name, "endpoint": listed.endpoint, "model": listed.model, "prompt": listed.prompt}


def _change_json(change: FieldChange) -> dict[str, Any]:
    sides = {"old": change.old, "new": change.new}
    return {"field": change.field, **{side: value for side, value in sides.items() if value is not ABSENT}}
