"""An HTTP request in its canonical form, or the 400 that says why it has none.

The gate keys every request it is sent; a body that cannot be keyed (JSON nested past the limit, a broken
multipart form, JSON that is not JSON) is the client's mistake, answered with an error the SDK does not retry.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from inference_gate.core.errors import GateError
from inference_gate.core.http_models import HttpRequest
from inference_gate.core.key_rules import KeyRules
from inference_gate.core.keys import CanonicalRequest, JsonTooDeepError, canonicalize
from inference_gate.core.multipart import MultipartError

# orjson's errors for numbers that are valid JSON but that it cannot represent (older orjson refuses integers wider
# than 64 bits; every version refuses a number beyond a double's range). Such a body is keyed by its bytes.
_UNREPRESENTABLE_NUMBER = ("64-bit", "infinity")


def json_problem(body: bytes) -> str | None:
    """Why a body sent as JSON that the key could not read as JSON is not valid JSON, in orjson's words; None
    when it is valid JSON that orjson only cannot represent. Read only for a body that already failed to parse."""
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError as error:
        return None if any(marker in str(error) for marker in _UNREPRESENTABLE_NUMBER) else str(error)
    return None


def canonical_request(
    request: HttpRequest, rules: KeyRules, chained: Callable[[str], str | None]
) -> CanonicalRequest:
    """`request` canonicalized under the key `rules`, a chained response id keyed by `chained` (chains.py)."""
    content_type = request.header(b"content-type") or b""
    try:
        canonical = canonicalize(
            request.method,
            request.target,
            request.body,
            content_type=content_type.decode("latin-1"),
            rules=rules,
            chained=chained,
        )
    except JsonTooDeepError as error:
        raise GateError(400, str(error), code="json_too_deep", retryable=False) from None
    except MultipartError as error:
        raise GateError(400, str(error), code="invalid_multipart", retryable=False) from None
    if request.body and not canonical.is_json and content_type.startswith(b"application/json"):
        problem = json_problem(request.body)
        if problem is not None:
            raise GateError(
                400, f"The request body is not valid JSON ({problem}).", code="invalid_json", retryable=False
            )
    return canonical
