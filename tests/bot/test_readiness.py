"""What readiness asks the engine: is the dispatcher task alive?"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.scheduler import DueScheduler
from storage.records import JobRecord
from storage.sqlite import SqliteJobStore


class Fatal(BaseException):
    """Not an ``Exception``: the dispatcher's retry loop does not catch it, so its task dies."""


class DyingStore(SqliteJobStore):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.die = asyncio.Event()

    async def claim_due(
        self, now: float, lease_until: float, limit: int, *, owner: str
    ) -> list[JobRecord]:
        await self.die.wait()
        raise Fatal


async def no_work(job: JobRecord) -> None:
    return None


async def test_the_dispatcher_is_running_only_between_start_and_stop(tmp_path: Path) -> None:
    store = SqliteJobStore(tmp_path / "db.sqlite3")
    await store.open()
    try:
        scheduler = DueScheduler(store, no_work, owner="test", clock=lambda: 0.0)
        assert not scheduler.running  # never started
        scheduler.start()
        assert scheduler.running
        await scheduler.stop()
        assert not scheduler.running
    finally:
        await store.close()


async def test_a_dispatcher_whose_task_died_is_not_running(tmp_path: Path) -> None:
    store = DyingStore(tmp_path / "db.sqlite3")
    await store.open()
    try:
        scheduler = DueScheduler(store, no_work, owner="test", clock=lambda: 0.0)
        scheduler.start()
        assert scheduler.running
        store.die.set()
        for _ in range(100):  # a few loop turns for the task to end
            if not scheduler.running:
                break
            await asyncio.sleep(0)
        assert not scheduler.running
        with pytest.raises(Fatal):  # stopping reports how the task died
            await scheduler.stop()
    finally:
        await store.close()
