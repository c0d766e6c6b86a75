"""The `x-inference-gate-test` header: any test runner names the test a request belongs to.

Driven by the official SDK with the header as a default header, as a jest `beforeEach` sets it, against
`MintingUpstream`, whose every answer is numbered.
"""

from __future__ import annotations

from dataclasses import replace

import openai
import trio

from inference_gate import Mode, Settings
from inference_gate.core.outcome import Answer, Outcome
from tests.e2e.conftest import running_gate
from tests.e2e.minting import NUMBERED, MintingUpstream
from tests.servers import running_upstream

CLIENT_KEY = "sk-client-key-for-tests-9876543210"
DEADLINE_S = 30


async def ask(base_url: str, test_id: str) -> str:
    headers = {"x-inference-gate-test": test_id}
    async with openai.AsyncOpenAI(
        base_url=base_url, api_key=CLIENT_KEY, max_retries=0, timeout=DEADLINE_S, default_headers=headers
    ) as client:
        reply = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Roll a die"}]
        )
        return reply.choices[0].message.content


async def test_each_named_test_counts_its_takes_from_the_first_and_the_header_goes_nowhere(
    record_settings: Settings,
) -> None:
    upstream = MintingUpstream(text=NUMBERED)
    answers: list[Answer] = []
    with trio.fail_after(DEADLINE_S):
        async with running_upstream(upstream):
            settings = replace(record_settings, upstream=upstream.url, takes=2)
            async with running_gate(settings, Mode.RECORD, on_answer=answers.append) as gate:
                first = [await ask(gate.base_url, "spec/a.test.ts > rolls") for _ in range(2)]
                second = [await ask(gate.base_url, "spec/b.test.ts > rolls") for _ in range(2)]
    assert first == second  # b's requests are counted apart from a's: take 1, then take 2
    assert first[0] != first[1]
    assert [(answer.test_id, answer.outcome, answer.new_cassette) for answer in answers] == [
        ("spec/a.test.ts > rolls", Outcome.RECORDED, True),
        ("spec/a.test.ts > rolls", Outcome.RECORDED, False),  # a take added to the cassette the first one made
        ("spec/b.test.ts > rolls", Outcome.HIT, False),
        ("spec/b.test.ts > rolls", Outcome.HIT, False),
    ]
    assert len(upstream.requests) == 2
    assert not any("x-inference-gate-test" in request.headers for request in upstream.requests)
    [cassette_file] = settings.cache_dir.glob("*/*.json")
    assert b"x-inference-gate-test" not in cassette_file.read_bytes()
