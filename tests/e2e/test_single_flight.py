"""Single-flight: identical misses that overlap share one upstream call, its answer and its failure.

The gate, the fake upstream and the SDK clients all run in this test's trio loop. `all_at_the_gate` is the
barrier that says "every client's request has reached the gate": once each client has handed its request to its
HTTP layer (the SDK's one step in a worker thread comes before that) and every task has then been blocked for a
moment, each request is either waiting at the gate or held by the upstream.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any

import openai
import pytest
import trio
import trio.testing

from inference_gate import Mode, Settings
from tests.e2e.conftest import running_gate
from tests.servers import running_upstream
from tools.fake_upstream import FakeUpstream

CLIENT_KEY = "sk-client-key-for-tests-9876543210"
CLIENTS = 20
LATE_JOINERS = 5
SETTLE_S = 0.1
DEADLINE_S = 20
CHAT = "/v1/chat/completions"


def sdk(base_url: str, sent: trio.MemorySendChannel[None] | None = None) -> openai.AsyncOpenAI:
    """An SDK client; with `sent`, it reports each request on it just before sending it."""

    async def report_sent(_request: object) -> None:
        if sent is not None:
            await sent.send(None)

    http_client = openai.DefaultAsyncHttpxClient(event_hooks={"request": [report_sent]})
    return openai.AsyncOpenAI(
        base_url=base_url, api_key=CLIENT_KEY, max_retries=0, timeout=DEADLINE_S, http_client=http_client
    )


async def all_at_the_gate(sent: trio.MemoryReceiveChannel[None]) -> None:
    """Return once CLIENTS requests were sent and every task has been blocked for SETTLE_S."""
    for _ in range(CLIENTS):
        await sent.receive()
    await trio.testing.wait_all_tasks_blocked(cushion=SETTLE_S)


def create_chat(client: openai.AsyncOpenAI, *, model: str = "gpt-4o-mini", stream: bool = False):
    messages = [{"role": "user", "content": "Say it once"}]
    return client.chat.completions.with_raw_response.create(model=model, messages=messages, stream=stream)


def cassette_files(settings: Settings) -> list:
    return sorted(settings.cache_dir.rglob("*")) if settings.cache_dir.exists() else []


async def ask_plain(base_url: str, results: list[tuple[str, Any]], sent: trio.MemorySendChannel[None]) -> None:
    async with sdk(base_url, sent) as client:
        raw = await create_chat(client)
        results.append((raw.headers["x-inference-gate"], raw.parse().model_dump()))


async def ask_streamed(
    base_url: str, results: list[tuple[str, list[Any]]], first_events: trio.MemorySendChannel[None]
) -> None:
    """Read the stream, reporting on `first_events` once its first event has arrived."""
    async with sdk(base_url) as client:
        raw = await create_chat(client, stream=True)
        events = aiter(raw.parse())
        received = [(await anext(events)).model_dump()]
        await first_events.send(None)
        received += [event.model_dump() async for event in events]
        results.append((raw.headers["x-inference-gate"], received))


async def ask_expecting_error(
    base_url: str, model: str, errors: list[openai.APIStatusError], sent: trio.MemorySendChannel[None] | None = None
) -> None:
    async with sdk(base_url, sent) as client:
        with pytest.raises(openai.APIStatusError) as raised:
            await create_chat(client, model=model)
        errors.append(raised.value)


async def test_concurrent_identical_misses_make_one_upstream_call(record_settings: Settings):
    upstream = FakeUpstream()
    upstream.hold = trio.Event()  # the upstream answers nothing until every client is waiting
    results: list[tuple[str, Any]] = []
    sent, sent_requests = trio.open_memory_channel[None](CLIENTS)
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url)
            async with running_gate(settings, Mode.RECORD) as gate, trio.open_nursery() as clients:
                for _ in range(CLIENTS):
                    clients.start_soon(ask_plain, gate.base_url, results, sent)
                await all_at_the_gate(sent_requests)
                assert upstream.calls(CHAT) == 1
                upstream.hold.set()
    assert upstream.calls(CHAT) == 1
    assert len(results) == CLIENTS
    assert {outcome for outcome, _ in results} == {"recorded"}  # all joined the call; none was a later hit
    assert all(body == results[0][1] for _, body in results)
    assert len([path for path in cassette_files(settings) if path.is_file()]) == 1


async def test_concurrent_identical_streamed_misses_make_one_upstream_call(record_settings: Settings):
    upstream = FakeUpstream()
    upstream.hold = trio.Event()  # the stream pauses after its first event until every client has it
    results: list[tuple[str, list[Any]]] = []
    first_events, first_events_arrived = trio.open_memory_channel[None](CLIENTS)
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url)
            async with running_gate(settings, Mode.RECORD) as gate, trio.open_nursery() as clients:
                for _ in range(CLIENTS):
                    clients.start_soon(ask_streamed, gate.base_url, results, first_events)
                for _ in range(CLIENTS):
                    await first_events_arrived.receive()
                upstream.hold.set()
    assert upstream.calls(CHAT) == 1
    assert len(results) == CLIENTS
    assert {outcome for outcome, _ in results} == {"recording"}  # a live stream's head promises the cassette
    assert all(events == results[0][1] for _, events in results)
    assert results[0][1][-1]["choices"][0]["finish_reason"] == "stop"


async def test_a_late_joiner_receives_the_whole_stream_from_its_first_event(record_settings: Settings):
    upstream = FakeUpstream()
    upstream.hold = trio.Event()
    first: list[tuple[str, list[Any]]] = []
    joiners: list[tuple[str, list[Any]]] = []
    first_events, first_events_arrived = trio.open_memory_channel[None](LATE_JOINERS + 1)
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url)
            async with running_gate(settings, Mode.RECORD) as gate, trio.open_nursery() as clients:
                clients.start_soon(ask_streamed, gate.base_url, first, first_events)
                await first_events_arrived.receive()  # the first event went out before anyone joined
                for _ in range(LATE_JOINERS):
                    clients.start_soon(ask_streamed, gate.base_url, joiners, first_events)
                for _ in range(LATE_JOINERS):
                    await first_events_arrived.receive()
                upstream.hold.set()
    assert upstream.calls(CHAT) == 1
    [(_, whole_stream)] = first
    assert len(whole_stream) > 3
    assert len(joiners) == LATE_JOINERS
    for outcome, events in joiners:
        assert outcome == "recording"  # joined the exchange in flight: the cassette did not exist yet
        assert events == whole_stream


async def test_a_joiner_after_the_recording_cap_gets_its_own_upstream_call(record_settings: Settings):
    upstream = FakeUpstream()
    upstream.hold = trio.Event()
    first: list[tuple[str, list[Any]]] = []
    later: list[tuple[str, list[Any]]] = []
    first_events, first_events_arrived = trio.open_memory_channel[None](2)
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            # The first event alone is over the cap: the exchange keeps no chunk a late joiner would need.
            settings = replace(record_settings, upstream=upstream.url, max_recorded_bytes=16)
            async with running_gate(settings, Mode.RECORD) as gate, trio.open_nursery() as clients:
                clients.start_soon(ask_streamed, gate.base_url, first, first_events)
                await first_events_arrived.receive()
                clients.start_soon(ask_streamed, gate.base_url, later, first_events)
                await first_events_arrived.receive()
                upstream.hold.set()
    assert upstream.calls(CHAT) == 2
    [(_, whole_stream)] = first
    [(_, later_stream)] = later
    assert len(whole_stream) > 3
    assert later_stream == whole_stream
    assert cassette_files(settings) == []


@pytest.fixture
async def dropping_upstream():
    """A TCP server that reads each request and then closes the connection without answering, once told to.

    Yields the port, the count of connections accepted, and the event that lets it close them.
    """
    accepted: list[trio.SocketStream] = []
    close_now = trio.Event()

    async def drop_after_release(stream: trio.SocketStream) -> None:
        accepted.append(stream)
        async with stream:
            await stream.receive_some()
            await close_now.wait()

    async with trio.open_nursery() as nursery:
        [listener] = await nursery.start(functools.partial(trio.serve_tcp, drop_after_release, 0, host="127.0.0.1"))
        yield listener.socket.getsockname()[1], accepted, close_now
        nursery.cancel_scope.cancel()


async def test_a_failed_upstream_status_reaches_every_waiter_and_records_nothing(record_settings: Settings):
    upstream = FakeUpstream()
    upstream.hold = trio.Event()
    errors: list[openai.APIStatusError] = []
    sent, sent_requests = trio.open_memory_channel[None](CLIENTS)
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url)
            async with running_gate(settings, Mode.RECORD) as gate, trio.open_nursery() as clients:
                for _ in range(CLIENTS):
                    clients.start_soon(ask_expecting_error, gate.base_url, "fault-500", errors, sent)
                await all_at_the_gate(sent_requests)
                upstream.hold.set()
    assert upstream.calls(CHAT) == 1
    assert len(errors) == CLIENTS
    assert {(error.status_code, str(error.body)) for error in errors} == {(500, str(errors[0].body))}
    assert errors[0].body["type"] == "server_error"
    assert cassette_files(settings) == []


async def test_a_connection_dropped_before_any_answer_fails_every_waiter_alike(
    record_settings: Settings, dropping_upstream
):
    port, accepted, close_now = dropping_upstream
    settings = replace(record_settings, upstream=f"http://127.0.0.1:{port}")
    errors: list[openai.APIStatusError] = []
    sent, sent_requests = trio.open_memory_channel[None](CLIENTS)
    with trio.fail_after(DEADLINE_S):
        async with running_gate(settings, Mode.RECORD) as gate:
            async with trio.open_nursery() as clients:
                for _ in range(CLIENTS):
                    clients.start_soon(ask_expecting_error, gate.base_url, "gpt-4o-mini", errors, sent)
                await all_at_the_gate(sent_requests)
                assert len(accepted) == 1
                close_now.set()
            await ask_expecting_error(gate.base_url, "gpt-4o-mini", errors)  # the failure was not kept
    assert len(accepted) == 2
    assert len(errors) == CLIENTS + 1
    assert {(error.status_code, error.body["code"]) for error in errors} == {(502, "upstream_disconnected")}
    assert len({error.body["message"] for error in errors}) == 1
    assert cassette_files(settings) == []


async def test_a_refused_connection_gives_every_concurrent_client_the_same_502(record_settings: Settings):
    with trio.socket.socket() as unused:
        await unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    settings = replace(record_settings, upstream=f"http://127.0.0.1:{closed_port}")
    errors: list[openai.APIStatusError] = []
    with trio.fail_after(DEADLINE_S):
        async with running_gate(settings, Mode.RECORD) as gate, trio.open_nursery() as clients:
            for _ in range(CLIENTS):
                clients.start_soon(ask_expecting_error, gate.base_url, "gpt-4o-mini", errors)
    assert len(errors) == CLIENTS
    assert {(error.status_code, error.body["code"]) for error in errors} == {(502, "upstream_unreachable")}
    assert len({error.body["message"] for error in errors}) == 1
    assert cassette_files(settings) == []
