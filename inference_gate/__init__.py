"""InferenceGate: a local record-and-replay proxy for the OpenAI API.

The public API is small: build `Settings`, pick a `Mode`, and run a `Gate`. `CassetteStore` reads and writes the
cassette directory, for tools that inspect it.

    import trio
    from inference_gate import Gate, Mode, Settings

    trio.run(Gate(Settings(cache_dir=Path("cassettes")), Mode.REPLAY).run)

The names are imported on first use, so that importing a sans-IO core module (`inference_gate.core.keys`, ...) runs
this file without pulling in the gate and with it trio and h11 (tests/test_import_rule.py holds that).
"""

import importlib

_EXPORTS = {
    "CassetteStore": "inference_gate.store.cassette_store",
    "Gate": "inference_gate.proxy.gate",
    "Mode": "inference_gate.core.policy",
    "Settings": "inference_gate.config.settings",
}

__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'inference_gate' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
