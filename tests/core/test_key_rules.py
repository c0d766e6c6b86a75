import copy
import re

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from inference_gate.core.key_rules import KEY_RULES_VERSION, KeyRuleError, KeyRules, NormalizeRule

DATE = {"path": "body.messages[*].content", "pattern": r"\d{4}-\d{2}-\d{2}", "replace": "<date>"}


def chat(*messages: dict, **fields: object) -> dict:
    return {"model": "gpt-4o-mini", "messages": list(messages), **fields}


def test_ignore_drops_body_paths_and_query_parameters():
    rules = KeyRules.from_config(["body.metadata", "body.user", "query.request_id"], None, tool_call_ids=False)
    body = chat({"role": "user", "content": "Hi"}, user="u-1", metadata={"trace": "t-9"})
    keyed = rules.apply(body, [("api-version", "1"), ("request_id", "r-1")])
    assert keyed.json_body == chat({"role": "user", "content": "Hi"})
    assert keyed.query == (("api-version", "1"),)
    assert keyed.changed_paths == ("body.metadata", "body.user", "query.request_id")


def test_ignore_removes_every_list_item_a_wildcard_reaches():
    rules = KeyRules.from_config(["body.messages[*].name", "body.stop[1]"], None)
    keyed = rules.apply(chat({"role": "user", "name": "a"}, {"role": "user"}, stop=["x", "y", "z"]), [])
    assert keyed.json_body == chat({"role": "user"}, {"role": "user"}, stop=["x", "z"])
    assert keyed.changed_paths == ("body.messages[0].name", "body.stop[1]")


def test_normalize_rewrites_every_string_under_the_path_and_nothing_else():
    rules = KeyRules.from_config(None, [DATE])
    body = chat(
        {"role": "system", "content": "Today is 2026-12-02."},
        {"role": "user", "content": [{"type": "text", "text": "since 2025-01-01"}]},
        {"role": "user", "content": "no date"},
        seed=20261202,
        metadata={"day": "2026-12-02"},
    )
    keyed = rules.apply(body, [])
    assert keyed.json_body["messages"][0]["content"] == "Today is <date>."
    assert keyed.json_body["messages"][1]["content"] == [{"type": "text", "text": "since <date>"}]
    assert keyed.json_body["messages"][2]["content"] == "no date"
    assert keyed.json_body["metadata"] == {"day": "2026-12-02"}
    assert keyed.changed_paths == ("body.messages[0].content", "body.messages[1].content")


def test_normalize_rewrites_query_values():
    rules = KeyRules.from_config(None, [{"path": "query.after", "pattern": r"\d+", "replace": "N"}])
    keyed = rules.apply(None, [("after", "17"), ("limit", "17")])
    assert keyed.query == (("after", "N"), ("limit", "17"))
    assert keyed.changed_paths == ("query.after",)


def test_rules_never_touch_the_request_they_key():
    rules = KeyRules.from_config(["body.user"], [DATE])
    body = chat({"role": "user", "content": "2026-12-02"}, user="u")
    original = copy.deepcopy(body)
    rules.apply(body, [])
    assert body == original


def test_tool_call_ids_are_numbered_by_first_appearance_wherever_they_appear():
    body = chat(
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "tool_calls": [{"id": "call_xyz", "type": "function"}, {"id": "call_abc", "type": "function"}],
        },
        {"role": "tool", "tool_call_id": "call_abc", "content": "sun"},
        {"role": "tool", "tool_call_id": "call_xyz", "content": "rain"},
    )
    keyed = KeyRules.default().apply(body, [])
    messages = keyed.json_body["messages"]
    assert [call["id"] for call in messages[1]["tool_calls"]] == ["call_1", "call_2"]
    assert [messages[2]["tool_call_id"], messages[3]["tool_call_id"]] == ["call_2", "call_1"]
    assert "body.messages[3].tool_call_id" in keyed.changed_paths


def test_the_same_turn_with_fresh_ids_keys_alike_but_a_swapped_pairing_does_not():
    def turn(first: str, second: str, answered: str) -> dict:
        calls = [{"id": first}, {"id": second}]
        return chat({"role": "assistant", "tool_calls": calls}, {"role": "tool", "tool_call_id": answered})

    rules = KeyRules.default()
    recorded = rules.apply(turn("call_a", "call_b", "call_a"), []).json_body
    assert rules.apply(turn("call_x", "call_y", "call_x"), []).json_body == recorded
    assert rules.apply(turn("call_x", "call_y", "call_y"), []).json_body != recorded


