import orjson
import pytest

from inference_gate.config.settings import Settings
from inference_gate.core.dialects import Dialect
from inference_gate.core.errors import GateError
from inference_gate.core.outcome import CASSETTE_HEADER, OUTCOME_HEADER, REASON_HEADER
from inference_gate.core.pacing import Schedule
from inference_gate.core.policy import Mode
from inference_gate.core.sse import SSEEvent, serialize_event
from inference_gate.proxy.faults import (
    INJECTED_FAULT_TYPE,
    RETRY_AFTER_MS,
    RETRY_AFTER_S,
    STREAM_FAULTS,
    WHOLE_BODY_FAULTS,
    FaultKind,
    FaultPlan,
    cut_schedule,
    fault_plan,
    fault_response,
    stream_prefix,
)
from inference_gate.proxy.replies import PacedReply, PreparedReply

KEYS = [f"{number:064x}" for number in range(4000)]
EVENTS = b"".join(serialize_event(SSEEvent(data=f'{{"n": {number}}}')) for number in range(6)) + b"data: [DONE]\n\n"


def faults_over_keys(plan: FaultPlan, *, streamed: bool = True) -> list[FaultKind | None]:
    return [plan.fault_for(key, 0, streamed=streamed) for key in KEYS]


def streamed_reply() -> PreparedReply:
    headers = [(b"content-type", b"text/event-stream"), (OUTCOME_HEADER, b"hit"), (CASSETTE_HEADER, b"chat/a.json")]
    return PreparedReply(200, headers, EVENTS, streamed=True, name="chat/a.json")


async def play_at_once(schedule: Schedule):
    """What the gate's paced sender does, without the waits: each part in order."""
    for _, part in schedule:
        yield part


def whole_reply() -> PreparedReply:
    return PreparedReply(200, [(OUTCOME_HEADER, b"hit")], b'{"ok": true}', streamed=False, name="chat/b.json")


def test_the_decision_is_a_function_of_seed_key_and_occurrence_alone():
    def decisions(plan: FaultPlan) -> list[FaultKind | None]:
        return [plan.fault_for(key, occurrence, streamed=True) for key in KEYS[:200] for occurrence in range(3)]

    plan = FaultPlan(rate=0.5, seed=7)
    assert decisions(plan) == decisions(FaultPlan(rate=0.5, seed=7))
    # The occurrence matters: a retry of a failed request gets a decision of its own.
    assert [plan.fault_for(KEYS[0], occurrence, streamed=True) for occurrence in range(40)].count(None) not in (0, 40)


@pytest.mark.parametrize("rate", [0.05, 0.3, 0.9])
def test_the_share_of_failed_requests_is_the_rate(rate: float):
    failed = sum(fault is not None for fault in faults_over_keys(FaultPlan(rate, seed=1)))
    assert abs(failed / len(KEYS) - rate) < 0.03  # binomial: about four standard deviations at 4000 draws


def test_rate_zero_never_fails_and_rate_one_always_does():
    assert set(faults_over_keys(FaultPlan(0.0, seed=3))) == {None}
    assert None not in faults_over_keys(FaultPlan(1.0, seed=3))


def test_different_seeds_fail_different_requests():
    assert faults_over_keys(FaultPlan(0.5, seed=1)) != faults_over_keys(FaultPlan(0.5, seed=2))


def test_every_kind_occurs_and_a_whole_body_is_never_cut():
    assert set(faults_over_keys(FaultPlan(1.0, seed=0), streamed=True)) == set(STREAM_FAULTS)
    assert set(faults_over_keys(FaultPlan(1.0, seed=0), streamed=False)) == set(WHOLE_BODY_FAULTS)


