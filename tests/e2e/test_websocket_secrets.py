"""A browser's way into the Realtime API through the gate, with the official SDK: an ephemeral key minted by
`client_secrets.create()`, then `realtime.connect()` with it. With no key of its own the gate passes the client's
credentials upstream, and neither the client's key nor the ephemeral one reaches the disk; the replay, which
never connects upstream, serves both calls from their cassettes."""

from __future__ import annotations

from dataclasses import replace

import openai
import trio

from inference_gate import Mode, Settings
from tests.e2e.conftest import running_gate
from tests.e2e.processes import files_under
from tests.e2e.websocket_sessions import CLIENT_KEY, DEADLINE_S, audio_as_sizes, settled
from tests.sdk_sockets import ASYNC, REALTIME_MODEL, realtime_turns, run_session
from tests.servers import running_upstream
from tools.fake_websocket import FakeWebSocketUpstream

SESSION = {"type": "realtime", "model": REALTIME_MODEL}


async def mint_ephemeral_key(base_url: str) -> str:
    async with openai.AsyncOpenAI(base_url=base_url, api_key=CLIENT_KEY, max_retries=0, timeout=DEADLINE_S) as client:
        return (await client.realtime.client_secrets.create(session=SESSION)).value


async def test_an_ephemeral_key_reaches_the_upstream_and_never_the_disk(record_settings: Settings):
    settings = replace(record_settings, api_key=None)
    upstream = FakeWebSocketUpstream(expected_api_key=CLIENT_KEY)
    answers = []
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            settings = replace(settings, upstream=upstream.url)
            async with running_gate(settings, Mode.RECORD, on_answer=answers.append) as gate:
                ephemeral_key = await mint_ephemeral_key(gate.base_url)
                recorded = await run_session(ASYNC, "realtime", gate.base_url, ephemeral_key, realtime_turns)
                await settled(answers, 2)
        async with running_gate(settings, Mode.REPLAY, on_answer=answers.append) as gate:
            replayed_key = await mint_ephemeral_key(gate.base_url)
            replayed = await run_session(ASYNC, "realtime", gate.base_url, replayed_key, realtime_turns)
            await settled(answers, 4)

    assert ephemeral_key.startswith("ek_") and ephemeral_key in upstream.ephemeral_keys
    (session,) = upstream.sessions
    assert session.request.headers["authorization"] == f"Bearer {ephemeral_key}"
    stored = b"".join(path.read_bytes() for path in files_under(settings.cache_dir))
    assert len(files_under(settings.cache_dir)) == 2
    assert ephemeral_key.encode() not in stored and CLIENT_KEY.encode() not in stored
    assert replayed_key != ephemeral_key  # the cassette keeps a masked key, not the real one
    assert audio_as_sizes(replayed) == audio_as_sizes(recorded)
    assert [answer.outcome.value for answer in answers] == ["recorded", "recorded", "hit", "hit"]
