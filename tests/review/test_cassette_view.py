
import orjson
import pytest

from inference_gate.review.cassette_view import Reply, ToolCall, Turn, shorten, view_lines, view_of
from tests.cassettes import EXAMPLES, example_name


def example(name: str):
    return view_of(name, orjson.loads((EXAMPLES / name).read_bytes()))


def test_a_streamed_chat_is_reassembled_with_its_usage():
    view = example(example_name("chat.completions", "write-a-haiku-about-caching"))
    assert (view.endpoint, view.method, view.stream, view.model) == ("chat.completions", "POST", True, "gpt-4o-mini")
    assert view.settings == {"temperature": 0.7}
    assert view.turns == (Turn("system", "You are a poet."), Turn("user", "Write a haiku about caching"))
    assert view.prompt == "Write a haiku about caching"
    assert view.reply.text == "Echo: Write a haiku about caching — héllo wörld 你好 🌍"
    assert view.reply.finish_reason == "stop"
    assert view.reply.usage["total_tokens"] == view.reply.usage["prompt_tokens"] + view.reply.usage["completion_tokens"]
    assert view.takes == 1


def test_a_tool_call_and_the_tools_offered():
    view = example(example_name("chat.completions", "what-is-the-weather-in-paris"))
    assert view.tools == ("get_weather",)
    assert view.reply == Reply(
        text="",
        tool_calls=(ToolCall("get_weather", '{"city":"Paris"}'),),
        finish_reason="tool_calls",
        usage=view.reply.usage,
        model="gpt-4o-mini",
    )


@pytest.mark.parametrize(
    "name",
    [
        example_name("responses", "explain-sse-in-one-sentence"),
        example_name("responses", "tell-me-a-one-line-joke-about-http"),
    ],
)
def test_responses_plain_and_streamed_read_the_same(name):
    view = example(name)
    assert view.reply.text.startswith("Echo: ") and view.reply.finish_reason == "completed"
    assert view.reply.usage and view.turns[-1].role == "user"


def test_a_streamed_tool_call_is_joined_from_its_pieces():
    chunks = [
        {
            "choices": [
                {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": ""}}]}}
            ]
        },
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        "[DONE]",
    ]
    document = {
        "request": {"path": "/v1/chat/completions", "method": "POST", "body": {"model": "m", "messages": []}},
        "takes": [{"response": {"status": 200, "events": [{"data": chunk} for chunk in chunks]}}, {}, {}],
    }
    view = view_of("x", document)
    assert view.reply.tool_calls == (ToolCall("f", '{"a":1}'),)
    assert view.reply.finish_reason == "tool_calls"
    assert view.takes == 3


def test_an_error_reply_reads_as_its_message():
    document = {
        "request": {"path": "/v1/chat/completions", "body": {"model": "fault-429"}},
        "response": {
            "status": 429,
            "body": {"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}},
        },
    }
    reply = view_of("x", document).reply
    assert (reply.text, reply.finish_reason) == ("error: Rate limit reached", "rate_limit_exceeded")


def test_a_malformed_document_reads_as_empty_rather_than_failing():
    view = view_of("x", {"request": [], "response": {"body": "text", "events": "no"}})
    assert (view.endpoint, view.turns, view.reply, view.status) == ("root", (), Reply(), None)


def test_shorten_says_by_how_much():
    assert shorten("abc", 3) == "abc"
    assert shorten("a" * 1500, 400) == "a" * 400 + "… (1,100 more characters)"


def test_view_lines_show_request_then_reply():
    lines = view_lines(example(example_name("chat.completions", "what-is-the-weather-in-paris")))
    assert lines.index("request:") < lines.index("reply (status 200):")
    assert '  tool call: get_weather({"city":"Paris"})' in lines
    assert "  tools:     get_weather" in lines


def test_a_websocket_session_reads_as_client_turns_and_the_servers_text():
    from inference_gate.core.session_cassette import session_to_bytes
    from tests.sessions import realtime_session

    view = view_of("realtime/hello.json", orjson.loads(session_to_bytes(realtime_session())))
    assert [turn.text for turn in view.turns] == ["conversation.item.create: hello", "response.create"]
    assert (view.reply.text, view.status, view.model) == ("Hi there", 101, "gpt-realtime")
    assert "  endpoint:  realtime (GET /v1/realtime)" in view_lines(view)
