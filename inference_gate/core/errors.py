"""The one place where a failure becomes an OpenAI-shaped JSON error.

Clients of the gate are mostly OpenAI SDKs, so every error the gate itself produces uses OpenAI's shape,
`{"error": {"message", "type", "param", "code"}}` (or, for an Anthropic or Gemini request, the shape of that
dialect's SDK: see dialects.py), and a `type` that starts with `inference_gate` so that a
user can tell at a glance that the gate, not OpenAI, said it.
"""

from __future__ import annotations

import orjson

from inference_gate.core.dialects import Dialect, error_document
from inference_gate.core.http_models import HttpResponse
from inference_gate.core.outcome import OUTCOME_HEADER, Outcome

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



class CacheMiss(GateError):
    """Replay mode has no cassette for a request: a 404 that SDKs do not retry, naming how to record it.

    It carries, for the ledger, the request as a person reads it and the closest recorded request.
    """

    def __init__(
        self,
        method: str,
        path: str,
        key: str,
        cache_dir: str,
        *,
        request: str,
        closest: str | None,
        record_command: str,
    ) -> None:
        """`record_command` is how the user of this front end records: `inference-gate start ...` or
        `pytest --inference-gate=record ...`."""
        message = (
            f"No cassette for {method} {path} (key {key[:16]}) in {cache_dir}. Replay mode never calls the "
            f"upstream. To record it, run `{record_command}` and send the request again."
        )
        if closest:
            message += f" Closest recorded request: {closest}"
        super().__init__(404, message, code="cache_miss", error_type=CACHE_MISS_TYPE, retryable=False)
        self.request = request
        self.closest = closest

def internal_error(exc: Exception) -> GateError:
    """The one error for a bug in the gate, wherever it surfaces (server or gate): the log has the traceback."""
    return GateError(
        500, f"Internal gate error ({type(exc).__name__}); the gate's log has the details.", code="internal_error"
    )


def error_outcome(error: GateError) -> Outcome:
    """A replay-mode cache miss is a `miss`; every other error the gate answers itself is an `error`."""
    return Outcome.MISS if error.error_type == CACHE_MISS_TYPE else Outcome.ERROR


def error_response(error: GateError, *, dialect: Dialect = Dialect.OPENAI) -> HttpResponse:
    """The HTTP response that reports `error` to an SDK of `dialect`, in the error shape that SDK parses."""
    headers = [
        (b"content-type", b"application/json; charset=utf-8"),
        (OUTCOME_HEADER, error_outcome(error).header_value),
    ]
    if error.retryable is not None:
        headers.append((b"x-should-retry", b"true" if error.retryable else b"false"))
    document = error_document(
        dialect, error.status, error.message, error_type=error.error_type, code=error.code, param=error.param
    )
    body = orjson.dumps(document)
    return HttpResponse(status=error.status, headers=headers, body=body)
