"""Parsers for setting values: each accepts a value as YAML gives it and as the command line gives it (a
string), and returns the typed value or raises `InvalidValue` saying what it expected.

Every source (file, environment, command line) goes through the same parser, so a bad value reads the same
wherever it came from; config.py adds where the value came from.
"""

from __future__ import annotations

import math
from pathlib import Path

from inference_gate.core.key_rules import KeyRuleError, KeyRules
from inference_gate.core.pacing import Spread
from inference_gate.core.routes import RouteConfigError, parse_upstreams
from inference_gate.core.upstream_url import UpstreamURL


class InvalidValue(Exception):
    """Raised by a parser with what it expected."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


def _integer(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def _finite_number(value: object) -> float | None:
    """A number (not a bool) or its text, as a float; None for anything else, NaN and the infinities included."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def port(value: object) -> int:
    number = _integer(value)
    if number is None or not 0 <= number <= 65535:
        raise InvalidValue("an integer from 0 to 65535 (0 picks a free port)")
    return number


def take_count(value: object) -> int:
    number = _integer(value)
    if number is None or number < 1:
        raise InvalidValue("a positive integer (1 records one answer per request)")
    return number


def size_bytes(value: object) -> int:
    number = _integer(value)
    if number is None or number <= 0:
        raise InvalidValue("a positive integer number of bytes")
    return number


def positive_int(value: object) -> int:
    number = _integer(value)
    if number is None or number <= 0:
        raise InvalidValue("a positive integer")
    return number


def optional_positive_int(value: object) -> int | None:
    """A positive whole number, or None (YAML's null) for the default the gate derives."""
    if value is None:
        return None
    number = _integer(value)
    if number is None or number <= 0:
        raise InvalidValue("a positive integer, or null to derive it")
    return number


def fraction(value: object) -> float:
    """A share, such as `fault_rate`: a number from 0 to 1."""
    number = _finite_number(value)
    if number is None or not 0 <= number <= 1:
        raise InvalidValue("a number from 0 to 1 (0.1 is one in ten)")
    return number


def integer(value: object) -> int:
    number = _integer(value)
    if number is None:
        raise InvalidValue("an integer")
    return number


def duration_s(value: object) -> float:
    number = _finite_number(value)
    if number is None or number <= 0:
        raise InvalidValue("a positive number of seconds")
    return number


def replay_speed(value: object) -> float | None:
    """How many times the recorded pace a replay runs at; None (YAML's null) for no pacing at all."""
    if value is None:
        return None
    number = _finite_number(value)
    if number is None or number <= 0:
        raise InvalidValue("a positive number (1 is the recorded pace, 2 twice as fast), or null for no pacing")
    return number


def replay_spread(value: object) -> str:
    choices = [spread.value for spread in Spread]
    if value not in choices:
        raise InvalidValue(" or ".join(choices))
    return str(value)


def boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidValue("true or false")
    return value


def text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue("a non-empty string")
    return value


def upstream_url(value: object) -> str:
    """The URL as given, once `UpstreamURL.parse` (the client's own rule) accepts it."""
    expected = "an http:// or https:// URL with a host and no credentials, query or fragment"
    if not isinstance(value, str):
        raise InvalidValue(expected)
    try:
        UpstreamURL.parse(value)
    except ValueError:
        raise InvalidValue(expected) from None
    return value


def upstream_routes(value: object) -> dict[str, object]:
    """The `upstreams` map as given, once `parse_upstreams` (the route table's own rule) accepts it."""
    try:
        parse_upstreams(value)
    except RouteConfigError as error:
        raise InvalidValue(f"valid routes ({error})") from None
    return dict(value)  # type: ignore[call-overload]  # a mapping: parse_upstreams checked it


def directory(value: object) -> Path:
    if isinstance(value, Path):
        return value.expanduser()
    return Path(text(value)).expanduser()


def redact_rules(value: object) -> list[str]:
    """Rules are `headers.<name>`, `query.<name>` or `body.<json path>` (see redact.py); a mistyped rule would
    silently redact nothing, so it is refused here."""
    expected = "a list of 'headers.<name>', 'query.<name>' or 'body.<json path>' strings"
    if not isinstance(value, list):
        raise InvalidValue(expected)
    for rule in value:
        if not isinstance(rule, str):
            raise InvalidValue(expected)
        kind, _, path = rule.partition(".")
        if kind not in ("headers", "query", "body") or not path:
            raise InvalidValue(expected)
    return list(value)


def text_list(value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise InvalidValue("a list of non-empty strings")
    return list(value)


def _key_rule_list(value: object, kind: str, what: str) -> list[object]:
    """The list of `ignore` or `normalize` rules once KeyRules accepts it; the error names the bad rule."""
    if not isinstance(value, list):
        raise InvalidValue(f"a list of {what}")
    try:
        KeyRules.from_config(**{kind: value})
    except KeyRuleError as error:
        raise InvalidValue(f"valid key rules ({error})") from None
    return list(value)


def ignore_rules(value: object) -> list[object]:
    """`body.<json path>` or `query.<name>` paths left out of the request key (key_rules.py)."""
    return _key_rule_list(value, "ignore", "'body.<json path>' or 'query.<name>' strings")


def normalize_rules(value: object) -> list[object]:
    """`{path, pattern, replace}` regex replacements in the key's copy of a request (key_rules.py)."""
    return _key_rule_list(value, "normalize", "{path, pattern, replace} mappings")
