"""The committed example cassettes are exactly what the gate records today."""

import trio

from tools.record_examples import EXAMPLES_DIR, record_examples, snapshot


async def test_cassettes_example_is_what_the_recorder_produces(tmp_path):
    with trio.fail_after(30):
        await record_examples(tmp_path)
    fresh = snapshot(tmp_path)
    assert len(fresh) == 6
    assert fresh == snapshot(EXAMPLES_DIR), "cassettes_example/ is stale: run python -m tools.record_examples"
