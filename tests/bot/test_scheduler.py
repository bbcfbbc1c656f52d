"""The dispatcher sleeps until the next due job; it never scans on a fixed tick."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.scheduler import DueScheduler
from storage.records import JobRecord, NewJob, SourceKind
from storage.sqlite import SqliteJobStore


class CountingStore(SqliteJobStore):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.claims = 0

    async def claim_due(
        self, now: float, lease_until: float, limit: int, *, owner: str
    ) -> list[JobRecord]:
        self.claims += 1
        return await super().claim_due(now, lease_until, limit, owner=owner)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[CountingStore]:
    s = CountingStore(tmp_path / "db.sqlite3")
    await s.open()
    yield s
    await s.close()


async def add_job(store: SqliteJobStore, job_id: str, due_at: float) -> None:
    now = time.time()
    new = NewJob(
        id=job_id,
        kind="separation",
        source_kind=SourceKind.URL,
        source_key=job_id,
        model="upload-and-separate-vocals",
        requester_id=1,
        channel_id=1,
        deadline_at=now + 60,
    )
    await store.admit(new, now, submit_lease_until=due_at)
    await store.update(job_id, now, due_at=due_at)


async def test_idle_dispatcher_does_not_poll_the_table(store: CountingStore) -> None:
    seen: list[str] = []

    async def handler(job: JobRecord) -> None:
        seen.append(job.id)
        await store.update(job.id, time.time(), due_at=None)

    await add_job(store, "later", time.time() + 30)
    scheduler = DueScheduler(store, handler, owner="test", clock=time.time)
    scheduler.start()
    try:
        await asyncio.sleep(0.5)
        assert store.claims == 1  # one look, then asleep until the job is due
        assert seen == []
    finally:
        await scheduler.stop()


async def test_sooner_job_wakes_the_dispatcher(store: CountingStore) -> None:
    done = asyncio.Event()
    seen: list[str] = []

    async def handler(job: JobRecord) -> None:
        seen.append(job.id)
        await store.update(job.id, time.time(), due_at=None)
        done.set()

    await add_job(store, "later", time.time() + 30)
    scheduler = DueScheduler(store, handler, owner="test", clock=time.time)
    scheduler.start()
    try:
        await asyncio.sleep(0.1)
        due = time.time() + 0.05
        await add_job(store, "soon", due)
        scheduler.notify_due(due)
        await asyncio.wait_for(done.wait(), 2)
        assert seen == ["soon"]
    finally:
        await scheduler.stop()


async def test_parallelism_is_capped(store: CountingStore) -> None:
    running = 0
    peak = 0
    finished = 0
    all_done = asyncio.Event()

    async def handler(job: JobRecord) -> None:
        nonlocal running, peak, finished
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1
        await store.update(job.id, time.time(), due_at=None)
        finished += 1
        if finished == 20:
            all_done.set()

    for i in range(20):
        await add_job(store, f"j{i}", time.time())
    scheduler = DueScheduler(store, handler, owner="test", clock=time.time, max_parallel=3, batch=2)
    scheduler.start()
    try:
        await asyncio.wait_for(all_done.wait(), 5)
    finally:
        await scheduler.stop()
    assert peak == 3


async def test_a_failing_handler_keeps_the_dispatcher_alive(store: CountingStore) -> None:
    calls: dict[str, int] = {}
    ok = asyncio.Event()

    async def handler(job: JobRecord) -> None:
        calls[job.id] = calls.get(job.id, 0) + 1
        if job.id == "bad":
            raise RuntimeError("bug")
        await store.update(job.id, time.time(), due_at=None)
        ok.set()

    await add_job(store, "bad", time.time())
    await add_job(store, "good", time.time() + 0.05)
    scheduler = DueScheduler(store, handler, owner="test", clock=time.time, lease=60)
    scheduler.start()
    try:
        await asyncio.wait_for(ok.wait(), 2)
    finally:
        await scheduler.stop()
    assert calls == {"bad": 1, "good": 1}  # the bad job keeps its lease instead of spinning


async def test_stop_waits_for_running_work(store: CountingStore) -> None:
    finished: list[Any] = []
    started = asyncio.Event()

    async def handler(job: JobRecord) -> None:
        started.set()
        await asyncio.sleep(0.1)
        finished.append(job.id)

    await add_job(store, "j", time.time())
    scheduler = DueScheduler(store, handler, owner="test", clock=time.time)
    scheduler.start()
    await asyncio.wait_for(started.wait(), 2)
    await scheduler.stop(grace=2)
    assert finished == ["j"]
