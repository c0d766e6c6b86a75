from inference_gate.dialects import endpoint_name
from inference_gate.summary import prompt_text, summarize, truncate

CHAT_REQUEST = {
    "model": "gpt-4o-mini",
    "temperature": 0.5,
    "max_tokens": 20,
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "What is"}, {"type": "text", "text": "2+2?"}]},
    ],
}


def test_endpoint_names():
    assert endpoint_name("/v1/chat/completions") == "chat.completions"
    assert endpoint_name("/chat/completions") == "chat.completions"
    assert endpoint_name("/v1/responses") == "responses"
    assert endpoint_name("/") == "root"


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
