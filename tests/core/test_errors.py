"""The one place a failure becomes an error an SDK parses: its shape per dialect, and whether SDKs retry it."""

import orjson
import pytest

from inference_gate.core.dialects import Dialect
from inference_gate.core.errors import (
    CACHE_MISS_TYPE,
    GATE_ERROR_TYPE,
    CacheMiss,
    GateError,
    error_outcome,
    error_response,
    internal_error,
)
from inference_gate.core.outcome import OUTCOME_HEADER, Outcome


def a_miss(closest: str | None = None) -> CacheMiss:
    return CacheMiss(
        "POST",
        "/v1/chat/completions",
        "ab" * 32,
        "/cache",
        request="chat gpt-4o",
        closest=closest,
        record_command="pytest --inference-gate=record",
    )


def test_a_miss_names_the_front_ends_way_to_record():
    assert "To record it, run `pytest --inference-gate=record` and send the request again." in a_miss().message


def test_an_openai_error_has_openais_shape_and_a_gate_type():
    response = error_response(GateError(400, "bad body", code="invalid_json", param="body"))
    assert response.status == 400
    assert orjson.loads(response.body) == {
        "error": {"message": "bad body", "type": GATE_ERROR_TYPE, "param": "body", "code": "invalid_json"}
    }
    assert (b"content-type", b"application/json; charset=utf-8") in response.headers


def test_retryable_says_so_to_the_sdk_and_unset_says_nothing():
    assert (b"x-should-retry", b"false") in error_response(GateError(404, "m", code="c", retryable=False)).headers
    assert (b"x-should-retry", b"true") in error_response(GateError(503, "m", code="c", retryable=True)).headers
    assert not any(name == b"x-should-retry" for name, _ in error_response(GateError(500, "m", code="c")).headers)


def test_a_miss_is_a_404_that_is_never_retried_and_reports_as_a_miss():
    miss = a_miss()
    response = error_response(miss)
    assert response.status == 404
    assert (b"x-should-retry", b"false") in response.headers
    assert (OUTCOME_HEADER, b"miss") in response.headers
    assert orjson.loads(response.body)["error"]["type"] == CACHE_MISS_TYPE
    assert error_outcome(miss) is Outcome.MISS


def test_a_miss_names_the_key_prefix_the_directory_and_the_closest_recording():
    assert "key abababababababab" in a_miss().message and "/cache" in a_miss().message
    assert "Closest recorded request" not in a_miss().message
    assert a_miss("chat gpt-4o 'hi'").message.endswith("Closest recorded request: chat gpt-4o 'hi'")


def test_every_other_error_reports_as_an_error():
    assert error_outcome(GateError(400, "m", code="c")) is Outcome.ERROR
    assert (OUTCOME_HEADER, b"error") in error_response(GateError(400, "m", code="c")).headers


def test_an_internal_error_names_the_exception_type_but_not_its_message():
    error = internal_error(KeyError("sk-secret-in-a-message"))
    assert error.status == 500 and error.code == "internal_error"
    assert "KeyError" in error.message and "sk-secret" not in error.message


@pytest.mark.parametrize("dialect", [Dialect.ANTHROPIC, Dialect.GEMINI])
def test_another_dialects_error_is_in_that_dialects_shape(dialect):
    document = orjson.loads(error_response(GateError(429, "slow down", code="rate"), dialect=dialect).body)
    assert "slow down" in orjson.dumps(document).decode()
    assert document != orjson.loads(error_response(GateError(429, "slow down", code="rate")).body)
