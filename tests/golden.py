"""When golden files are rewritten: only when `INFERENCE_GATE_UPDATE_GOLDEN` is set to `1`, by hand.

A golden file holds bytes a test compares exactly (wire bytes, a Markdown report). Rewriting it must be a
deliberate act, followed by a review of its diff: so any other value (`0`, `false`, empty) leaves the files
alone, and every golden test reads this one variable.
"""

import os

UPDATE_VARIABLE = "INFERENCE_GATE_UPDATE_GOLDEN"


def updating_golden_files() -> bool:
    return os.environ.get(UPDATE_VARIABLE) == "1"
