"""Settings: every knob of the gate, with its built-in default.

This module only declares the settings. `config.py` merges them from the config file, the environment and the
command line; the gate and the servers read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_TEST_PROMPT = (
    'This is a test prompt. Reply with **ONLY** "OK." to confirm that everything is ok. '
    "DO NOT output anything else."
)


@dataclass(slots=True)
class Settings:
    """What the gate needs to run.

    `api_key` is held in memory only: it is never written to the config file or a cassette.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    upstream: str = "https://api.openai.com"
    cache_dir: Path = Path(".inference_cache")
    api_key: str | None = None
    verbose: bool = False
    test_model: str = "gpt-4o-mini"
    test_prompt: str = DEFAULT_TEST_PROMPT
    redact: list[str] = field(default_factory=list)
    max_head_bytes: int = 64 * 1024
    max_body_bytes: int = 32 * 1024 * 1024
    request_timeout_s: float = 30.0
    idle_timeout_s: float = 60.0
    upstream_connect_timeout_s: float = 10.0
    upstream_read_timeout_s: float = 300.0
    shutdown_grace_s: float = 5.0
    audit_env: list[str] = field(default_factory=list)
    audit_allow: list[str] = field(default_factory=list)
