import orjson

from inference_gate.core.cassette import RecordedResponse, Take
from inference_gate.core.sse import SSEEvent
from inference_gate.review.inventory import CassetteReview, review_cassettes, store_info
from inference_gate.store.cassette_store import CassetteStore
from tests.cassettes import record


def chat(prompt: str, *, model: str = "gpt-4o-mini", **settings) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": prompt}], **settings}


def completion(reply: str) -> RecordedResponse:
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": reply}}]}
    return RecordedResponse(200, {"content-type": "application/json"}, body=orjson.dumps(body))


def streamed(*pieces: str) -> RecordedResponse:
    events = [
        SSEEvent(data=orjson.dumps({"choices": [{"index": 0, "delta": {"content": p}}]}).decode())
        for p in pieces
    ]
    return RecordedResponse(
        200, {"content-type": "text/event-stream"}, events=[*events, SSEEvent(data="[DONE]")]
    )


def test_a_missing_directory_has_no_cassettes(tmp_path):
    assert review_cassettes(tmp_path / "absent") == []


def test_reviews_take_their_fields_from_the_summary_in_name_order(tmp_path):
    store = CassetteStore(tmp_path)
    french = record(
        store,
        chat("Say hello in French", temperature=0),
        completion("Bonjour !"),
        path="/v1/chat/completions",
        recorded_at="2026-11-27T10:00:00Z",
    )
    haiku = record(
        store,
        chat("A haiku\nabout rain", model="gpt-4o", stream=True),
        streamed("Soft ", "rain"),
        path="/v1/chat/completions",
        recorded_at="2026-11-26T09:00:00Z",
    )
    reviews = review_cassettes(tmp_path)
    assert [review.name for review in reviews] == sorted(
        f"chat.completions/{file.name}" for file in (french, haiku)
    )
    by_prompt = {review.prompt: review for review in reviews}
    assert by_prompt["Say hello in French"] == CassetteReview(
        name=f"chat.completions/{french.name}",
        size_bytes=french.stat().st_size,
        key=by_prompt["Say hello in French"].key,
        recorded_at="2026-11-27T10:00:00Z",
        status=200,
        endpoint="chat.completions",
        model="gpt-4o-mini",
        stream=False,
        settings={"temperature": 0},
        prompt="Say hello in French",
        reply="Bonjour !",
        route="openai",
    )
    rain = by_prompt["A haiku\nabout rain"]
    assert (rain.model, rain.stream, rain.reply, rain.settings) == ("gpt-4o", True, "Soft rain", {})
    assert rain.key == orjson.loads(haiku.read_bytes())["key"]


def test_corrupt_files_are_reviewed_with_the_reason(tmp_path):
    store = CassetteStore(tmp_path)
    good = record(
        store,
        chat("hi"),
        completion("hello"),
        path="/v1/chat/completions",
        recorded_at="2026-11-27T10:00:00Z",
    )
    folder = good.parent
    (folder / "broken.0000000000000001.json").write_bytes(b'{"format_version": 1, "key": ')
    (folder / "list.0000000000000002.json").write_bytes(b"[1, 2]")
    (folder / "future.0000000000000003.json").write_bytes(b'{"format_version": 99}')
    (folder / "nokey.0000000000000004.json").write_bytes(
        b'{"format_version": 1, "request": {}, "response": {}}'
    )
    reviews = {review.name.split("/")[1].split(".")[0]: review for review in review_cassettes(tmp_path)}

    assert reviews["broken"].error.startswith("not valid JSON (")
    assert reviews["broken"].size_bytes == 29
    assert reviews["list"].error == "not a JSON object"
    assert reviews["future"].error == "unknown format_version 99 (this gate reads 1)"
    assert reviews["nokey"].error == "malformed cassette (no key, request path or response status)"
    assert all(review.is_corrupt for name, review in reviews.items() if name != "hi")
    assert reviews["hi"].error is None and reviews["hi"].reply == "hello"


def test_a_cassette_without_a_summary_is_named_by_its_request_path(tmp_path):
    store = CassetteStore(tmp_path)
    file = record(
        store,
        {"model": "text-embedding-3-small", "input": "x"},
        completion(""),
        path="/v1/embeddings",
        recorded_at="2026-11-27T10:00:00Z",
    )
    stored = orjson.loads(file.read_bytes())
    del stored["summary"]
    file.write_bytes(orjson.dumps(stored))
    [review] = review_cassettes(tmp_path)
    assert (review.endpoint, review.model, review.stream, review.prompt, review.error) == (
        "embeddings",
        None,
        None,
        None,
        None,
    )


