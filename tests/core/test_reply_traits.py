"""core/reply_traits.py: what a program branches on, read from each dialect's body and stream."""

from inference_gate.core.reply_traits import UNREADABLE_ARGUMENTS, ReplyTraits, reply_traits, tool_call_text


def test_a_chat_stream_s_tool_call_is_put_together_from_its_pieces():
    functions = [{"name": "f", "arguments": ""}, {"arguments": '{"b": 1,'}, {"arguments": ' "a": 2}'}]
    chunks = [{"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": f}]}}]} for f in functions]
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    assert reply_traits("chat.completions", None, chunks) == ReplyTraits(("tool_calls",), (("f", ("a", "b")),))


def test_arguments_that_are_not_json_are_named_as_such():
    body = {"choices": [{"message": {"tool_calls": [{"function": {"name": "f", "arguments": "{oops"}}]}}]}
    assert reply_traits("chat.completions", body, None).tool_calls == (("f", UNREADABLE_ARGUMENTS),)


def test_a_chat_refusal_and_text():
    body = {"choices": [{"message": {"content": "Hi", "refusal": "No."}, "finish_reason": "stop"}]}
    assert reply_traits("chat.completions", body, None) == ReplyTraits(("stop",), (), refused=True, has_text=True)


def test_a_responses_stream_is_read_from_its_final_event():
    final = {"status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}, "output": [
        {"type": "message", "content": [{"type": "output_text", "text": "Hel"}]}]}  # fmt: skip
    events = [{"type": "response.created", "response": {"status": "in_progress"}},
              {"type": "response.incomplete", "response": final}]  # fmt: skip
    traits = reply_traits("responses", None, events)
    assert traits == ReplyTraits(("incomplete", "max_output_tokens"), (), has_text=True)


def test_an_anthropic_stream_s_tool_input_is_put_together():
    events = [
        {"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "name": "f", "input": {}}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": '{"q"'}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": ": 1}"}},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}},
    ]
    traits = reply_traits("messages", None, events)
    assert traits == ReplyTraits(("tool_use",), (("f", ("q",)),))
    assert tool_call_text(traits.tool_calls[0]) == "f(q)"


def test_gemini_thoughts_are_not_the_reply_s_text_and_a_blocked_prompt_is_a_refusal():
    thought = {"candidates": [{"content": {"parts": [{"text": "hmm", "thought": True}]}, "finishReason": "STOP"}]}
    assert reply_traits("generateContent", thought, None) == ReplyTraits(("STOP",))
    blocked = {"promptFeedback": {"blockReason": "SAFETY"}}
    assert reply_traits("generateContent", blocked, None) == ReplyTraits(("blocked: SAFETY",), refused=True)


def test_a_gemini_json_array_stream_is_read_chunk_by_chunk():
    chunks = [{"candidates": [{"content": {"parts": [{"text": "Hi"}]}}]}, {"candidates": [{"finishReason": "STOP"}]}]
    assert reply_traits("streamGenerateContent", chunks, None) == ReplyTraits(("STOP",), has_text=True)


def test_other_endpoints_have_no_traits():
    assert reply_traits("embeddings", {"data": []}, None) == ReplyTraits()


def test_a_realtime_session_s_responses_are_read_from_each_response_done():
    call = {"type": "function_call", "name": "get_weather", "arguments": '{"city": "Paris"}'}
    message = {"type": "message", "content": [{"type": "output_text", "text": "Blue."}]}
    events = [
        {"type": "session.created"},
        {"type": "response.done", "response": {"status": "completed", "output": [message]}},
        {"type": "response.done", "response": {"status": "incomplete", "output": [call]}},
    ]
    traits = reply_traits("realtime", None, events)
    assert traits == ReplyTraits(("completed", "incomplete"), (("get_weather", ("city",)),), has_text=True)
