"""`cache rekey`: give every cassette the key, and so the name, that the key rules in force give its request.

A cassette's key is computed when it is recorded, under the rules of that day. After an `ignore` or `normalize`
rule is added, an SDK upgrade adds a default field, or the key scheme's version changes (v1 cassettes), the same
request gets another key and the recorded cassette is never found again. Rekeying recomputes each key from the
request stored in the cassette, moves the file to its new name and writes the new key into it; the exchange
itself is untouched.

Two cassettes may now share a key (a rule made them the same request). Neither is dropped: one already at the
shared name stays, else the one recorded first takes it; the other stays where it is and is reported, for the
user to delete or keep. A WebSocket
session is rekeyed from its stored query and client frames (core/websocket_session.py). A cassette
whose stored request holds a `redact`ed value cannot be rekeyed exactly, since the key needs the value that was
masked; it is reported and left as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from inference_gate.core.cassette import Cassette, CassetteError, cassette_from_bytes, cassette_to_bytes
from inference_gate.core.chains import produced_response_ids
from inference_gate.core.key_rules import KeyRules
from inference_gate.core.keys import CanonicalRequest, canonicalize, multipart_key
from inference_gate.core.multipart import key_form_of_stored
from inference_gate.core.redact import REDACTED
from inference_gate.core.session_cassette import SessionCassette, session_from_bytes, session_to_bytes
from inference_gate.core.websocket_session import Sender, match_form, session_key
from inference_gate.store.cassette_store import CassetteStore, Slot, write_atomically


@dataclass(frozen=True, slots=True)
class Move:
    """A cassette that belongs at `new` under the rules in force, with the key it gets there."""

    old: Slot
    new: Slot
    key: str
    cassette: Cassette | SessionCassette


@dataclass(frozen=True, slots=True)
class Collision:
    """`left` now has the same key as `kept`, which was recorded first and takes the name `kept_as`."""

    left: str
    kept: str
    kept_as: str


@dataclass(slots=True)
class RekeyPlan:
    """What rekeying does. `interrupted` are old files of a move an earlier `--apply` made but was killed before
    finishing: the new file holds exactly their exchange under the new key, so only the old one is left to go."""

    moves: list[Move] = field(default_factory=list)
    interrupted: list[Slot] = field(default_factory=list)
    collisions: list[Collision] = field(default_factory=list)
    redacted: list[str] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    unchanged: int = 0


def _leaves(value: Any) -> Iterator[Any]:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        else:
            yield item


def is_redacted(cassette: Cassette) -> bool:
    """Whether the stored query or body holds a value the `redact` setting masked (both are in the key)."""
    request = cassette.request
    if any(value == REDACTED for _, value in request.query):
        return True
    return request.is_json and any(leaf == REDACTED for leaf in _leaves(request.json_body))


def stored_request(
    cassette: Cassette, rules: KeyRules, chained: Callable[[str], str | None] | None = None
) -> CanonicalRequest:
    """The canonical form of the request a cassette stores, keyed under `rules` (and `chained`, see keys.py).

    A stored query holds no credentials and a stored JSON body re-serialises to the same key; an upload is stored
    as its fields with their hashes, so its key starts from those (keys.multipart_key).
    """
    request = cassette.request
    query = urlencode([(name, value) for name, value in request.query])
    target = f"{request.path}?{query}" if query else request.path
    if request.form is None:
        return canonicalize(request.method, target, request.body, rules=rules, chained=chained)
    key = multipart_key(request.method, target, key_form_of_stored(request.form), rules=rules)
    return replace(canonicalize(request.method, target, b"", rules=rules), key=key)


def session_key_of(session: SessionCassette, rules: KeyRules) -> str:
    """A WebSocket session's key under `rules`, from its stored query and client frames."""
    forms = [match_form(frame, rules) for frame in session.frames if frame.sender is Sender.CLIENT]
    return session_key(session.path, [(name, value) for name, value in session.query], forms, rules)


def _bytes_of(cassette: Cassette | SessionCassette) -> bytes:
    return session_to_bytes(cassette) if isinstance(cassette, SessionCassette) else cassette_to_bytes(cassette)


def _in_place(old: Slot, new: Slot, cassette: Cassette | SessionCassette, key: str) -> bool:
    return old.name == new.name and cassette.key == key


