"""InferenceGate: a local record-and-replay proxy for the OpenAI API.

The public API is small: build `Settings`, pick a `Mode`, and run a `Gate`. `CassetteStore` reads and writes the
cassette directory, for tools that inspect it.

    import trio
    from inference_gate import Gate, Mode, Settings

    trio.run(Gate(Settings(cache_dir=Path("cassettes")), Mode.REPLAY).run)
"""

from inference_gate.gate import Gate
from inference_gate.policy import Mode
from inference_gate.settings import Settings
from inference_gate.store import CassetteStore

__all__ = ["CassetteStore", "Gate", "Mode", "Settings"]
__version__ = "0.1.0"
