"""A request's canonical form, or the 400 an SDK does not retry, saying why it has none."""

import pytest

from inference_gate.core.errors import GateError
from inference_gate.core.http_models import HttpRequest
from inference_gate.core.key_rules import KeyRules
from inference_gate.core.keys import canonicalize
from inference_gate.core.request_form import canonical_request, json_problem

JSON = [(b"content-type", b"application/json")]


def no_chains(response_id: str) -> str | None:
    return None


def test_a_json_request_has_the_form_canonicalize_gives_it():
    body = b'{"model": "m", "messages": []}'
    canonical = canonical_request(HttpRequest("POST", "/v1/chat/completions", JSON, body), KeyRules(), no_chains)
    assert canonical.key == canonicalize("POST", "/v1/chat/completions", body, content_type="application/json").key


@pytest.mark.parametrize(
    ("body", "headers", "code"),
    [
        (b'{"model": ', JSON, "invalid_json"),
        (b"[" * 10_000 + b"]" * 10_000, JSON, "json_too_deep"),
        (b"--x\r\nbroken", [(b"content-type", b"multipart/form-data; boundary=x")], "invalid_multipart"),
    ],
)
def test_a_body_that_cannot_be_keyed_is_a_400_that_is_not_retried(body, headers, code):
    with pytest.raises(GateError) as raised:
        canonical_request(HttpRequest("POST", "/v1/chat/completions", headers, body), KeyRules(), no_chains)
    assert (raised.value.status, raised.value.code, raised.value.retryable) == (400, code, False)


def test_json_beyond_a_doubles_range_is_valid_json_and_keyed_by_its_bytes():
    body = b'{"n": 1e999}'
    assert json_problem(body) is None
    assert json_problem(b'{"n": }') is not None
    canonical = canonical_request(HttpRequest("POST", "/v1/embeddings", JSON, body), KeyRules(), no_chains)
    assert not canonical.is_json and canonical.body == body
