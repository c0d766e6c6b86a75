"""Prepared replies: a cassette's response turned into bytes once, and the bounded table that keeps them.

A hit must cost what the HTTP layer costs, so a cassette is read, parsed and serialised once, and later hits only
send the bytes; a paced replay's schedule (pacing.py) is computed then too. The table is bounded by the bytes it
holds, least recently used out first, so a long recording session with many distinct requests keeps a flat memory
profile; an evicted reply is read from disk again.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from inference_gate.core.cassette import NO_BODY_STATUSES, Cassette, Take
from inference_gate.core.http_models import Headers, HttpResponse
from inference_gate.core.outcome import CASSETTE_HEADER, OUTCOME_HEADER, Outcome
from inference_gate.core.pacing import ReplayPace, Schedule, schedule
from inference_gate.core.redact import is_stored_response_header
from inference_gate.core.sse import serialize_event

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
# The hot requests of a large test suite, and a bound on the memory their exact bytes take.
DEFAULT_MAX_MEMO_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class PacedReply:
    """What a paced hit sends: the head, and the body's parts with their times (pacing.py). A whole body keeps
    its Content-Length; a stream goes chunked, one chunk per event."""

    headers: Headers
    schedule: Schedule


@dataclass(slots=True)
class PreparedReply:
    """A cassette's response, turned into bytes once so that every later hit only sends them; `paced` is set
    when replay is paced and the take has a recorded timing."""

    status: int
    headers: Headers
    body: bytes
    streamed: bool
    name: str
    paced: PacedReply | None = None
    _response: HttpResponse | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def size_bytes(self) -> int:
        """Roughly what the reply holds in memory, for the cache's bound: the body twice, since the server keeps
        it framed as well, and once more in a paced schedule."""
        copies = 3 if self.paced is not None else 2
        return copies * len(self.body) + sum(len(name) + len(value) for name, value in self.headers)

    @classmethod
    def from_take(cls, take: Take, name: str, pace: ReplayPace | None = None) -> PreparedReply:
        # The allow-list applies again on replay, so a hand-edited cassette cannot inject framing headers.
        headers = [
            (header.lower().encode("latin-1"), value.encode("latin-1"))
            for header, value in take.response.headers.items()
            if is_stored_response_header(header.lower())
        ]
        headers += [(OUTCOME_HEADER, Outcome.HIT.header_value), (CASSETTE_HEADER, name.encode("utf-8", "replace"))]
        response = take.response
        paced = None
        if pace is None or response.timing is None:
            body = take.response_body_bytes()
        elif response.events is not None:
            events = [serialize_event(event) for event in response.events]
            body = b"".join(events)  # what `response_body_bytes` gives, without serialising the events twice
            paced = PacedReply(headers, schedule(events, response.timing, pace))
        else:
            body = response.body
            framing = [] if response.status in NO_BODY_STATUSES else [(b"content-length", b"%d" % len(body))]
            paced = PacedReply([*headers, *framing], schedule([body], response.timing, pace))
        return cls(response.status, headers, body, response.events is not None, name, paced)

    def response(self) -> HttpResponse:
        """The same response object for every hit, so that the server frames it once (see
        `HttpResponse.keep_alive_wire`). A recorded stream is sent chunked, as one chunk in the same write as its
        head; the SSE framing inside is the original."""
        if self._response is None:
            self._response = HttpResponse(
                self.status, self.headers, self.body, chunked=self.streamed, keep_alive_wire=None
            )
        return self._response


@dataclass(slots=True)
class PreparedTakes:
    """A cassette's takes as prepared replies, in recorded order."""

    replies: tuple[PreparedReply, ...]

    @classmethod
    def from_cassette(cls, cassette: Cassette, name: str, pace: ReplayPace | None = None) -> PreparedTakes:
        return cls(tuple(PreparedReply.from_take(take, name, pace) for take in cassette.takes))

    @property
    def size_bytes(self) -> int:
        return sum(reply.size_bytes for reply in self.replies)

    def __len__(self) -> int:
        return len(self.replies)

    def take(self, index: int) -> PreparedReply:
        """The take for the `index`-th identical request: once the takes run out, the last one repeats."""
        return self.replies[min(index, len(self.replies) - 1)]


ExactRequest = tuple[str, str, bytes]


class ReplyCache:
    """Prepared takes by request key, holding at most `max_bytes` (always at least the newest one).

    It also remembers which key the exact bytes of a request (method, target, body) led to. An SDK sends the same
    bytes for the same request, so parsing, re-serialising and hashing the body, the costliest part of a hit, is
    then done once per distinct request. That memo holds up to `max_memo_bytes` of requests, counted whole.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, *, max_memo_bytes: int = DEFAULT_MAX_MEMO_BYTES) -> None:
        self.max_bytes = max_bytes
        self.total_bytes = 0
        self.max_memo_bytes = max_memo_bytes
        self.memo_bytes = 0
        self._replies: OrderedDict[str, PreparedTakes] = OrderedDict()
        self._keys_by_request: dict[ExactRequest, str] = {}

    def key_of_exact_request(self, request: ExactRequest) -> str | None:
        return self._keys_by_request.get(request)

    def remember_request(self, request: ExactRequest, key: str) -> None:
        size = sum(len(part) for part in request)
        if request not in self._keys_by_request and self.memo_bytes + size <= self.max_memo_bytes:
            self._keys_by_request[request] = key
            self.memo_bytes += size

    def __len__(self) -> int:
        return len(self._replies)

    def get(self, key: str) -> PreparedTakes | None:
        reply = self._replies.get(key)
        if reply is not None:
            self._replies.move_to_end(key)
        return reply

    def discard(self, key: str) -> None:
        reply = self._replies.pop(key, None)
        if reply is not None:
            self.total_bytes -= reply.size_bytes

    def put(self, key: str, reply: PreparedTakes) -> None:
        previous = self._replies.pop(key, None)
        if previous is not None:
            self.total_bytes -= previous.size_bytes
        self._replies[key] = reply
        self.total_bytes += reply.size_bytes
        while self.total_bytes > self.max_bytes and len(self._replies) > 1:
            _, evicted = self._replies.popitem(last=False)
            self.total_bytes -= evicted.size_bytes
