"""InferenceGate: a local record-and-replay proxy for the OpenAI API.

The public API is small: build `Settings`, pick a `Mode`, and run a `Gate`. `CassetteStore` reads and writes the
cassette directory, for tools that inspect it.

    import trio
    from inference_gate import Gate, Mode, Settings

    trio.run(Gate(Settings(cache_dir=Path("cassettes")), Mode.REPLAY).run)
"""

from typing import TYPE_CHECKING

from inference_gate.policy import Mode
from inference_gate.settings import Settings
from inference_gate.store import CassetteStore

if TYPE_CHECKING:
    from inference_gate.gate import Gate

__all__ = ["CassetteStore", "Gate", "Mode", "Settings"]
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """`Gate` is imported on first use: it brings in trio and h11, and every pytest run imports this package
    for the plugin's entry point, which must cost nothing while the plugin is inactive."""
    if name == "Gate":
        from inference_gate.gate import Gate

        return Gate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
