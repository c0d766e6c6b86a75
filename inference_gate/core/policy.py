"""The record/replay policy: what the gate does with a request, as plain decisions.

Kept apart from the I/O so that every rule here is a one-line test.
"""

from __future__ import annotations

import enum


class Mode(enum.Enum):
    """`RECORD` is `inference-gate start`; `REPLAY` is `inference-gate replay`, for tests and CI; `REFRESH` is
    `inference-gate start --refresh`: every request goes upstream and is recorded again."""

    RECORD = "record"
    REPLAY = "replay"
    REFRESH = "refresh"

    @property
    def calls_upstream(self) -> bool:
        return self is not Mode.REPLAY


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


def decide(mode: Mode, lookup: Lookup, *, take_index: int = 0, takes_found: int = 1, takes_wanted: int = 1) -> Action:
    """A recorded answer wins, except in refresh mode; what happens otherwise depends on the mode.

    `take_index` counts the earlier identical requests of this gate process; `takes_found` is how many takes the
    found cassette holds, `takes_wanted` the `takes` setting. Record mode fills a cassette up to that many takes:
    a request whose take is not on disk yet goes upstream while the cassette has fewer; past that, the last take
    repeats. In record mode a corrupt cassette is treated as a miss and recorded again; in replay mode it is an
    error that names the file, because replay never writes.
    """
    if mode is Mode.REFRESH:
        return Action.FORWARD_AND_RECORD
    if lookup is Lookup.FOUND and (mode is Mode.REPLAY or take_index < takes_found or takes_found >= takes_wanted):
        return Action.REPLAY_CASSETTE
    if mode is Mode.RECORD:
        return Action.FORWARD_AND_RECORD
    return Action.REPORT_CORRUPT if lookup is Lookup.CORRUPT else Action.REPORT_MISS


def is_recordable(status: int, *, completed: bool) -> bool:
    """Only a 2xx exchange that arrived whole is recorded: errors and broken streams must be retried live."""
    return 200 <= status < 300 and completed
