"""The environment that points every SDK the gate knows at it, with no change to the code under test.

Each official SDK reads its base URL from a variable of its own when the code builds a client with no
`base_url`; the pytest plugin sets these for a suite, and `inference-gate run` exports them to its command:

- `openai` (Python and Node): `OPENAI_BASE_URL`, which ends in `/v1`;
- `anthropic` (Python and Node): `ANTHROPIC_BASE_URL`, the root: the SDK adds `/v1/messages`;
- `google-genai` (Python): `GOOGLE_GEMINI_BASE_URL`, the root: the SDK adds `/v1beta/models/...`;
- `openai`'s `AzureOpenAI`: `AZURE_OPENAI_ENDPOINT`, the root: the SDK adds `/openai/...` (it also needs
  `OPENAI_API_VERSION`, which is the application's to set, as it picks the API version).

In replay no key reaches a provider, but clients refuse to be built without one: each provider's key variable
gets a placeholder unless one of its names is already set (a real key stays, and the gate never forwards it).
"""

from __future__ import annotations

from collections.abc import Mapping

from inference_gate.core.routes import KEY_VARIABLES

REPLAY_PLACEHOLDER_KEY = "inference-gate-replay-placeholder"  # not a key, and not shaped like one



def base_url_variables(gate_url: str) -> dict[str, str]:
    """Each SDK's base-URL variable, pointed at the gate at `gate_url` (`http://127.0.0.1:8080`, no `/v1`)."""
    return {
        "OPENAI_BASE_URL": f"{gate_url}/v1",
        "ANTHROPIC_BASE_URL": gate_url,
        "GOOGLE_GEMINI_BASE_URL": gate_url,
        "AZURE_OPENAI_ENDPOINT": gate_url,
    }


def sdk_environment(gate_url: str, *, replay: bool, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables to set for code under test, given the environment it has (`environ`): the base URLs, and
    in replay a placeholder for every provider key that `environ` lacks."""
    variables = base_url_variables(gate_url)
    if replay:
        for names in KEY_VARIABLES.values():  # a placeholder goes in a provider's first name
            if not any(environ.get(name) for name in names):
                variables[names[0]] = REPLAY_PLACEHOLDER_KEY
    return variables
