"""The micro-batcher groups concurrent submissions, honours its limits and isolates failures."""

from __future__ import annotations

import asyncio

import pytest

from services.modelserver.batcher import MicroBatcher


def test_concurrent_callers_share_batches_up_to_the_limit() -> None:
    seen: list[int] = []

    def double(items):
        seen.append(len(items))
        return [2 * i for i in items]

    async def scenario():
        batcher = MicroBatcher(double, max_items=4, max_delay_s=0.05)
        batcher.start()
        results = await asyncio.gather(*(batcher.submit_many([i]) for i in range(10)))
        await batcher.stop()
        return results

    results = asyncio.run(scenario())
    assert [r[0] for r in results] == [2 * i for i in range(10)]
    assert sum(seen) == 10 and max(seen) == 4
    assert seen[:2] == [4, 4]  # all ten were queued at once, so the first batches are full


def test_a_lone_item_waits_at_most_the_delay() -> None:
    async def scenario():
        batcher = MicroBatcher(lambda items: list(items), max_items=64, max_delay_s=0.02)
        batcher.start()
        loop = asyncio.get_running_loop()
        start = loop.time()
        out = await batcher.submit_many(["x"])
        waited = loop.time() - start
        await batcher.stop()
        return out, waited, batcher.stats

    out, waited, stats = asyncio.run(scenario())
    assert out == ["x"] and stats.batches == 1
    assert waited < 1.0  # bounded by max_delay plus scheduling, never by max_items


def test_a_failing_batch_fails_its_callers_and_the_next_batch_still_runs() -> None:
    calls = {"n": 0}

    def flaky(items):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("model exploded")
        return list(items)

    async def scenario():
        batcher = MicroBatcher(flaky, max_items=8, max_delay_s=0.01)
        batcher.start()
        with pytest.raises(ValueError, match="exploded"):
            await batcher.submit_many([1, 2])
        ok = await batcher.submit_many([3])
        await batcher.stop()
        return ok

    assert asyncio.run(scenario()) == [3]
