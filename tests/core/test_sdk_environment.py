from __future__ import annotations

from inference_gate.core.sdk_environment import REPLAY_PLACEHOLDER_KEY, base_url_variables, sdk_environment

GATE = "http://127.0.0.1:8123"


def test_each_sdk_gets_the_gate_in_the_form_it_appends_its_paths_to() -> None:
    assert base_url_variables(GATE) == {
        "OPENAI_BASE_URL": f"{GATE}/v1",
        "ANTHROPIC_BASE_URL": GATE,
        "GOOGLE_GEMINI_BASE_URL": GATE,
        "AZURE_OPENAI_ENDPOINT": GATE,
    }


def test_replay_fills_in_each_missing_key_and_keeps_those_set() -> None:
    variables = sdk_environment(GATE, replay=True, environ={"OPENAI_API_KEY": "sk-mine", "GOOGLE_API_KEY": "g"})
    keys = {name: value for name, value in variables.items() if name.endswith("_KEY")}
    assert keys == {"ANTHROPIC_API_KEY": REPLAY_PLACEHOLDER_KEY, "AZURE_OPENAI_API_KEY": REPLAY_PLACEHOLDER_KEY}


def test_an_empty_key_counts_as_missing_and_gemini_takes_its_first_name() -> None:
    variables = sdk_environment(GATE, replay=True, environ={"OPENAI_API_KEY": ""})
    assert variables["OPENAI_API_KEY"] == variables["GEMINI_API_KEY"] == REPLAY_PLACEHOLDER_KEY
    assert "GOOGLE_API_KEY" not in variables


def test_record_sets_no_key() -> None:
    assert sdk_environment(GATE, replay=False, environ={}) == base_url_variables(GATE)
