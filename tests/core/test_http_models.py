"""The HTTP models the I/O shell and the core exchange: a request's path, query and headers as the core reads them."""

from inference_gate.core.http_models import HttpRequest, HttpResponse


def test_the_target_splits_into_path_and_query_at_the_first_question_mark():
    request = HttpRequest("GET", "/v1/models?a=1&b=?2", [])
    assert (request.path, request.query) == ("/v1/models", "a=1&b=?2")
    assert (HttpRequest("GET", "/v1/models", []).query) == ""


def test_header_returns_the_first_value_of_a_lower_case_name_or_none():
    request = HttpRequest("POST", "/", [(b"x-a", b"1"), (b"x-a", b"2"), (b"content-type", b"json")])
    assert request.header(b"x-a") == b"1"
    assert request.header(b"content-type") == b"json"
    assert request.header(b"authorization") is None


def test_a_response_sent_once_is_framed_per_exchange_and_one_sent_again_keeps_its_framing():
    assert HttpResponse(200).keep_alive_wire == b""
    assert HttpResponse(200, keep_alive_wire=None).keep_alive_wire is None
    assert HttpResponse(200).headers == [] and HttpResponse(200).headers is not HttpResponse(200).headers
