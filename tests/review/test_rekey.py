import orjson

from inference_gate.core.cassette import Cassette, RecordedResponse, cassette_from_bytes, record_exchange
from inference_gate.core.key_rules import KeyRules
from inference_gate.core.keys import canonicalize
from inference_gate.core.multipart import FormField
from inference_gate.core.redact import redact_request
from inference_gate.review.rekey import apply_rekey, plan_rekey, stored_request
from inference_gate.store.cassette_store import CassetteStore
from tests.cassettes import record
from tests.forms import content_type_for, form_body

CHAT = "/v1/chat/completions"
REPLY = RecordedResponse(200, {"content-type": "application/json"}, body=b'{"choices": []}')
IGNORE_USER = KeyRules.from_config(["body.user"])


def chat_body(user: str, content: str = "hi") -> dict:
    return {"model": "gpt-4o-mini", "user": user, "messages": [{"role": "user", "content": content}]}


def names(store: CassetteStore) -> list[str]:
    return [slot.name for slot in store.slots()]


def test_a_store_recorded_under_the_rules_in_force_has_nothing_to_move(tmp_path):
    store = CassetteStore(tmp_path)
    record(store, chat_body("a"), REPLY, path=CHAT, recorded_at="2026-01-01T00:00:00Z")
    plan = plan_rekey(store, KeyRules.default())
    assert (plan.moves, plan.collisions, plan.unchanged) == ([], [], 1)


def test_a_new_rule_moves_the_cassette_and_writes_its_new_key(tmp_path):
    store = CassetteStore(tmp_path)
    old_file = record(store, chat_body("trace-1"), REPLY, path=CHAT, recorded_at="2026-01-01T00:00:00Z")
    plan = plan_rekey(store, IGNORE_USER)
    new_key = canonicalize("POST", CHAT, orjson.dumps(chat_body("trace-2")), rules=IGNORE_USER).key
    assert [(move.old.path, move.key) for move in plan.moves] == [(old_file, new_key)]
    assert old_file.exists()  # a plan writes nothing

    assert apply_rekey(plan) == []
    (name,) = names(store)
    assert name == plan.moves[0].new.name and not old_file.exists()
    moved = cassette_from_bytes((tmp_path / name).read_bytes())
    assert moved.key == new_key
    assert moved.request.json_body == chat_body("trace-1")  # the real request is kept
    assert plan_rekey(store, IGNORE_USER).unchanged == 1


def test_cassettes_a_rule_makes_the_same_are_both_kept_and_the_later_one_reported(tmp_path):
    store = CassetteStore(tmp_path)
    later = record(store, chat_body("trace-2"), REPLY, path=CHAT, recorded_at="2026-02-01T00:00:00Z")
    earlier = record(store, chat_body("trace-1"), REPLY, path=CHAT, recorded_at="2026-01-01T00:00:00Z")
    plan = plan_rekey(store, IGNORE_USER)
    assert [move.old.path for move in plan.moves] == [earlier]
    (collision,) = plan.collisions
    assert collision.left == later.relative_to(tmp_path).as_posix()
    assert collision.kept == earlier.relative_to(tmp_path).as_posix()
    apply_rekey(plan)
    assert sorted(names(store)) == sorted([plan.moves[0].new.name, collision.left])


def test_a_cassette_already_in_place_keeps_its_name_against_an_older_one(tmp_path):
    store = CassetteStore(tmp_path)
    older = record(store, chat_body("trace-1"), REPLY, path=CHAT, recorded_at="2026-01-01T00:00:00Z")
    request = canonicalize("POST", CHAT, orjson.dumps(chat_body("trace-2")), rules=IGNORE_USER)
    in_place = store.locate(request)
    cassette = record_exchange(
        request, REPLY, recorded_at="2026-02-01T00:00:00Z", headers={}, query=request.query, json_body=request.json_body
    )
    assert store.save(cassette, in_place.path)
    plan = plan_rekey(store, IGNORE_USER)
    assert (plan.moves, plan.unchanged) == ([], 1)
    assert [(c.left, c.kept) for c in plan.collisions] == [(older.relative_to(tmp_path).as_posix(), in_place.name)]


def test_a_redacted_request_is_reported_and_left_alone(tmp_path):
    store = CassetteStore(tmp_path)
    file = record(store, chat_body("<redacted>"), REPLY, path=CHAT, recorded_at="2026-01-01T00:00:00Z")
    plan = plan_rekey(store, IGNORE_USER)
    assert (plan.moves, plan.redacted) == ([], [file.relative_to(tmp_path).as_posix()])


def test_a_request_with_a_redacted_query_value_is_reported_and_left_alone(tmp_path):
    store = CassetteStore(tmp_path)
    request = canonicalize("POST", f"{CHAT}?tenant=acme", orjson.dumps(chat_body("trace-1")))
    _, stored_query, _ = redact_request({}, request.query, request.json_body, ["query.tenant"])
    cassette = record_exchange(
        request, REPLY, recorded_at="t", headers={}, query=stored_query, json_body=request.json_body
    )
    slot = store.locate(request)
    assert store.save(cassette, slot.path)
    plan = plan_rekey(store, IGNORE_USER)
    assert (plan.moves, plan.redacted) == ([], [slot.name])


