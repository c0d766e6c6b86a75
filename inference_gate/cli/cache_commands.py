"""`cache list`, `cache info`, `cache clear`, `cache prune`, `cache rekey`, `cache diff`, `cache show` and
`cache audit`.

What was recorded, how much of it, starting over, moving to new key rules, and reviewing a change. The data
comes from `review.py`, `revision_diff.py`, `cassette_view.py`, `rekey.py` and `audit.py`; this module only lays
it out. `cache list` is a table for a person (one line per cassette, previews cut to the terminal's width) or,
with `--json`, an array for a script.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path
from typing import ClassVar

import orjson
from cleo.commands.command import Command
from cleo.helpers import argument, option
from cleo.io.inputs.argument import Argument
from cleo.io.inputs.option import Option
from cleo.io.io import IO
from cleo.io.outputs.output import Type as OutputType
from cleo.terminal import Terminal

from inference_gate.cli.common import (
    cassette_count_text,
    existing_cache_dir,
    setting_options,
    settings_from_io,
    write_error,
)
from inference_gate.core.cassette import CassetteError, cassette_document
from inference_gate.core.dialects import Dialect
from inference_gate.core.key_rules import KeyRules
from inference_gate.core.summary import truncate
from inference_gate.proxy.ledger import Ledger, LedgerError, RunState, prune_plan
from inference_gate.review import changes_report
from inference_gate.review.audit import AuditReport, CredentialScanner, audit_store, masked_copy, watched_values
from inference_gate.review.cassette_view import view_lines, view_of
from inference_gate.review.git_tree import GitError
from inference_gate.review.inventory import CassetteReview, StoreInfo, review_cassettes, store_info
from inference_gate.review.prune import cassette_names, delete_cassettes
from inference_gate.review.rekey import Move, RekeyPlan, apply_rekey, plan_rekey
from inference_gate.review.revisions import diff_revisions
from inference_gate.store.cassette_store import CassetteStore, require_cache_dir

COLUMN_GAP = "  "
MIN_PREVIEW_CHARS = 16
MAX_MODEL_CHARS = 32
TABLE_HEADINGS = ("NAME", "ENDPOINT", "MODEL", "STREAM", "RECORDED", "PROMPT", "REPLY")


class CacheListCommand(Command):
    name = "cache list"
    description = (
        "List the recorded cassettes: name, endpoint (and the route that answered, when not OpenAI's), model, "
        "stream, when, prompt and reply."
    )
    options: ClassVar[list[Option]] = [
        *setting_options("cache_dir"),
        option("json", description="Print a JSON array with every field, for scripts."),
    ]

    def handle(self) -> int:
        cache_dir = existing_cache_dir(self.io)
        reviews = review_cassettes(cache_dir, max_cassette_bytes=settings_from_io(self.io).settings.max_cassette_bytes)
        if self.option("json"):
            text = orjson.dumps([review.as_json() for review in reviews], option=orjson.OPT_INDENT_2).decode()
            self.io.write_line(text, type=OutputType.RAW)
        elif not reviews:
            self.io.write_line(f"no cassettes in {cache_dir}", type=OutputType.RAW)
        else:
            lines = table_lines(reviews, Terminal().width)
            corrupt_count = sum(review.is_corrupt for review in reviews)
            corrupt = f" ({corrupt_count} corrupt)" if corrupt_count else ""
            lines.append(f"{cassette_count_text(len(reviews))}{corrupt} in {cache_dir}")
            _write_lines(self.io, lines)
        return 0


class CacheInfoCommand(Command):
    name = "cache info"
    description = "Summarise the cache: count, size, endpoints, models, oldest and newest recording."
    options: ClassVar[list[Option]] = setting_options("cache_dir")

    def handle(self) -> int:
        cache_dir = existing_cache_dir(self.io)
        reviews = review_cassettes(cache_dir, max_cassette_bytes=settings_from_io(self.io).settings.max_cassette_bytes)
        if not reviews:
            self.io.write_line(f"no cassettes in {cache_dir}", type=OutputType.RAW)
        else:
            _write_lines(self.io, info_lines(store_info(reviews), cache_dir))
        return 0


class CacheClearCommand(Command):
    name = "cache clear"
    description = "Delete every cassette the gate recorded in the cache directory (asks first unless --yes)."
    options: ClassVar[list[Option]] = [
        *setting_options("cache_dir"),
        option("yes", description="Do not ask for confirmation."),
    ]

    def handle(self) -> int:
        cache_dir = existing_cache_dir(self.io)
        store = CassetteStore(cache_dir)
        count = store.count()
        if count == 0:
            self.io.write_line(f"no cassettes in {cache_dir}", type=OutputType.RAW)
            return 0
        if not self.option("yes"):
            if not self.io.is_interactive():
                write_error(self.io, "refusing to clear without --yes when not interactive; nothing removed")
                return 1
            if not self.confirm(f"Remove {cassette_count_text(count)} from {cache_dir}?", default=False):
                self.io.write_line("nothing removed", type=OutputType.RAW)
                return 0
        removed = store.clear()
        self.io.write_line(f"removed {cassette_count_text(removed)} from {cache_dir}", type=OutputType.RAW)
        return 0


class CacheDiffCommand(Command):
    name = "cache diff"
    description = "What changed in the cassettes since REV (default HEAD), or between A..B, as a reviewer reads it."
    arguments: ClassVar[list[Argument]] = [
        argument("revisions", description="REV (against the working tree) or A..B.", optional=True),
    ]
    options: ClassVar[list[Option]] = [
        *setting_options("cache_dir"),
        option("format", description="text or markdown (for a pull request).", flag=False, default="text"),
        option("json", description="Print the changes as JSON, for scripts."),
        option("exit-code", description="Exit 1 when anything changed, like git diff --exit-code."),
    ]

    def handle(self) -> int:
        cache_dir = settings_from_io(self.io).settings.cache_dir.absolute()
        output_format = "json" if self.option("json") else self.option("format")
        if output_format not in ("text", "markdown", "json"):
            write_error(self.io, f"--format must be text or markdown, not {output_format!r}")
            return 2
        try:
            diff = diff_revisions(cache_dir, self.argument("revisions"), cwd=Path.cwd())
        except GitError as error:
            write_error(self.io, error)
            return 2
        if output_format == "json":
            text = orjson.dumps(changes_report.as_json(diff), option=orjson.OPT_INDENT_2).decode() + "\n"
        elif output_format == "markdown":
            text = changes_report.markdown(diff)
        else:
            text = "\n".join(changes_report.text_lines(diff)) + "\n"
        self.io.write(text, type=OutputType.RAW)
        return 1 if self.option("exit-code") and diff.changes.has_changes else 0


class CachePruneCommand(Command):
    name = "cache prune"
    description = "Delete the cassettes no request in a `--ledger` file used; only lists them unless --apply."
    options: ClassVar[list[Option]] = [
        *setting_options("cache_dir"),
        option("ledger", description="The ledger file a gate wrote with --ledger.", flag=False),
        option("apply", description="Delete the cassettes instead of only listing them."),
    ]

    def handle(self) -> int:
        cache_dir = existing_cache_dir(self.io)
        if self.option("ledger") is None:
            write_error(self.io, "cache prune needs --ledger FILE, written by `start --ledger` or `replay --ledger`")
            return 1
        ledger_path = Path(self.option("ledger"))
        try:
            ledger = Ledger.from_json(orjson.loads(ledger_path.read_bytes()))
        except OSError as error:
            write_error(self.io, f"cannot read the ledger {ledger_path}: {error.strerror or error}")
            return 1
        except orjson.JSONDecodeError as error:
            write_error(self.io, f"{ledger_path}: not JSON ({error})")
            return 1
        except LedgerError as error:
            write_error(self.io, f"{ledger_path}: {error}")
            return 1
        # A CLI gate cannot know whether every test ran and passed; running the whole suite is the user's part.
        plan = prune_plan(cassette_names(cache_dir), ledger, RunState())
        if plan.refusals:
            write_error(self.io, f"refusing to prune, nothing removed: {'; '.join(plan.refusals)}")
            return 1
        for name in plan.delete:
            self.io.write_line(name, type=OutputType.RAW)
        count = cassette_count_text(len(plan.delete))
        if self.option("apply"):
            delete_cassettes(cache_dir, plan.delete)
            self.io.write_line(f"removed {count} no request used from {cache_dir}", type=OutputType.RAW)
        else:
            self.io.write_line(
                f"{count} no request used in {cache_dir}; run again with --apply to remove them", type=OutputType.RAW
            )
        return 0



class CacheRekeyCommand(Command):
    name = "cache rekey"
    description = (
        "Recompute every cassette's key under the key rules in force (after a rule change, an SDK upgrade or an "
        "old key version); only lists the moves unless --apply."
    )
    options: ClassVar[list[Option]] = [
        *setting_options("cache_dir"),
        option("apply", description="Move the cassettes to their new names and write the new keys into them."),
    ]

    def handle(self) -> int:
        settings = settings_from_io(self.io).settings
        cache_dir = require_cache_dir(settings.cache_dir.absolute())
        store = CassetteStore(
            cache_dir, redact_rules=settings.redact, max_cassette_bytes=settings.max_cassette_bytes
        )
        plan = plan_rekey(store, KeyRules.from_config(settings.ignore, settings.normalize))
        lines = []
        if self.option("apply"):
            removed = store.remove_temp_files()
            if removed:
                lines.append(f"removed {removed} temporary file(s) that a killed writer left behind")
        blocked = apply_rekey(plan) if self.option("apply") else []
        _write_lines(self.io, [*lines, *rekey_lines(plan, blocked, cache_dir, applied=self.option("apply"))])
        return 1 if blocked else 0


def rekey_lines(plan: RekeyPlan, blocked: list[Move], cache_dir: Path, *, applied: bool) -> list[str]:
    """One line per move, then what was left as it is and why, then the count."""
    lines = [f"{move.old.name} -> {move.new.name}" for move in plan.moves]
    finish = "removed, finishing" if applied else "would be removed, finishing"
    lines += [f"{slot.name} {finish} an interrupted move: its new name holds it already" for slot in plan.interrupted]
    lines += [
        f"kept both: {collision.left} now has the key of {collision.kept_as} "
        f"({collision.kept}, which takes that name); {collision.left} is left as it is"
        for collision in plan.collisions
    ]
    lines += [
        f"not rekeyed: {name} stores a redacted request, so its key cannot be recomputed" for name in plan.redacted
    ]
    lines += [f"not rekeyed: {name} is unreadable ({error})" for name, error in plan.unreadable]
    lines += [f"not moved: {move.new.name} already exists; {move.old.name} is left as it is" for move in blocked]
    count = cassette_count_text(len(plan.moves) - len(blocked))
    if applied:
        lines.append(f"moved {count} in {cache_dir}; {plan.unchanged} already had their key")
    else:
        lines.append(
            f"{count} would move in {cache_dir} ({plan.unchanged} already have their key); "
            "run again with --apply to move them"
        )
    return lines


class CacheShowCommand(Command):
    name = "cache show"
    description = "One cassette as a person reads it: the request in turns, the reply reassembled, the usage."
    arguments: ClassVar[list[Argument]] = [
        argument("cassette", description="A cassette file, its name as cache list shows it, or part of it."),
    ]
    options: ClassVar[list[Option]] = [
        *setting_options("cache_dir"),
        option("json", description="Print the parsed cassette as JSON."),
    ]

    def handle(self) -> int:
        cache_dir = settings_from_io(self.io).settings.cache_dir.absolute()
        wanted = self.argument("cassette")
        try:
            path = find_cassette(cache_dir, wanted)
            document = cassette_document(CassetteStore(cache_dir).read_bytes(path))
        except LookupError as error:
            write_error(self.io, str(error))
            return 1
        except CassetteError as error:
            write_error(self.io, f"{wanted}: {error}")
            return 1
        except OSError as error:
            write_error(self.io, f"{wanted}: cannot read the file: {error.strerror}")
            return 1
        if self.option("json"):
            text = orjson.dumps(masked_copy(document), option=orjson.OPT_INDENT_2).decode()
            self.io.write_line(text, type=OutputType.RAW)
        else:
            name = f"{path.parent.name}/{path.name}"
            # Masked once reassembled: a stream can carry a key cut across its events.
            _write_lines(self.io, view_lines(masked_copy(view_of(name, document))))
        return 0


def find_cassette(cache_dir: Path, wanted: str) -> Path:
    """A file path, a name under `cache_dir`, or the one cassette whose name contains `wanted`."""
    for candidate in (Path(wanted), cache_dir / wanted):
        if candidate.is_file():
            return candidate
    require_cache_dir(cache_dir)
    matches = [slot.path for slot in CassetteStore(cache_dir).slots() if wanted in slot.name]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise LookupError(f"no cassette named {wanted!r} in {cache_dir}")
    raise LookupError(f"{len(matches)} cassettes in {cache_dir} match {wanted!r}; give more of the name")


class CacheAuditCommand(Command):
    name = "cache audit"
    description = (
        "Scan every file in the cache directory for credentials; exit 1 on any finding (for a pre-commit hook or CI)."
    )
    options: ClassVar[list[Option]] = [
        *setting_options("cache_dir"),
        option("json", description="Print the findings as JSON, for scripts."),
    ]

    def handle(self) -> int:
        settings = settings_from_io(self.io).settings
        cache_dir = require_cache_dir(settings.cache_dir.absolute())
        scanner = CredentialScanner(watched_values(os.environ, settings.audit_env), settings.audit_allow)
        report = audit_store(cache_dir, scanner, max_cassette_bytes=settings.max_cassette_bytes)
        if self.option("json"):
            listing = {"scanned": report.scanned, "allowed": report.allowed}
            listing["findings"] = [finding.as_json() for finding in report.findings]
            self.io.write_line(orjson.dumps(listing, option=orjson.OPT_INDENT_2).decode(), type=OutputType.RAW)
        else:
            _write_lines(self.io, audit_lines(report, cache_dir))
        return 1 if report.findings else 0


def audit_lines(report: AuditReport, cache_dir: Path) -> list[str]:
    """One line per finding (file, JSON path, kind, masked value), then the count and in how many files."""
    lines = [f"{finding.name}  {finding.path}  {finding.kind}  {finding.masked}" for finding in report.findings]
    allowed = f"; {report.allowed} allowed by audit_allow" if report.allowed else ""
    scanned = f"{report.scanned} file{'' if report.scanned == 1 else 's'}"
    if report.findings:
        count = len(report.findings)
        lines.append(
            f"{count} credential{'s' if count > 1 else ''} found in {report.files_with_findings} of {scanned} "
            f"in {cache_dir}{allowed}"
        )
    else:
        lines.append(f"no credentials found in {scanned} in {cache_dir}{allowed}")
    return lines


def table_lines(reviews: list[CassetteReview], width: int) -> list[str]:
    """The `cache list` table: a heading, then one line per cassette, previews cut so a line fits `width`.

    Name, endpoint, model, stream and time are never cut (a name must stay usable to open the file, and a
    model is only cut when absurdly long); the prompt and reply previews share what is left, each at least
    `MIN_PREVIEW_CHARS` wide, so on a very narrow terminal lines are longer than `width` rather than useless.
    """
    rows = [_row(review) for review in reviews]
    fixed_widths = [max(len(row[column]) for row in [TABLE_HEADINGS, *rows]) for column in range(5)]
    prompt_width, reply_width = _preview_widths(rows, width - sum(fixed_widths) - len(COLUMN_GAP) * 6)
    lines = [_line(TABLE_HEADINGS, fixed_widths, prompt_width)]
    for review, row in zip(reviews, rows, strict=True):
        if review.error is not None:
            # A corrupt file has no fields; its reason is shown whole, since it says what to fix.
            lines.append(f"{row[0]:<{fixed_widths[0]}}{COLUMN_GAP}corrupt: {review.error}")
            continue
        prompt, reply = truncate(row[5], prompt_width), truncate(row[6], reply_width)
        lines.append(_line((*row[:5], prompt, reply), fixed_widths, prompt_width))
    return lines


def _row(review: CassetteReview) -> tuple[str, ...]:
    """A cassette's cells in `TABLE_HEADINGS` order, on one line each; the previews are not cut yet. The endpoint
    names the route that answered when it is not OpenAI's: `messages (anthropic)`, `chat.completions (ollama)`."""
    if review.error is not None:
        return (review.name, "", "", "", "", "", "")
    stream = "?" if review.stream is None else "yes" if review.stream else "no"
    route = f" ({review.route})" if review.route not in (None, Dialect.OPENAI) else ""
    return (
        review.name,
        (review.endpoint or "") + route,
        truncate(_one_line(review.model or "-"), MAX_MODEL_CHARS),
        stream,
        (review.recorded_at or "") + (f" ({review.takes} takes)" if review.takes > 1 else ""),
        _one_line(review.prompt),
        _one_line(review.reply),
    )


