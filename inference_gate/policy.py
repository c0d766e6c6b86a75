"""The record/replay policy: what the gate does with a request, as plain decisions.

Kept apart from the I/O so that every rule here is a one-line test.
"""

from __future__ import annotations

import enum


class Mode(enum.Enum):
    """`RECORD` is `inference-gate start`; `REPLAY` is `inference-gate replay`, for tests and CI."""

    RECORD = "record"
    REPLAY = "replay"


class Lookup(enum.Enum):
    """What the cache holds for a request."""

    FOUND = "found"
    MISSING = "missing"
    CORRUPT = "corrupt"


class Action(enum.Enum):
    REPLAY_CASSETTE = "replay cassette"
    FORWARD_AND_RECORD = "forward and record"
    REPORT_MISS = "report miss"
    REPORT_CORRUPT = "report corrupt"


def decide(mode: Mode, lookup: Lookup) -> Action:
    """A recorded answer always wins; what happens otherwise depends on the mode.

    In record mode a corrupt cassette is treated as a miss and recorded again; in replay mode it is an error
    that names the file, because replay never writes.
    """
    if lookup is Lookup.FOUND:
        return Action.REPLAY_CASSETTE
    if mode is Mode.RECORD:
        return Action.FORWARD_AND_RECORD
    return Action.REPORT_CORRUPT if lookup is Lookup.CORRUPT else Action.REPORT_MISS


def is_recordable(status: int, *, completed: bool) -> bool:
    """Only a 2xx exchange that arrived whole is recorded: errors and broken streams must be retried live."""
    return 200 <= status < 300 and completed