@pytest.mark.parametrize(
    ("dialect", "error_type_of"),
    [
        (Dialect.OPENAI, lambda document: document["error"]["type"]),
        (Dialect.ANTHROPIC, lambda document: document["error"]["type"]),
        (Dialect.GEMINI, lambda document: document["error"]["status"]),
    ],
)
def test_a_rate_limit_is_a_429_in_the_dialects_shape_with_a_short_retry_after(dialect, error_type_of):
    response = fault_response(FaultKind.RATE_LIMITED, whole_reply(), dialect, play_at_once)
    headers = dict(response.headers)
    assert response.status == 429
    assert headers[b"retry-after"] == str(RETRY_AFTER_S).encode()
    assert headers[b"retry-after-ms"] == str(RETRY_AFTER_MS).encode()
    assert b"x-should-retry" not in headers  # the SDKs retry a 429 by its status
    assert headers[OUTCOME_HEADER] == b"error" and headers[REASON_HEADER] == b"injected_fault: rate_limited"
    assert headers[CASSETTE_HEADER] == b"chat/b.json"
    expected = "RESOURCE_EXHAUSTED" if dialect is Dialect.GEMINI else INJECTED_FAULT_TYPE
    assert error_type_of(orjson.loads(response.body)) == expected


def test_a_server_error_is_a_500_without_retry_after():
    response = fault_response(FaultKind.SERVER_ERROR, whole_reply(), Dialect.OPENAI, play_at_once)
    headers = dict(response.headers)
    assert response.status == 500 and b"retry-after" not in headers
    assert headers[REASON_HEADER] == b"injected_fault: server_error"
    assert orjson.loads(response.body)["error"]["code"] == "injected_fault"


async def test_a_cut_stream_sends_its_head_and_part_of_the_events_then_fails():
    response = fault_response(FaultKind.STREAM_CUT, streamed_reply(), Dialect.OPENAI, play_at_once)
    headers = dict(response.headers)
    assert response.status == 200 and headers[b"content-type"] == b"text/event-stream"
    assert headers[OUTCOME_HEADER] == b"error" and headers[REASON_HEADER] == b"injected_fault: stream_cut"
    assert [name for name, _ in response.headers].count(OUTCOME_HEADER) == 1
    assert response.stream is not None
    sent = [await anext(response.stream)]
    with pytest.raises(GateError):
        sent.append(await anext(response.stream))
    assert sent == [stream_prefix(EVENTS)]


async def test_a_paced_stream_is_cut_at_its_pace():
    events = [serialize_event(SSEEvent(data=f'{{"n": {number}}}')) for number in range(6)]
    events.append(b"data: [DONE]\n\n")
    paced = tuple((0.1 * number, event) for number, event in enumerate(events))
    reply = streamed_reply()
    reply.paced = PacedReply(reply.headers, paced)
    played: list[Schedule] = []

    async def record_play(schedule: Schedule):
        played.append(schedule)
        async for part in play_at_once(schedule):
            yield part

    response = fault_response(FaultKind.STREAM_CUT, reply, Dialect.OPENAI, record_play)
    assert response.stream is not None
    sent = []
    with pytest.raises(GateError):
        async for part in response.stream:
            sent.append(part)
    assert b"".join(sent) == stream_prefix(EVENTS)
    [schedule] = played
    assert schedule == paced[: len(schedule)] and 0 < len(schedule) < len(paced)  # whole events, at their times


def test_cutting_a_schedule_inside_a_part_shortens_that_part():
    schedule = ((0.0, b"abc"), (0.5, b"defg"), (1.0, b"hi"))
    assert cut_schedule(schedule, 5) == ((0.0, b"abc"), (0.5, b"de"))
    assert cut_schedule(schedule, 3) == ((0.0, b"abc"),)
    assert cut_schedule(schedule, 9) == schedule


def test_a_stream_is_cut_at_the_event_boundary_nearest_its_middle():
    prefix = stream_prefix(EVENTS)
    assert prefix.endswith(b"\n\n") and EVENTS.startswith(prefix)
    assert abs(len(prefix) - len(EVENTS) / 2) < len(EVENTS) / 7  # within one event of the middle (7 events)


def test_a_stream_of_one_event_is_cut_inside_it():
    one = serialize_event(SSEEvent(data="only"))
    assert stream_prefix(one) == one[: len(one) // 2]


def test_faults_are_injected_only_with_a_rate_and_where_cassettes_answer():
    settings = Settings(fault_rate=0.25, fault_seed=9)
    assert fault_plan(settings, Mode.REPLAY) == fault_plan(settings, Mode.RECORD) == FaultPlan(0.25, 9)
    assert fault_plan(settings, Mode.REFRESH) is None
    assert fault_plan(Settings(), Mode.REPLAY) is None