def test_an_unreadable_file_is_reported(tmp_path):
    store = CassetteStore(tmp_path)
    torn = tmp_path / "chat.completions" / "torn.0000000000000000.json"
    torn.parent.mkdir()
    torn.write_bytes(b"{")
    plan = plan_rekey(store, KeyRules.default())
    assert [name for name, _ in plan.unreadable] == ["chat.completions/torn.0000000000000000.json"]


def test_an_upload_is_rekeyed_from_its_stored_fields():
    fields = [FormField("model", None, None, b"whisper-1"), FormField("file", "a.wav", "audio/wav", b"RIFF")]
    target = "/v1/audio/transcriptions?request_id=7"
    rules = KeyRules.from_config(["query.request_id"])
    request = canonicalize("POST", target, form_body(fields, "xyz"), content_type=content_type_for("xyz"))
    cassette: Cassette = record_exchange(
        request, REPLY, recorded_at="t", headers={}, query=request.query, json_body=None
    )
    resent = form_body(fields, "other")
    again = canonicalize("POST", target, resent, content_type=content_type_for("other"), rules=rules)
    assert stored_request(cassette, KeyRules.default()).key == request.key
    assert stored_request(cassette, rules).key == again.key


def test_a_move_onto_a_file_that_appeared_since_the_plan_is_not_made(tmp_path):
    store = CassetteStore(tmp_path)
    old_file = record(store, chat_body("trace-1"), REPLY, path=CHAT, recorded_at="2026-01-01T00:00:00Z")
    plan = plan_rekey(store, IGNORE_USER)
    plan.moves[0].new.path.write_bytes(b"someone else's file")
    assert apply_rekey(plan) == plan.moves
    assert old_file.exists() and plan.moves[0].new.path.read_bytes() == b"someone else's file"


def test_a_move_killed_between_writing_the_new_file_and_removing_the_old_is_finished(tmp_path):
    store = CassetteStore(tmp_path)
    old_file = record(store, chat_body("trace-1"), REPLY, path=CHAT, recorded_at="2026-01-01T00:00:00Z")
    old_bytes = old_file.read_bytes()
    plan = plan_rekey(store, IGNORE_USER)
    [move] = plan.moves
    apply_rekey(plan)
    old_file.write_bytes(old_bytes)  # as a kill before the old file was removed leaves it: both files
    assert sorted(names(store)) == sorted([move.old.name, move.new.name])

    again = plan_rekey(store, IGNORE_USER)
    assert ([slot.name for slot in again.interrupted], again.moves, again.collisions) == ([move.old.name], [], [])
    assert apply_rekey(again) == []
    assert names(store) == [move.new.name]
    assert cassette_from_bytes((tmp_path / move.new.name).read_bytes()).key == move.key


def test_a_different_cassette_at_the_new_name_is_a_collision_not_an_interrupted_move(tmp_path):
    store = CassetteStore(tmp_path)
    record(store, chat_body("trace-1"), REPLY, path=CHAT, recorded_at="2026-01-01T00:00:00Z")
    record(store, chat_body("trace-2"), REPLY, path=CHAT, recorded_at="2026-01-02T00:00:00Z")
    apply_rekey(plan_rekey(store, IGNORE_USER))
    plan = plan_rekey(store, IGNORE_USER)
    assert (plan.interrupted, len(plan.collisions)) == ([], 1)


def test_a_websocket_session_is_rekeyed_from_its_client_frames(tmp_path):
    from inference_gate.core.key_rules import KeyRules
    from inference_gate.core.session_cassette import session_from_bytes, session_to_bytes
    from inference_gate.review.rekey import apply_rekey, plan_rekey, session_key_of
    from inference_gate.store.cassette_store import CassetteStore
    from tests.sessions import realtime_session

    store = CassetteStore(tmp_path)
    (tmp_path / "realtime").mkdir()
    (tmp_path / "realtime" / "hello.0000000000000000.json").write_bytes(session_to_bytes(realtime_session()))
    plan = plan_rekey(store, KeyRules.default())
    (move,) = plan.moves
    assert move.key == session_key_of(realtime_session(), KeyRules.default())
    assert apply_rekey(plan) == []
    (moved,) = (tmp_path / "realtime").glob("*.json")
    assert moved.name == f"hello.{move.key[:16]}.json"
    assert session_from_bytes(moved.read_bytes()).key == move.key
    assert plan_rekey(store, KeyRules.default()).unchanged == 1


def test_a_chained_request_recorded_by_its_literal_id_moves_to_the_key_of_its_chain(tmp_path):
    store = CassetteStore(tmp_path)
    first = {"model": "gpt-4o-mini", "input": "Start"}
    answer = RecordedResponse(200, {}, body=orjson.dumps({"object": "response", "id": "resp_A", "output": []}))
    first_file = record(store, first, answer, path="/v1/responses", recorded_at="2026-01-01T00:00:00Z")
    second = {"model": "gpt-4o-mini", "input": "Go on", "previous_response_id": "resp_A"}
    record(store, second, answer, path="/v1/responses", recorded_at="2026-01-01T00:00:01Z")  # keyed as sent

    plan = plan_rekey(store, KeyRules.default())
    first_key = cassette_from_bytes(first_file.read_bytes()).key
    chained_key = canonicalize("POST", "/v1/responses", orjson.dumps(second), chained={"resp_A": first_key}.get).key
    assert [(move.key, plan.unchanged) for move in plan.moves] == [(chained_key, 1)]
    assert apply_rekey(plan) == []
    assert plan_rekey(store, KeyRules.default()).unchanged == 2
