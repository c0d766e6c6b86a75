"""Which cassette produced each Responses answer the gate has seen: what a chained request is keyed by
(core/chains.py).

The index is read from the store once, on the first request that chains (the cassettes of the `responses`
folder, where every dialect's Responses API answers are kept), and then learns each answer recorded, including
one whose refresh left its file as it was: the client was given the answer's new id, and its next request
chains to that.
"""

from __future__ import annotations

from pathlib import Path

from inference_gate.core.cassette import Cassette, CassetteError, cassette_from_bytes
from inference_gate.core.chains import produced_response_ids
from inference_gate.store.cassette_store import CassetteStore, folder_cassettes

RESPONSES_FOLDER = "responses"


class ResponseChains:
    """Response id -> the key of the cassette holding that answer."""

    def __init__(self, store: CassetteStore) -> None:
        self._store = store
        self._producers: dict[str, str] = {}
        self.loaded = False

    def producer_of(self, response_id: str) -> str | None:
        return self._producers.get(response_id)

    def learn(self, cassette: Cassette) -> None:
        """Every answer in the cassette's takes is produced by it."""
        for take in cassette.takes:
            for response_id in produced_response_ids(take.response):
                self._producers[response_id] = cassette.key

    def load(self) -> None:
        """Read the answers of the store's Responses cassettes (blocking: run it in a worker thread). A file that
        cannot be read is left out: it produced no answer a client could chain to."""
        folder = self._store.root / RESPONSES_FOLDER
        if folder.is_dir():
            for file in folder_cassettes(folder):
                try:
                    cassette = cassette_from_bytes(self._store.read_bytes(Path(file.path)))
                except (OSError, CassetteError):
                    continue
                for take in cassette.takes:
                    for response_id in produced_response_ids(take.response):
                        self._producers.setdefault(response_id, cassette.key)
        self.loaded = True
