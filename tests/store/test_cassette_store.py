import concurrent.futures
import functools
import os

import orjson
import pytest

from inference_gate.core.cassette import (
    BodyTiming,
    Cassette,
    CassetteError,
    RecordedRequest,
    RecordedResponse,
    Take,
    cassette_to_bytes,
)
from inference_gate.core.keys import canonicalize
from inference_gate.core.redact import MIN_CREDENTIAL_CHARS
from inference_gate.store.cassette_store import (
    CassetteStore,
    CassetteTooLargeError,
    SecretLeakError,
    TakeWrite,
    relative_cassette_path,
    slugify,
    write_atomically,
)

LONG_KEY = "sk-" + "k" * MIN_CREDENTIAL_CHARS


def chat_request(prompt: str = "Say hello in French", model: str = "gpt-4o-mini"):
    body = {"model": model, "messages": [{"role": "user", "content": prompt}]}
    return canonicalize("POST", "/v1/chat/completions", orjson.dumps(body))


def cassette_for(request, reply: str = "Bonjour") -> Cassette:
    return Cassette(
        key=request.key,
        request=RecordedRequest(
            method=request.method,
            path=request.path,
            query=[],
            headers={},
            body=request.body,
            json_body=request.json_body,
            is_json=request.is_json,
        ),
        takes=[Take("2026-11-27T10:00:00Z", RecordedResponse(200, {}, orjson.dumps({"reply": reply})))],
    ).with_summary()


@pytest.mark.parametrize("placeholder", ["x", "test", "gpt"])
def test_a_placeholder_too_short_to_be_a_key_does_not_stop_a_write(tmp_path, placeholder):
    store = CassetteStore(tmp_path)
    request = chat_request(prompt=f"my key is {placeholder}")
    assert store.save(cassette_for(request), store.locate(request).path, secrets=[placeholder])


UNSAFE_PATHS = ["/v1/..", "/v1/../", "/..", "/v1/./x", "/.hidden", "/v1/.../..", "/v1/-.-/x", "/v1/a/../../.."]


@pytest.mark.parametrize("method", ["POST", "GET"])
@pytest.mark.parametrize("path", UNSAFE_PATHS)
def test_no_request_path_names_a_dot_folder_or_leaves_the_cache_directory(tmp_path, path, method):
    store = CassetteStore(tmp_path / "cache")
    request = canonicalize(method, path, b'{"model": "m"}')
    slot = store.locate(request)
    folder, file_name = slot.name.split("/")
    assert not folder.startswith(".") and not folder.endswith(".") and file_name.endswith(".json")
    assert slot.path.resolve().parent.parent == store.root.resolve()
    assert store.save(cassette_for(request), slot.path)
    assert store.cassette_paths() == [slot.path]


def test_a_folder_name_too_long_for_the_file_system_is_cut_and_hashed(tmp_path):
    store = CassetteStore(tmp_path)
    first, second = (canonicalize("POST", f"/v1/{'a' * 300}{tail}", b"{}") for tail in ("1", "2"))
    first_slot, second_slot = store.locate(first), store.locate(second)
    assert first_slot.path.parent != second_slot.path.parent
    assert len(first_slot.path.parent.name.encode()) <= 255
    assert store.save(cassette_for(first), first_slot.path) and store.save(cassette_for(second), second_slot.path)
    assert store.load(first_slot.path, first.key) is not None


def test_slugify():
    assert slugify("Say hello in French!") == "say-hello-in-french"
    assert slugify("Ça va? 你好") == "ca-va"
    assert slugify("") == ""
    long = slugify("word " * 40)
    assert len(long) <= 48 and not long.endswith("-")


def test_the_path_comes_from_the_request_alone():
    request = chat_request()
    assert relative_cassette_path(request) == f"chat.completions/say-hello-in-french.{request.key[:16]}.json"
    models = canonicalize("GET", "/v1/models", b"")
    assert relative_cassette_path(models) == f"get.models/{models.key[:16]}.json"


def test_save_then_load(tmp_path):
    store = CassetteStore(tmp_path)
    request = chat_request()
    path = store.locate(request).path
    assert store.load(path, request.key) is None
    assert store.save(cassette_for(request), path)
    loaded = store.load(path, request.key)
    assert loaded is not None and loaded.key == request.key
    assert [p.name for p in tmp_path.joinpath("chat.completions").iterdir()] == [path.name]


def test_recording_into_two_directories_gives_the_same_path_and_bytes(tmp_path):
    request = chat_request()
    first, second = CassetteStore(tmp_path / "a"), CassetteStore(tmp_path / "b")
    first.save(cassette_for(request), first.locate(request).path)
    second.save(cassette_for(request), second.locate(request).path)
    relative = relative_cassette_path(request)
    assert (tmp_path / "a" / relative).read_bytes() == (tmp_path / "b" / relative).read_bytes()


