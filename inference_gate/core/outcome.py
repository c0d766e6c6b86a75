"""What the gate did with one request, decided once and read by everyone who reports it.

The `x-inference-gate` header, the log line and the pytest plugin's ledger all read the same `Answer`, so they
can never disagree. Every outcome is a claim a user relies on, so each one means exactly what it says:

- `hit`: answered from a cassette that is on disk.
- `recorded`: answered from upstream, and the cassette is on disk before the response's last byte is sent
  (and before a stream's final event, such as `data: [DONE]`, at which a client may stop reading).
- `passthrough`: answered from upstream, but not recorded; `reason` says why (an error status, a broken
  stream, a failed write, a response over the size cap, a credential in the bytes).
- `miss`: replay mode had no cassette; never forwarded.
- `error`: the gate refused the request or failed itself; `reason` says why.

One header value is a promise, not an outcome: `recording`. A live upstream stream's head leaves before its body
is complete, so before the cassette can be written; its header says `recording` (never `recorded`), and the
log line and `on_answer` carry the final outcome. If the cassette is then not written (a failed write, a refusal),
the stream's last bytes are one SSE comment, `: inference-gate: not recorded: <reason>`, which SSE parsers skip.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

OUTCOME_HEADER = b"x-inference-gate"
CASSETTE_HEADER = b"x-inference-gate-cassette"
REASON_HEADER = b"x-inference-gate-reason"
RECORDING = b"recording"
"""The `x-inference-gate` value of a live stream being recorded: a promise, see the module docstring."""
REPLAYING = b"replaying"
"""The `x-inference-gate` value of a WebSocket's `101` in replay mode: its messages will come from cassettes, and
each turn's or session's own outcome is logged and reported when it is known (proxy/websocket_turns.py)."""
NOT_RECORDED_COMMENT = "inference-gate: not recorded: "
"""How the SSE comment that breaks that promise starts; the reason follows."""


class Outcome(enum.Enum):
    HIT = "hit"
    RECORDED = "recorded"
    PASSTHROUGH = "passthrough"
    MISS = "miss"
    ERROR = "error"

    @property
    def header_value(self) -> bytes:
        return self.value.encode("ascii")


@dataclass(frozen=True, slots=True)
class Answer:
    """One request's outcome, with what a report needs to name it.

    `cassette` is the cassette's name relative to the cache directory (`chat.completions/say-hi.3f2a….json`),
    set for a hit, for a recording and for an injected fault (faults.py, an `error` whose request a cassette
    matched). `request` is a short human description of the request (endpoint, model, the start of the prompt)
    and `closest` the nearest recorded request, both set for a miss.
    """

    method: str
    path: str
    status: int
    outcome: Outcome
    cassette: str | None = None
    reason: str | None = None
    request: str | None = None
    closest: str | None = None
