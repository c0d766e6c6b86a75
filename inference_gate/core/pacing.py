"""Paced replay: when each part of a recorded answer is sent, so that it arrives over the time it took live.

A cassette keeps two numbers per stream, not one per event (see cassette.py): the milliseconds to the first
event and to the last. The events are spread between them, the first at the first time and the last at the
last; how the ones between fall is the `Spread`:
- `even`: at equal intervals. An LLM stream is about one token per event, so this is close to how it came,
  and a large event (the Responses API's closing `response.completed`, which repeats the whole answer) does not
  stall the stream before it.
- `bytes`: each event after the first takes a share of the time in proportion to its size, as if the bytes
  trickled in at a constant rate.

A whole body is one part, sent when the recorded total has passed. `speed` divides every time: 1 is the
recorded pace, 2 twice as fast. The schedule is plain data, computed once per prepared reply; the gate's I/O
shell sleeps through it.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from inference_gate.core.cassette import BodyTiming, ResponseTiming

# Parts of an answer, each with its time in seconds after the answer begins, in order.
Schedule = tuple[tuple[float, bytes], ...]


class Spread(enum.Enum):
    EVEN = "even"
    BYTES = "bytes"


@dataclass(frozen=True, slots=True)
class ReplayPace:
    """How a paced replay runs: `speed` times the recorded pace (greater than 0), events spread by `spread`."""

    speed: float
    spread: Spread = Spread.EVEN


def schedule(parts: Sequence[bytes], timing: ResponseTiming, pace: ReplayPace) -> Schedule:
    """When to send each of `parts` (a stream's events, or a body as its only part) for a recorded `timing`.

    Stream timing spreads the parts between its first and last event; body timing sends them all at its
    total. No part of an answer ever comes before the one it follows.
    """
    if isinstance(timing, BodyTiming):
        return ((timing.total_ms / 1000 / pace.speed, b"".join(parts)),)
    offsets = _spread_offsets(parts, pace.spread)
    first_s = timing.first_event_ms / 1000 / pace.speed
    span_s = (timing.last_event_ms - timing.first_event_ms) / 1000 / pace.speed
    return tuple((first_s + span_s * offset, part) for offset, part in zip(offsets, parts, strict=True))


def _spread_offsets(parts: Sequence[bytes], spread: Spread) -> list[float]:
    """Each part's place between the first event (0) and the last (1)."""
    if len(parts) < 2:
        return [0.0] * len(parts)
    if spread is Spread.EVEN:
        return [index / (len(parts) - 1) for index in range(len(parts))]
    later_bytes = sum(len(part) for part in parts[1:])
    if later_bytes == 0:
        return _spread_offsets(parts, Spread.EVEN)
    offsets, arrived = [0.0], 0
    for part in parts[1:]:
        arrived += len(part)
        offsets.append(arrived / later_bytes)
    return offsets