def test_the_first_writer_wins_and_a_second_content_never_replaces_it(tmp_path):
    store = CassetteStore(tmp_path)
    request = chat_request()
    path = store.locate(request).path
    assert store.save(cassette_for(request, "first"), path)
    assert not store.save(cassette_for(request, "second"), path)
    assert b"first" in path.read_bytes()
    assert store.save(cassette_for(request, "third"), path, replace=True)
    assert b"third" in path.read_bytes()
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary files left


def test_a_failed_write_leaves_no_file_under_the_name(tmp_path, monkeypatch):
    target = tmp_path / "x" / "a.json"

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, b"{}", replace=False)
    assert list(target.parent.iterdir()) == []


def test_a_cassette_holding_a_key_is_refused(tmp_path):
    store = CassetteStore(tmp_path)
    request = chat_request(prompt=f"my key is {LONG_KEY}")
    path = store.locate(request).path
    with pytest.raises(SecretLeakError, match="contains an API key"):
        store.save(cassette_for(request), path, secrets=[LONG_KEY])
    assert not path.exists()


def test_corrupt_and_mismatched_files_name_the_file(tmp_path):
    store = CassetteStore(tmp_path)
    request = chat_request()
    path = store.locate(request).path
    path.parent.mkdir(parents=True)
    path.write_bytes(b"{ half")
    with pytest.raises(CassetteError, match=path.name):
        store.load(path, request.key)
    other = chat_request("something else")
    path.write_bytes(cassette_to_bytes(cassette_for(other)))
    with pytest.raises(CassetteError, match="holds key"):
        store.load(path, request.key)


def test_cassettes_are_listed_in_sorted_order_and_counted_with_corrupt_files(tmp_path):
    store = CassetteStore(tmp_path)
    for prompt in ("b prompt", "a prompt"):
        request = chat_request(prompt)
        store.save(cassette_for(request), store.locate(request).path)
    corrupt = tmp_path / "chat.completions" / f"broken.{'0' * 16}.json"
    corrupt.write_text("nope")
    paths = store.cassette_paths()
    assert paths == sorted(paths) and corrupt in paths
    assert store.count() == 3


def test_clear_removes_only_what_the_gate_wrote(tmp_path):
    store = CassetteStore(tmp_path)
    request = chat_request()
    store.save(cassette_for(request), store.locate(request).path)
    (tmp_path / "README.md").write_text("keep me")
    (tmp_path / "chat.completions" / "notes.txt").write_text("keep me too")
    (tmp_path / "chat.completions" / f".x.{'1' * 16}.json.abc123.tmp").write_text("leftover")
    assert store.clear() == 1
    assert (tmp_path / "README.md").exists()
    assert sorted(p.name for p in (tmp_path / "chat.completions").iterdir()) == ["notes.txt"]


def test_a_missing_directory_is_an_empty_store(tmp_path):
    store = CassetteStore(tmp_path / "absent")
    assert store.count() == 0 and store.cassette_paths() == [] and store.clear() == 0


def test_a_redacted_prompt_stays_out_of_the_file_name():
    request = chat_request("my password is hunter2")
    assert "hunter2" in relative_cassette_path(request)
    redacted = relative_cassette_path(request, ["body.messages[*].content"])
    assert redacted == f"chat.completions/redacted.{request.key[:16]}.json"
    assert relative_cassette_path(request, ["body.user"]) == relative_cassette_path(request)


def test_a_symlinked_endpoint_folder_is_served_listed_counted_and_cleared_like_a_real_one(tmp_path):
    elsewhere = tmp_path / "shared-chat"
    elsewhere.mkdir()
    store = CassetteStore(tmp_path / "cache")
    store.root.mkdir()
    (store.root / "chat.completions").symlink_to(elsewhere, target_is_directory=True)
    request = chat_request()
    path = store.locate(request).path
    assert store.save(cassette_for(request), path)
    assert store.load(path, request.key) is not None
    assert store.cassette_paths() == [path]
    assert store.count() == 1
    (elsewhere / ".leftover.json.abc.tmp").write_bytes(b"{}")
    assert store.clear() == 1
    assert list(elsewhere.iterdir()) == []
    assert (store.root / "chat.completions").is_symlink()  # the link is the user's


def test_remove_temp_files_counts_only_leftovers(tmp_path):
    store = CassetteStore(tmp_path)
    request = chat_request()
    path = store.locate(request).path
    store.save(cassette_for(request), path)
    (path.parent / f".{path.name}.x1y2.tmp").write_bytes(b"{")
    assert store.remove_temp_files() == 1
    assert store.cassette_paths() == [path]


def reply_of(take) -> str:
    return orjson.loads(take.response.body)["reply"]


def test_takes_are_appended_up_to_the_number_wanted_then_the_file_is_full(tmp_path):
    store = CassetteStore(tmp_path)
    request = chat_request()
    path = store.locate(request).path
    put = functools.partial(store.put_take, path=path, takes_wanted=2, refresh=False)
    assert put(cassette_for(request, "one"), take_index=0)[0] is TakeWrite.NEW
    write, on_disk = put(cassette_for(request, "two"), take_index=1)
    assert write is TakeWrite.CHANGED and [reply_of(take) for take in on_disk.takes] == ["one", "two"]
    before = path.read_bytes()
    write, on_disk = put(cassette_for(request, "three"), take_index=2)
    assert write is TakeWrite.FULL and path.read_bytes() == before and len(on_disk.takes) == 2
    assert [reply_of(take) for take in store.load(path, request.key).takes] == ["one", "two"]


