"""tools/fake_drift.py: each drift changes the fake's answer in its one way, and only for its prompt."""

import orjson

from tools.fake_drift import NEW_FIELD_NAME, Drift, DriftingUpstream, prompt_of
from tools.fake_replies import ReceivedRequest

HEADERS = {"authorization": "Bearer sk-test", "content-type": "application/json"}


def request(prompt: str, *, stream: bool = False) -> ReceivedRequest:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}], "stream": stream}
    data = orjson.dumps(body)
    return ReceivedRequest("POST", "/v1/chat/completions", HEADERS, data, body)


def answer(upstream: DriftingUpstream, prompt: str) -> dict:
    return orjson.loads(b"".join(upstream.build_reply(request(prompt)).parts))


def test_the_prompt_is_the_last_user_message_or_the_input():
    assert prompt_of({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}) == "a"
    assert prompt_of({"input": "c"}) == "c"


def test_new_ids_keep_the_text_and_change_the_ids():
    plain, drifted = answer(DriftingUpstream(), "Hi"), answer(DriftingUpstream({"Hi": Drift.NEW_IDS}), "Hi")
    assert plain["id"] != drifted["id"]
    assert plain["choices"][0]["message"] == drifted["choices"][0]["message"]


def test_a_drift_applies_to_its_prompt_only():
    upstream = DriftingUpstream({"Hi": Drift.NEW_FIELD})
    assert NEW_FIELD_NAME in answer(upstream, "Hi") and NEW_FIELD_NAME not in answer(upstream, "Hello")


def test_a_dropped_event_type_leaves_out_done_and_a_rate_limit_comes_once():
    parts = DriftingUpstream({"Hi": Drift.DROPPED_EVENT_TYPE}).build_reply(request("Hi", stream=True)).parts
    assert parts and b"[DONE]" not in b"".join(parts)
    upstream = DriftingUpstream({"Hi": Drift.RATE_LIMITED_ONCE})
    assert [upstream.build_reply(request("Hi")).status for _ in range(2)] == [429, 200]
