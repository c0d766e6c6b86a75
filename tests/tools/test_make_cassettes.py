"""tools/make_cassettes.py: synthetic cassettes are valid cassettes that the gate replays."""

from __future__ import annotations

from pathlib import Path

import orjson
import trio

from inference_gate import Gate, Mode, Settings
from inference_gate.core.keys import canonicalize
from inference_gate.review.inventory import review_cassettes
from inference_gate.store.cassette_store import CassetteStore
from tools.fake_replies import CHAT_COMPLETIONS
from tools.loadgen import LoadRequest, fetch
from tools.make_cassettes import is_streamed, make_cassettes, synthetic_request_body

TEST_TIMEOUT_S = 10.0


def test_synthetic_cassettes_are_valid_cassettes_for_their_requests(tmp_path: Path) -> None:
    paths = make_cassettes(tmp_path, 10)
    store = CassetteStore(tmp_path)
    assert sorted(paths) == store.cassette_paths()
    for index, path in enumerate(paths):
        canonical = canonicalize("POST", CHAT_COMPLETIONS, synthetic_request_body(index))
        assert path == store.locate(canonical).path
        cassette = store.load(path, canonical.key)
        assert cassette is not None
        assert (cassette.response.events is not None) == is_streamed(index)
        assert cassette.summary["model"] == "gpt-4o-mini"
    assert sum(is_streamed(index) for index in range(10)) == 2
    assert not any(review.is_corrupt for review in review_cassettes(tmp_path))


async def test_the_gate_replays_a_synthetic_cassette(tmp_path: Path, nursery: trio.Nursery) -> None:
    [path] = make_cassettes(tmp_path, 1)
    gate = Gate(Settings(cache_dir=tmp_path, port=0), Mode.REPLAY)
    request = LoadRequest("POST", CHAT_COMPLETIONS, [(b"content-type", b"application/json")], synthetic_request_body(0))
    with trio.fail_after(TEST_TIMEOUT_S):
        port = await nursery.start(lambda task_status: gate.run(task_status=task_status))
        response = await fetch("127.0.0.1", port, request)
    assert response.status == 200
    assert response.header(b"x-inference-gate") == b"hit"
    assert orjson.loads(response.body)["choices"][0]["message"]["content"].startswith("Echo: Synthetic question 0")
    assert response.header(b"x-inference-gate-cassette") == path.relative_to(tmp_path).as_posix().encode()