def test_a_refresh_rewrites_only_a_take_whose_material_view_changed(tmp_path):
    store = CassetteStore(tmp_path)
    request = chat_request()
    path = store.locate(request).path
    assert store.save(cassette_for(request, "one"), path)
    before = path.read_bytes()
    again = cassette_for(request, "one")
    again.takes[0].recorded_at = "2030-01-01T00:00:00Z"
    again.response.headers = {"x-request-id": "req_new"}
    again.response.timing = BodyTiming(total_ms=1234)
    put = functools.partial(store.put_take, path=path, take_index=0, takes_wanted=1, refresh=True)
    assert put(again)[0] is TakeWrite.UNCHANGED
    assert path.read_bytes() == before
    write, on_disk = put(cassette_for(request, "changed"))
    assert write is TakeWrite.CHANGED and reply_of(on_disk.takes[0]) == "changed"
    assert reply_of(store.load(path, request.key).takes[0]) == "changed"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no lock or temporary file left


def test_a_refresh_past_a_full_cassettes_takes_replaces_the_last(tmp_path):
    store = CassetteStore(tmp_path)
    request = chat_request()
    path = store.locate(request).path
    for index, reply in enumerate(("one", "two")):
        store.put_take(cassette_for(request, reply), path, take_index=index, takes_wanted=2, refresh=False)
    store.put_take(cassette_for(request, "late"), path, take_index=5, takes_wanted=2, refresh=True)
    assert [reply_of(take) for take in store.load(path, request.key).takes] == ["one", "late"]


def test_concurrent_writers_of_takes_lose_none(tmp_path):
    request = chat_request()
    path = CassetteStore(tmp_path).locate(request).path

    def add(index: int) -> None:  # a store of its own, like another gate
        CassetteStore(tmp_path).put_take(
            cassette_for(request, f"take {index}"), path, take_index=index, takes_wanted=8, refresh=False
        )

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(add, range(8)))
    replies = sorted(reply_of(take) for take in CassetteStore(tmp_path).load(path, request.key).takes)
    assert replies == sorted(f"take {index}" for index in range(8))


def test_a_cassette_larger_than_the_store_reads_back_is_not_written(tmp_path):
    request = chat_request()
    cassette = cassette_for(request, reply="x" * 2000)
    store = CassetteStore(tmp_path, max_cassette_bytes=1000)
    slot = store.locate(request)
    with pytest.raises(CassetteTooLargeError, match=r"more than max_cassette_bytes \(1000\)"):
        store.save(cassette, slot.path)
    assert not slot.path.exists()


def test_entries_at_cassette_names_that_are_no_files_are_listed_and_loaded_as_corrupt(tmp_path):
    store = CassetteStore(tmp_path)
    request = chat_request()
    slot = store.locate(request)
    slot.path.parent.mkdir(parents=True)
    os.mkfifo(slot.path)
    assert store.slots() == [slot] and store.count() == 1
    with pytest.raises(CassetteError, match=r"hello-in-french\.[0-9a-f]{16}\.json: is not a regular file \(a FIFO\)"):
        store.load(slot.path, request.key)
    assert store.save(cassette_for(request), slot.path, replace=True)  # a corrupt entry is recorded over
    assert store.load(slot.path, request.key) is not None


def test_sessions_are_found_by_path_and_written_without_secrets(tmp_path):
    from dataclasses import replace as replaced

    from inference_gate.store.cassette_store import CassetteStore, SecretLeakError
    from tests.sessions import realtime_session

    store = CassetteStore(tmp_path)
    session = realtime_session()
    slot = store.session_slot(session)
    assert slot.name == "realtime/hello.0000000000000000.json"
    assert store.save_session(session, slot, replace=False)
    assert not store.save_session(session, slot, replace=False)  # one with its key is there already
    (tmp_path / "realtime" / "broken.1111111111111111.json").write_text('{"kind": "websocket_session"}')
    found, problems = store.sessions("/v1/realtime")
    assert [(found_slot.name, cassette) for found_slot, cassette in found] == [(slot.name, session)]
    assert len(problems) == 1 and "broken" in problems[0]
    assert store.sessions("/v1/live/sessions") == ([], [])
    leaking = replaced(session, key="2" * 64, headers={"x-note": "sk-" + "aB3dE5fG7h" * 4})
    try:
        store.save_session(leaking, store.session_slot(leaking), replace=False, secrets=["sk-" + "aB3dE5fG7h" * 4])
    except SecretLeakError:
        pass
    else:
        raise AssertionError("a secret was written")
    assert not store.session_slot(leaking).path.exists()
