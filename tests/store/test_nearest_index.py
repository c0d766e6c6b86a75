"""Tests for the replay-miss explanation through the folder index: the closest cassette on disk, and where it
differs."""

from __future__ import annotations

import copy
import os
import threading
from pathlib import Path
from typing import Any

import orjson

from inference_gate.core.cassette import Cassette, RecordedResponse, record_exchange
from inference_gate.core.keys import CanonicalRequest, canonicalize
from inference_gate.core.redact import REDACTED
from inference_gate.store import nearest_index
from inference_gate.store.cassette_store import CassetteStore, relative_cassette_path
from inference_gate.store.nearest_index import NearestRequests

CHAT = "/v1/chat/completions"
AN_HOUR_AGO_S = 3600
DEADLINE_S = 10
SETTLE_S = 0.2
CONCURRENT_MISSES = 8


def chat_body(prompt: str = "the quick brown fox", **settings: Any) -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": prompt}],
        **settings,
    }


def request_for(body: Any, *, target: str = CHAT, method: str = "POST") -> CanonicalRequest:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return canonicalize(method, target, raw)


def record(store: CassetteStore, body: Any, *, target: str = CHAT, stored_body: Any = None) -> str:
    """Save a cassette for `body` with the real store; `stored_body` stands in for a redacted request body."""
    request = request_for(body, target=target)
    cassette = record_exchange(
        request,
        RecordedResponse(status=200, headers={}, body=b'{"ok":true}'),
        recorded_at="2026-11-27T10:00:00Z",
        headers={},
        query=request.query,
        json_body=stored_body if stored_body is not None else request.json_body,
    )
    assert store.save(cassette, store.locate(request).path)
    return relative_cassette_path(request)


def describe(store: CassetteStore, body: Any, *, target: str = CHAT) -> str | None:
    return NearestRequests(store).describe(request_for(body, target=target))


def age_folder(store: CassetteStore, folder: str) -> None:
    """Set the folder's mtime in the past, as for cassettes checked out long ago, so its index is trusted."""
    past_s = os.stat(store.root / folder).st_mtime - AN_HOUR_AGO_S
    os.utime(store.root / folder, (past_s, past_s))


def test_names_the_cassette_and_the_changed_message(tmp_path):
    store = CassetteStore(tmp_path)
    name = record(store, chat_body("the quick brown fox"))
    assert describe(store, chat_body("the quick brown cat")) == (
        f'{name} differs at messages[1].content: recorded "the quick brown fox", got "the quick brown cat"'
    )
    assert name.startswith("chat.completions/the-quick-brown-fox.")


def test_a_changed_setting_shows_both_values_with_their_json_types(tmp_path):
    store = CassetteStore(tmp_path)
    name = record(store, chat_body(temperature=0.2, n=1))
    assert describe(store, chat_body(temperature=0.7, n=1)) == (f"{name} differs at temperature: recorded 0.2, got 0.7")
    assert describe(store, chat_body(temperature=0.2, n=1.0)) == f"{name} differs at n: recorded 1, got 1.0"


def test_a_key_on_one_side_only_is_absent_on_the_other(tmp_path):
    store = CassetteStore(tmp_path)
    name = record(store, chat_body(seed=7))
    assert describe(store, chat_body()) == f"{name} differs at seed: recorded 7, got <absent>"
    assert describe(store, chat_body(seed=7, user="bob")) == (f'{name} differs at user: recorded <absent>, got "bob"')


def test_what_the_request_has_comes_before_what_only_the_cassette_has(tmp_path):
    store = CassetteStore(tmp_path)
    name = record(store, chat_body(seed=7))
    assert describe(store, chat_body(user="bob")) == (
        f'{name} differs at user: recorded <absent>, got "bob" (and 1 more difference)'
    )


def test_a_longer_list_names_the_first_extra_item(tmp_path):
    store = CassetteStore(tmp_path)
    name = record(store, chat_body())
    longer = chat_body()
    longer["messages"].append({"role": "user", "content": "and again"})
    assert describe(store, longer) == (
        f'{name} differs at messages[2]: recorded <absent>, got {{"role":"user","content":"and again"}}'
    )
    shorter = chat_body()
    del shorter["messages"][0]
    assert describe(store, shorter).startswith(
        f'{name} differs at messages[0].role: recorded "system", got "user" (and '
    )


