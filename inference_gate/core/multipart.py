"""multipart/form-data bodies (RFC 7578 over RFC 2046's framing), parsed exactly and without I/O.

An upload (`audio.transcriptions`, `files`, `images.edits`, `uploads/*/parts`) is sent with a random boundary, so
its bytes differ on every run. The key therefore uses the *fields*, in order: each name, filename, content type
and the SHA-256 of its content, never the boundary. The cassette stores them readably: text fields as text,
files by name, size and SHA-256 (their bytes only when asked, since the file is usually in the repository).

The body is framed as RFC 2046 says: an optional preamble, then `--boundary` at the start of the body or of a
line, each part after a CRLF, parts separated by CRLF `--boundary`, and a closing `--boundary--` after which an
epilogue is ignored. Whitespace after a delimiter is allowed (RFC 2046's transport padding). A bare LF is not a
line break here: the SDKs send CRLF, and accepting both would make two different bodies look alike.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from typing import Any

_PARAMETER = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:\\.|[^"\\])*"|[^;]*)')
_QUOTED_PAIR = re.compile(r"\\(.)")
_BOUNDARY_MAX_CHARS = 70  # RFC 2046, section 5.1.1


class MultipartError(ValueError):
    """A multipart body that cannot be read; the message says what is wrong with it."""


@dataclass(frozen=True, slots=True)
class FormField:
    """One part of a form: `filename` is None for a plain field, `content_type` when the part names none."""

    name: str
    filename: str | None
    content_type: str | None
    content: bytes


def is_multipart(content_type: str | None) -> bool:
    return content_type is not None and content_type.split(";", 1)[0].strip().lower() == "multipart/form-data"


def header_parameters(value: str) -> dict[str, str]:
    """`form-data; name="a"; filename="b.wav"` -> {'name': 'a', 'filename': 'b.wav'}; names lower-cased.

    A quoted value may hold `;` and backslash-escaped characters, as RFC 9110's quoted-string allows.
    """
    parameters: dict[str, str] = {}
    for name, raw in _PARAMETER.findall(value):
        raw = raw.strip()
        if len(raw) >= 2 and raw.startswith('"') and raw.endswith('"'):
            raw = _QUOTED_PAIR.sub(r"\1", raw[1:-1])
        parameters[name.lower()] = raw
    return parameters


def boundary_of(content_type: str) -> str:
    """The boundary named by a `multipart/form-data` content type."""
    boundary = header_parameters(content_type).get("boundary", "")
    if not boundary:
        raise MultipartError("The multipart/form-data content type names no boundary.")
    if len(boundary) > _BOUNDARY_MAX_CHARS:
        raise MultipartError(f"The multipart boundary is longer than {_BOUNDARY_MAX_CHARS} characters.")
    return boundary


def _after_delimiter(body: bytes, position: int) -> tuple[bool, int]:
    """(closing, where the next part starts) for the delimiter that ends at `position`."""
    if body.startswith(b"--", position):
        return True, position + 2
    end_of_line = body.find(b"\r\n", position)
    if end_of_line < 0 or body[position:end_of_line].strip(b" \t"):
        raise MultipartError("A multipart boundary line is not followed by CRLF.")
    return False, end_of_line + 2


def _parse_part(part: bytes, index: int) -> FormField:
    head, separator, content = part.partition(b"\r\n\r\n")
    if not separator:
        if not part.startswith(b"\r\n"):
            raise MultipartError(f"Part {index + 1} of the multipart body has no blank line after its headers.")
        head, content = b"", part[2:]
    try:
        lines = head.decode("utf-8").split("\r\n") if head else []
    except UnicodeDecodeError:
        raise MultipartError(f"The headers of part {index + 1} of the multipart body are not UTF-8.") from None
    headers: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise MultipartError(f"Part {index + 1} of the multipart body has a malformed header line {line!r}.")
        headers[name.strip().lower()] = value.strip()
    disposition = headers.get("content-disposition")
    if disposition is None:
        raise MultipartError(f"Part {index + 1} of the multipart body has no Content-Disposition header.")
    if disposition.split(";", 1)[0].strip().lower() != "form-data":
        raise MultipartError(f"Part {index + 1} of the multipart body is not form-data: {disposition!r}.")
    parameters = header_parameters(disposition)
    if "name" not in parameters:
        raise MultipartError(f"Part {index + 1} of the multipart body has a Content-Disposition without a name.")
    return FormField(
        name=parameters["name"],
        filename=parameters.get("filename"),
        content_type=headers.get("content-type"),
        content=content,
    )


def parse_multipart(body: bytes, content_type: str) -> tuple[FormField, ...]:
    """The fields of a multipart/form-data body, in the order they were sent."""
    delimiter = b"--" + boundary_of(content_type).encode("latin-1")
    if body.startswith(delimiter):
        position = len(delimiter)
    else:
        first = body.find(b"\r\n" + delimiter)
        if first < 0:
            raise MultipartError("The multipart body does not contain its boundary.")
        position = first + 2 + len(delimiter)
    separator = b"\r\n" + delimiter
    fields: list[FormField] = []
    while True:
        closing, start = _after_delimiter(body, position)
        if closing:
            return tuple(fields)
        end = body.find(separator, start)
        if end < 0:
            raise MultipartError("The multipart body has no closing boundary (`--boundary--`).")
        fields.append(_parse_part(body[start:end], len(fields)))
        position = end + len(separator)


def sha256_hex(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def key_form(fields: tuple[FormField, ...]) -> list[list[str | None]]:
    """What of a form decides its key: per field, in order, name, filename, content type and content SHA-256."""
    return [[field.name, field.filename, field.content_type, sha256_hex(field.content)] for field in fields]


def _as_text(field: FormField) -> str | None:
    if field.filename is not None:
        return None
    try:
        return field.content.decode("utf-8")
    except UnicodeDecodeError:
        return None


def stored_form(fields: tuple[FormField, ...], *, store_file_contents: bool = False) -> list[dict[str, Any]]:
    """The form as a cassette shows it: plain UTF-8 fields as `text`, anything else as a file.

    A file is shown by filename, content type, size and SHA-256, which is enough to recompute the key; its bytes
    (base64) are added only with `store_file_contents`, because the file is usually committed already.
    """
    stored: list[dict[str, Any]] = []
    for field in fields:
        entry: dict[str, Any] = {"name": field.name}
        if field.content_type is not None:
            entry["content_type"] = field.content_type
        text = _as_text(field)
        if text is not None:
            entry["text"] = text
        else:
            entry.update(filename=field.filename, size_bytes=len(field.content), sha256=sha256_hex(field.content))
            if store_file_contents:
                entry["content_base64"] = base64.b64encode(field.content).decode("ascii")
        stored.append(entry)
    return stored


def key_form_of_stored(stored: list[dict[str, Any]]) -> list[list[str | None]]:
    """`key_form` of the fields that `stored_form` stored: what recomputing a recorded upload's key starts from."""
    return [
        [
            entry["name"],
            entry.get("filename"),
            entry.get("content_type"),
            sha256_hex(entry["text"].encode("utf-8")) if "text" in entry else entry["sha256"],
        ]
        for entry in stored
    ]
