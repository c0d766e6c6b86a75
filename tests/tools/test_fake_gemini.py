"""The fake Gemini API speaks the REST wire format: checked as data, and over HTTP with a plain client."""

from __future__ import annotations

import orjson
import pytest
import trio

from inference_gate.core.sse import SSEParser
from tests.plain_http import post_json
from tests.servers import running_upstream
from tools.fake_gemini import FakeGemini, build_gemini_reply
from tools.fake_upstream import ReceivedRequest

KEY = "AIza-fake-gemini-key-for-tests-0123456789"
GENERATE = "/v1beta/models/gemini-2.0-flash:generateContent"
STREAM = "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
BODY = {"contents": [{"role": "user", "parts": [{"text": "Bonjour"}]}]}
ECHO = "Echo: Bonjour — héllo wörld 你好 🌍"
DEADLINE_S = 10


def request(target: str, body=BODY, headers=None) -> ReceivedRequest:
    headers = {"x-goog-api-key": KEY} if headers is None else headers
    return ReceivedRequest("POST", target, headers, orjson.dumps(body), body)


def payload(reply):
    return reply.status, orjson.loads(b"".join(reply.parts))


def text_of(chunks) -> str:
    return "".join(part["text"] for chunk in chunks for part in chunk["candidates"][0]["content"]["parts"])


def test_generate_content_has_the_published_shape():
    status, response = payload(build_gemini_reply(request(GENERATE), expected_api_key=KEY))
    assert status == 200
    candidate = response["candidates"][0]
    assert (candidate["content"]["role"], candidate["finishReason"], response["modelVersion"]) == (
        "model",
        "STOP",
        "gemini-2.0-flash",
    )
    assert text_of([response]) == ECHO and response["usageMetadata"]["totalTokenCount"] > 0


def test_stream_is_sse_with_alt_sse_and_a_json_array_without():
    reply = build_gemini_reply(request(STREAM + "?alt=sse"), expected_api_key=KEY)
    parser = SSEParser()
    events = [orjson.loads(event.data) for part in reply.parts for event in parser.feed(part)]
    assert reply.is_event_stream and len(events) > 1 and text_of(events) == ECHO
    assert [chunk["candidates"][0].get("finishReason") for chunk in events][-2:] == [None, "STOP"]
    status, array = payload(build_gemini_reply(request(STREAM), expected_api_key=KEY))
    assert status == 200 and array == events


def test_the_key_may_come_in_the_query():
    reply = build_gemini_reply(request(f"{GENERATE}?key={KEY}", headers={}), expected_api_key=KEY)
    assert reply.status == 200


@pytest.mark.parametrize(
    ("target", "headers", "body", "code", "status"),
    [
        (GENERATE, {}, BODY, 403, "PERMISSION_DENIED"),
        (GENERATE, {"x-goog-api-key": "wrong"}, BODY, 400, "INVALID_ARGUMENT"),
        ("/v1beta/models/gemini-2.0-flash:predict", None, BODY, 404, "NOT_FOUND"),
        (GENERATE, None, {"contents": []}, 400, "INVALID_ARGUMENT"),
    ],
    ids=["no-key", "wrong-key", "unknown-method", "no-contents"],
)
def test_refusals_have_googles_error_shape(target, headers, body, code, status):
    got, error = payload(build_gemini_reply(request(target, body, headers), expected_api_key=KEY))
    assert got == code
    assert (error["error"]["code"], error["error"]["status"]) == (code, status) and error["error"]["message"]


async def test_served_over_http():
    upstream = FakeGemini(expected_api_key=KEY)
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            response = await post_json(upstream.url, GENERATE, BODY, {"x-goog-api-key": KEY})
            streamed = await post_json(upstream.url, f"{STREAM}?alt=sse&key={KEY}", BODY)
    assert response.status == 200 and text_of([response.json()]) == ECHO
    assert streamed.headers["content-type"] == "text/event-stream"
    lines = streamed.body.decode().splitlines()
    chunks = [orjson.loads(line[len("data: ") :]) for line in lines if line.startswith("data: ")]
    assert text_of(chunks) == ECHO
