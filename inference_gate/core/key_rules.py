"""Key rules: what of a request is left out of its key, or rewritten before it is keyed.

Some values change from run to run and would make a request never match again: trace ids in `user` or
`metadata`, a date in a system prompt, `prompt_cache_key`, tool-call ids. The user's config lists them, in
`redact`'s path syntax:

    ignore:                         # dropped from the key
      - body.metadata
      - query.request_id
    normalize:                      # a regex replacement in the key's copy of a value
      - path: body.messages[*].content
        pattern: '\\d{4}-\\d{2}-\\d{2}'
        replace: '<date>'

The rules touch only the key's copy: the cassette keeps the real request. A `normalize` rule rewrites every
string at or under its path (so `content` given as a list of parts is covered too), never a dict's keys.
`headers.*` paths are refused because headers are never in the key.

One normaliser is built in and on by default: tool-call ids are renamed `call_1`, `call_2`... in order of first
appearance, the same id getting the same name wherever it appears. So a tool-call turn whose ids the model
chose afresh still matches, while a turn that pairs a result with a different call does not.

A rule change changes keys, so the rules in force and `KEY_RULES_VERSION` (the version of this module's
semantics, bumped whenever the same rules would rewrite a body differently) are part of the key.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from inference_gate.core.redact import parse_redact_path

KEY_RULES_VERSION = 1

_JSON_PATH = re.compile(r"(?:[^.\[\]]+|\[(?:\*|\d+)\])(?:\[(?:\*|\d+)\]|\.[^.\[\]]+)*")
_QUERY_NAME = re.compile(r"[^.\[\]]+")
_TOOL_BLOCK_ID_FIELDS = {"tool_use": "id", "tool_result": "tool_use_id"}  # Anthropic content blocks


class KeyRuleError(ValueError):
    """A rule that cannot be used; the message names the rule and what is wrong with it."""


@dataclass(frozen=True, slots=True)
class NormalizeRule:
    """Replace `pattern` by `replace` (re.sub syntax) in every string at `path`."""

    path: str
    pattern: re.Pattern[str]
    replace: str


@dataclass(frozen=True, slots=True)
class KeyedParts:
    """The key's copy of a request body and query, and the concrete paths a rule changed in them."""

    json_body: Any
    query: tuple[tuple[str, str], ...]
    changed_paths: tuple[str, ...]


def _checked_path(path: object, rule: str) -> str:
    if not isinstance(path, str):
        raise KeyRuleError(f"{rule}: the path must be a string, not {path!r}.")
    kind, _, rest = path.partition(".")
    if kind == "headers":
        raise KeyRuleError(f"{rule}: headers are not part of the request key, so `{path}` cannot be used here.")
    if kind == "body" and _JSON_PATH.fullmatch(rest):
        return path
    if kind == "query" and _QUERY_NAME.fullmatch(rest):
        return path
    raise KeyRuleError(
        f"{rule}: `{path}` is not a key path; use `body.<json path>` (e.g. `body.messages[*].content`) "
        f"or `query.<name>`."
    )


def _normalize_rule(entry: object, index: int) -> NormalizeRule:
    rule = f"normalize rule {index + 1}"
    if not isinstance(entry, dict) or set(entry) != {"path", "pattern", "replace"}:
        raise KeyRuleError(f"{rule}: expected a mapping with exactly `path`, `pattern` and `replace`, got {entry!r}.")
    path = _checked_path(entry["path"], rule)
    pattern, replace = entry["pattern"], entry["replace"]
    if not isinstance(pattern, str) or not isinstance(replace, str):
        raise KeyRuleError(f"{rule} ({path}): `pattern` and `replace` must be strings.")
    try:
        compiled = re.compile(pattern)
    except re.error as error:
        raise KeyRuleError(f"{rule} ({path}): bad regex {pattern!r}: {error}.") from None
    try:
        compiled.sub(replace, "")  # parses `replace`, so a bad group reference shows now rather than per request
    except re.error as error:
        raise KeyRuleError(f"{rule} ({path}): bad replacement {replace!r}: {error}.") from None
    return NormalizeRule(path, compiled, replace)


def _reach(value: Any, tokens: list[str | int], where: str) -> list[tuple[Any, str | int, str]]:
    """Every (container, child, concrete path) that `tokens` reaches in `value`, in document order."""
    head, rest = tokens[0], tokens[1:]
    if isinstance(value, dict) and isinstance(head, str) and head in value:
        children: list[tuple[str | int, str]] = [(head, f"{where}.{head}")]
    elif isinstance(value, list) and head == "*":
        children = [(index, f"{where}[{index}]") for index in range(len(value))]
    elif isinstance(value, list) and isinstance(head, int) and 0 <= head < len(value):
        children = [(head, f"{where}[{head}]")]
    else:
        return []
    if not rest:
        return [(value, child, path) for child, path in children]
    return [found for child, path in children for found in _reach(value[child], rest, path)]


def _substitute(value: Any, rule: NormalizeRule) -> Any:
    """`value` with the rule applied to every string in it, never to a dict's keys."""
    if isinstance(value, str):
        return rule.pattern.sub(rule.replace, value)
    if isinstance(value, list):
        return [_substitute(item, rule) for item in value]
    if isinstance(value, dict):
        return {name: _substitute(item, rule) for name, item in value.items()}
    return value


