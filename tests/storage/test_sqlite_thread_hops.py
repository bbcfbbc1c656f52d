"""SQLite runs each operation as one function in the connection's thread.

Hops are counted where aiosqlite takes work for its thread (``Connection._execute``), so a
statement sent on its own (``await conn.execute``) counts as much as a whole transaction.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest

from storage.jobstate import JobState
from storage.records import CachedResult
from storage.sqlite import SqliteJobStore
from tests.helpers import NOW, new_job


class HopCounter:
    """Counts the functions a store sends to its connection's thread."""

    def __init__(self, store: SqliteJobStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        conn = store.conn
        original = conn._execute

        async def counted(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await original(fn, *args, **kwargs)

        monkeypatch.setattr(conn, "_execute", counted)

    def take(self) -> int:
        count, self.count = self.count, 0
        return count


@pytest.fixture
def hops(sqlite_store: SqliteJobStore, monkeypatch: pytest.MonkeyPatch) -> HopCounter:
    return HopCounter(sqlite_store, monkeypatch)


async def test_a_transaction_runs_its_statements_in_one_thread_hop(
    sqlite_store: SqliteJobStore, hops: HopCounter
) -> None:
    # Each of these is a transaction of several statements (read, check, write, read back).
    admitted = await sqlite_store.admit(new_job("j1"), NOW, submit_lease_until=NOW + 60)
    assert hops.take() == 1
    job = await sqlite_store.transition(
        "j1", JobState.SUBMITTED, NOW, lease=admitted.job.lease_id, vidgo_task_id="t1"
    )
    assert hops.take() == 1
    assert job.state is JobState.SUBMITTED and job.vidgo_task_id == "t1"
    changed = await sqlite_store.record_outcome(
        "j1",
        JobState.SUCCEEDED,
        NOW + 1,
        result={"stems": []},
        cache=CachedResult("separate-vocals:T:A", "separate-vocals", "t1", {}, None, NOW),
        lease=job.lease_id,
        lease_until=NOW + 100,
        owner="me",
    )
    assert hops.take() == 1
    assert [j.state for j in changed] == [JobState.SUCCEEDED]


async def test_claiming_due_jobs_and_a_fenced_write_each_take_one_hop(
    sqlite_store: SqliteJobStore, hops: HopCounter
) -> None:
    admitted = await sqlite_store.admit(new_job("j1"), NOW, submit_lease_until=NOW)
    hops.take()
    claimed = await sqlite_store.claim_due(NOW + 1, NOW + 100, 10, owner="me")
    assert hops.take() == 1
    assert [j.lease_id for j in claimed] == [admitted.job.lease_id + 1]
    await sqlite_store.update("j1", NOW + 2, lease=claimed[0].lease_id, attempts=1)
    assert hops.take() == 1
    await sqlite_store.reschedule("j1", NOW + 3, NOW + 50, seen_callbacks=0, lease=None)
    assert hops.take() == 1


async def test_a_burst_of_callbacks_is_stored_in_one_hop(
    sqlite_store: SqliteJobStore, hops: HopCounter
) -> None:
    for i in range(5):
        await sqlite_store.admit(
            new_job(f"j{i}", key=f"k{i}", callback_key=f"key{i}"), NOW, submit_lease_until=NOW
        )
    hops.take()
    found = await asyncio.gather(
        *(sqlite_store.note_callback(NOW + 1, callback_key=f"key{i}") for i in range(5))
    )
    assert hops.take() == 1
    assert [j.id if j else None for j in found] == [f"j{i}" for i in range(5)]


async def test_a_failing_transaction_rolls_back_every_statement(
    sqlite_store: SqliteJobStore,
) -> None:
    await sqlite_store.admit(new_job("j1"), NOW, submit_lease_until=NOW + 60)
    with pytest.raises(sqlite3.IntegrityError):
        # The second insert of one id fails after the limits and the cache were read in the
        # same transaction; nothing of it may stay behind, and the store stays usable.
        await sqlite_store.admit(new_job("j1", key="other"), NOW, submit_lease_until=NOW + 60)
    assert [j.id for j in await sqlite_store.list_jobs()] == ["j1"]
    await sqlite_store.admit(new_job("j2", key="other"), NOW, submit_lease_until=NOW + 60)
    assert {j.id for j in await sqlite_store.list_jobs()} == {"j1", "j2"}


async def test_a_transaction_whose_caller_is_cancelled_still_commits_whole(
    sqlite_store: SqliteJobStore,
) -> None:
    admitted = await sqlite_store.admit(new_job("j1"), NOW, submit_lease_until=NOW + 60)
    task = asyncio.create_task(
        sqlite_store.transition(
            "j1", JobState.SUBMITTED, NOW, lease=admitted.job.lease_id, vidgo_task_id="t1"
        )
    )
    await asyncio.sleep(0)  # the transaction is queued for the thread
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Queued after it, so it reads what the transaction left: all of it, never a part.
    job = await sqlite_store.get("j1")
    assert job is not None
    assert (job.state, job.vidgo_task_id) == (JobState.SUBMITTED, "t1")
    async with sqlite_store.conn.execute("SELECT 1") as cur:  # no transaction left open
        assert await cur.fetchone() == (1,)
    assert not sqlite_store.conn.in_transaction
