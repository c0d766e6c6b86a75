import errno
import logging
import resource

import pytest
import trio

from inference_gate.core.errors import GateError
from inference_gate.http import descriptors
from inference_gate.http.descriptors import (
    DESCRIPTOR_WAIT_S,
    affordable_connections,
    connection_limit,
    is_out_of_descriptors,
    retrying_without_descriptors,
)


@pytest.mark.parametrize(
    ("limit", "affordable"),
    [(256, 112), (1024, 496), (64, 16), (20, 1), (1_000_000, 1000), (resource.RLIM_INFINITY, 1000)],
)
def test_connections_are_half_the_open_files_limit_less_a_reserve(limit, affordable):
    assert affordable_connections(limit) == affordable


def test_an_unset_cap_is_derived_and_one_set_too_high_is_kept_with_a_warning(monkeypatch, caplog):
    monkeypatch.setattr(descriptors, "open_files_limit", lambda: 256)
    assert connection_limit(None) == 112
    assert connection_limit(100) == 100 and not caplog.records
    with caplog.at_level(logging.WARNING, logger="inference_gate"):
        assert connection_limit(1000) == 1000
    assert "max_connections is 1000, but the open files limit (256) affords 112" in caplog.text


def test_a_shortage_is_recognised_through_the_errors_that_wrap_it():
    emfile = OSError(errno.EMFILE, "Too many open files")
    wrapped = GateError(502, "could not connect", code="upstream_unreachable")
    wrapped.__cause__ = OSError("all attempts failed")
    wrapped.__cause__.__cause__ = ExceptionGroup("attempts", [OSError(errno.ECONNREFUSED, "refused"), emfile])
    assert is_out_of_descriptors(emfile) and is_out_of_descriptors(wrapped)
    assert not is_out_of_descriptors(OSError(errno.ECONNREFUSED, "refused"))


async def test_an_operation_short_of_descriptors_is_tried_again_until_one_comes_free(autojump_clock):
    attempts = []

    async def opens_on_the_third_try() -> str:
        attempts.append(trio.current_time())
        if len(attempts) < 3:
            raise OSError(errno.EMFILE, "Too many open files")
        return "opened"

    assert await retrying_without_descriptors(opens_on_the_third_try, "to open a cassette") == "opened"
    assert len(attempts) == 3 and attempts[-1] - attempts[0] < 0.1


async def test_a_shortage_that_outlasts_the_wait_is_a_503_to_retry(autojump_clock):
    async def never_opens() -> None:
        raise OSError(errno.ENFILE, "Too many open files in system")

    started = trio.current_time()
    with pytest.raises(GateError) as raised:
        await retrying_without_descriptors(never_opens, "to open a cassette")
    assert DESCRIPTOR_WAIT_S <= trio.current_time() - started < DESCRIPTOR_WAIT_S + 1
    assert raised.value.status == 503 and raised.value.code == "out_of_file_descriptors"
    assert "ran out of file descriptors to open a cassette" in str(raised.value.message)


async def test_other_errors_are_not_retried(autojump_clock):
    async def refused() -> None:
        raise OSError(errno.ECONNREFUSED, "Connection refused")

    with pytest.raises(OSError, match="refused"):
        await retrying_without_descriptors(refused, "to connect to the upstream")
