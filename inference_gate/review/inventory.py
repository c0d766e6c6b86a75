"""What is in a cassette directory, as data: one review per file, and totals for the whole store.

`inference-gate cache list` and `cache info` print these; a script can use them directly:

    reviews = review_cassettes(Path(".inference_cache"))
    info = store_info(reviews)

A store can hold many thousands of cassettes, so each file is read once and parsed once, and only the fields a
reviewer sees are taken from it: the cassette's own `summary` block has the endpoint, model, prompt and reply
already. Rebuilding whole cassettes (every event of every stream) would cost many times more, and the review
needs none of it. A file that cannot be read as a cassette is reported with the reason, never skipped, and
never stops the listing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inference_gate.core.cassette import CassetteError, cassette_document, document_takes
from inference_gate.core.dialects import endpoint_name, route_of
from inference_gate.core.session_cassette import is_session_document, session_from_document
from inference_gate.review.audit import mask_credentials
from inference_gate.store.cassette_store import DEFAULT_MAX_CASSETTE_BYTES, CassetteStore, Slot


@dataclass(frozen=True, slots=True)
class CassetteReview:
    """One cassette file as a reviewer sees it; for a file that is not a readable cassette, only `name`,
    `size_bytes` and `error` are set.

    `name` is the path relative to the store, with `/` separators on every system.
    """

    name: str
    size_bytes: int
    error: str | None = None
    key: str | None = None
    recorded_at: str | None = None
    status: int | None = None
    endpoint: str | None = None  # set for every readable cassette
    model: str | None = None
    stream: bool | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    prompt: str | None = None
    reply: str | None = None
    takes: int = 1
    route: str | None = None  # set for every readable cassette: the named route that answered, else the dialect

    @property
    def is_corrupt(self) -> bool:
        return self.error is not None

    def as_json(self) -> dict[str, Any]:
        """The fields for `cache list --json`: all of them for a cassette, the reason for a corrupt file."""
        if self.error is not None:
            return {"name": self.name, "size_bytes": self.size_bytes, "error": self.error}
        return {
            "name": self.name,
            "size_bytes": self.size_bytes,
            "key": self.key,
            "recorded_at": self.recorded_at,
            "status": self.status,
            "endpoint": self.endpoint,
            "model": self.model,
            "stream": self.stream,
            "settings": self.settings,
            "prompt": self.prompt,
            "reply": self.reply,
            "takes": self.takes,
            "route": self.route,
        }


@dataclass(frozen=True, slots=True)
class StoreInfo:
    """Totals over a store. `cassette_count` and `total_bytes` include corrupt files; the per-endpoint and
    per-model counts, and the oldest and newest recording, cover the readable cassettes only."""

    cassette_count: int
    corrupt_count: int
    total_bytes: int
    by_endpoint: dict[str, int]
    by_model: dict[str, int]
    oldest_recorded_at: str | None
    newest_recorded_at: str | None


def review_cassettes(
    cache_dir: Path, *, max_cassette_bytes: int = DEFAULT_MAX_CASSETTE_BYTES
) -> list[CassetteReview]:
    """A review of every cassette file under `cache_dir`, and of every other file in its endpoint folders (a
    cassette renamed by hand, never read), sorted by name; empty when there is no directory. A cassette larger
    than `max_cassette_bytes` is reviewed as corrupt, as the gate finds it."""
    store = CassetteStore(cache_dir, max_cassette_bytes=max_cassette_bytes)
    reviews = [(slot.path, _review_file(store, slot)) for slot in store.slots()]
    strays = [
        (slot.path, CassetteReview(slot.name, _size_of(slot.path), error=STRAY_FILE)) for slot in store.stray_files()
    ]
    return [review for _, review in sorted(reviews + strays, key=lambda pair: pair[0])]


STRAY_FILE = "not named like a cassette (<slug>.<16 hex digits>.json), so the gate never reads it"


def _size_of(path: Path) -> int:
    try:
        return path.lstat().st_size
    except OSError:
        return 0


def store_info(reviews: list[CassetteReview]) -> StoreInfo:
    """Totals over `reviews`. Counts are ordered by count, then by name; a cassette without a model (an
    endpoint that takes none) counts under the model `none`."""
    readable = [review for review in reviews if not review.is_corrupt]
    recorded = sorted(review.recorded_at for review in readable if review.recorded_at)
    return StoreInfo(
        cassette_count=len(reviews),
        corrupt_count=len(reviews) - len(readable),
        total_bytes=sum(review.size_bytes for review in reviews),
        by_endpoint=_ordered_counts(review.endpoint or "" for review in readable),
        by_model=_ordered_counts(review.model or "none" for review in readable),
        oldest_recorded_at=recorded[0] if recorded else None,
        newest_recorded_at=recorded[-1] if recorded else None,
    )


def _ordered_counts(names: Iterable[str]) -> dict[str, int]:
    counts = Counter(names)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _review_file(store: CassetteStore, slot: Slot) -> CassetteReview:
    name = slot.name
    try:
        data = store.read_bytes(slot.path)
    except OSError as error:
        return CassetteReview(name, 0, error=f"cannot read the file: {error.strerror}")
    except CassetteError as error:  # not a regular file in the directory, or too large to read
        return CassetteReview(name, 0, error=str(error))
    try:
        return _review_of(name, len(data), data)
    except CassetteError as error:
        return CassetteReview(name, len(data), error=str(error))


def _review_of(name: str, size_bytes: int, data: bytes) -> CassetteReview:
    """The review fields of a cassette file's bytes; raises CassetteError when it is not a cassette."""
    stored = cassette_document(data)
    if is_session_document(stored):
        return _session_review(name, size_bytes, stored)
    key = stored.get("key")
    request = stored.get("request")
    path = request.get("path") if isinstance(request, dict) else None
    try:
        takes = document_takes(stored)
    except (KeyError, ValueError):
        raise CassetteError("malformed cassette (no response, or `takes` is not a list of them)") from None
    response = takes[0].get("response")
    status = response.get("status") if isinstance(response, dict) else None
    summary = stored.get("summary") or {}
    if not isinstance(key, str) or not isinstance(path, str) or not isinstance(status, int):
        raise CassetteError("malformed cassette (no key, request path or response status)")
    if not isinstance(summary, dict):
        raise CassetteError("malformed cassette (summary is not an object)")
    endpoint = summary.get("endpoint")
    settings = summary.get("settings")
    return CassetteReview(
        name,
        size_bytes,
        key=key,
        recorded_at=_text_or_none(takes[0].get("recorded_at")),
        status=status,
        endpoint=endpoint if isinstance(endpoint, str) else endpoint_name(path),
        model=_text_or_none(summary.get("model")),
        stream=summary.get("stream") if isinstance(summary.get("stream"), bool) else None,
        settings=settings if isinstance(settings, dict) else {},
        prompt=_masked_text_or_none(summary.get("prompt")),
        reply=_masked_text_or_none(summary.get("reply")),
        takes=len(takes),
        route=_route_name(request, path),
    )


def _session_review(name: str, size_bytes: int, document: dict[str, Any]) -> CassetteReview:
    """A WebSocket session's review: its status is the `101`, and it streams; its prompt and reply are the
    client's first text and the server's text, as its summary has them."""
    session = session_from_document(document)
    summary = session.summary()
    return CassetteReview(
        name,
        size_bytes,
        key=session.key,
        recorded_at=session.recorded_at,
        status=101,
        endpoint=session.endpoint,
        model=_text_or_none(summary.get("model")),
        stream=True,
        settings={"client_frames": summary["client_frames"], "server_frames": summary["server_frames"]},
        prompt=_masked_text_or_none(summary.get("prompt")),
        reply=_masked_text_or_none(summary.get("reply")),
        takes=len(session.takes),
    )


def _masked_text_or_none(value: Any) -> str | None:
    """A preview as a reviewer may see it: with any credential the audit would flag masked."""
    return mask_credentials(value) if isinstance(value, str) else None


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _route_name(request: dict[str, Any], path: str) -> str:
    """Which upstream answered: the named route a cassette records, else its path's dialect, whose own route
    answers every path it names (core/routes.py)."""
    route = request.get("route")
    return route if isinstance(route, str) else route_of(path).dialect.value
