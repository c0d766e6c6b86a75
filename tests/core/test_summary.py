import pytest

from inference_gate.core.summary import prompt_text, summarize, truncate

CHAT_REQUEST = {
    "model": "gpt-4o-mini",
    "temperature": 0.5,
    "max_tokens": 20,
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "What is"}, {"type": "text", "text": "2+2?"}]},
    ],
}


def test_prompt_is_the_last_user_message_or_the_input():
    assert prompt_text("chat.completions", CHAT_REQUEST) == "What is 2+2?"
    assert prompt_text("responses", {"input": "Hello"}) == "Hello"
    assert prompt_text("responses", {"input": [{"role": "user", "content": "Hi there"}]}) == "Hi there"
    assert prompt_text("embeddings", {"input": "x"}) == ""
    assert prompt_text("chat.completions", "not a dict") == ""


def test_chat_summary_keeps_model_settings_prompt_and_reply():
    response = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "4"}}]}
    summary = summarize("/v1/chat/completions", CHAT_REQUEST, response, None)
    assert summary == {
        "endpoint": "chat.completions",
        "model": "gpt-4o-mini",
        "stream": False,
        "settings": {"temperature": 0.5, "max_tokens": 20},
        "prompt": "What is 2+2?",
        "reply": "4",
    }


def test_streamed_tool_call_arguments_are_concatenated():
    chunks = [
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"name": "get_weather"}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "P"}'}}]}}]},
        "[DONE]",
    ]
    summary = summarize("/v1/chat/completions", CHAT_REQUEST, None, chunks)
    assert summary["reply"] == '[tool call] get_weather({"city": "P"})'


def test_responses_reply_from_body_and_from_stream():
    response = {"output": [{"type": "message", "content": [{"type": "output_text", "text": "Hi!"}]}]}
    assert summarize("/v1/responses", {"input": "x"}, response, None)["reply"] == "Hi!"
    events = [
        {"type": "response.output_text.delta", "delta": "H"},
        {"type": "response.output_text.delta", "delta": "i"},
        {"type": "response.completed", "response": response},
    ]
    assert summarize("/v1/responses", {"input": "x"}, None, events)["reply"] == "Hi!"
    assert summarize("/v1/responses", {"input": "x"}, None, events[:2])["reply"] == "Hi"


def test_other_endpoints_get_no_prompt_or_reply():
    assert summarize("/v1/embeddings", {"model": "e", "input": "x"}, {"data": []}, None) == {
        "endpoint": "embeddings",
        "model": "e",
        "stream": False,
    }


def test_truncate():
    assert truncate("abc", 3) == "abc"
    assert truncate("abcd", 3) == "ab…"


ANTHROPIC_REQUEST = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 64,
    "top_k": 5,
    "system": [{"type": "text", "text": "Answer in French."}],
    "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
    "messages": [
        {"role": "user", "content": "Earlier question"},
        {"role": "assistant", "content": "Earlier answer"},
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
    ],
}


def test_anthropic_summary_reads_system_tools_settings_and_content_blocks():
    response = {
        "type": "message",
        "content": [
            {"type": "thinking", "thinking": "The user wants weather.", "signature": "sig"},
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
        ],
    }
    summary = summarize("/v1/messages", ANTHROPIC_REQUEST, response, None)
    assert summary == {
        "endpoint": "messages",
        "model": "claude-sonnet-4-5",
        "stream": False,
        "settings": {"max_tokens": 64, "top_k": 5},
        "system": "Answer in French.",
        "tools": ["get_weather"],
        "prompt": "Weather in Paris?",
        "reply": '[thinking] The user wants weather.\nLet me check.\n[tool call] get_weather({"city":"Paris"})',
    }


def test_anthropic_stream_reply_is_rebuilt_from_block_events():
    events = [
        {"type": "message_start", "message": {"content": []}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Hm"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "s"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Bon"}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "jour"}},
        {"type": "content_block_stop", "index": 1},
        {"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "name": "f", "input": {}}},
        {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": '{"a"'}},
        {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": ": 1}"}},
        {"type": "content_block_stop", "index": 2},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}},
        {"type": "message_stop"},
    ]
    summary = summarize("/v1/messages", ANTHROPIC_REQUEST, b"", events)
    assert summary["reply"] == '[thinking] Hm\nBonjour\n[tool call] f({"a": 1})'
    assert summary["stream"] is True


GEMINI_REQUEST = {
    "contents": [
        {"role": "user", "parts": [{"text": "Say"}, {"text": "hello"}]},
        {"role": "model", "parts": [{"text": "Hello"}]},
        {"parts": [{"text": "Again, in German"}]},
    ],
    "generationConfig": {"temperature": 0.1},
}


def test_gemini_summary_reads_contents_parts_and_names_the_model_from_the_path():
    response = {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hallo"}]}}]}
    summary = summarize("/v1beta/models/gemini-2.0-flash:generateContent", GEMINI_REQUEST, response, None)
    assert summary == {
        "endpoint": "generateContent",
        "model": "gemini-2.0-flash",
        "stream": False,
        "settings": {"generationConfig": {"temperature": 0.1}},
        "prompt": "Again, in German",
        "reply": "Hallo",
    }


def test_gemini_stream_reply_joins_the_chunks_in_sse_or_as_one_json_array():
    chunks = [
        {"candidates": [{"content": {"parts": [{"text": "Hal"}]}}]},
        {"candidates": [{"content": {"parts": [{"text": "lo"}]}}]},
        {"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "args": {"x": 1}}}]}}]},
    ]
    path = "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
    expected = 'Hallo\n[tool call] f({"x":1})'
    assert summarize(path, GEMINI_REQUEST, b"", chunks)["reply"] == expected
    assert summarize(path, GEMINI_REQUEST, chunks, None)["reply"] == expected


def test_azure_deployment_is_the_model_when_the_body_names_none():
    request = {"messages": [{"role": "user", "content": "Hi"}]}
    response = {"choices": [{"message": {"content": "Hello"}}]}
    summary = summarize("/openai/deployments/my-gpt4o/chat/completions", request, response, None)
    assert (summary["endpoint"], summary["model"], summary["prompt"], summary["reply"]) == (
        "chat.completions",
        "my-gpt4o",
        "Hi",
        "Hello",
    )


@pytest.mark.parametrize(
    ("path", "request_body", "response_body", "stream_data"),
    [
        ("/v1/messages", {"tools": 5, "system": 7, "messages": "x"}, {"content": "not blocks"}, None),
        (
            "/v1/messages",
            {"messages": [{"role": "user", "content": 3}]},
            {"content": [{"type": "text", "text": 1}]},
            None,
        ),
        (
            "/v1/messages",
            {},
            b"",
            [
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}},
                {"type": "content_block_delta", "index": 0, "delta": "junk"},
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": 9}},
                {"type": "content_block_delta", "index": 7, "delta": {}},
                "not an event",
            ],
        ),
        ("/v1beta/models/m:generateContent", {"contents": "x"}, {"candidates": {"0": 1}}, None),
        (
            "/v1beta/models/m:generateContent",
            {"contents": [{"parts": 4}]},
            {"candidates": [{"content": {"parts": 3}}]},
            None,
        ),
        (
            "/v1beta/models/m:streamGenerateContent",
            {},
            b"",
            [{"candidates": [{"content": {"parts": [{"text": 2}]}}]}, 5],
        ),
    ],
)
def test_malformed_bodies_summarize_without_error(path, request_body, response_body, stream_data):
    summary = summarize(path, request_body, response_body, stream_data)
    assert (summary["prompt"], summary["reply"]) == ("", "")
