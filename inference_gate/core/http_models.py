"""The plain HTTP request and response models that the I/O shell and the core exchange.

These are data, not behaviour: the server turns h11 events into an `HttpRequest`, the gate answers with an
`HttpResponse`, and the server turns that back into h11 events. Header names are lower-case bytes, as h11
delivers them, so that the hot path never converts between str and bytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

Headers = list[tuple[bytes, bytes]]


@dataclass(slots=True)
class HttpRequest:
    """A complete request as the client sent it: the body has been read in full."""

    method: str
    target: str
    headers: Headers
    body: bytes = b""

    @property
    def path(self) -> str:
        """The target without its query string."""
        return self.target.partition("?")[0]

    @property
    def query(self) -> str:
        """The raw query string, without the leading `?` (empty when there is none)."""
        return self.target.partition("?")[2]

    def header(self, name: bytes) -> bytes | None:
        """The first value of the lower-case header `name`, or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(slots=True)
class HttpResponse:
    """A response for the server to send.

    With `stream` set, the body is sent one chunk per item as the iterator yields it, with chunked transfer
    encoding unless `headers` gives a Content-Length; if the iterator raises, the server aborts the connection so
    that the client can tell the body is incomplete, and if the client goes away, the server cancels the iterator
    at once. Otherwise `body` is sent whole in one write with the head: framed by Content-Length, or, with
    `chunked`, as a single chunk, which is how a replayed SSE stream keeps the framing a client saw live.

    `keep_alive_wire` is for a response sent again and again as the same object, as a prepared reply is: made with
    None, the server keeps there, the first time it sends it, the bytes that frame it for a keep-alive HTTP/1.1
    exchange (empty when the response cannot keep a connection alive), so it is framed once and every connection
    sends that one buffer. A response sent once keeps the default, empty: each exchange frames it, with no copy
    of its body.
    """

    status: int
    headers: Headers = field(default_factory=list)
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None
    chunked: bool = False
    keep_alive_wire: bytes | None = b""
