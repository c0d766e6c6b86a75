"""`start --refresh`: every request goes upstream again, and a cassette is rewritten only when its answer changed in
a way that matters, so that `git status` after a refresh lists real changes only.

`MintingUpstream` gives every call new ids, timestamps and request ids, as the real API does.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import openai
import orjson
import trio

from inference_gate import Mode, Settings
from tests.e2e.conftest import running_gate
from tests.e2e.minting import MintingResponses, MintingUpstream
from tests.e2e.processes import files_under
from tests.servers import running_upstream

CLIENT_KEY = "sk-client-key-for-tests-9876543210"
DEADLINE_S = 30
PROMPTS = ("Name a colour", "Name a fruit")
CHANGED_TEXT = "Something else entirely."


async def ask(base_url: str, prompt: str) -> tuple[str, str | None, str]:
    """The outcome and reason headers and the answer's text."""
    async with openai.AsyncOpenAI(base_url=base_url, api_key=CLIENT_KEY, max_retries=0, timeout=DEADLINE_S) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}]
        )
        text = raw.parse().choices[0].message.content
        return raw.headers["x-inference-gate"], raw.headers.get("x-inference-gate-reason"), text


def snapshot(cache_dir: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in files_under(cache_dir)}


async def test_a_refresh_whose_answers_differ_only_in_volatile_values_changes_no_byte(
    record_settings: Settings, caplog
):
    upstream = MintingUpstream()
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url)
            async with running_gate(settings, Mode.RECORD) as gate:
                first = [await ask(gate.base_url, prompt) for prompt in PROMPTS]
            before = snapshot(settings.cache_dir)
            caplog.set_level(logging.INFO, logger="inference_gate")
            async with running_gate(settings, Mode.REFRESH) as gate:
                refreshed = [await ask(gate.base_url, prompt) for prompt in PROMPTS]
                summary = gate.gate.refresh_summary()

    assert len(upstream.requests) == 4  # every refreshed request went upstream, though a cassette existed
    assert len(before) == 2 and snapshot(settings.cache_dir) == before
    assert refreshed == [("recorded", "unchanged", text) for _, _, text in first]
    assert summary == "refreshed 2 cassette(s): 2 unchanged, 0 changed, 0 new"
    # Each log line says what the refresh did to the file; the summary is the front end's to print, once.
    refresh_lines = [record.getMessage() for record in caplog.records if " recorded 200 " in record.getMessage()]
    assert len(refresh_lines) == 2 and all(line.endswith(".json unchanged") for line in refresh_lines[-2:])
    assert not [record for record in caplog.records if record.getMessage().startswith("refreshed ")]


async def test_a_refresh_with_new_text_rewrites_that_file_and_counts_it_changed(record_settings: Settings):
    upstream = MintingUpstream()
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url)
            async with running_gate(settings, Mode.RECORD) as gate:
                for prompt in PROMPTS:
                    await ask(gate.base_url, prompt)
            before = snapshot(settings.cache_dir)
            upstream.text = CHANGED_TEXT
            async with running_gate(settings, Mode.REFRESH) as gate:
                changed = await ask(gate.base_url, PROMPTS[0])
                new = await ask(gate.base_url, "Name a planet")
                summary = gate.gate.refresh_summary()
        async with running_gate(settings, Mode.REPLAY) as gate:
            replayed = await ask(gate.base_url, PROMPTS[0])

    after = snapshot(settings.cache_dir)
    rewritten = [path for path in before if after[path] != before[path]]
    assert len(rewritten) == 1 and len(after) == 3
    assert orjson.loads(after[rewritten[0]])["response"]["body"]["choices"][0]["message"]["content"] == CHANGED_TEXT
    assert changed == ("recorded", "changed", CHANGED_TEXT)
    assert new == ("recorded", "new", CHANGED_TEXT)
    assert replayed == ("hit", None, CHANGED_TEXT)
    assert summary == "refreshed 2 cassette(s): 0 unchanged, 1 changed, 1 new"


CHAIN = ("Start a story", "Go on", "And finish it")


async def ask_in_a_chain(base_url: str) -> list[tuple[str, str | None, str]]:
    """Each prompt of `CHAIN` continuing the answer before it: outcome, reason and the answer's id."""
    answers = []
    previous = None
    async with openai.AsyncOpenAI(base_url=base_url, api_key=CLIENT_KEY, max_retries=0, timeout=DEADLINE_S) as client:
        for prompt in CHAIN:
            raw = await client.responses.with_raw_response.create(
                model="gpt-4o-mini", input=prompt, **({"previous_response_id": previous} if previous else {})
            )
            previous = raw.parse().id
            answers.append((raw.headers["x-inference-gate"], raw.headers.get("x-inference-gate-reason"), previous))
    return answers


async def test_a_refreshed_responses_chain_keeps_its_cassettes_and_replays_with_the_recorded_ids(
    record_settings: Settings,
):
    upstream = MintingResponses()
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url)
            async with running_gate(settings, Mode.RECORD) as gate:
                recorded = await ask_in_a_chain(gate.base_url)
            before = snapshot(settings.cache_dir)
            async with running_gate(settings, Mode.REFRESH) as gate:
                refreshed = await ask_in_a_chain(gate.base_url)
                summary = gate.gate.refresh_summary()
            async with running_gate(settings, Mode.REPLAY) as gate:
                replayed = await ask_in_a_chain(gate.base_url)

    assert [outcome for outcome, _, _ in recorded] == ["recorded"] * 3
    assert {id_ for _, _, id_ in refreshed}.isdisjoint(id_ for _, _, id_ in recorded)  # the upstream minted anew
    assert [(outcome, reason) for outcome, reason, _ in refreshed] == [("recorded", "unchanged")] * 3
    assert summary == "refreshed 3 cassette(s): 3 unchanged, 0 changed, 0 new"
    assert len(before) == 3 and snapshot(settings.cache_dir) == before  # no file changed, none added
    assert replayed == [("hit", None, id_) for _, _, id_ in recorded]
