"""The readiness write (V5's ``health_probe``): a real commit, refused where writes would be."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage.sqlite import SqliteJobStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteJobStore]:
    s = SqliteJobStore(tmp_path / "jobs.sqlite3", busy_timeout_ms=50)
    await s.open()
    yield s
    await s.close()


def probe_row(path: Path) -> list[tuple[int, float]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT id, written_at FROM health_probe").fetchall()
    finally:
        conn.close()


async def test_the_probe_commits_one_row_another_connection_sees(store: SqliteJobStore) -> None:
    assert probe_row(store.path) == [(1, 0.0)]  # made by the migration
    await store.check_writable(1234.5)
    assert probe_row(store.path) == [(1, 1234.5)]
    await store.check_writable(1300.0)
    assert probe_row(store.path) == [(1, 1300.0)]  # rewritten, never a second row


async def test_the_probe_fails_while_another_process_holds_the_write_lock(
    store: SqliteJobStore,
) -> None:
    other = sqlite3.connect(store.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            await store.check_writable(1.0)
        other.execute("ROLLBACK")
    finally:
        other.close()
    await store.check_writable(2.0)  # and recovers once the lock is gone
    assert probe_row(store.path) == [(1, 2.0)]


async def test_the_probe_fails_when_the_file_was_removed_and_never_recreates_it(
    store: SqliteJobStore,
) -> None:
    # The bot's own connection still holds the unlinked file; a restart would not find it.
    moved = store.path.with_name("moved.sqlite3")
    store.path.rename(moved)
    with pytest.raises(sqlite3.OperationalError, match="unable to open"):
        await store.check_writable(1.0)
    assert not store.path.exists()
    moved.rename(store.path)


async def test_a_probe_that_fails_leaves_no_transaction_open(store: SqliteJobStore) -> None:
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("DROP TABLE health_probe")  # a database from before V5 was restored
    other.close()
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        await store.check_writable(1.0)
    # The failed probe released the write lock: others can still write.
    other = sqlite3.connect(store.path, isolation_level=None, timeout=0.05)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    finally:
        other.close()
