"""Test helpers that reach below the ``JobStore`` interface on either backend.

Set-up and checks sometimes need plain SQL (backdating a row, listing ids, looking at a
plan). These helpers take SQLite's ``?`` placeholders and number them for PostgreSQL, so a
test states its SQL once for both backends.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import asyncpg

from storage.base import JobStore
from storage.postgres import PostgresJobStore
from storage.sqlite import SqliteJobStore, integrity_ok

_PLACEHOLDER = re.compile(r"\?")


def numbered(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1``, ``$2`` … (test SQL has no ``?`` in text)."""
    counter = iter(range(1, 1_000))
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)


async def execute(store: JobStore, sql: str, *args: Any) -> None:
    """Run one statement outside the store's API (committed at once)."""
    if isinstance(store, SqliteJobStore):
        await store.conn.execute(sql, args)
    elif isinstance(store, PostgresJobStore):
        async with store.pool.acquire() as conn:
            await conn.execute(numbered(sql), *args)
    else:
        raise TypeError(f"no raw SQL for {type(store).__name__}")


async def fetch_rows(store: JobStore, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows of one query outside the store's API."""
    if isinstance(store, SqliteJobStore):
        async with store.conn.execute(sql, args) as cur:
            return [tuple(row) for row in await cur.fetchall()]
    if isinstance(store, PostgresJobStore):
        async with store.pool.acquire() as conn:
            return [tuple(row) for row in await conn.fetch(numbered(sql), *args)]
    raise TypeError(f"no raw SQL for {type(store).__name__}")


async def job_ids(store: JobStore) -> set[str]:
    """Every job id stored."""
    return {str(row[0]) for row in await fetch_rows(store, "SELECT id FROM jobs")}


async def assert_consistent(store: JobStore) -> None:
    """No follower names a missing leader; on SQLite the file passes its integrity check."""
    orphans = await fetch_rows(
        store,
        "SELECT f.id FROM jobs AS f WHERE f.leader_id IS NOT NULL "
        "AND NOT EXISTS (SELECT 1 FROM jobs AS l WHERE l.id = f.leader_id)",
    )
    assert orphans == []
    if isinstance(store, SqliteJobStore):
        assert integrity_ok(store.path)


async def wait_for_lock_waiters(
    conn: asyncpg.Connection[Any], application_name: str, count: int
) -> None:
    """Return once ``count`` sessions named ``application_name`` wait for a lock.

    Lets a test hold a lock, start several store calls and release it only when all of them
    are queued behind it, so the interleaving it checks happens every time. The bound is a
    guard against a call that never waits (the bug being tested for), not a speed target.
    """
    waiting = 0
    for _ in range(1_000):
        waiting = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE application_name = $1 AND wait_event_type = 'Lock'",
            application_name,
        )
        if waiting >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{waiting} of {count} sessions ever waited for the lock")


async def plan_of(store: PostgresJobStore, sql: str, *args: Any) -> str:
    """The plan of ``sql`` with sequential scans ruled out where an index can serve.

    The test tables are tiny, so the planner would scan them whatever the indexes; with
    ``enable_seqscan`` off it uses an index exactly when one matches the query.
    """
    async with store.pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        rows = await conn.fetch(f"EXPLAIN {sql}", *args)
    return "\n".join(str(row[0]) for row in rows)