class _ChainedKeys:
    """Each cassette's request keyed under the rules, a chained one (chains.py) by the new key of the cassette in
    the store that produced the answer it continues: that cassette is keyed first, so a chain moves together."""

    def __init__(self, cassettes: list[tuple[Slot, Cassette]], rules: KeyRules) -> None:
        self._rules = rules
        self._producers = {
            response_id: cassette
            for _, cassette in cassettes
            for take in cassette.takes
            for response_id in produced_response_ids(take.response)
        }
        self._done: dict[int, CanonicalRequest] = {}
        self._keying: set[int] = set()  # a chain that loops back (a file edited by hand) is cut where it does

    def canonical(self, cassette: Cassette) -> CanonicalRequest:
        known = self._done.get(id(cassette))
        if known is not None:
            return known
        self._keying.add(id(cassette))
        canonical = stored_request(cassette, self._rules, self._producer_key)
        self._keying.discard(id(cassette))
        self._done[id(cassette)] = canonical
        return canonical

    def _producer_key(self, response_id: str) -> str | None:
        producer = self._producers.get(response_id)
        if producer is None or id(producer) in self._keying:
            return None
        return self.canonical(producer).key


def plan_rekey(store: CassetteStore, rules: KeyRules) -> RekeyPlan:
    """What rekeying the store under `rules` would do; reads every cassette, writes nothing."""
    plan = RekeyPlan()
    by_key: dict[str, list[tuple[Slot, Slot, Cassette | SessionCassette]]] = {}
    plain: list[tuple[Slot, Cassette]] = []
    for slot in store.slots():
        try:
            data = store.read_bytes(slot.path)
            if b'"websocket_session"' in data and b'"frames"' in data:
                session = session_from_bytes(data)
                if any(value == REDACTED for _, value in session.query):
                    plan.redacted.append(slot.name)
                    continue
                key = session_key_of(session, rules)
                by_key.setdefault(key, []).append((slot, store.session_slot(replace(session, key=key)), session))
                continue
            cassette = cassette_from_bytes(data)
        except (OSError, CassetteError) as error:
            plan.unreadable.append((slot.name, str(error)))
            continue
        if is_redacted(cassette):
            plan.redacted.append(slot.name)
            continue
        plain.append((slot, cassette))
    chains = _ChainedKeys(plain, rules)
    for slot, cassette in plain:
        canonical = chains.canonical(cassette)
        by_key.setdefault(canonical.key, []).append((slot, store.locate(canonical), cassette))
    for key, sharing in by_key.items():
        # One already at its name with its key stays there; otherwise the first recorded takes the name.
        sharing.sort(key=lambda found: (not _in_place(*found, key), found[2].recorded_at, found[0].name))
        (old, new, cassette), *others = sharing
        if _in_place(old, new, cassette, key):
            plan.unchanged += 1
            in_place_bytes = _bytes_of(cassette)
            finished = [found for found in others if _bytes_of(replace(found[2], key=key)) == in_place_bytes]
            plan.interrupted += [slot for slot, _, _ in finished]
            others = [found for found in others if found not in finished]
        else:
            plan.moves.append(Move(old, new, key, cassette))
        plan.collisions.extend(Collision(other.name, old.name, new.name) for other, _, _ in others)
    plan.moves.sort(key=lambda move: move.old.name)
    plan.interrupted.sort(key=lambda slot: slot.name)
    plan.collisions.sort(key=lambda collision: collision.left)
    return plan


def apply_rekey(plan: RekeyPlan) -> list[Move]:
    """Carry out the plan's moves; returns those not made because another file already holds the new name.

    Each cassette is written whole under its new name (write_atomically) before the old file is removed, so an
    interruption leaves the old cassette or both, never neither; the next run finishes such a move (`interrupted`).
    """
    for slot in plan.interrupted:
        slot.path.unlink(missing_ok=True)
    blocked = []
    for move in plan.moves:
        data = _bytes_of(replace(move.cassette, key=move.key))
        same_file = move.new.path == move.old.path
        if not write_atomically(move.new.path, data, replace=same_file):
            blocked.append(move)
        elif not same_file:
            move.old.path.unlink()
    return blocked
