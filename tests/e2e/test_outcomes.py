"""The outcome the gate reports is what happened: `recorded` is on disk, and a write that fails says so."""

from __future__ import annotations

import errno
import time
from dataclasses import replace

import openai
import pytest
import trio

from inference_gate import Mode, Settings
from inference_gate.core.outcome import Answer, Outcome
from inference_gate.store.cassette_store import CassetteStore
from tests.e2e.conftest import running_gate
from tests.servers import running_upstream
from tools.fake_replies import reply_text
from tools.fake_upstream import FakeUpstream

CLIENT_KEY = "sk-client-key-for-tests-9876543210"
MESSAGES = [{"role": "user", "content": "Hello there"}]
# Smaller than any chat completion the fake upstream sends, streamed or not.
MAX_RECORDED_BYTES = 64


def client(base_url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base_url, api_key=CLIENT_KEY, max_retries=0)


def cassettes(settings: Settings) -> list:
    return sorted(settings.cache_dir.rglob("*.json")) if settings.cache_dir.exists() else []


async def test_each_request_gets_one_answer_once_its_outcome_is_decided(record_settings):
    upstream = FakeUpstream()
    answers: list[Answer] = []
    with trio.fail_after(20):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url)
            async with (
                running_gate(settings, Mode.RECORD, on_answer=answers.append) as gate,
                client(gate.base_url) as sdk,
            ):
                await sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
                await sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
                with pytest.raises(openai.RateLimitError):
                    await sdk.chat.completions.create(model="fault-429", messages=MESSAGES)
    [cassette] = cassettes(settings)
    name = cassette.relative_to(settings.cache_dir).as_posix()
    assert [(answer.path, answer.status, answer.outcome, answer.cassette) for answer in answers] == [
        ("/v1/chat/completions", 200, Outcome.RECORDED, name),
        ("/v1/chat/completions", 200, Outcome.HIT, name),
        ("/v1/chat/completions", 429, Outcome.PASSTHROUGH, None),
    ]
    assert answers[2].reason == "upstream status 429"


@pytest.mark.parametrize("stream", [False, True])
async def test_the_cassette_is_on_disk_when_the_client_has_the_whole_body(record_settings, stream):
    upstream = FakeUpstream()
    with trio.fail_after(20):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url)
            async with running_gate(settings, Mode.RECORD) as gate, client(gate.base_url) as sdk:
                if stream:
                    async with await sdk.chat.completions.create(
                        model="gpt-4o-mini", messages=MESSAGES, stream=True
                    ) as events:
                        async for _ in events:
                            pass
                else:
                    await sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
                on_disk = cassettes(settings)  # checked before the gate stops, with no wait
    assert len(on_disk) == 1


# How long the slowed write below takes: long enough that a stream which ended before its cassette was on disk
# is caught, whatever the machine's speed.
SLOW_WRITE_S = 0.3


def read_chat_until_done(sdk: openai.OpenAI) -> str:
    """The sync SDK itself stops at `data: [DONE]`."""
    with sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True) as events:
        return "".join(chunk.choices[0].delta.content or "" for chunk in events if chunk.choices)


def read_responses_until_completed(sdk: openai.OpenAI) -> str:
    """A caller may stop at `response.completed`, the Responses API's last event."""
    with sdk.responses.create(model="gpt-4o-mini", input=MESSAGES[0]["content"], stream=True) as events:
        for event in events:
            if event.type == "response.completed":
                return event.response.output_text
    raise AssertionError("the stream had no response.completed event")


@pytest.mark.parametrize("read_until_final", [read_chat_until_done, read_responses_until_completed])
async def test_a_stream_ends_for_a_client_that_stops_at_its_final_event_only_once_its_cassette_is_on_disk(
    record_settings, monkeypatch, read_until_final
):
    # Such a client never reads the end of the chunked body, so the final event itself must wait for the
    # cassette. The write is slowed so that the race is certain.
    save = CassetteStore.save

    def slow_save(*args, **kwargs):
        time.sleep(SLOW_WRITE_S)
        return save(*args, **kwargs)

    monkeypatch.setattr(CassetteStore, "save", slow_save)
    upstream = FakeUpstream()
    with trio.fail_after(20):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url)
            async with running_gate(settings, Mode.RECORD) as gate:

                def read_then_look() -> tuple[str, list]:
                    with openai.OpenAI(base_url=gate.base_url, api_key=CLIENT_KEY, max_retries=0) as sdk:
                        text = read_until_final(sdk)
                        return text, cassettes(settings)  # looked at the moment the client stopped reading

                text, on_disk = await trio.to_thread.run_sync(read_then_look)
    assert text == reply_text(MESSAGES[0]["content"])
    assert len(on_disk) == 1


