import pytest

from inference_gate.core.cassette import BodyTiming, RecordedResponse, StreamTiming, Take
from inference_gate.core.pacing import ReplayPace
from inference_gate.core.sse import SSEEvent, serialize_event
from inference_gate.proxy.replies import PreparedReply, PreparedTakes, ReplyCache

EVENTS = [SSEEvent(data='{"n":1}'), SSEEvent(data='{"n":2}'), SSEEvent(data="[DONE]")]


def one_reply(size: int) -> PreparedReply:
    return PreparedReply(200, [], b"x" * size, streamed=False, name="chat.completions/x.json")


def reply(size: int) -> PreparedTakes:
    return PreparedTakes((one_reply(size),))


def test_the_least_recently_used_reply_goes_first_past_the_bound():
    cache = ReplyCache(max_bytes=500)
    cache.put("a", reply(100))
    cache.put("b", reply(100))
    assert cache.get("a") is not None  # "a" is now the most recently used
    cache.put("c", reply(100))
    assert cache.get("b") is None
    assert cache.get("a") is not None and cache.get("c") is not None
    assert cache.total_bytes == 400 and len(cache) == 2


def test_the_newest_reply_stays_even_when_it_alone_exceeds_the_bound():
    cache = ReplyCache(max_bytes=10)
    cache.put("big", reply(100))
    assert cache.get("big") is not None and len(cache) == 1


def test_replacing_and_discarding_keep_the_byte_count_right():
    cache = ReplyCache(max_bytes=1000)
    cache.put("a", reply(100))
    cache.put("a", reply(300))
    assert cache.total_bytes == 600
    cache.discard("a")
    cache.discard("absent")
    assert cache.total_bytes == 0 and cache.get("a") is None


def test_size_counts_headers_and_the_body_twice_as_the_server_keeps_it_framed_too():
    assert PreparedReply(200, [(b"ab", b"cd")], b"xyz", streamed=True, name="n").size_bytes == 10


def test_every_hit_gets_the_same_response_object_so_the_server_frames_it_once():
    prepared = one_reply(10)
    assert prepared.response() is prepared.response()
    assert prepared.response().body is prepared.body


def test_the_exact_request_memo_finds_the_reply_and_counts_the_whole_request_against_its_cap():
    cache = ReplyCache(max_memo_bytes=30)
    cache.put("k", reply(10))
    short = ("POST", "/v1/chat/completions", b"{}")  # 4 + 20 + 2 = 26 bytes
    cache.remember_request(short, "k")
    assert cache.key_of_exact_request(short) == "k"
    assert cache.memo_bytes == 26
    long_target = ("POST", "/v1/chat/completions?x=1", b"")  # 28 bytes with no body: over the cap with the first
    cache.remember_request(long_target, "k")
    assert cache.key_of_exact_request(long_target) is None
    assert cache.memo_bytes == 26


def test_takes_count_every_reply_and_repeat_the_last_once_they_run_out():
    takes = PreparedTakes((one_reply(1), one_reply(2), one_reply(3)))
    assert takes.size_bytes == 2 * (1 + 2 + 3) and len(takes) == 3  # each body held raw and framed
    assert [len(takes.take(index).body) for index in range(5)] == [1, 2, 3, 3, 3]


def test_a_paced_stream_is_scheduled_event_by_event_once_with_the_same_head():
    stream = RecordedResponse(200, {"content-type": "text/event-stream"}, events=EVENTS, timing=StreamTiming(100, 300))
    take = Take("t", stream)
    reply = PreparedReply.from_take(take, "chat.completions/x.json", ReplayPace(2.0))
    assert reply.paced is not None
    assert reply.paced.headers == reply.headers
    assert [at_s for at_s, _ in reply.paced.schedule] == pytest.approx([0.05, 0.1, 0.15])
    assert [part for _, part in reply.paced.schedule] == [serialize_event(event) for event in EVENTS]
    assert b"".join(part for _, part in reply.paced.schedule) == reply.body == take.response_body_bytes()


def test_a_paced_whole_body_keeps_its_content_length_and_comes_at_its_total():
    take = Take("t", RecordedResponse(200, {"content-type": "application/json"}, b'{"a":1}', timing=BodyTiming(800)))
    reply = PreparedReply.from_take(take, "chat.completions/x.json", ReplayPace(1.0))
    assert reply.paced is not None
    assert reply.paced.headers == [*reply.headers, (b"content-length", b"7")]
    assert reply.paced.schedule == ((0.8, b'{"a":1}'),)


def test_no_pace_or_no_recorded_timing_means_an_instant_reply():
    timed = Take("t", RecordedResponse(200, {}, b"{}", timing=BodyTiming(800)))
    untimed = Take("t", RecordedResponse(200, {}, b"{}"))
    assert PreparedReply.from_take(timed, "n").paced is None
    assert PreparedReply.from_take(untimed, "n", ReplayPace(1.0)).paced is None
