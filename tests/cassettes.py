"""Cassettes for tests that need a populated cache directory, saved through the real store as the gate saves them."""

from pathlib import Path

import orjson

from inference_gate.core.cassette import Cassette, RecordedRequest, RecordedResponse, Take, cassette_from_bytes
from inference_gate.core.keys import canonicalize
from inference_gate.store.cassette_store import CassetteStore


def record(store: CassetteStore, body: dict, response: RecordedResponse, *, path: str, recorded_at: str) -> Path:
    """Save a cassette for `body` sent to `path`, and return its file."""
    request = canonicalize("POST", path, orjson.dumps(body))
    cassette = Cassette(
        key=request.key,
        request=RecordedRequest("POST", request.path, [], {}, request.body, request.json_body, True),
        takes=[Take(recorded_at, response)],
    ).with_summary()
    file = store.locate(request).path
    assert store.save(cassette, file)
    return file


EXAMPLES = Path(__file__).parents[1] / "cassettes_example"


def example_name(endpoint: str, slug: str) -> str:
    """The name of the example cassette for a prompt, found by its slug: its key part changes with the key rule."""
    (file,) = (EXAMPLES / endpoint).glob(f"{slug}.*.json")
    return f"{endpoint}/{file.name}"


def read_all(store: CassetteStore) -> list[Cassette]:
    """Every cassette in `store`, read back through the format's checks: a corrupt file fails the test."""
    return [cassette_from_bytes(path.read_bytes()) for path in store.cassette_paths()]
