import base64
import hashlib

import httpx2
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from inference_gate.core.multipart import (
    FormField,
    MultipartError,
    boundary_of,
    is_multipart,
    key_form,
    key_form_of_stored,
    parse_multipart,
    stored_form,
)
from tests.forms import content_type_for, form_body

AUDIO = FormField("file", "speech.wav", "audio/wav", b"RIFF\x00\x01\xff")
MODEL = FormField("model", None, None, b"whisper-1")


def test_fields_come_back_in_order_with_filename_and_content_type():
    body = form_body([MODEL, AUDIO], "b0und")
    assert parse_multipart(body, content_type_for("b0und")) == (MODEL, AUDIO)


def test_the_body_the_sdk_sends_is_read_exactly():
    """httpx2 is what the openai SDK sends uploads with."""
    request = httpx2.Request(
        "POST",
        "http://127.0.0.1/v1/audio/transcriptions",
        data={"model": "whisper-1", "language": "en"},
        files={"file": ("speech.wav", b"RIFF\r\n--x", "audio/wav")},
    )
    body = request.read()
    fields = parse_multipart(body, request.headers["content-type"])
    assert fields == (
        FormField("model", None, None, b"whisper-1"),
        FormField("language", None, None, b"en"),
        FormField("file", "speech.wav", "audio/wav", b"RIFF\r\n--x"),
    )


def test_quoted_boundary_preamble_epilogue_and_padding_are_allowed():
    body = b"preamble\r\n--q b\t \r\nContent-Disposition: form-data; name=plain\r\n\r\nv\r\n--q b--\r\nepilogue"
    assert parse_multipart(body, 'multipart/form-data; charset=utf-8; boundary="q b"') == (
        FormField("plain", None, None, b"v"),
    )


def test_quoted_names_may_hold_semicolons_quotes_and_utf8():
    field = FormField('a;b"c', 'clé "1".txt', "text/plain", b"x")
    assert parse_multipart(form_body([field], "z"), content_type_for("z")) == (field,)


def test_a_part_with_no_headers_has_no_name():
    body = b"--z\r\n\r\ncontent\r\n--z--"
    with pytest.raises(MultipartError, match=r"Part 1 .* no Content-Disposition"):
        parse_multipart(body, content_type_for("z"))


@pytest.mark.parametrize(
    ("body", "content_type", "problem"),
    [
        (b"--z--", "multipart/form-data", "names no boundary"),
        (b"--z--", "multipart/form-data; boundary=" + "b" * 71, "longer than 70"),
        (b"no delimiter here", content_type_for("z"), "does not contain its boundary"),
        (b"--z\r\nContent-Disposition: form-data; name=a\r\n\r\nv", content_type_for("z"), "no closing boundary"),
        (b"--z\r\nContent-Type: text/plain\r\n\r\nv\r\n--z--", content_type_for("z"), "no Content-Disposition"),
        (b"--z\r\nContent-Disposition: form-data\r\n\r\nv\r\n--z--", content_type_for("z"), "without a name"),
        (b"--z\r\nContent-Disposition: attachment; name=a\r\n\r\nv\r\n--z--", content_type_for("z"), "not form-data"),
        (b"--z\r\nContent-Disposition: form-data; name=a\r\nv\r\n--z--", content_type_for("z"), "no blank line"),
        (b"--z\r\nno colon\r\n\r\nv\r\n--z--", content_type_for("z"), "malformed header"),
        (b"--z\r\nContent-Disposition: form-data; name=\xff\r\n\r\nv\r\n--z--", content_type_for("z"), "not UTF-8"),
        (b"--zz\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--z--", content_type_for("z"), "not followed"),
        (b"--z\nContent-Disposition: form-data; name=a\n\nv\n--z--", content_type_for("z"), "not followed by CRLF"),
    ],
)
def test_bad_multipart_says_what_is_wrong(body, content_type, problem):
    with pytest.raises(MultipartError, match=problem):
        parse_multipart(body, content_type)


def test_boundary_and_type_are_read_from_the_content_type():
    assert boundary_of("Multipart/Form-Data; Boundary=abc") == "abc"
    assert is_multipart("multipart/form-data; boundary=abc")
    assert not is_multipart("application/json")
    assert not is_multipart(None)


def test_the_key_form_holds_names_types_and_hashes_never_contents():
    assert key_form((MODEL, AUDIO)) == [
        ["model", None, None, hashlib.sha256(b"whisper-1").hexdigest()],
        ["file", "speech.wav", "audio/wav", hashlib.sha256(AUDIO.content).hexdigest()],
    ]


def test_the_stored_form_shows_text_as_text_and_files_by_size_and_hash():
    binary_value = FormField("blob", None, None, b"\xff\xfe")
    assert stored_form((MODEL, AUDIO, binary_value)) == [
        {"name": "model", "text": "whisper-1"},
        {
            "name": "file",
            "content_type": "audio/wav",
            "filename": "speech.wav",
            "size_bytes": 7,
            "sha256": hashlib.sha256(AUDIO.content).hexdigest(),
        },
        {"name": "blob", "filename": None, "size_bytes": 2, "sha256": hashlib.sha256(b"\xff\xfe").hexdigest()},
    ]


def test_file_contents_are_stored_only_when_asked():
    (stored,) = stored_form((AUDIO,), store_file_contents=True)
    assert base64.b64decode(stored["content_base64"]) == AUDIO.content
    assert "content_base64" not in stored_form((AUDIO,))[0]


BOUNDARIES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789'()+_,-./:=?", min_size=1, max_size=70)
FIELDS = st.lists(
    st.builds(
        FormField,
        name=st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=8),
        filename=st.none() | st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",))),
        content_type=st.none() | st.sampled_from(["text/plain", "audio/wav", "application/octet-stream"]),
        content=st.binary(max_size=40),
    ),
    max_size=5,
)


@given(fields=FIELDS, boundary=BOUNDARIES)
def test_parsing_a_serialised_form_returns_its_fields(fields, boundary):
    delimiter = b"\r\n--" + boundary.encode()
    assume(all((field.content + delimiter).find(delimiter) == len(field.content) for field in fields))  # RFC 2046
    body = form_body(fields, boundary)
    assert parse_multipart(body, content_type_for(boundary)) == tuple(fields)


@given(fields=FIELDS, store_file_contents=st.booleans())
def test_the_stored_form_keeps_what_the_key_needs(fields, store_file_contents):
    stored = stored_form(tuple(fields), store_file_contents=store_file_contents)
    assert key_form_of_stored(stored) == key_form(tuple(fields))
