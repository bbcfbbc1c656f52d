"""The PostgreSQL store's pool gives connections back without a reset round trip, so no
pooled connection may keep session state: these tests look at what the server holds."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from storage.postgres import PostgresJobStore
from storage.records import AdmissionLimits
from tests.helpers import NOW, new_job

pytestmark = pytest.mark.postgresql


async def advisory_locks_of(store: PostgresJobStore, pg_dsn: str) -> list[int]:
    """Advisory locks held by any of the store's pooled connections (seen from outside)."""
    pids = []
    connections = [await store.pool.acquire() for _ in range(store.pool.get_size())]
    try:
        for conn in connections:
            pids.append(conn.get_server_pid())
    finally:
        for conn in connections:
            await store.pool.release(conn)
    outside = await asyncpg.connect(pg_dsn)
    try:
        rows = await outside.fetch(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND pid = ANY($1::int[])", pids
        )
    finally:
        await outside.close()
    return [int(row[0]) for row in rows]


async def test_postgresql_no_pooled_connection_keeps_the_migrators_lock(
    pg_store: PostgresJobStore, pg_dsn: str
) -> None:
    assert await advisory_locks_of(pg_store, pg_dsn) == []


async def test_postgresql_admission_locks_end_with_their_transaction(
    pg_store: PostgresJobStore, pg_dsn: str
) -> None:
    limits = AdmissionLimits(daily_quota=5, max_unfinished=5, cooldown_seconds=0)
    await pg_store.admit(new_job("j1"), NOW, submit_lease_until=NOW + 60, limits=limits)
    assert await advisory_locks_of(pg_store, pg_dsn) == []


async def test_postgresql_a_failed_transaction_is_rolled_back_before_reuse(
    pg_store: PostgresJobStore,
) -> None:
    async with pg_store.pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await conn.execute("SET LOCAL statement_timeout = 1")
        # Given back mid-transaction: the pool must not hand the open transaction on.
    async with pg_store.pool.acquire() as conn:
        assert not conn.is_in_transaction()
        assert await conn.fetchval("SHOW statement_timeout") == "0"


class QueryCounter:
    """Counts the queries every pooled connection sends (asyncpg's query logger)."""

    def __init__(self) -> None:
        self.queries: list[str] = []

    def __call__(self, record: Any) -> None:
        self.queries.append(record.query)

    async def attach(self, store: PostgresJobStore) -> list[Any]:
        connections = [await store.pool.acquire() for _ in range(store.pool.get_max_size())]
        for conn in connections:
            conn.add_query_logger(self)
        for conn in connections:
            await store.pool.release(conn)
        return connections


async def test_postgresql_claiming_due_jobs_is_one_statement(pg_store: PostgresJobStore) -> None:
    for i in range(3):
        await pg_store.admit(new_job(f"j{i}", key=f"k{i}"), NOW + i, submit_lease_until=NOW + i)
    counter = QueryCounter()
    await counter.attach(pg_store)
    claimed = await pg_store.claim_due(NOW + 10, NOW + 600, 10, owner="w1")
    assert [job.id for job in claimed] == ["j0", "j1", "j2"]  # in the order they were due
    assert [job.lease_owner for job in claimed] == ["w1"] * 3
    assert len(counter.queries) == 1


async def test_postgresql_a_callback_batch_is_one_statement(pg_store: PostgresJobStore) -> None:
    for i in range(3):
        await pg_store.admit(
            new_job(f"j{i}", key=f"k{i}", callback_key=f"key{i}"), NOW, submit_lease_until=NOW
        )
    counter = QueryCounter()
    await counter.attach(pg_store)
    found = await asyncio.gather(
        *(pg_store.note_callback(NOW + 1, callback_key=f"key{i}") for i in range(3))
    )
    assert [job.id if job else None for job in found] == ["j0", "j1", "j2"]
    assert len(counter.queries) == 1
