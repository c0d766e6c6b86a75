"""The fake's replies as pure values: built from a request without a socket, the same bytes every time."""

import subprocess
import sys

import orjson

from tools.fake_replies import CHAT_COMPLETIONS, ReceivedRequest, build_reply

KEY = "sk-test-0123456789abcdefWXYZ"


def chat_request(body: dict) -> ReceivedRequest:
    raw = orjson.dumps(body)
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    return ReceivedRequest("POST", CHAT_COMPLETIONS, headers, raw, body)


def test_the_reply_builder_imports_neither_trio_nor_h11():
    code = "import sys, tools.fake_replies; print(sorted({'trio', 'h11'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout == "[]\n"


def test_the_same_request_gets_the_same_bytes():
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say OK"}], "stream": True}
    first = build_reply(chat_request(body), expected_api_key=KEY)
    second = build_reply(chat_request(body), expected_api_key=KEY)
    assert first.status == 200
    assert first.is_event_stream
    assert first.parts == second.parts
    assert first.parts[-1] == b"data: [DONE]\n\n"


def test_a_wrong_key_is_a_401_before_routing():
    reply = build_reply(chat_request({"model": "gpt-4o-mini"}), expected_api_key="sk-other")
    assert reply.status == 401
