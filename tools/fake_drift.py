"""A fake OpenAI API that has drifted since the cassettes were recorded, in one chosen way per prompt.

`inference-gate verify` compares today's answers with recorded ones (inference_gate/core/drift.py). The plain
fake answers the same request with the same bytes, so it never drifts; `DriftingUpstream` does, for the prompts
in its `drifts` map (the last user message of a chat, or a Responses `input`), and answers every other prompt as
the plain fake does:

- `NEW_IDS`: the same text, with new ids, timestamps and request ids (the answer is the same);
- `REWORDED`: other text, the same shape;
- `NEW_FIELD`: a top-level field the API did not send before, in the body or in every stream chunk;
- `DROPPED_EVENT_TYPE`: a stream without one of its event types (Chat Completions' `[DONE]`, the Responses
  API's `response.in_progress`);
- `FINISH_REASON`: the answer stops for another reason (`length` instead of `stop`);
- `SERVER_ERROR`: a 500 in OpenAI's error shape;
- `RATE_LIMITED_ONCE`: a 429 with `retry-after-ms` the first time, then the plain answer.
"""

from __future__ import annotations

import enum
from typing import Any

import orjson

from tools import fake_replies
from tools.fake_upstream import FakeUpstream

NEW_FIELD_NAME = "verbosity_hint"
RETRY_AFTER_MS = b"50"
REWORDING = " (said another way)"


class Drift(enum.Enum):
    NEW_IDS = "new ids"
    REWORDED = "reworded"
    NEW_FIELD = "new field"
    DROPPED_EVENT_TYPE = "dropped event type"
    FINISH_REASON = "finish reason"
    SERVER_ERROR = "server error"
    RATE_LIMITED_ONCE = "rate limited once"


def prompt_of(body: Any) -> str:
    """The prompt a drift is chosen by: the last user message of a chat, or a Responses `input`."""
    if not isinstance(body, dict):
        return ""
    given = body.get("messages") if "messages" in body else body.get("input")
    if isinstance(given, str):
        return given
    for message in reversed(given if isinstance(given, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            return fake_replies.text_of(message.get("content"))
    return ""


def _reworded(body: dict[str, Any]) -> dict[str, Any]:
    """The body with its prompt reworded: the fake's answer echoes the prompt, so its text changes."""
    if isinstance(body.get("input"), str):
        return {**body, "input": body["input"] + REWORDING}
    messages = [dict(message) for message in body["messages"]]
    messages[-1]["content"] = prompt_of(body) + REWORDING
    return {**body, "messages": messages}


class DriftingUpstream(FakeUpstream):
    """The fake OpenAI API, drifted as `drifts` says for each prompt."""

    def __init__(self, drifts: dict[str, Drift] | None = None) -> None:
        super().__init__()
        self.drifts = dict(drifts or {})
        self._rate_limited: set[str] = set()

    def build_reply(self, request: fake_replies.ReceivedRequest) -> fake_replies.Reply:
        prompt = prompt_of(request.json)
        drift = self.drifts.get(prompt)
        routed = request.path in (fake_replies.CHAT_COMPLETIONS, fake_replies.RESPONSES)
        if drift is None or not routed or "authorization" not in request.headers:  # the plain fake refuses no key
            return super().build_reply(request)
        if drift is Drift.RATE_LIMITED_ONCE:
            if prompt in self._rate_limited:
                return super().build_reply(request)
            self._rate_limited.add(prompt)
            payload = fake_replies.error_payload("Rate limit reached.", error_type="requests", code="rate_limit")
            wait = [(b"retry-after-ms", RETRY_AFTER_MS)]
            return fake_replies.error_reply(request, 429, payload, extra_headers=wait)
        if drift is Drift.SERVER_ERROR:
            payload = fake_replies.error_payload("The server had an error.", error_type="server_error", code=None)
            return fake_replies.error_reply(request, 500, payload)
        body = _reworded(request.json) if drift is Drift.REWORDED else request.json
        seed = request.body + (b"\0another call" if drift is Drift.NEW_IDS else b"")
        if body.get("stream") is True:
            return fake_replies.event_stream_reply(request, self._events(request.path, body, seed, drift))
        return fake_replies.json_reply(request, 200, self._payload(request.path, body, seed, drift))

    @staticmethod
    def _payload(path: str, body: dict[str, Any], seed: bytes, drift: Drift) -> dict[str, Any]:
        if path == fake_replies.RESPONSES:
            payload = fake_replies.response_object(body, seed)
        else:
            payload = fake_replies.chat_completion(body, seed)
            if drift is Drift.FINISH_REASON:
                payload["choices"][0]["finish_reason"] = "length"
        return {**payload, NEW_FIELD_NAME: "low"} if drift is Drift.NEW_FIELD else payload

    @staticmethod
    def _events(path: str, body: dict[str, Any], seed: bytes, drift: Drift) -> list[bytes]:
        if path == fake_replies.RESPONSES:
            events = fake_replies.response_events(body, seed)
            if drift is Drift.DROPPED_EVENT_TYPE:
                events = [event for event in events if event["type"] != "response.in_progress"]
            extra = {NEW_FIELD_NAME: "low"} if drift is Drift.NEW_FIELD else {}
            return [b"event: %s\ndata: %s\n\n" % (e["type"].encode(), orjson.dumps({**e, **extra})) for e in events]
        chunks = fake_replies.chat_completion_chunks(body, seed)
        for chunk in chunks:
            for choice in chunk["choices"]:
                if drift is Drift.FINISH_REASON and choice["finish_reason"] is not None:
                    choice["finish_reason"] = "length"
            if drift is Drift.NEW_FIELD:
                chunk[NEW_FIELD_NAME] = "low"
        done = [] if drift is Drift.DROPPED_EVENT_TYPE else [b"data: [DONE]\n\n"]
        return [b"data: " + orjson.dumps(chunk) + b"\n\n" for chunk in chunks] + done
