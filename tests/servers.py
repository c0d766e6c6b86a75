"""The fake OpenAI upstream as a context manager, for every test that needs one in its trio loop."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from tools.fake_upstream import FakeUpstream


@asynccontextmanager
async def running_upstream(upstream: FakeUpstream, **serve_options) -> AsyncIterator[FakeUpstream]:
    """The fake upstream for the block's duration; afterwards nothing listens on its port."""
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: upstream.serve(task_status=task_status, **serve_options))
        try:
            yield upstream
        finally:
            nursery.cancel_scope.cancel()