def test_responses_and_anthropic_tool_ids_are_numbered_too():
    call, output = {"type": "function_call", "call_id": "c9"}, {"type": "function_call_output", "call_id": "c9"}
    responses = {"input": [call, output]}
    keyed_input = KeyRules.default().apply(responses, []).json_body["input"]
    assert [item["call_id"] for item in keyed_input] == ["call_1", "call_1"]
    anthropic = chat(
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_q"}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_q"}, {"type": "text", "id": "k"}]},
    )
    messages = KeyRules.default().apply(anthropic, []).json_body["messages"]
    assert messages[0]["content"][0]["id"] == messages[1]["content"][0]["tool_use_id"] == "call_1"
    assert messages[1]["content"][1]["id"] == "k"


def test_the_tool_call_normaliser_can_be_turned_off():
    body = chat({"role": "tool", "tool_call_id": "call_abc"})
    keyed = KeyRules.from_config(tool_call_ids=False).apply(body, [])
    assert keyed.json_body == body and keyed.changed_paths == ()


def test_the_canonical_form_names_the_version_and_every_rule():
    rules = KeyRules.from_config(["body.user"], [DATE])
    assert orjson.loads(rules.canonical_form) == {
        "ignore": ["body.user"],
        "normalize": [["body.messages[*].content", DATE["pattern"], "<date>"]],
        "tool_call_ids": True,
        "version": KEY_RULES_VERSION,
    }
    assert rules.canonical_form != KeyRules.default().canonical_form
    assert KeyRules.from_config(["body.user"], [DATE]) == rules


@pytest.mark.parametrize(
    ("ignore", "normalize", "message"),
    [
        (["headers.x-trace"], None, "ignore rule 1: headers are not part of the request key"),
        (["body.user", "body."], None, "ignore rule 2: `body.` is not a key path"),
        (["metadata"], None, "ignore rule 1: `metadata` is not a key path"),
        (["body.messages[x]"], None, "ignore rule 1: `body.messages\\[x\\]` is not a key path"),
        (["query.a.b"], None, "ignore rule 1: `query.a.b` is not a key path"),
        ([3], None, "ignore rule 1: the path must be a string"),
        ("body.user", None, "`ignore` must be a list"),
        (None, {"path": "body.x"}, "`normalize` must be a list"),
        (None, [{"path": "body.x", "pattern": "("}], "normalize rule 1: expected a mapping with exactly"),
        (None, [{**DATE, "pattern": "("}], "normalize rule 1 \\(body.messages\\[\\*\\].content\\): bad regex"),
        (None, [{**DATE, "replace": r"\2"}], r"normalize rule 1 .*: bad replacement .*: invalid group reference 2"),
        (None, [{**DATE, "pattern": 5}], "normalize rule 1 .*: `pattern` and `replace` must be strings"),
        (None, [DATE, {**DATE, "path": "headers.date"}], "normalize rule 2: headers are not part"),
    ],
)
def test_a_bad_rule_is_named_with_what_is_wrong(ignore, normalize, message):
    with pytest.raises(KeyRuleError, match=message):
        KeyRules.from_config(ignore, normalize)


def test_rules_built_in_code_are_the_same_as_from_config():
    rule = NormalizeRule(DATE["path"], re.compile(DATE["pattern"]), DATE["replace"])
    assert KeyRules(normalize=(rule,)).canonical_form == KeyRules.from_config(None, [DATE]).canonical_form


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)
ANY_RULES = KeyRules.from_config(
    ["body.user", "body.messages[*].name", "query.request_id"],
    [{"path": "body.messages[*].content", "pattern": "[0-9]", "replace": "#"}],
)


MESSAGES = st.lists(st.dictionaries(st.sampled_from(["role", "content", "name", "tool_call_id"]), JSON))


@given(messages=MESSAGES, rest=JSON)
def test_rules_never_mutate_their_input(messages, rest):
    body = {"messages": messages, "user": rest, "input": [{"call_id": "c"}]}
    original = copy.deepcopy(body)
    ANY_RULES.apply(body, [("request_id", "1")])
    assert body == original
