import pytest
import trio
import trio.testing

from inference_gate.core.errors import GateError
from inference_gate.proxy.inflight import InflightExchange

KEPT_BYTES = 1024


async def collect(exchange: InflightExchange, into: list[bytes]) -> None:
    async for chunk in exchange.body():
        into.append(chunk)


async def test_a_late_reader_receives_the_whole_body():
    exchange = InflightExchange(max_kept_bytes=KEPT_BYTES)
    early: list[bytes] = []
    late: list[bytes] = []
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            exchange.set_head(200, [])
            nursery.start_soon(collect, exchange, early)
            exchange.append(b"a")
            await trio.sleep(0)
            exchange.append(b"b")
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(collect, exchange, late)
            exchange.append(b"c")
            exchange.finish()
    assert b"".join(early) == b"".join(late) == b"abc"
    assert late == [b"abc"]  # the backlog a late reader finds goes out as one write
    assert await exchange.head() == (200, [])


async def test_a_failure_before_the_head_reaches_every_reader():
    exchange = InflightExchange(max_kept_bytes=KEPT_BYTES)
    error = GateError(502, "down", code="upstream_unreachable")
    seen: list[GateError] = []

    async def wait_head():
        try:
            await exchange.head()
        except GateError as raised:
            seen.append(raised)

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait_head)
            nursery.start_soon(wait_head)
            await trio.testing.wait_all_tasks_blocked()
            exchange.fail(error)
    assert seen == [error, error]


async def test_a_break_midway_raises_after_the_chunks_so_far():
    exchange = InflightExchange(max_kept_bytes=KEPT_BYTES)
    exchange.set_head(200, [])
    exchange.append(b"part")
    exchange.fail(GateError(502, "reset", code="upstream_disconnected"))
    received: list[bytes] = []
    with pytest.raises(GateError, match="reset"):
        await collect(exchange, received)
    assert received == [b"part"]


async def test_over_the_cap_a_chunk_is_kept_only_until_every_reader_has_taken_it():
    exchange = InflightExchange(max_kept_bytes=4)
    exchange.set_head(200, [])
    fast, slow = exchange.body(), exchange.body()
    with trio.fail_after(5):
        exchange.append(b"abc")
        assert await fast.__anext__() == b"abc"
        exchange.append(b"def")
        assert exchange.over_cap
        await exchange.over_cap_or_finished()
        assert await fast.__anext__() == b"def"
        assert exchange.chunks == [b"abc", b"def"]  # the slow reader has taken neither
        assert await slow.__anext__() == b"abcdef"
        assert exchange.chunks == []
        exchange.append(b"ghi")
        slow.close()
        assert exchange.chunks == [b"ghi"]  # the fast reader has yet to take it
        assert await fast.__anext__() == b"ghi"
        assert exchange.chunks == []
        exchange.finish()
        assert [chunk async for chunk in fast] == []


async def test_under_the_cap_every_chunk_is_kept_for_the_cassette():
    exchange = InflightExchange(max_kept_bytes=6)
    exchange.set_head(200, [])
    reader = exchange.body()
    exchange.append(b"abc")
    exchange.append(b"def")
    reader.close()
    exchange.finish()
    assert not exchange.over_cap
    assert exchange.chunks == [b"abc", b"def"]


async def test_held_back_chunks_reach_readers_only_at_finish():
    exchange = InflightExchange(max_kept_bytes=KEPT_BYTES)
    received: list[bytes] = []
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            exchange.set_head(200, [])
            nursery.start_soon(collect, exchange, received)
            exchange.append(b"event 1\n\n")
            exchange.hold_back()
            exchange.append(b"data: [DONE]\n\n")
            await trio.testing.wait_all_tasks_blocked()
            assert received == [b"event 1\n\n"]
            exchange.append(b": not recorded\n\n")
            await trio.testing.wait_all_tasks_blocked()
            assert received == [b"event 1\n\n"]
            exchange.finish()
    assert b"".join(received) == b"event 1\n\ndata: [DONE]\n\n: not recorded\n\n"


async def test_a_response_over_the_cap_holds_nothing_back():
    exchange = InflightExchange(max_kept_bytes=4)
    received: list[bytes] = []
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            exchange.set_head(200, [])
            nursery.start_soon(collect, exchange, received)
            await trio.testing.wait_all_tasks_blocked()
            exchange.hold_back()
            exchange.append(b"larger than the cap")
            await trio.testing.wait_all_tasks_blocked()
            assert received == [b"larger than the cap"]  # it will not be recorded: nothing to wait for
            exchange.finish()