def test_a_body_that_is_not_json_is_compared_as_text(tmp_path):
    store = CassetteStore(tmp_path)
    name = record(store, b"name=report.txt", target="/v1/uploads")
    assert describe(store, b"name=notes.txt", target="/v1/uploads") == (
        f'{name} differs at body: recorded "name=report.txt", got "name=notes.txt"'
    )
    assert describe(store, {"name": "report.txt"}, target="/v1/uploads") == (
        f'{name} differs at body: recorded "name=report.txt", got {{"name":"report.txt"}}'
    )


def test_nested_tool_paths_and_keys_that_are_not_identifiers(tmp_path):
    store = CassetteStore(tmp_path)
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    name = record(store, chat_body(tools=[tool], metadata={"trace-id": "a1"}))
    renamed = copy.deepcopy(tool)
    renamed["function"]["name"] = "get_forecast"
    assert describe(store, chat_body(tools=[renamed], metadata={"trace-id": "a1"})) == (
        f'{name} differs at tools[0].function.name: recorded "get_weather", got "get_forecast"'
    )
    assert describe(store, chat_body(tools=[tool], metadata={"trace-id": "b2"})) == (
        f'{name} differs at metadata["trace-id"]: recorded "a1", got "b2"'
    )


def test_long_strings_show_a_window_around_the_first_difference(tmp_path):
    store = CassetteStore(tmp_path)
    shared = "word " * 40
    name = record(store, chat_body(shared + "brown fox"))
    assert describe(store, chat_body(shared + "brown cat")) == (
        f"{name} differs at messages[1].content: "
        f'recorded "…ord word word word word brown fox", got "…ord word word word word brown cat"'
    )


def test_long_values_are_cut_with_an_ellipsis(tmp_path):
    store = CassetteStore(tmp_path)
    name = record(store, chat_body("a" * 200))
    assert describe(store, chat_body("b" * 200)) == (
        f'{name} differs at messages[1].content: recorded "{"a" * 80}…", got "{"b" * 80}…"'
    )


def test_the_closest_of_several_cassettes_is_named(tmp_path):
    store = CassetteStore(tmp_path)
    record(store, chat_body("a different prompt", temperature=0.2, seed=1))
    closest = record(store, chat_body("the quick brown fox", temperature=0.2, seed=1))
    record(store, chat_body("the quick brown fox", temperature=1.0, seed=2))
    assert describe(store, chat_body("the quick brown fox", temperature=0.2, seed=3)) == (
        f"{closest} differs at seed: recorded 1, got 3"
    )


def test_an_edited_prompt_finds_the_cassette_it_was_edited_from(tmp_path):
    store = CassetteStore(tmp_path)
    record(store, chat_body("Explain gravity to a child"))
    edited_from = record(store, chat_body("Say hello in French"))
    record(store, chat_body("Answer with a haiku about autumn"))
    assert describe(store, chat_body("Say hello in French, please")) == (
        f'{edited_from} differs at messages[1].content: recorded "Say hello in French", '
        f'got "Say hello in French, please"'
    )


def test_ties_go_to_the_first_name(tmp_path):
    store = CassetteStore(tmp_path)
    names = [record(store, chat_body(seed=seed)) for seed in (1, 2, 3)]
    first = min(names)
    seed = (1, 2, 3)[names.index(first)]
    expected = f"{first} differs at seed: recorded {seed}, got 4"
    gate = NearestRequests(store)
    assert [gate.describe(request_for(chat_body(seed=4))) for _ in range(3)] == [expected] * 3
    assert describe(store, chat_body(seed=4)) == expected


def test_a_different_query_or_path_is_named_when_the_bodies_are_equal(tmp_path):
    store = CassetteStore(tmp_path)
    name = record(store, chat_body(), target=f"{CHAT}?a=1")
    assert describe(store, chat_body(), target=f"{CHAT}?a=2") == (f'{name} differs at query: recorded "a=1", got "a=2"')
    assert describe(store, chat_body(), target="/chat/completions?a=1") == (
        f'{name} differs at path: recorded "/v1/chat/completions", got "/chat/completions"'
    )


def test_redacted_values_are_neither_compared_nor_echoed(tmp_path):
    store = CassetteStore(tmp_path)
    secret = "customer-4411"
    recorded = chat_body(user=secret)
    name = record(store, recorded, stored_body={**recorded, "user": REDACTED})
    message = describe(store, chat_body("the quick brown cat", user="customer-9999"))
    assert message == (
        f'{name} differs at messages[1].content: recorded "the quick brown fox", got "the quick brown cat"'
    )
    only_redacted = describe(store, chat_body(user="customer-9999"))
    assert only_redacted.startswith(f"{name}, which shows no difference")
    assert "customer" not in only_redacted
    assert describe(store, chat_body()) == f'{name} differs at user: recorded "<redacted>", got <absent>'