async def test_a_failed_write_is_passthrough_with_its_reason_and_is_not_kept(record_settings, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(CassetteStore, "save", disk_full)
    upstream = FakeUpstream()
    answers: list[Answer] = []
    with trio.fail_after(20):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url)
            async with (
                running_gate(settings, Mode.RECORD, on_answer=answers.append) as gate,
                client(gate.base_url) as sdk,
            ):
                for _ in range(2):
                    raw = await sdk.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
                    assert raw.parse().choices[0].message.content
                    assert raw.headers["x-inference-gate"] == "passthrough"
                    assert "No space left on device" in raw.headers["x-inference-gate-reason"]
                    assert "x-inference-gate-cassette" not in raw.headers
    assert upstream.calls("/v1/chat/completions") == 2  # the second was not answered from memory
    assert [answer.outcome for answer in answers] == [Outcome.PASSTHROUGH, Outcome.PASSTHROUGH]
    assert cassettes(settings) == []


async def test_a_file_where_the_endpoint_folder_goes_makes_it_passthrough(record_settings):
    upstream = FakeUpstream()
    with trio.fail_after(20):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url)
            settings.cache_dir.mkdir()
            (settings.cache_dir / "chat.completions").write_text("a file where the endpoint folder goes")
            async with running_gate(settings, Mode.RECORD) as gate, client(gate.base_url) as sdk:
                raw = await sdk.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    assert raw.headers["x-inference-gate"] == "passthrough"
    assert raw.headers["x-inference-gate-reason"].startswith("the cassette could not be written")


async def test_start_up_removes_the_temp_files_an_interrupted_write_left(record_settings, caplog):
    folder = record_settings.cache_dir / "chat.completions"
    folder.mkdir(parents=True)
    leftover = folder / ".say-hi.0123456789abcdef.json.k3j4h5.tmp"
    leftover.write_bytes(b"{}")
    keep = folder / "notes.txt"
    keep.write_text("the user's")
    with trio.fail_after(20):
        async with running_gate(record_settings, Mode.REPLAY):
            pass
    assert not leftover.exists()
    assert keep.exists()
    assert "removed 1 temp file(s)" in caplog.text


@pytest.mark.parametrize("stream", [False, True])
async def test_a_response_over_the_recording_cap_is_passed_through_whole_and_not_recorded(
    record_settings, stream, caplog
):
    upstream = FakeUpstream()
    answers: list[Answer] = []
    with trio.fail_after(20):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url, max_recorded_bytes=MAX_RECORDED_BYTES)
            async with (
                running_gate(settings, Mode.RECORD, on_answer=answers.append) as gate,
                client(gate.base_url) as sdk,
            ):
                for _ in range(2):
                    raw = await sdk.chat.completions.with_raw_response.create(
                        model="gpt-4o-mini", messages=MESSAGES, stream=stream
                    )
                    parsed = raw.parse()
                    if stream:
                        # A stream's head may go out before the body crosses the cap; only its answer is exact.
                        text = "".join([chunk.choices[0].delta.content or "" async for chunk in parsed])
                    else:
                        text = parsed.choices[0].message.content
                        assert raw.headers["x-inference-gate"] == "passthrough"
                        assert "max_recorded_bytes" in raw.headers["x-inference-gate-reason"]
                    assert text == reply_text(MESSAGES[0]["content"])
    assert cassettes(settings) == []
    assert [answer.outcome for answer in answers] == [Outcome.PASSTHROUGH, Outcome.PASSTHROUGH]
    assert all(f"max_recorded_bytes ({MAX_RECORDED_BYTES} bytes)" in answer.reason for answer in answers)
    warnings = [record for record in caplog.records if "passing it through unrecorded" in record.getMessage()]
    assert len(warnings) == 2  # one per exchange, not one per chunk