def _tool_call_id_slots(json_body: Any) -> list[tuple[Any, str | int, str]]:
    """Every (container, field, path) holding a tool-call id, in the order they appear in the request.

    Chat Completions: an assistant message's `tool_calls[*].id` and a tool message's `tool_call_id`. Responses
    API: `call_id` of the `input` items. Anthropic Messages: `id` of a `tool_use` block and `tool_use_id` of a
    `tool_result` block.
    """
    slots: list[tuple[Any, str | int, str]] = []
    if not isinstance(json_body, dict):
        return slots
    messages = json_body.get("messages")
    for index, message in enumerate(messages if isinstance(messages, list) else []):
        if not isinstance(message, dict):
            continue
        where = f"body.messages[{index}]"
        calls = message.get("tool_calls")
        for call_index, call in enumerate(calls if isinstance(calls, list) else []):
            if isinstance(call, dict) and isinstance(call.get("id"), str):
                slots.append((call, "id", f"{where}.tool_calls[{call_index}].id"))
        if isinstance(message.get("tool_call_id"), str):
            slots.append((message, "tool_call_id", f"{where}.tool_call_id"))
        blocks = message.get("content")
        for block_index, block in enumerate(blocks if isinstance(blocks, list) else []):
            if not isinstance(block, dict):
                continue
            name = _TOOL_BLOCK_ID_FIELDS.get(block.get("type"))
            if name is not None and isinstance(block.get(name), str):
                slots.append((block, name, f"{where}.content[{block_index}].{name}"))
    items = json_body.get("input")
    for index, item in enumerate(items if isinstance(items, list) else []):
        if isinstance(item, dict) and isinstance(item.get("call_id"), str):
            slots.append((item, "call_id", f"body.input[{index}].call_id"))
    return slots


def _number_tool_call_ids(json_body: Any) -> list[str]:
    """Rename the tool-call ids in `json_body` in place to `call_1`, `call_2`...; the paths that changed."""
    names: dict[str, str] = {}
    changed: list[str] = []
    for container, name, path in _tool_call_id_slots(json_body):
        original = container[name]
        container[name] = names.setdefault(original, f"call_{len(names) + 1}")
        if container[name] != original:
            changed.append(path)
    return changed


@dataclass(frozen=True, slots=True)
class KeyRules:
    """The rules in force for keys: `ignore` paths, `normalize` rules and the built-in tool-call-id normaliser."""

    ignore: tuple[str, ...] = ()
    normalize: tuple[NormalizeRule, ...] = ()
    tool_call_ids: bool = True
    canonical_form: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        described = {
            "version": KEY_RULES_VERSION,
            "ignore": list(self.ignore),
            "normalize": [[rule.path, rule.pattern.pattern, rule.replace] for rule in self.normalize],
            "tool_call_ids": self.tool_call_ids,
        }
        object.__setattr__(self, "canonical_form", orjson.dumps(described, option=orjson.OPT_SORT_KEYS))

    @classmethod
    def default(cls) -> KeyRules:
        return _DEFAULT

    @classmethod
    def from_config(cls, ignore: object = None, normalize: object = None, *, tool_call_ids: bool = True) -> KeyRules:
        """Rules from the config's `ignore` list and `normalize` list (None when the key is absent).

        Raises KeyRuleError naming the rule (`ignore rule 2`, `normalize rule 1 (body.x)`) and what is wrong.
        """
        for name, value in (("ignore", ignore), ("normalize", normalize)):
            if value is not None and not isinstance(value, list):
                raise KeyRuleError(f"`{name}` must be a list, not {value!r}.")
        ignored = tuple(_checked_path(path, f"ignore rule {index + 1}") for index, path in enumerate(ignore or []))
        rules = tuple(_normalize_rule(entry, index) for index, entry in enumerate(normalize or []))
        return cls(ignored, rules, tool_call_ids)

    def apply(self, json_body: Any, query: Sequence[tuple[str, str]]) -> KeyedParts:
        """The key's copy of a JSON body (None when the body is not JSON) and of the query pairs.

        Ignore rules run first, then normalize rules in order, then the tool-call ids; the arguments are never
        modified. `changed_paths` lists each concrete path a rule removed or rewrote, e.g.
        `body.messages[0].content`, so a miss explanation can say that a rule hid a difference there.
        """
        if not (self.ignore or self.normalize or (self.tool_call_ids and _tool_call_id_slots(json_body))):
            return KeyedParts(json_body, tuple(query), ())  # nothing to rewrite: no copy, the caller only reads it
        json_body = copy.deepcopy(json_body)
        pairs = list(query)
        changed: list[str] = []
        for path in self.ignore:
            kind, _, rest = path.partition(".")
            if kind == "query":
                if any(name == rest for name, _ in pairs):
                    changed.append(path)
                pairs = [(name, value) for name, value in pairs if name != rest]
                continue
            slots = _reach(json_body, parse_redact_path(rest), "body")
            changed.extend(where for _, _, where in slots)
            for parent, child, _ in reversed(slots):  # from the end, so removing a list item moves no other slot
                del parent[child]
        for rule in self.normalize:
            kind, _, rest = rule.path.partition(".")
            if kind == "query":
                rewritten = [
                    (name, rule.pattern.sub(rule.replace, value) if name == rest else value) for name, value in pairs
                ]
                changed.extend(rule.path for old, new in zip(pairs, rewritten, strict=True) if old != new)
                pairs = rewritten
                continue
            for parent, child, where in _reach(json_body, parse_redact_path(rest), "body"):
                rewritten_value = _substitute(parent[child], rule)
                if rewritten_value != parent[child]:
                    changed.append(where)
                    parent[child] = rewritten_value
        if self.tool_call_ids:
            changed.extend(_number_tool_call_ids(json_body))
        return KeyedParts(json_body, tuple(pairs), tuple(dict.fromkeys(changed)))


_DEFAULT = KeyRules()