def test_no_cassette_for_the_endpoint_gives_none(tmp_path):
    store = CassetteStore(tmp_path)
    assert describe(store, chat_body()) is None
    (tmp_path / "chat.completions").mkdir()
    assert describe(store, chat_body()) is None


def test_a_corrupt_cassette_is_skipped(tmp_path):
    store = CassetteStore(tmp_path)
    name = record(store, chat_body("the quick brown fox"))
    (tmp_path / "chat.completions" / "a.0000000000000000.json").write_bytes(b"{not json")
    message = describe(store, chat_body("the quick brown cat"))
    assert message.startswith(f"{name} differs at messages[1].content")


def test_only_corrupt_cassettes_give_none(tmp_path):
    store = CassetteStore(tmp_path)
    (tmp_path / "chat.completions").mkdir()
    (tmp_path / "chat.completions" / "a.0000000000000000.json").write_bytes(b'{"format_version": 99}')
    assert describe(store, chat_body()) is None


def test_cassettes_of_another_endpoint_are_not_candidates(tmp_path):
    store = CassetteStore(tmp_path)
    record(store, chat_body("the quick brown fox"), target="/v1/embeddings")
    assert describe(store, chat_body("the quick brown fox")) is None
    chat = record(store, chat_body("something else entirely"))
    message = describe(store, chat_body("the quick brown fox"))
    assert message.startswith(f"{chat} differs at messages[1].content")


def test_the_index_is_refreshed_when_a_cassette_is_added(tmp_path):
    store = CassetteStore(tmp_path)
    far = record(store, chat_body("a different prompt", seed=1))
    age_folder(store, "chat.completions")
    gate = NearestRequests(store)
    missed = request_for(chat_body("the quick brown fox", seed=2))
    assert gate.describe(missed).startswith(f"{far} differs at messages[1].content")
    near = record(store, chat_body("the quick brown fox", seed=1))
    assert gate.describe(missed) == f"{near} differs at seed: recorded 1, got 2"


def test_recorded_bodies_are_read_once(tmp_path, monkeypatch):
    store = CassetteStore(tmp_path)
    name = record(store, chat_body(seed=1))
    gate = NearestRequests(store)
    missed = request_for(chat_body(seed=2))
    expected = f"{name} differs at seed: recorded 1, got 2"
    assert gate.describe(missed) == expected

    def no_more_reads(data: bytes) -> Cassette:
        raise AssertionError("a cassette was read again")

    monkeypatch.setattr(nearest_index, "cassette_from_bytes", no_more_reads)
    assert gate.describe(missed) == expected  # the folder was just written: listed again, files not re-read
    age_folder(store, "chat.completions")
    assert gate.describe(missed) == expected

    def no_more_listing(*args: Any) -> None:
        raise AssertionError("an unchanged folder was listed again")

    monkeypatch.setattr(nearest_index, "_read_folder", no_more_listing)
    assert gate.describe(missed) == expected


def test_concurrent_first_misses_in_one_folder_share_one_index_build(tmp_path, monkeypatch):
    store = CassetteStore(tmp_path)
    name = record(store, chat_body("the quick brown fox"))
    age_folder(store, "chat.completions")
    nearest = NearestRequests(store)
    builds: list[Path] = []
    building, release = threading.Event(), threading.Event()
    real_read_folder = nearest_index._read_folder

    def held_read_folder(store, folder, mtime_ns, previous, rules):
        builds.append(folder)
        building.set()
        release.wait(DEADLINE_S)
        return real_read_folder(store, folder, mtime_ns, previous, rules)

    monkeypatch.setattr(nearest_index, "_read_folder", held_read_folder)
    answers: list[str | None] = []

    def miss() -> None:
        answers.append(nearest.describe(request_for(chat_body("the quick brown cat"))))

    first = threading.Thread(target=miss)
    first.start()
    assert building.wait(DEADLINE_S)
    others = [threading.Thread(target=miss) for _ in range(CONCURRENT_MISSES - 1)]
    for thread in others:
        thread.start()
    # Let the others reach the build (or, as they should, its lock) while the first one is still building.
    others[-1].join(SETTLE_S)
    release.set()
    for thread in [first, *others]:
        thread.join(DEADLINE_S)
    assert len(builds) == 1
    assert len(answers) == CONCURRENT_MISSES
    assert all(answer is not None and answer.startswith(name) for answer in answers)
