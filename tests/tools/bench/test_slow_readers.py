"""tools/bench/slow_readers.py: the large stream cassette is a valid cassette of at least the size asked for."""

from __future__ import annotations

from pathlib import Path

from inference_gate.core.keys import canonicalize
from inference_gate.review.inventory import review_cassettes
from inference_gate.store.cassette_store import CassetteStore
from tools.bench.requests import StreamShape
from tools.bench.slow_readers import write_large_stream_cassette


def test_the_large_stream_cassette_replays_at_least_the_size_asked_for(tmp_path: Path) -> None:
    request = write_large_stream_cassette(tmp_path, 100_000)
    canonical = canonicalize(request.method, request.target, request.body)
    cassette = CassetteStore(tmp_path).load(CassetteStore(tmp_path).locate(canonical).path, canonical.key)
    assert cassette is not None
    body = cassette.takes[0].response_body_bytes()
    assert 100_000 <= len(body) < 110_000
    shape = StreamShape.of(body)
    assert shape.content.startswith("Echo: Synthetic question")
    assert not any(review.is_corrupt for review in review_cassettes(tmp_path))
