"""The PostgreSQL store's pool gives connections back without a reset round trip, so no
pooled connection may keep session state: these tests look at what the server holds."""

from __future__ import annotations

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
