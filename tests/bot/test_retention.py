"""Retention: the policy applied to a real store, at start and on an interval."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from bot.retention import DAY, RetentionPolicy, RetentionTask, prune_once
from storage.base import JobStore
from storage.records import CachedResult
from storage.sqlite import SqliteJobStore
from tests.helpers import NOW, delivered, new_job


async def seed(store: JobStore) -> None:
    await delivered(store, "old", NOW - 31 * DAY)
    await delivered(store, "new", NOW - 29 * DAY)
    await store.admit(new_job("open", key="k-open"), NOW - 365 * DAY, submit_lease_until=NOW)
    for key, age in (("c-old", 91), ("c-new", 89)):
        await store.cache_put(
            CachedResult(key, "separate-vocals", "t", {"stems": {}}, None, NOW - age * DAY)
        )


class Recorder:
    def __init__(self, runs_wanted: int = 0) -> None:
        self.pruned: list[tuple[str, int]] = []
        self.enough = asyncio.Event()
        self._wanted = runs_wanted

    def retention_pruned(self, what: str, count: int) -> None:
        self.pruned.append((what, count))
        if len(self.pruned) >= 2 * self._wanted:
            self.enough.set()


async def test_default_policy_keeps_30_days_of_jobs_and_90_of_cache(
    store: JobStore,
) -> None:
    await seed(store)
    report = await prune_once(store, RetentionPolicy(), NOW)
    assert (report.jobs, report.cache, report.checkpointed) == (1, 1, True)
    assert await store.get("old") is None
    assert await store.get("new") is not None and await store.get("open") is not None
    # A Vidgo song's separation is made once: its old entry keeps the task id, not the links.
    pointer, fresh = await store.cache_get("c-old"), await store.cache_get("c-new")
    assert pointer is not None and pointer.is_pointer and pointer.vidgo_task_id == "t"
    assert fresh is not None and not fresh.is_pointer


async def test_zero_days_keeps_forever(store: JobStore) -> None:
    await seed(store)
    report = await prune_once(store, RetentionPolicy(jobs_days=0, cache_days=0), NOW)
    assert (report.jobs, report.cache) == (0, 0)
    assert await store.get("old") is not None and await store.cache_get("c-old") is not None


async def test_task_runs_at_start_and_then_on_its_interval(store: JobStore) -> None:
    await seed(store)
    recorder = Recorder(runs_wanted=3)
    task = RetentionTask(
        store, RetentionPolicy(interval_hours=0.05 / 3600), observer=recorder, clock=lambda: NOW
    )
    task.start()
    try:
        await asyncio.wait_for(recorder.enough.wait(), 10)
    finally:
        await task.stop()
    assert recorder.pruned[:2] == [("jobs", 1), ("cache", 1)]
    assert recorder.pruned[2:4] == [("jobs", 0), ("cache", 0)]
    assert task.last_report is not None and task.last_report.jobs == 0


async def test_a_failed_run_is_logged_and_the_bot_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    closed = SqliteJobStore(tmp_path / "closed.sqlite3")
    task = RetentionTask(closed, RetentionPolicy())
    with caplog.at_level(logging.ERROR, logger="bot.retention"):
        assert await task.run_once() is None
    assert task.runs == 0
    assert "retention run failed" in caplog.text
