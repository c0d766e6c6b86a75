"""tools/bench/aimock.py: aimock's fixtures lose their recorded timings."""

from __future__ import annotations

import orjson

from tools.bench.aimock import without_recorded_timings


def test_aimock_fixtures_lose_their_recorded_timings_and_nothing_else() -> None:
    fixture = {"match": {"userMessage": "hi"}, "response": {"content": "Echo: hi"}}
    recorded = {"fixtures": [{**fixture, "recordedTimings": {"ttftMs": 12, "interChunkDelaysMs": [1, 0]}}]}
    assert orjson.loads(without_recorded_timings(orjson.dumps(recorded))) == {"fixtures": [fixture]}
