"""What only the SQLite backend has: a file, WAL, its integrity check, its migration runner.

The behaviour both backends share is in ``test_store_contract.py``. ``NOW`` and ``new_job``
are re-exported here for the tests of other packages that build jobs.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from storage.migrate import available_migrations, migrate, schema_version
from storage.sqlite import SqliteJobStore, integrity_ok
from tests.helpers import NOW, new_job

__all__ = ["NOW", "new_job"]


async def test_sqlite_open_creates_folder_wal_and_foreign_keys(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "db.sqlite3"
    s = SqliteJobStore(path)
    await s.open()
    try:
        assert path.exists()
        assert await schema_version(s.conn) == max(m.version for m in available_migrations())
        async with s.conn.execute("PRAGMA journal_mode") as cur:
            assert (await cur.fetchone())[0] == "wal"  # type: ignore[index]
        async with s.conn.execute("PRAGMA foreign_keys") as cur:
            assert (await cur.fetchone())[0] == 1  # type: ignore[index]
    finally:
        await s.close()


async def test_sqlite_migrating_twice_is_a_no_op_and_the_file_stays_sound(
    sqlite_store: SqliteJobStore,
) -> None:
    await sqlite_store.admit(new_job("j1"), NOW, submit_lease_until=NOW + 60)
    assert await migrate(sqlite_store.conn) == []
    async with sqlite_store.conn.execute("SELECT COUNT(*) FROM schema_migrations") as cur:
        assert (await cur.fetchone())[0] == len(available_migrations())  # type: ignore[index]
    await sqlite_store.close()
    assert integrity_ok(sqlite_store.path)


async def test_sqlite_failed_migration_leaves_the_previous_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from storage import migrate as migrate_module
    from storage.migrate import Migration

    good = available_migrations()
    bad = Migration(good[-1].version + 1, "broken", "CREATE TABLE x (a INTEGER); THIS IS NOT SQL;")
    monkeypatch.setattr(
        migrate_module, "available_migrations", lambda backend="sqlite": [*good, bad]
    )
    s = SqliteJobStore(tmp_path / "db.sqlite3")
    with pytest.raises(sqlite3.OperationalError):
        await s.open()
    conn = sqlite3.connect(tmp_path / "db.sqlite3")
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        versions = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
    finally:
        conn.close()
    assert "x" not in tables
    assert versions == {m.version for m in good}


def test_sqlite_migrations_are_the_default_backend_files() -> None:
    assert available_migrations() == available_migrations("sqlite")
    assert available_migrations("sqlite") != available_migrations("postgresql")
    with pytest.raises(ValueError, match="no migrations"):
        available_migrations("oracle")
