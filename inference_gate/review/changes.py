"""What changed between two versions of a cassette directory, in the terms a reviewer uses.

Input is two mappings of cassette name (`<endpoint>/<file>`) to file bytes, the old side and the new side;
where they come from (git, the working tree) is the caller's business, and a caller may leave out the files
it already knows are byte-identical. Output is a `CassetteChanges`:

- `added` and `removed`: cassettes on one side only, with their endpoint, model and prompt;
- `prompt_changed`: a removed and an added cassette of the same endpoint folder whose stored requests differ
  in at most `MAX_PAIR_DIFFERENCES` JSON paths, each changed string keeping at least half its text. Editing a
  prompt renames its cassette (the name holds the key), so without pairing every edited prompt would read as
  one cassette lost and an unrelated one gained. Pairs are taken closest first, then by name, so the pairing
  never depends on input order;
- `changed`: the same name with a material difference (see `volatile.py`): the reply text, the tool calls,
  the finish reason, the usage, the replying model, the status, and any other difference in the request or
  the response headers as a JSON path with both values. A difference in the response body that none of the
  named fields shows is listed by JSON path, so that nothing that matters can hide;
- `volatile_only`: same name, different bytes, nothing material changed (a re-recording with new ids).

A file that is not a readable cassette is reported, never skipped: changed to or from `unreadable: <why>`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from inference_gate.core.cassette import CassetteError, cassette_document
from inference_gate.core.nearest import ABSENT, json_differences, shared_prefix_length, shared_suffix_length
from inference_gate.core.volatile import material_view
from inference_gate.review.cassette_view import view_of

MAX_PAIR_DIFFERENCES = 3
MAX_BODY_DIFFERENCES = 10
READABLE = "readable"


@dataclass(frozen=True, slots=True)
class ListedCassette:
    """An added or removed cassette; `prompt` is whole (renderers shorten it)."""

    name: str
    endpoint: str
    model: str | None
    prompt: str


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One thing that changed; `ABSENT` (from nearest/diff.py) stands for a side that does not have it."""

    field: str
    old: Any
    new: Any


@dataclass(frozen=True, slots=True)
class ChangedCassette:
    """A cassette changed in place; `endpoint` and `model` are the new version's."""

    name: str
    endpoint: str
    model: str | None
    changes: tuple[FieldChange, ...]


@dataclass(frozen=True, slots=True)
class PromptChange:
    """A removed and an added cassette read as one edited request; `reply_changes` is what its answer did."""

    removed: ListedCassette
    added: ListedCassette
    differences: tuple[FieldChange, ...]
    reply_changes: tuple[FieldChange, ...]


@dataclass(frozen=True, slots=True)
class CassetteChanges:
    added: tuple[ListedCassette, ...] = ()
    removed: tuple[ListedCassette, ...] = ()
    changed: tuple[ChangedCassette, ...] = ()
    prompt_changed: tuple[PromptChange, ...] = ()
    volatile_only: tuple[str, ...] = ()

    @property
    def has_changes(self) -> bool:
        """Whether anything material changed (what `--exit-code` reports)."""
        return bool(self.added or self.removed or self.changed or self.prompt_changed)


def diff_cassettes(old: Mapping[str, bytes], new: Mapping[str, bytes]) -> CassetteChanges:
    """The changes from `old` to `new`, each group sorted by name."""
    documents_old = {name: _document(data) for name, data in old.items() if new.get(name) != data}
    documents_new = {name: _document(data) for name, data in new.items() if old.get(name) != data}
    changed: list[ChangedCassette] = []
    volatile_only: list[str] = []
    for name in sorted(documents_old.keys() & documents_new.keys()):
        changes = cassette_changes(documents_old[name], documents_new[name])
        if changes:
            listed = _listed(name, documents_new[name])
            changed.append(ChangedCassette(name, listed.endpoint, listed.model, tuple(changes)))
        else:
            volatile_only.append(name)
    removed = {name: documents_old[name] for name in sorted(documents_old.keys() - documents_new.keys())}
    added = {name: documents_new[name] for name in sorted(documents_new.keys() - documents_old.keys())}
    pairs = _prompt_changes(removed, added)
    paired = {change.removed.name for change in pairs} | {change.added.name for change in pairs}
    return CassetteChanges(
        added=tuple(_listed(name, document) for name, document in added.items() if name not in paired),
        removed=tuple(_listed(name, document) for name, document in removed.items() if name not in paired),
        changed=tuple(changed),
        prompt_changed=tuple(pairs),
        volatile_only=tuple(volatile_only),
    )


def _document(data: bytes) -> dict[str, Any] | str:
    """The cassette's document, or why it is not one."""
    try:
        return cassette_document(data)
    except CassetteError as error:
        return f"unreadable: {error}"


def _listed(name: str, document: dict[str, Any] | str) -> ListedCassette:
    folder = name.split("/", 1)[0]
    if isinstance(document, str):
        return ListedCassette(name, folder, None, document)
    view = view_of(name, document)
    return ListedCassette(name, view.endpoint, view.model, view.prompt)


def cassette_changes(old: dict[str, Any] | str, new: dict[str, Any] | str) -> list[FieldChange]:
    """What materially changed between two versions of one cassette; empty when nothing did."""
    if isinstance(old, str) or isinstance(new, str):
        old_state, new_state = (side if isinstance(side, str) else READABLE for side in (old, new))
        return [] if old_state == new_state else [FieldChange("cassette", old_state, new_state)]
    old_material, new_material = material_view(old), material_view(new)
    if old_material == new_material:
        return []
    return request_differences(old_material, new_material) + reply_changes(old_material, new_material)


