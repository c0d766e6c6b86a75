"""A fake upstream that mints new ids, timestamps and request ids on every call, as the real API does.

tools/fake_upstream.py answers the same request with the same bytes on purpose; takes and refresh need
answers that differ between calls, in the volatile values only or in the text too.
"""

from __future__ import annotations

import dataclasses

from tools import fake_replies
from tools.fake_upstream import FakeUpstream

NUMBERED = "numbered"  # `text` value: each call's answer ends with the call's number


class MintingUpstream(FakeUpstream):
    """Non-streamed chat completions whose `id`, `created`, `system_fingerprint` and `x-request-id` are new on
    every call. `text` replaces the answer's text; `NUMBERED` appends `(call N)` to it instead."""

    def __init__(self, *, text: str | None = None) -> None:
        super().__init__()
        self.text = text

    def build_reply(self, request: fake_replies.ReceivedRequest) -> fake_replies.Reply:
        call = len(self.requests)
        payload = fake_replies.chat_completion(request.json, request.body)
        payload.update(id=f"chatcmpl-minted{call}", created=1_800_000_000 + call, system_fingerprint=f"fp_{call}")
        message = payload["choices"][0]["message"]
        if self.text == NUMBERED:
            message["content"] += f" (call {call})"
        elif self.text is not None:
            message["content"] = self.text
        reply = fake_replies.json_reply(request, 200, payload)
        headers = [
            (name, f"req_minted{call}".encode() if name == b"x-request-id" else value) for name, value in reply.headers
        ]
        return dataclasses.replace(reply, headers=headers)


class MintingResponses(FakeUpstream):
    """Non-streamed Responses API answers whose response and message ids are new on every call, as the real API's
    are; the text comes from the prompt alone, so a refreshed chain's answers differ in their ids only."""

    def build_reply(self, request: fake_replies.ReceivedRequest) -> fake_replies.Reply:
        call = len(self.requests)
        payload = fake_replies.response_object(request.json, request.body)
        payload["id"] = f"resp_minted{call:04d}"
        [message] = payload["output"]
        message["id"] = f"msg_minted{call:04d}"
        message["content"][0]["text"] = fake_replies.reply_text(request.json["input"])
        return fake_replies.json_reply(request, 200, payload)
