"""`test-gate` and `test-upstream`: send the test prompt to a running gate, or straight to the upstream.

Each prints the reply and the time taken, or one line saying what went wrong, and exits non-zero on failure so
that a setup script can stop early. `--model` and `--prompt` override the `test_model` and `test_prompt`
settings for one run.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

import trio
from cleo.commands.command import Command
from cleo.helpers import option
from cleo.io.inputs.option import Option
from cleo.io.io import IO
from cleo.io.outputs.output import Type as OutputType

from inference_gate.cli.common import setting_options, settings_from_io, write_error
from inference_gate.config.settings import Settings
from inference_gate.config.sources import ConfigError
from inference_gate.serve.prompt_test import (
    PromptTestError,
    PromptTestResult,
    prompt_the_gate,
    prompt_the_upstream,
    reachable_gate_url,
)

# What each `x-inference-gate` value means, for the person reading the result.
GATE_OUTCOMES = {
    "hit": "hit (replayed from a cassette)",
    "recorded": "recorded (forwarded to the upstream and saved as a cassette)",
}

_PROMPT_OPTIONS = [
    option("model", description="Model to ask, instead of the test_model setting.", flag=False),
    option("prompt", description="Prompt to send, instead of the test_prompt setting.", flag=False),
]


class GateTestCommand(Command):
    name = "test-gate"
    description = "Send the test prompt to a running gate and show the reply, the time, and hit or recorded."
    options: ClassVar[list[Option]] = [
        *setting_options(
            "host",
            "port",
            descriptions={"host": "Address of the running gate.", "port": "Port of the running gate."},
        ),
        *_PROMPT_OPTIONS,
    ]

    def handle(self) -> int:
        settings = _with_prompt_options(self.io, settings_from_io(self.io).settings)
        try:
            result = trio.run(prompt_the_gate, settings)
        except PromptTestError as error:
            if error.unreachable:
                return _fail(
                    self.io,
                    f"no gate is listening on {reachable_gate_url(settings)} — start one with "
                    "`inference-gate start` or `inference-gate replay`",
                )
            return _fail(self.io, str(error))
        if not result.succeeded:
            outcome = f" ({result.gate_outcome})" if result.gate_outcome else ""
            answered = f"{_status(result)}{outcome}"
            return _fail(self.io, f"the gate answered {answered}: {result.error_message}")
        outcome = result.gate_outcome
        if outcome is None:
            answered = "no x-inference-gate header: is an inference gate listening there?"
        else:
            answered = GATE_OUTCOMES.get(outcome, outcome)
        _print_result(self.io, result, settings, [("answered", answered)])
        return 0


class UpstreamTestCommand(Command):
    name = "test-upstream"
    description = "Send the test prompt straight to the upstream, to check the API key and the network."
    options: ClassVar[list[Option]] = [*setting_options("upstream", "api_key"), *_PROMPT_OPTIONS]

    def handle(self) -> int:
        settings = _with_prompt_options(self.io, settings_from_io(self.io).settings)
        try:
            result = trio.run(prompt_the_upstream, settings)
        except PromptTestError as error:
            return _fail(self.io, str(error))
        if not result.succeeded:
            return _fail(self.io, f"the upstream answered {_status(result)}: {result.error_message}")
        _print_result(self.io, result, settings, [])
        return 0


def _with_prompt_options(io: IO, settings: Settings) -> Settings:
    """`settings` with `--model` and `--prompt` applied; a blank value is refused like a blank setting."""
    overrides = {}
    for name, field_name in (("model", "test_model"), ("prompt", "test_prompt")):
        value = io.input.option(name)
        if value is None:
            continue
        if not value.strip():
            raise ConfigError(f"--{name}: expected a non-empty string, got {value!r}")
        overrides[field_name] = value
    return replace(settings, **overrides)


def _print_result(io: IO, result: PromptTestResult, settings: Settings, extra_rows: list[tuple[str, str]]) -> None:
    rows = [
        ("url", result.url),
        ("model", settings.test_model),
        ("reply", result.reply or ""),
        ("time", duration(result.elapsed_s)),
        *extra_rows,
    ]
    width = max(len(label) for label, _ in rows) + 2
    for label, value in rows:
        # A reply of several lines keeps its shape, indented under the first.
        text = value.replace("\n", "\n" + " " * width)
        io.write_line(f"{label + ':':<{width}}{text}", type=OutputType.RAW)


def duration(elapsed_s: float) -> str:
    """`840 ms` below a second (a replayed answer takes a few), `2.31 s` from a second up."""
    return f"{elapsed_s * 1000:.0f} ms" if elapsed_s < 1 else f"{elapsed_s:.2f} s"


def _status(result: PromptTestResult) -> str:
    """`401 invalid_api_key`: the status, and the error's code when it has one."""
    return f"{result.status} {result.error_code}" if result.error_code else str(result.status)


def _fail(io: IO, message: str) -> int:
    write_error(io, message)
    return 1
