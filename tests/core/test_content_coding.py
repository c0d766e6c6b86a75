import gzip
import zlib

import pytest

from inference_gate.core.content_coding import inflater_for
from inference_gate.core.errors import GateError

ORIGIN = "https://api.example.test"
BODY = b'{"choices": [{"message": {"content": "Bonjour"}}]}' * 20


def decode_in_pieces(encoding: bytes, data: bytes, piece_bytes: int) -> bytes:
    inflater = inflater_for([(b"content-encoding", encoding)], ORIGIN)
    assert inflater is not None
    pieces = [inflater.decode(data[start : start + piece_bytes]) for start in range(0, len(data), piece_bytes)]
    return b"".join(pieces) + inflater.finish()


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize("piece_bytes", [1, 2, 7, 4096])
@pytest.mark.parametrize(
    ("encoding", "encode"),
    [(b"gzip", gzip.compress), (b"x-gzip", gzip.compress), (b"deflate", zlib.compress), (b"deflate", raw_deflate)],
)
def test_a_body_split_anywhere_decodes_whole(encoding, encode, piece_bytes):
    assert decode_in_pieces(encoding, encode(BODY), piece_bytes) == BODY


@pytest.mark.parametrize("headers", [[], [(b"content-encoding", b"identity")], [(b"content-encoding", b"")]])
def test_an_unencoded_body_needs_no_decoder(headers):
    assert inflater_for(headers, ORIGIN) is None


@pytest.mark.parametrize("encoding", [b"br", b"gzip, gzip", b"zstd"])
def test_an_encoding_the_gate_cannot_decode_is_a_502_naming_it(encoding):
    with pytest.raises(GateError) as raised:
        inflater_for([(b"content-encoding", encoding)], ORIGIN)
    assert raised.value.status == 502 and raised.value.code == "upstream_bad_encoding"
    assert ORIGIN in raised.value.message and encoding.decode() in raised.value.message


def test_a_truncated_body_is_refused():
    inflater = inflater_for([(b"content-encoding", b"gzip")], ORIGIN)
    inflater.decode(gzip.compress(BODY)[:-8])
    with pytest.raises(GateError, match="truncated"):
        inflater.finish()


def test_garbage_is_refused_with_the_reason():
    inflater = inflater_for([(b"content-encoding", b"gzip")], ORIGIN)
    with pytest.raises(GateError, match="could not be decoded"):
        inflater.decode(b"not gzip at all")


def test_an_empty_body_may_name_an_encoding():
    inflater = inflater_for([(b"content-encoding", b"gzip")], ORIGIN)
    assert inflater.finish() == b""
