"""Settings: every knob of the gate, each declared once with its type, default, help and parser.

Each field of `Settings` is made by `_setting(...)`, which attaches a `SettingSpec` to it. Everything else that
lists the settings (config.py's parsing and `config init` template, the CLI options and their help, `config show`)
reads `SETTING_SPECS`, so adding a setting is one line here. This module stays sans-IO.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from inference_gate.config import parsers as parse
from inference_gate.core.dialects import Dialect
from inference_gate.core.routes import KEY_VARIABLES, RouteTable, parse_upstreams

API_KEY_ENV = "OPENAI_API_KEY"

DEFAULT_TEST_PROMPT = (
    'This is a test prompt. Reply with **ONLY** "OK." to confirm that everything is ok. '
    "DO NOT output anything else."
)

_SPEC = "inference_gate.setting"


@dataclass(frozen=True, slots=True)
class SettingSpec:
    """What the tools around a setting need: `help` explains it (template comment and option help), `parser`
    reads any source's value, `shortcut` is its one-letter CLI option, and a `secret` is never written to the
    config file or shown in full."""

    name: str
    default: object
    help: str
    parser: Callable[[object], object]
    shortcut: str | None = None
    secret: bool = False


def _setting(default: Any, help: str, parser: Callable[[object], object], **kwargs: Any) -> Any:
    """A dataclass field carrying its declaration; the name is filled in from the field by `SETTING_SPECS`."""
    declaration = {"help": help, "parser": parser, **kwargs}
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata={_SPEC: declaration})
    return field(default=default, metadata={_SPEC: declaration})


@dataclass(slots=True)
class Settings:
    """What the gate needs to run.

    `api_key` is held in memory only: it is never written to the config file or a cassette.
    """

    # No short option: `-h` is --help everywhere, as in every cleo program.
    host: str = _setting(
        "127.0.0.1", "Address the gate listens on; 127.0.0.1 keeps it private to this machine.", parse.text
    )
    port: int = _setting(
        8080, "TCP port the gate listens on (0-65535; 0 picks a free port and the banner shows it).", parse.port,
        shortcut="p",
    )  # fmt: skip
    upstream: str = _setting(
        "https://api.openai.com",
        "Where cache misses are forwarded: an http:// or https:// URL, without credentials, query or fragment.",
        parse.upstream_url,
        shortcut="u",
    )
    upstreams: dict[str, object] = _setting(
        {},
        "More routes, beside the OpenAI one that `upstream` sets: a dialect's name (openai, anthropic, gemini, azure) "
        "to its URL, or a name of yours to {url, prefix} for an OpenAI-compatible server reached at that path "
        "prefix, for example {anthropic: 'https://api.anthropic.com', ollama: {url: 'http://localhost:11434', "
        "prefix: /ollama}}. Anthropic and Gemini default to their official hosts; Azure, which has none, takes "
        "the OpenAI route until it is named.",
        parse.upstream_routes,
    )
    cache_dir: Path = _setting(
        Path(".inference_cache"),
        "Directory of recorded cassettes. A relative path is relative to the directory the gate runs in, so each "
        "project keeps its own cache; ~ stands for your home directory.",
        parse.directory,
        shortcut="c",
    )
    api_key: str | None = _setting(
        None,
        f"API key for the upstream, instead of ${API_KEY_ENV}. Never written to disk.",
        parse.text,
        shortcut="k",
        secret=True,
    )
    anthropic_api_key: str | None = _setting(
        None, f"API key for the Anthropic route, from ${KEY_VARIABLES[Dialect.ANTHROPIC][0]}. Never written to disk.",
        parse.text, secret=True,
    )  # fmt: skip
    gemini_api_key: str | None = _setting(
        None, "API key for the Gemini route, from $GEMINI_API_KEY, else $GOOGLE_API_KEY. Never written to disk.",
        parse.text, secret=True,
    )  # fmt: skip
    azure_api_key: str | None = _setting(
        None, f"API key for the Azure route, from ${KEY_VARIABLES[Dialect.AZURE][0]}. Never written to disk.",
        parse.text, secret=True,
    )  # fmt: skip
    verbose: bool = _setting(False, "Print more detail about what the gate does.", parse.boolean)
    test_model: str = _setting("gpt-4o-mini", "Model that `test-upstream` and `test-gate` ask.", parse.text)
    test_prompt: str = _setting(
        DEFAULT_TEST_PROMPT, "Prompt that `test-upstream` and `test-gate` send.", parse.text
    )
    redact: list[str] = _setting(
        [],
        "Values masked in the stored request of every cassette: 'headers.<name>', 'query.<name>' or "
        "'body.<json path>', "
        'for example [headers.openai-organization, "body.messages[*].content"].',
        parse.redact_rules,
    )
    takes: int = _setting(
        1,
        "How many answers `start` records for identical requests: the first N identical requests of a run each "
        "go upstream once and are kept in order in one cassette; replay serves them in order, then the last "
        "repeats.",
        parse.take_count,
    )
    fault_rate: float = _setting(
        0.0,
        "Share of answers from cassettes that fail on purpose, to test a client's retries: a 429 with a short retry "
        "delay, a 500, or a stream cut midway, in the dialect's error shape. 0 (off) to 1; recordings never "
        "fail.",
        parse.fraction,
    )
    fault_seed: int = _setting(
        0, "Seed that decides which answers fail with fault_rate; the same seed fails the same requests.", parse.integer
    )
    ignore: list[str] = _setting(
        [],
        "Request values left out of the key, so a request still matches when they change: 'body.<json path>' "
        "or 'query.<name>', for example [body.metadata, body.user]. The cassette keeps the real request.",
        parse.ignore_rules,
    )
    normalize: list[dict[str, str]] = _setting(
        [],
        "Regex replacements in the key's copy of a value, each {path, pattern, replace}, for example "
        "{path: 'body.messages[*].content', pattern: '\\d{4}-\\d{2}-\\d{2}', replace: '<date>'}. "
        "Tool-call ids are numbered by order of appearance without a rule.",
        parse.normalize_rules,
    )
    store_file_contents: bool = _setting(
        False,
        "Store the bytes of uploaded files (base64) in cassettes; by default a file is stored by name, size "
        "and SHA-256, which is enough to match it.",
        parse.boolean,
    )
    replay_speed: float | None = _setting(
        None,
        "Replay at this many times the pace each answer was recorded at (1 as recorded, 2 twice as fast); null, "
        "the default, answers at once. A stream's events are spread between its recorded first and last event.",
        parse.replay_speed,
    )
    replay_spread: str = _setting(
        "even",
        "How a paced replay spreads a stream's events between its first and last: 'even' (equal intervals) or "
        "'bytes' (in proportion to each event's size).",
        parse.replay_spread,
    )
    max_head_bytes: int = _setting(
        64 * 1024, "Largest request line plus headers the gate accepts, in bytes.", parse.size_bytes
    )
    max_body_bytes: int = _setting(
        32 * 1024 * 1024, "Largest body the gate accepts, in bytes.", parse.size_bytes
    )
    max_recorded_bytes: int = _setting(
        64 * 1024 * 1024,
        "Largest response the gate records, in bytes; a larger one is passed through to the client unrecorded.",
        parse.size_bytes,
    )
    max_cassette_bytes: int = _setting(
        256 * 1024 * 1024,
        "Largest cassette file the gate reads, in bytes; a larger one is reported as corrupt, and a recording that "
        "would make one is passed through unrecorded. Far above any cassette recorded with the default limits.",
        parse.size_bytes,
    )
    max_connections: int | None = _setting(
        None,
        "Most client connections served at once; more wait in the kernel's backlog until one closes. Null, the "
        "default, derives it from the open files limit (which the gate raises to its hard limit at start-up): "
        "half of it, less a small reserve, at most 1000. A larger value is warned about at start-up.",
        parse.optional_positive_int,
    )
    request_timeout_s: float = _setting(30.0, "Seconds a client has to send a whole request.", parse.duration_s)
    idle_timeout_s: float = _setting(60.0, "Seconds an idle keep-alive connection stays open.", parse.duration_s)
    send_timeout_s: float = _setting(
        30.0, "Seconds a client has to take each write of a response; one that stops reading is dropped.",
        parse.duration_s,
    )  # fmt: skip
    websocket_idle_timeout_s: float = _setting(
        300.0, "Seconds a WebSocket session may pass without a message either way before it is closed.",
        parse.duration_s,
    )  # fmt: skip
    websocket_max_messages: int = _setting(
        100_000, "Most messages, both ways together, in one WebSocket session; the next one closes it.",
        parse.positive_int,
    )  # fmt: skip
    store_session_audio: bool = _setting(
        False,
        "Store the base64 audio of Realtime and Live sessions in their cassettes; by default audio is stored by "
        "SHA-256 and size (a client's audio still matches exactly; a server's replays as silence of that size).",
        parse.boolean,
    )
    upstream_connect_timeout_s: float = _setting(
        10.0, "Seconds to wait while connecting to the upstream.", parse.duration_s
    )
    upstream_read_timeout_s: float = _setting(
        300.0,
        "Seconds to wait for each read from the upstream; streamed answers may pause between events.",
        parse.duration_s,
    )
    shutdown_grace_s: float = _setting(
        5.0, "Seconds that requests in flight get to finish when the gate shuts down.", parse.duration_s
    )
    audit_env: list[str] = _setting(
        [],
        "More environment variables whose values `cache audit` looks for in cassettes (32 characters or longer).",
        parse.text_list,
    )
    audit_allow: list[str] = _setting(
        [],
        "`cache audit` false positives: the flagged value itself, or a location glob NAME or NAME:JSON_PATH.",
        parse.text_list,
    )


DIALECT_KEY_SETTINGS: dict[Dialect, str] = {
    Dialect.OPENAI: "api_key",
    Dialect.ANTHROPIC: "anthropic_api_key",
    Dialect.GEMINI: "gemini_api_key",
    Dialect.AZURE: "azure_api_key",
}
"""The setting that holds the gate's key for each dialect's route (routes.py)."""


def route_table(settings: Settings) -> RouteTable:
    """The gate's routes: `upstream` and `api_key` are the OpenAI route's, `upstreams` adds or moves the others,
    and each dialect's key setting is its route's key."""
    keys = {dialect: getattr(settings, name) for dialect, name in DIALECT_KEY_SETTINGS.items()}
    return RouteTable.build(parse_upstreams(settings.upstreams), openai_url=settings.upstream, keys=keys)


def gate_keys(settings: Settings) -> list[str]:
    """Every key the gate holds, for the checks that keep each out of cassettes."""
    return [key for name in DIALECT_KEY_SETTINGS.values() if (key := getattr(settings, name))]


def _declared_specs() -> dict[str, SettingSpec]:
    specs = {}
    defaults = Settings()
    for settings_field in fields(Settings):
        declaration = settings_field.metadata.get(_SPEC)
        if declaration is None:
            raise TypeError(f"Settings.{settings_field.name} is not declared with _setting(...)")
        name = settings_field.name
        specs[name] = SettingSpec(name=name, default=getattr(defaults, name), **declaration)
    return specs


# Field name -> declaration, in field order.
SETTING_SPECS: dict[str, SettingSpec] = _declared_specs()
