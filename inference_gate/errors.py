"""The one place where a failure becomes an OpenAI-shaped JSON error.

Clients of the gate are mostly OpenAI SDKs, so every error the gate itself produces uses OpenAI's shape,
`{"error": {"message", "type", "param", "code"}}` (or, for an Anthropic or Gemini request, the shape of that
dialect's SDK: see dialects.py), and a `type` that starts with `inference_gate` so that a
user can tell at a glance that the gate, not OpenAI, said it.
"""

from __future__ import annotations

import orjson

from inference_gate.dialects import Dialect, error_document
from inference_gate.messages import HttpResponse

GATE_ERROR_TYPE = "inference_gate_error"
CACHE_MISS_TYPE = "inference_gate_cache_miss"


class GateError(Exception):
    """An error the gate answers with itself, instead of an upstream response.

    `retryable=False` adds `x-should-retry: false`, which every official OpenAI SDK honours above its own
    status-based retry rules; a cache miss in replay mode must never be retried.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str,
        error_type: str = GATE_ERROR_TYPE,
        param: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.error_type = error_type
        self.param = param
        self.retryable = retryable


def error_response(error: GateError, *, outcome: bytes = b"error", dialect: Dialect = Dialect.OPENAI) -> HttpResponse:
    """The HTTP response that reports `error` to an SDK of `dialect`, in the error shape that SDK parses."""
    headers = [
        (b"content-type", b"application/json; charset=utf-8"),
        (b"x-inference-gate", outcome),
    ]
    if error.retryable is not None:
        headers.append((b"x-should-retry", b"true" if error.retryable else b"false"))
    document = error_document(
        dialect, error.status, error.message, error_type=error.error_type, code=error.code, param=error.param
    )
    body = orjson.dumps(document)
    return HttpResponse(status=error.status, headers=headers, body=body)
