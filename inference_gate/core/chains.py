"""Responses chains: a request that continues an earlier answer names it by the cassette that holds it.

A Responses API request can continue an earlier answer: `previous_response_id: "resp_..."`. That id is minted by
the upstream on every call, so keyed as sent, a chain recorded again (`start --refresh`) would get a new key at
every link after the first: the old cassettes orphaned, new ones added, on every refresh. So the key names the
answer by the cassette that produced it instead: `previous_response_id` becomes `CHAIN_REFERENCE` followed by
that cassette's key. The first link's key does not depend on any id, so neither does the second's, and so on:
a chain keeps its keys, and its file names, across refreshes; replay still sends the recorded ids, which name
the same cassettes.

An id no cassette produced (an answer the gate never saw) is keyed as sent. The reference carries its own
version (`/v1`), so what it means can change without touching the key of any request that does not chain.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:  # cassette.py imports keys.py, which imports this module
    from inference_gate.core.cassette import RecordedResponse

CHAIN_FIELD = "previous_response_id"
CHAIN_REFERENCE = "inference-gate/chain/v1:"


def chained_response_id(json_body: Any) -> str | None:
    """The id of the answer a request continues, if it continues one."""
    if isinstance(json_body, dict):
        chained = json_body.get(CHAIN_FIELD)
        if isinstance(chained, str) and chained:
            return chained
    return None


def with_chain_reference(key_json_body: dict[str, Any], producer_key: str) -> dict[str, Any]:
    """A copy of the key's body whose chained id names the cassette that produced it (`producer_key`)."""
    return {**key_json_body, CHAIN_FIELD: CHAIN_REFERENCE + producer_key}


def produced_response_ids(response: RecordedResponse) -> list[str]:
    """The ids of the Responses API answers in a recorded response: the body's `id`, or in a stream the
    `response.id` its `response.created` and `response.completed` events carry."""
    if response.events is None:
        documents = [_json_or_none(response.body)]
    else:
        documents = [_json_or_none(event.data.encode()) for event in response.events]
        documents = [document.get("response") for document in documents if isinstance(document, dict)]
    ids = [
        document["id"]
        for document in documents
        if isinstance(document, dict) and document.get("object") == "response" and isinstance(document.get("id"), str)
    ]
    return list(dict.fromkeys(ids))


def _json_or_none(data: bytes) -> Any:
    try:
        return orjson.loads(data) if data else None
    except orjson.JSONDecodeError:
        return None