def _one_line(text: str | None) -> str:
    """Newlines and runs of spaces become one space, so that every cassette stays on one line; other control
    characters are shown escaped (`\\x1b`), so a prompt cannot move the cursor or recolour the terminal."""
    collapsed = " ".join((text or "").split())
    return "".join(
        char.encode("unicode_escape").decode("ascii") if unicodedata.category(char) == "Cc" else char
        for char in collapsed
    )


def _preview_widths(rows: list[tuple[str, ...]], available: int) -> tuple[int, int]:
    """Split `available` characters between prompt and reply; a column that needs less gives the rest away."""
    prompt_needed = max(len(row[5]) for row in [TABLE_HEADINGS, *rows])
    reply_needed = max(len(row[6]) for row in [TABLE_HEADINGS, *rows])
    half = max(MIN_PREVIEW_CHARS, available // 2)
    if prompt_needed + reply_needed <= available:
        return prompt_needed, reply_needed
    if prompt_needed <= half:
        return prompt_needed, max(MIN_PREVIEW_CHARS, available - prompt_needed)
    if reply_needed <= half:
        return max(MIN_PREVIEW_CHARS, available - reply_needed), reply_needed
    return half, max(MIN_PREVIEW_CHARS, available - half)


def _line(cells: tuple[str, ...], fixed_widths: list[int], prompt_width: int) -> str:
    """The cells padded to their columns; no line ends in spaces, even when its reply is empty."""
    widths = [*fixed_widths, prompt_width]
    padded = [f"{cell:<{column_width}}" for cell, column_width in zip(cells[:-1], widths, strict=True)]
    return COLUMN_GAP.join([*padded, cells[-1]]).rstrip()


def info_lines(info: StoreInfo, cache_dir: Path) -> list[str]:
    lines = [
        f"cache dir:  {cache_dir}",
        f"cassettes:  {info.cassette_count}",
        f"corrupt:    {info.corrupt_count}",
        f"size:       {human_size(info.total_bytes)} ({info.total_bytes:,} bytes)",
        f"oldest:     {info.oldest_recorded_at or '-'}",
        f"newest:     {info.newest_recorded_at or '-'}",
    ]
    for title, counts in (("endpoints", info.by_endpoint), ("models", info.by_model)):
        lines.append(f"{title}:")
        name_width = max((len(name) for name in counts), default=0)
        count_width = max((len(str(count)) for count in counts.values()), default=0)
        lines += [f"  {name:<{name_width}}  {count:>{count_width}}" for name, count in counts.items()]
    return lines


def human_size(size_bytes: int) -> str:
    """`512 B`, `3.4 KiB`, `12.0 MiB`: binary units, one decimal."""
    if size_bytes < 1024:
        return f"{size_bytes} B"
    size = size_bytes / 1024
    for unit in ("KiB", "MiB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _write_lines(io: IO, lines: list[str]) -> None:
    """All lines in one write: ten thousand flushed writes would cost more than building the table."""
    io.write("\n".join(lines) + "\n", type=OutputType.RAW)
