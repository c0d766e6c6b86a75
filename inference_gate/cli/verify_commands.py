"""`verify`: send recorded requests to the live upstreams again and say how far each answer has drifted.

The plan, the verdicts and the report come from review/verify.py, the sending from proxy/verify_runner.py; this
module parses the options, says on stderr how many requests the run will send before it sends any, and prints
the report on stdout (so that `--format markdown >> "$GITHUB_STEP_SUMMARY"` gets the report alone).

Exit codes: 0 when no cassette drifted as far as `--fail-on`, 1 when one did, 2 when the run could not start.
"""

from __future__ import annotations

import os
from typing import ClassVar

from cleo.commands.command import Command
from cleo.helpers import option
from cleo.io.inputs.option import Option
from cleo.io.outputs.output import Type as OutputType

from inference_gate.cli.common import setting_options, settings_from_io, write_error
from inference_gate.config.settings import gate_keys, route_table
from inference_gate.core.drift import Level
from inference_gate.proxy.gate import utc_now
from inference_gate.proxy.verify_runner import DEFAULT_CONCURRENCY, most_requests, run_fetch_answers
from inference_gate.review.audit import CredentialScanner, watched_values
from inference_gate.review.verify import (
    DEFAULT_FAIL_ON,
    FORMATS,
    VerifyError,
    judge,
    keyless_routes,
    plan_verify,
    render,
)
from inference_gate.store.cassette_store import CassetteStore, MissingCacheDirError

LEVEL_NAMES = ", ".join(level.value for level in Level)
CANNOT_START = 2


class UsageError(Exception):
    """An option value the command cannot use."""


class VerifyCommand(Command):
    name = "verify"
    description = "Send recorded requests to the live upstreams again and report how far each answer drifted."
    options: ClassVar[list[Option]] = [
        *setting_options("cache_dir", "upstream", "api_key"),
        option("sample", description="Check N cassettes, the same N for the same --seed.", flag=False),
        option("all", description="Check every cassette (the default).", flag=True),
        option("seed", description="Which cassettes --sample picks.", flag=False, default="0"),
        option("format", description=f"Output: {', '.join(FORMATS)}.", flag=False, default="text"),
        option(
            "fail-on",
            description=f"Exit 1 when a cassette drifted this far: {LEVEL_NAMES}.",
            flag=False,
            default=DEFAULT_FAIL_ON.value,
        ),
        option("concurrency", description="Requests in flight at once.", flag=False, default=str(DEFAULT_CONCURRENCY)),
        option(
            "refresh", description="Rewrite the cassettes whose answer changed, as `start --refresh` does.", flag=True
        ),
    ]

    def handle(self) -> int:
        settings = settings_from_io(self.io).settings
        try:
            sample, seed, output_format, fail_on, concurrency = self._choices()
            store = CassetteStore(
                settings.cache_dir.absolute(),
                    max_cassette_bytes=settings.max_cassette_bytes,
            )
            plan = plan_verify(store, sample=sample, seed=seed)
        except (UsageError, VerifyError, MissingCacheDirError) as error:
            write_error(self.io, error)
            return CANNOT_START
        count = len(plan.targets)
        if count == 0:
            write_error(self.io, f"nothing to verify in {store.root}: {len(plan.skipped)} cassette(s), all skipped")
            return CANNOT_START
        self._say(
            f"verify: sending {count} request(s) for {count} of {plan.cassettes} cassette(s) in {store.root} "
            f"(at most {most_requests(count)} if the upstream asks to retry with Retry-After)"
        )
        keyless = keyless_routes(plan, route_table(settings))
        if keyless:
            self._say(f"note: no API key for the route(s) {', '.join(keyless)}: their requests go without credentials")
        answers = run_fetch_answers(settings, [target.question for target in plan.targets], concurrency=concurrency)
        report = judge(
            plan,
            answers,
            refresh=bool(self.option("refresh")),
            secrets=gate_keys(settings),
            clock=utc_now,
        )
        scanner = CredentialScanner(watched_values(os.environ, settings.audit_env))
        self.io.write_line(render(report, output_format, scanner), type=OutputType.RAW)
        return 1 if report.fails(fail_on) else 0

    def _choices(self) -> tuple[int | None, int, str, Level, int]:
        """--sample, --seed, --format, --fail-on and --concurrency, checked."""
        sample = self.option("sample")
        if sample is not None and self.option("all"):
            raise UsageError("--sample and --all exclude each other")
        output_format = self.option("format")
        if output_format not in FORMATS:
            raise UsageError(f"--format must be one of {', '.join(FORMATS)}, not {output_format!r}")
        try:
            fail_on = Level(self.option("fail-on"))
        except ValueError:
            raise UsageError(f"--fail-on must be one of {LEVEL_NAMES}, not {self.option('fail-on')!r}") from None
        concurrency = _whole_number("--concurrency", self.option("concurrency"))
        if concurrency < 1:
            raise UsageError("--concurrency must be at least 1")
        sample_count = None if sample is None else _whole_number("--sample", sample)
        return sample_count, _whole_number("--seed", self.option("seed")), output_format, fail_on, concurrency

    def _say(self, line: str) -> None:
        self.io.write_error_line(line, type=OutputType.RAW)


def _whole_number(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"{name} must be a whole number, not {value!r}") from None
