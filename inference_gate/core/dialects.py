"""Which provider's API a request speaks, read from its path alone.

One gate has one upstream, but that upstream may be OpenAI, Azure OpenAI, Anthropic, Gemini or a server that
copies OpenAI's API under its own base path. Four things differ between them, and each has its rule here:

- the **endpoint**, the name reviewers, `cache list`, the cassette folder and the file name use. The path is cut
  after its version segment (`v1`, `v1beta`, ...), so `/v1/chat/completions`, OpenRouter's
  `/api/v1/chat/completions` and Azure's `/openai/v1/chat/completions` are all `chat.completions`. Azure's
  older `/openai/deployments/{deployment}/chat/completions` is cut after the deployment, and Gemini's
  `/v1beta/models/{model}:generateContent` is named by its method, `generateContent`;
- the **model** the path names (Azure's deployment, Gemini's model), shown when the body names none;
- the **auth header** the gate puts its own key in, when the client sent no credential header to follow
  (Azure: `api-key`, Anthropic: `x-api-key`, Gemini: `x-goog-api-key`, others: `Authorization: Bearer`);
- the **error shape** the client's SDK parses: OpenAI's `{"error": {"message", "type", "param", "code"}}`,
  Anthropic's `{"type": "error", "error": {"type", "message"}}`, Google's `{"error": {"code", "message",
  "status"}}`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from http import HTTPStatus
from typing import Any

from inference_gate.core.http_models import Headers


class Dialect(StrEnum):
    OPENAI = "openai"  # api.openai.com and every server that copies it under some base path
    AZURE = "azure"
    ANTHROPIC = "anthropic"
    GEMINI = "gemini"


@dataclass(frozen=True, slots=True)
class Route:
    """What a request path says: its dialect, its endpoint name, and the model it names, if any."""

    dialect: Dialect
    endpoint: str
    path_model: str | None = None


_VERSION_SEGMENT = re.compile(r"^v\d+(?:alpha|beta)?\d*$")
_GEMINI_METHOD = re.compile(r"^models/(?P<model>[^/:]+):(?P<method>[A-Za-z]+)$")

# The headers a client authenticates with, other than `Authorization`, and the dialect each one belongs to.
CREDENTIAL_HEADERS: dict[bytes, Dialect] = {
    b"api-key": Dialect.AZURE,
    b"x-api-key": Dialect.ANTHROPIC,
    b"x-goog-api-key": Dialect.GEMINI,
}
CLIENT_CREDENTIAL_HEADERS = frozenset({b"authorization", *CREDENTIAL_HEADERS})
_AUTH_HEADER_OF: dict[Dialect, bytes] = {dialect: name for name, dialect in CREDENTIAL_HEADERS.items()}

# Google's canonical names where they differ from the HTTP reason phrase.
_GOOGLE_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

def route_of(path: str) -> Route:
    """The dialect, endpoint name and path-named model of a request path (its query string excluded)."""
    segments = [segment for segment in path.split("/") if segment]
    if segments[:2] == ["openai", "deployments"] and len(segments) > 3:
        return Route(Dialect.AZURE, ".".join(segments[3:]), path_model=segments[2])
    rest = _after_version(segments)
    joined = "/".join(rest)
    if gemini := _GEMINI_METHOD.match(joined):
        return Route(Dialect.GEMINI, gemini["method"], path_model=gemini["model"])
    endpoint = ".".join(rest) or "root"
    if segments[:1] == ["openai"]:
        return Route(Dialect.AZURE, endpoint)
    if rest[:1] == ["messages"]:
        return Route(Dialect.ANTHROPIC, endpoint)
    return Route(Dialect.OPENAI, endpoint)


def _after_version(segments: list[str]) -> list[str]:
    for index, segment in enumerate(segments):
        if _VERSION_SEGMENT.match(segment):
            return segments[index + 1 :]
    return segments


def endpoint_name(path: str) -> str:
    """`/v1/chat/completions` -> `chat.completions`; see the module docstring for the other dialects."""
    return route_of(path).endpoint


def auth_header(dialect: Dialect, client_headers: Headers) -> bytes:
    """The header the gate's own key goes in: the scheme the client used, else its dialect's scheme."""
    used = (name for name, _ in client_headers if name in CLIENT_CREDENTIAL_HEADERS)
    return next(used, _AUTH_HEADER_OF.get(dialect, b"authorization"))


def auth_value(header: bytes, api_key: str) -> bytes:
    """The header value that carries `api_key`: `Bearer <key>` for `Authorization`, the bare key otherwise."""
    return b"Bearer " + api_key.encode() if header == b"authorization" else api_key.encode()


def error_document(
    dialect: Dialect, status: int, message: str, *, error_type: str, code: str, param: str | None
) -> Any:
    """The JSON document of an error the gate itself answers with, in the shape the client's SDK parses.

    `error_type` starts with `inference_gate` in every shape, so that a user can tell the gate said it.
    """
    if dialect is Dialect.ANTHROPIC:
        return {"type": "error", "error": {"type": error_type, "message": message}}
    if dialect is Dialect.GEMINI:
        return {"error": {"code": status, "message": message, "status": _google_status(status)}}
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def _google_status(status: int) -> str:
    """Google's canonical status name for an HTTP status, as its REST errors carry it."""
    return _GOOGLE_STATUS_NAMES.get(status) or HTTPStatus(status).phrase.upper().replace(" ", "_")
