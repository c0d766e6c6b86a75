"""Send the test prompt to a running gate or straight to the upstream, and say what came back.

`inference-gate test-gate` and `test-upstream` are the two questions a person asks when their code cannot
reach OpenAI through the gate: "is the gate answering?" and "would OpenAI answer me at all?". Both send one
non-streamed chat completion with the configured test model and prompt, and time it:

    result = trio.run(prompt_the_gate, Settings(port=8080))
    print(result.reply, result.gate_outcome, result.elapsed_s)

An HTTP answer, error or not, is a `PromptTestResult`; no HTTP answer at all is a `PromptTestError`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from inference_gate import __version__
from inference_gate.config.settings import Settings
from inference_gate.config.sources import API_KEY_ENV
from inference_gate.core.address import gate_url
from inference_gate.core.errors import GateError
from inference_gate.core.outcome import OUTCOME_HEADER
from inference_gate.http.upstream import UpstreamPool

CHAT_COMPLETIONS_PATH = "/v1/chat/completions"

# A replaying gate needs no key, but SDKs always send one and a recording gate without its own key passes the
# client's through; this one is recognisably not a real key.
PLACEHOLDER_API_KEY = "inference-gate-test-placeholder"  # not a key, and not shaped like one

# A server that listens on every address is reached on loopback.
_WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "::": "::1"}

ERROR_PREVIEW_CHARS = 300


class PromptTestError(Exception):
    """The test prompt got no HTTP answer; `unreachable` when nothing accepted the connection at `url`."""

    def __init__(self, message: str, *, url: str, unreachable: bool = False) -> None:
        super().__init__(message)
        self.url = url
        self.unreachable = unreachable


@dataclass(frozen=True, slots=True)
class PromptTestResult:
    """What a test prompt got back.

    `reply` is the assistant's text from a 2xx chat completion. For any other answer `error_message` holds the
    OpenAI-shaped error's message (or the start of a body that is not one) and `error_code` its code.
    `gate_outcome` is the gate's `x-inference-gate` header (`hit`, `recorded`, `miss`, `error`), None when
    the answer did not come through a gate.
    """

    url: str
    status: int
    elapsed_s: float
    reply: str | None
    error_message: str | None
    error_code: str | None
    gate_outcome: str | None

    @property
    def succeeded(self) -> bool:
        return self.reply is not None


def reachable_gate_url(settings: Settings) -> str:
    """The base URL that reaches a gate started with these settings: one bound to 0.0.0.0 is reached on
    127.0.0.1, which every system accepts as a destination."""
    host = _WILDCARD_HOSTS.get(settings.host, settings.host)
    return gate_url(host, settings.port)


async def prompt_the_gate(settings: Settings) -> PromptTestResult:
    """Send the test prompt to the gate at `settings.host:port`, with the API key if one is set."""
    return await _send_test_prompt(
        reachable_gate_url(settings), settings, settings.api_key or PLACEHOLDER_API_KEY
    )


async def prompt_the_upstream(settings: Settings) -> PromptTestResult:
    """Send the test prompt straight to `settings.upstream` with `settings.api_key`.

    Raises PromptTestError, sending nothing, when no key is set: the upstream would only answer 401.
    """
    if not settings.api_key:
        raise PromptTestError(
            f"no API key is set (set {API_KEY_ENV} or pass --api-key); nothing was sent",
            url=settings.upstream,
        )
    return await _send_test_prompt(settings.upstream, settings, settings.api_key)


def prompt_body(settings: Settings) -> bytes:
    """The request body: the same bytes every time, so a recorded test prompt replays."""
    messages = [{"role": "user", "content": settings.test_prompt}]
    return orjson.dumps({"model": settings.test_model, "messages": messages})


async def _send_test_prompt(base_url: str, settings: Settings, api_key: str) -> PromptTestResult:
    headers = [
        (b"authorization", b"Bearer " + api_key.encode()),
        (b"content-type", b"application/json"),
        (b"accept", b"application/json"),
        (b"user-agent", f"inference-gate/{__version__} probe".encode()),
    ]
    pool = UpstreamPool(
        base_url,
        connect_timeout_s=settings.upstream_connect_timeout_s,
        read_timeout_s=settings.upstream_read_timeout_s,
    )
    url = base_url.rstrip("/") + CHAT_COMPLETIONS_PATH
    started = time.perf_counter()
    try:
        async with pool.request("POST", CHAT_COMPLETIONS_PATH, headers, prompt_body(settings)) as response:
            body = b"".join([chunk async for chunk in response.body_chunks()])
    except GateError as error:
        raise PromptTestError(error.message, url=url, unreachable=error.code == "upstream_unreachable") from error
    finally:
        await pool.aclose()
    elapsed_s = time.perf_counter() - started
    outcome = dict(response.headers).get(OUTCOME_HEADER)
    parsed = _json_or_none(body)
    reply = _reply_text(parsed) if 200 <= response.status < 300 else None
    error_message, error_code = (None, None) if reply is not None else _error_of(parsed, body)
    return PromptTestResult(
        url=url,
        status=response.status,
        elapsed_s=elapsed_s,
        reply=reply,
        error_message=error_message,
        error_code=error_code,
        gate_outcome=outcome.decode("latin-1") if outcome is not None else None,
    )


def _json_or_none(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _reply_text(completion: Any) -> str | None:
    """`choices[0].message.content` of a chat completion; None when the body is not one."""
    try:
        content = completion["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None
    return content if isinstance(content, str) else None


def _error_of(parsed: Any, body: bytes) -> tuple[str, str | None]:
    """The message and code of an OpenAI-shaped error, or the start of whatever else the body is."""
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        code = error.get("code")
        return error["message"], code if isinstance(code, str) else None
    text = " ".join(body.decode("utf-8", "replace").split())
    if not text:
        return "the answer has an empty body", None
    return f"the answer is not a chat completion: {text[:ERROR_PREVIEW_CHARS]}", None