def request_differences(old: dict[str, Any], new: dict[str, Any]) -> list[FieldChange]:
    """The stored requests' differences, by JSON path under `request`."""
    return _prefixed("request", json_differences(old.get("request"), new.get("request")))


def reply_changes(old: dict[str, Any], new: dict[str, Any]) -> list[FieldChange]:
    """How the answers changed, between two material views: take by take when either has several takes, then
    how many takes each has."""
    old_takes, new_takes = _one_take_views(old), _one_take_views(new)
    if len(old_takes) == len(new_takes) == 1:
        return _answer_changes(old_takes[0], new_takes[0])
    changes = [
        FieldChange(f"take {number} {change.field}", change.old, change.new)
        for number, (old_take, new_take) in enumerate(zip(old_takes, new_takes, strict=False), 1)
        for change in _answer_changes(old_take, new_take)
    ]
    if len(old_takes) != len(new_takes):
        changes.append(FieldChange("takes", len(old_takes), len(new_takes)))
    return changes


def _one_take_views(document: dict[str, Any]) -> list[dict[str, Any]]:
    """A document of several takes as one one-take document per take, so that each reads like a cassette."""
    takes = document.get("takes")
    if not isinstance(takes, list):
        return [document]
    rest = {name: value for name, value in document.items() if name != "takes"}
    return [{**rest, **take} for take in takes if isinstance(take, dict)] or [rest]


def _answer_changes(old: dict[str, Any], new: dict[str, Any]) -> list[FieldChange]:
    """How one answer changed: named fields first, then what they do not show."""
    old_reply, new_reply = view_of("", old).reply, view_of("", new).reply
    changes = [
        FieldChange(field, old_value, new_value)
        for field, old_value, new_value in (
            ("reply", old_reply.text, new_reply.text),
            ("tool calls", [c.as_text() for c in old_reply.tool_calls], [c.as_text() for c in new_reply.tool_calls]),
            ("finish reason", old_reply.finish_reason, new_reply.finish_reason),
            ("model", old_reply.model, new_reply.model),
        )
        if old_value != new_value
    ]
    changes += _prefixed("usage", json_differences(old_reply.usage, new_reply.usage))
    old_response, new_response = old.get("response") or {}, new.get("response") or {}
    for part in ("status", "headers"):
        changes += _prefixed(f"response.{part}", json_differences(old_response.get(part), new_response.get(part)))
    if not changes:
        # Only something the named fields do not read changed (a logprob, a refusal, an unknown endpoint's body).
        body_changes = _prefixed("response", json_differences(_content(old_response), _content(new_response)))
        changes += body_changes[:MAX_BODY_DIFFERENCES]
        if len(body_changes) > MAX_BODY_DIFFERENCES:
            more = len(body_changes) - MAX_BODY_DIFFERENCES
            changes.append(FieldChange("response", f"{more} more differences", ABSENT))
    return changes


def _content(response: dict[str, Any]) -> dict[str, Any]:
    return {part: value for part, value in response.items() if part not in ("status", "headers")}


def _prefixed(prefix: str, differences: list[Any]) -> list[FieldChange]:
    """nearest.py's differences as field changes; its location `body` stands for the whole value."""
    changes = []
    for difference in differences:
        location = difference.location
        field = prefix if location == "body" else f"{prefix}{'' if location.startswith('[') else '.'}{location}"
        changes.append(FieldChange(field, difference.recorded, difference.received))
    return changes


def _kept_characters(difference: FieldChange) -> int | None:
    """How many characters an edited string keeps at its start and end; None for a value that is not text."""
    if not (isinstance(difference.old, str) and isinstance(difference.new, str)):
        return None
    start = shared_prefix_length(difference.old, difference.new)
    return start + shared_suffix_length(difference.old[start:], difference.new[start:])


def _is_small_edit(differences: list[FieldChange]) -> bool:
    """At most MAX_PAIR_DIFFERENCES paths, and every changed string keeps at least half of the longer one:
    `capital of France?` -> `capital of Spain?` is an edit, `Count to three` -> `Tell me a joke` is not."""
    if len(differences) > MAX_PAIR_DIFFERENCES:
        return False
    for difference in differences:
        kept = _kept_characters(difference)
        if kept is not None and kept * 2 < max(len(difference.old), len(difference.new)):
            return False
    return True


def _prompt_changes(removed: dict[str, Any], added: dict[str, Any]) -> list[PromptChange]:
    candidates = []
    for removed_name, removed_document in removed.items():
        for added_name, added_document in added.items():
            if removed_name.split("/", 1)[0] != added_name.split("/", 1)[0]:
                continue
            if isinstance(removed_document, str) or isinstance(added_document, str):
                continue
            differences = request_differences(removed_document, added_document)
            if _is_small_edit(differences):
                # Closest first; among equals, the one whose strings kept most of the text it was edited from.
                kept = sum(_kept_characters(difference) or 0 for difference in differences)
                rank = (len(differences), -kept, removed_name, added_name)
                candidates.append((rank, differences))
    pairs: list[PromptChange] = []
    taken: set[str] = set()
    for (*_, removed_name, added_name), differences in sorted(candidates, key=lambda each: each[0]):
        if removed_name in taken or added_name in taken:
            continue
        taken |= {removed_name, added_name}
        old, new = removed[removed_name], added[added_name]
        pairs.append(
            PromptChange(
                _listed(removed_name, old),
                _listed(added_name, new),
                tuple(differences),
                tuple(reply_changes(material_view(old), material_view(new))),
            )
        )
    return sorted(pairs, key=lambda pair: pair.added.name)
