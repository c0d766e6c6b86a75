"""Decoding a response body's content-encoding (gzip or deflate) as it arrives, split anywhere.

Pure bytes in, bytes out, so the upstream client only feeds it and every rule is tested with plain data. `origin`
only names the upstream in the error a client sees.
"""

from __future__ import annotations

import zlib

from inference_gate.core.errors import GateError
from inference_gate.core.http_models import Headers


class Inflater:
    """Incremental gzip or deflate decoding of a body that arrives in pieces split anywhere.

    "deflate" is zlib-wrapped by the standard, but some servers send raw deflate, so the first two bytes
    decide which it is: a valid zlib header names compression method 8 and passes its check.
    """

    __slots__ = ("_decompressor", "_origin", "_pending", "_received_any")

    def __init__(self, content_encoding: bytes, origin: str) -> None:
        self._origin = origin
        self._decompressor: zlib._Decompress | None = None
        if content_encoding in (b"gzip", b"x-gzip"):
            self._decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._pending = b""
        self._received_any = False

    def decode(self, data: bytes | bytearray) -> bytes:
        self._received_any = True
        if self._decompressor is None:
            self._pending += data
            if len(self._pending) < 2:
                return b""
            first, second = self._pending[0], self._pending[1]
            zlib_wrapped = first & 0x0F == 8 and (first << 8 | second) % 31 == 0
            self._decompressor = zlib.decompressobj(zlib.MAX_WBITS if zlib_wrapped else -zlib.MAX_WBITS)
            data, self._pending = self._pending, b""
        try:
            return self._decompressor.decompress(data)
        except zlib.error as exc:
            raise self._undecodable(str(exc)) from exc

    def finish(self) -> bytes:
        """The last decoded bytes, once the whole body has arrived."""
        if not self._received_any:
            return b""  # an empty body, e.g. a 204's, may still name an encoding
        if self._decompressor is None or not self._decompressor.eof:
            raise self._undecodable("the compressed stream is truncated")
        return self._decompressor.flush()

    def _undecodable(self, reason: str) -> GateError:
        return GateError(
            502,
            f"the compressed body from upstream {self._origin} could not be decoded: {reason}",
            code="upstream_bad_encoding",
        )


def inflater_for(headers: Headers, origin: str) -> Inflater | None:
    """A decoder for the response's content-encoding, or None for an unencoded body.

    The gate asks for `identity`, so anything but gzip or deflate is a misbehaving upstream; passing it on
    undecoded would hand the client bytes it cannot read, since the gate drops content-encoding.
    """
    encodings = [
        token.strip().lower()
        for name, value in headers
        if name == b"content-encoding"
        for token in value.split(b",")
    ]
    encodings = [encoding for encoding in encodings if encoding not in (b"", b"identity")]
    if not encodings:
        return None
    if len(encodings) == 1 and encodings[0] in (b"gzip", b"x-gzip", b"deflate"):
        return Inflater(encodings[0], origin)
    raise GateError(
        502,
        f"upstream {origin} sent content-encoding {b', '.join(encodings).decode('latin-1')!r}, "
        "which the gate cannot decode",
        code="upstream_bad_encoding",
    )
