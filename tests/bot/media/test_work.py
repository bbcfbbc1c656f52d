"""The audio queue: work for kept results waits its turn in the pool instead of failing."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.audio import AudioPool
from bot.media.work import AudioQueue
from tests.bot.audio import pool_jobs
from tests.helpers import wait_for


async def test_jobs_beyond_the_pools_bound_wait_and_all_finish(tmp_path: Path) -> None:
    flag = tmp_path / "go"
    async with AudioPool(workers=1, queue_limit=1, timeout=30) as pool:
        queue = AudioQueue(pool)
        jobs = [
            asyncio.create_task(queue.run(pool_jobs.wait_for, flag, None, f"job {n}"))
            for n in range(4)
        ]
        # Two in the pool (one running, one queued there); two more wait in our queue.
        await wait_for(lambda: (pool.running, pool.queued, queue.waiting) == (1, 1, 2))
        assert not any(job.done() for job in jobs)
        flag.touch()
        assert await asyncio.gather(*jobs) == [f"job {n}" for n in range(4)]


async def test_a_pool_filled_by_someone_else_is_asked_again(tmp_path: Path) -> None:
    flag = tmp_path / "go"
    async with AudioPool(workers=1, queue_limit=0, timeout=30) as pool:
        # A member's button took the only place: the pool refuses more at once.
        button = asyncio.create_task(pool.run(pool_jobs.wait_for, flag, None, "button"))
        await wait_for(lambda: pool.running == 1)
        queued = asyncio.create_task(AudioQueue(pool).run(pool_jobs.add, 2, 3))
        await asyncio.sleep(0.3)
        assert not queued.done()  # waiting, not failed with PoolBusy
        flag.touch()
        assert await button == "button"
        assert await queued == 5
