"""The texts a credential can hide in, decoded, for the audit (audit.py) to read besides a file's bytes.

A credential can sit in a cassette in a form no pattern sees in the bytes as stored:

- base64: the gate itself stores a body that is not UTF-8 as `body_base64` (and uploaded files, with
  `store_file_contents`, as `content_base64`), and a JSON body can carry base64 in any string (a data URL, an
  encoded payload). Every run of base64 characters long enough to hold a credential is decoded; a run that is
  not base64 (an id, a word) fails to decode or decodes to noise no pattern matches.
- URL-encoding: `sk%2Dproj%2D...`, or `https%3A%2F%2Fhost%3Fkey%3DAIza...`, where the escaped `=` in front of
  the key reads as part of a longer token. Every run of URL characters holding a `%XX` escape is decoded.
- a stream: the upstream cuts a text into events wherever it likes, also inside a key (`sk-` | `proj-...`). So
  each streamed field (`choices[0].delta.content`, a Responses `delta`, an Anthropic `delta.text`) is also read
  as the pieces of all the events joined in order.

A `DecodedRun` keeps where its encoded form lies in the text it came from, so that masking (audit.py's
`mask_credentials`) can hide the encoded form as well as a plain one.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from inference_gate.core.nearest import flatten_json

MIN_ENCODED_CHARS = 24
"""The shortest run worth decoding: base64 of the shortest text a pattern flags (`api-key: ` and 8 characters)."""

# Possessive: a run too short is given up at once rather than tried again from each of its characters.
_BASE64_RUN = re.compile(rb"[A-Za-z0-9+/_-]{%d,}+={0,2}" % MIN_ENCODED_CHARS)
_URL_ENCODED_RUN = re.compile(rb"(?<![A-Za-z0-9._~+%-])[A-Za-z0-9._~+-]*+%[0-9A-Fa-f]{2}[A-Za-z0-9._~+%-]*+")
_BASE64_ALPHABET = re.compile(rb"[A-Za-z0-9+/]+={0,2}")


@dataclass(frozen=True, slots=True)
class DecodedRun:
    """`text`, decoded (`how`: `base64` or `URL-encoded`) from `source[start:end]`."""

    start: int
    end: int
    how: str
    text: bytes


def _base64_decoded(run: bytes) -> bytes | None:
    """The bytes a base64 run (standard or URL-safe alphabet, padding optional) stands for; None if it is not."""
    stripped = run.rstrip(b"=")
    if len(stripped) % 4 == 1:
        return None
    padded = stripped + b"=" * (-len(stripped) % 4)
    try:
        if _BASE64_ALPHABET.fullmatch(padded):
            return base64.b64decode(padded, validate=True)
        return base64.urlsafe_b64decode(padded)
    except (binascii.Error, ValueError):
        return None


def decoded_runs(source: bytes) -> Iterator[DecodedRun]:
    """Every base64 run and every URL-encoded run in `source`, decoded, in order of where they start."""
    runs = []
    for match in _BASE64_RUN.finditer(source):
        decoded = _base64_decoded(match.group())
        if decoded:
            runs.append(DecodedRun(match.start(), match.end(), "base64", decoded))
    for match in _URL_ENCODED_RUN.finditer(source) if b"%" in source else ():
        runs.append(DecodedRun(match.start(), match.end(), "URL-encoded", unquote_to_bytes(match.group())))
    return iter(sorted(runs, key=lambda run: run.start))


def string_leaves(document: Any) -> Iterator[tuple[str, str]]:
    """(JSON path, value) of every string in a parsed document."""
    for path, leaf in flatten_json(document).items():
        if isinstance(leaf, str):
            yield path, leaf


def joined_stream_fields(document: Any) -> Iterator[tuple[str, str]]:
    """(path, text) of each field that more than one event of a stored stream carries, its pieces joined in order.

    The path names the field in every event: `response.events[*].data.choices[0].delta.content`. Streams are
    found where the cassette format keeps them: `response.events`, each take's, and a WebSocket session's
    `frames`, each side's apart (`frames[server].data.delta`).
    """
    if not isinstance(document, dict):
        return
    located = [("response", document.get("response"))]
    takes = document.get("takes")
    for index, take in enumerate(takes if isinstance(takes, list) else []):
        if isinstance(take, dict):
            located.append((f"takes[{index}].response", take.get("response")))
    for where, response in located:
        events = response.get("events") if isinstance(response, dict) else None
        if isinstance(events, list):
            yield from _joined_fields(f"{where}.events[*].data", events)
    # A WebSocket session's frames, and each take's: each side's frames are a stream of their own.
    sessions = [("frames", document.get("frames"))]
    for index, take in enumerate(takes if isinstance(takes, list) else []):
        if isinstance(take, dict):
            sessions.append((f"takes[{index}].frames", take.get("frames")))
    for where, frames in sessions:
        if isinstance(frames, list):
            for sender in ("client", "server"):
                sent = [frame for frame in frames if isinstance(frame, dict) and frame.get("from") == sender]
                yield from _joined_fields(f"{where}[{sender}].data", sent)


def _joined_fields(where: str, events: list[Any]) -> Iterator[tuple[str, str]]:
    pieces: dict[tuple[str | int, ...], list[str]] = {}
    for event in events:
        if isinstance(event, dict) and "data" in event:
            for steps, text in _strings(event["data"], ()):
                pieces.setdefault(steps, []).append(text)
    for steps, texts in pieces.items():
        if len(texts) > 1 and texts.count(texts[0]) < len(texts):  # a value every event repeats is no split text
            path = "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in steps)
            yield where + path, "".join(texts)


def _strings(value: Any, steps: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """(steps, string) of every string in `value`: a cheaper walk than flatten_json, whose paths are built only
    for the fields that are joined."""
    if isinstance(value, str):
        yield steps, value
    elif isinstance(value, dict):
        for name, child in value.items():
            yield from _strings(child, (*steps, name))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _strings(child, (*steps, index))