def test_as_json_has_every_field_or_the_error():
    review = CassetteReview(
        "a/b.json",
        10,
        key="k",
        recorded_at="t",
        status=200,
        endpoint="chat.completions",
        model="m",
        stream=False,
        settings={"seed": 1},
        prompt="p",
        reply="r",
        route="ollama",
    )
    assert review.as_json() == {
        "name": "a/b.json", "size_bytes": 10, "key": "k", "recorded_at": "t", "status": 200,
        "endpoint": "chat.completions", "model": "m", "stream": False, "settings": {"seed": 1},
        "prompt": "p", "reply": "r", "takes": 1, "route": "ollama",
    }  # fmt: skip
    corrupt = CassetteReview("a/c.json", 3, error="not a JSON object")
    assert corrupt.as_json() == {"name": "a/c.json", "size_bytes": 3, "error": "not a JSON object"}


def test_store_info_totals():
    def chat_review(name, size_bytes, model, recorded_at):
        return CassetteReview(
            name, size_bytes, endpoint="chat.completions", model=model, recorded_at=recorded_at
        )

    reviews = [
        chat_review("c/1.json", 100, "gpt-4o", "2026-01-02T00:00:00Z"),
        chat_review("c/2.json", 200, "gpt-4o-mini", "2026-03-01T00:00:00Z"),
        chat_review("c/3.json", 300, "gpt-4o", "2025-12-31T23:59:59Z"),
        CassetteReview(
            "r/4.json", 400, endpoint="responses", model="gpt-4o-mini", recorded_at="2026-02-01T00:00:00Z"
        ),
        CassetteReview("m/5.json", 50, endpoint="models", model=None, recorded_at=""),
        CassetteReview("c/6.json", 7, error="not a JSON object"),
    ]
    info = store_info(reviews)
    assert info.cassette_count == 6
    assert info.corrupt_count == 1
    assert info.total_bytes == 1057
    assert list(info.by_endpoint.items()) == [("chat.completions", 3), ("models", 1), ("responses", 1)]
    assert list(info.by_model.items()) == [("gpt-4o", 2), ("gpt-4o-mini", 2), ("none", 1)]
    assert info.oldest_recorded_at == "2025-12-31T23:59:59Z"
    assert info.newest_recorded_at == "2026-03-01T00:00:00Z"


def test_store_info_of_nothing():
    info = store_info([])
    assert (info.cassette_count, info.corrupt_count, info.total_bytes) == (0, 0, 0)
    assert (info.by_endpoint, info.by_model, info.oldest_recorded_at, info.newest_recorded_at) == (
        {},
        {},
        None,
        None,
    )


def test_a_cassette_of_several_takes_reviews_as_its_first_take_with_the_count(tmp_path):
    store = CassetteStore(tmp_path)
    file = record(
        store, chat("Roll a die"), completion("4"), path="/v1/chat/completions", recorded_at="2026-11-27T10:00:00Z"
    )
    cassette = store.load(file, orjson.loads(file.read_bytes())["key"])
    more = [Take("2026-11-27T10:00:01Z", completion("2")), Take("2026-11-27T10:00:02Z", completion("6"))]
    assert store.save(cassette.with_takes([*cassette.takes, *more]), file, replace=True)
    [review] = review_cassettes(tmp_path)
    assert (review.takes, review.status, review.recorded_at, review.reply) == (3, 200, "2026-11-27T10:00:00Z", "4")


def test_a_websocket_session_is_reviewed_as_a_101_stream(tmp_path):
    from inference_gate.core.session_cassette import session_to_bytes
    from tests.sessions import realtime_session

    (tmp_path / "realtime").mkdir()
    (tmp_path / "realtime" / "hello.0000000000000000.json").write_bytes(session_to_bytes(realtime_session()))
    (review,) = review_cassettes(tmp_path)
    assert (review.endpoint, review.status, review.stream, review.model) == ("realtime", 101, True, "gpt-realtime")
    assert (review.prompt, review.reply) == ("hello", "Hi there")
