"""File descriptors: how many connections the open files limit affords, and waiting out a moment without any.

Every client connection holds a descriptor, and while it is answered it may hold one more: the cassette a hit
opens, or the upstream socket a recording opens. So connections are capped at half the open files limit, less a
reserve for what the process holds anyway (listeners, the event loop, standard streams, logs). With more
connections than that, a burst of them takes every descriptor and hits start failing to open their files.

A hit or a recording that still finds no descriptor free waits a moment and tries again, rather than failing at
once: a connection closing frees one. Only a shortage that outlasts `DESCRIPTOR_WAIT_S` is an error, 503 and
retryable, that says what ran out.
"""

from __future__ import annotations

import errno
import logging
import resource
from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

from inference_gate.core.errors import GateError

logger = logging.getLogger("inference_gate")

T = TypeVar("T")

DESCRIPTOR_ERRORS = frozenset({errno.EMFILE, errno.ENFILE})
RESERVED_DESCRIPTORS = 32
MOST_CONNECTIONS = 1000
DESCRIPTOR_WAIT_S = 5.0
FIRST_RETRY_S = 0.01
LONGEST_RETRY_S = 0.25


def open_files_limit() -> int:
    """This process's soft limit on open files (resource.RLIM_INFINITY when there is none)."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def affordable_connections(limit: int) -> int:
    """The most client connections that `limit` open files afford: half of them, less the reserve, at most
    `MOST_CONNECTIONS` and at least one."""
    if limit == resource.RLIM_INFINITY:
        return MOST_CONNECTIONS
    return max(1, min(MOST_CONNECTIONS, (limit - RESERVED_DESCRIPTORS) // 2))


def connection_limit(configured: int | None) -> int:
    """The connection cap to serve with: `configured`, or when it is None the one the open files limit affords.
    A configured cap above that is kept, with a warning, since it is a choice the user made."""
    limit = open_files_limit()
    affordable = affordable_connections(limit)
    if configured is None:
        return affordable
    if configured > affordable:
        logger.warning(
            "max_connections is %d, but the open files limit (%d) affords %d: a burst of connections can leave "
            "hits without a descriptor to open their cassettes; lower max_connections or raise the limit "
            "(ulimit -n)",
            configured,
            limit,
            affordable,
        )
    return configured


def is_out_of_descriptors(error: BaseException) -> bool:
    """Whether `error`, or any of the attempts it reports as its cause (trio's connect does), is a lack of file
    descriptors."""
    if isinstance(error, OSError) and error.errno in DESCRIPTOR_ERRORS:
        return True
    cause = error.__cause__
    attempts = cause.exceptions if isinstance(cause, BaseExceptionGroup) else [cause] if cause else []
    return any(is_out_of_descriptors(attempt) for attempt in attempts)


async def retrying_without_descriptors(operation: Callable[[], Awaitable[T]], what: str) -> T:
    """`operation`'s result, trying it again after a short, growing wait while it fails for want of a file
    descriptor; once that has lasted `DESCRIPTOR_WAIT_S`, a 503 GateError saying what could not be done (`what`).
    Only the waits count: the operation itself may take as long as it takes."""
    delay_s = FIRST_RETRY_S
    give_up_at = trio.current_time() + DESCRIPTOR_WAIT_S
    while True:
        try:
            return await operation()
        except Exception as error:
            if not is_out_of_descriptors(error):
                raise
        if trio.current_time() >= give_up_at:
            raise GateError(
                503,
                f"The gate ran out of file descriptors {what} for {DESCRIPTOR_WAIT_S:g} s: it serves more "
                f"connections than its open files limit ({open_files_limit()}) affords. Retry later, lower "
                "max_connections, or raise the limit.",
                code="out_of_file_descriptors",
                retryable=True,
            )
        await trio.sleep(delay_s)
        delay_s = min(delay_s * 2, LONGEST_RETRY_S)
