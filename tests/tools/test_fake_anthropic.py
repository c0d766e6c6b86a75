"""The fake Anthropic API speaks the Messages wire format: checked as data, and through the `anthropic` SDK."""

from __future__ import annotations

import anthropic
import orjson
import pytest
import trio

from inference_gate.core.sse import SSEParser
from tests.servers import running_upstream
from tools.fake_anthropic import FakeAnthropic, build_anthropic_reply
from tools.fake_upstream import ReceivedRequest

KEY = "sk-ant-fake-key-for-tests-0123456789"
HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01", "content-type": "application/json"}
BODY = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "Bonjour"}]}
DEADLINE_S = 10


def request(body, *, path="/v1/messages", headers=HEADERS) -> ReceivedRequest:
    raw = orjson.dumps(body)
    return ReceivedRequest("POST", path, dict(headers), raw, body)


def reply_json(reply):
    return reply.status, orjson.loads(b"".join(reply.parts))


def reply_events(reply) -> list[dict]:
    parser = SSEParser()
    events = [event for part in reply.parts for event in parser.feed(part)]
    assert all(orjson.loads(event.data)["type"] == event.event for event in events)
    return [orjson.loads(event.data) for event in events]


def test_message_has_the_published_shape():
    status, message = reply_json(build_anthropic_reply(request(BODY), expected_api_key=KEY))
    assert status == 200
    assert (message["type"], message["role"], message["model"], message["stop_reason"]) == (
        "message",
        "assistant",
        "claude-sonnet-4-5",
        "end_turn",
    )
    assert message["content"] == [{"type": "text", "text": "Echo: Bonjour — héllo wörld 你好 🌍"}]
    assert message["id"].startswith("msg_") and message["usage"]["output_tokens"] > 0


def test_stream_follows_the_published_event_sequence_with_every_delta_kind():
    body = {**BODY, "stream": True, "thinking": {"type": "enabled", "budget_tokens": 1024}}
    body["tools"] = [{"name": "get_weather", "input_schema": {"type": "object"}}]
    events = reply_events(build_anthropic_reply(request(body), expected_api_key=KEY))
    kinds = [event["type"] for event in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds[1:3] == ["content_block_start", "ping"]
    starts = [event["content_block"]["type"] for event in events if event["type"] == "content_block_start"]
    assert starts == ["thinking", "text", "tool_use"]
    delta_kinds = {event["delta"]["type"] for event in events if event["type"] == "content_block_delta"}
    assert delta_kinds == {"thinking_delta", "signature_delta", "text_delta", "input_json_delta"}
    deltas = [event["delta"] for event in events if event["type"] == "content_block_delta"]
    tool_json = "".join(delta["partial_json"] for delta in deltas if delta["type"] == "input_json_delta")
    assert orjson.loads(tool_json) == {"city": "Paris"}
    assert events[-2]["delta"]["stop_reason"] == "tool_use"


def test_count_tokens():
    status, counted = reply_json(
        build_anthropic_reply(request(BODY, path="/v1/messages/count_tokens"), expected_api_key=KEY)
    )
    assert status == 200 and counted["input_tokens"] >= 1


@pytest.mark.parametrize(
    ("headers", "body", "path", "status", "error_type"),
    [
        ({"anthropic-version": "2023-06-01"}, BODY, "/v1/messages", 401, "authentication_error"),
        ({**HEADERS, "x-api-key": "wrong"}, BODY, "/v1/messages", 401, "authentication_error"),
        ({"x-api-key": KEY}, BODY, "/v1/messages", 400, "invalid_request_error"),
        (HEADERS, BODY, "/v1/complete", 404, "not_found_error"),
        (
            HEADERS,
            {"model": "claude-sonnet-4-5", "messages": BODY["messages"]},
            "/v1/messages",
            400,
            "invalid_request_error",
        ),
        (HEADERS, {**BODY, "messages": []}, "/v1/messages", 400, "invalid_request_error"),
    ],
    ids=["no-key", "wrong-key", "no-version", "unknown-path", "no-max-tokens", "no-messages"],
)
def test_refusals_have_anthropics_error_shape(headers, body, path, status, error_type):
    got_status, error = reply_json(
        build_anthropic_reply(request(body, path=path, headers=headers), expected_api_key=KEY)
    )
    assert got_status == status
    assert error["type"] == "error" and error["error"]["type"] == error_type and error["error"]["message"]


async def test_the_anthropic_sdk_parses_the_fake():
    upstream = FakeAnthropic(expected_api_key=KEY)
    with trio.fail_after(DEADLINE_S):
        async with (
            running_upstream(upstream),
            anthropic.AsyncAnthropic(base_url=upstream.url, api_key=KEY, max_retries=0) as client,
        ):
            message = await client.messages.create(**BODY)
            async with client.messages.stream(**BODY) as stream:
                streamed = await stream.get_final_message()
            with pytest.raises(anthropic.AuthenticationError):
                await client.with_options(api_key="wrong").messages.create(**BODY)
    assert message.content[0].text == streamed.content[0].text == "Echo: Bonjour — héllo wörld 你好 🌍"
