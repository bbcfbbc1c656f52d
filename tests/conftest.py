"""Fixtures shared by every test package: the job store on each backend.

``store`` runs a test once on SQLite (a file in ``tmp_path``) and once on PostgreSQL (a
fresh schema in the test database, dropped afterwards). PostgreSQL is never skipped: when
the server does not answer, each of its tests fails with a message saying how to start it
or how to run SQLite alone (``-m "not postgresql"``).

The server is ``STEMCORD_TEST_PG_DSN``, by default ``postgresql://postgres@127.0.0.1:5432/test``.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from storage.base import JobStore
from storage.postgres import PostgresJobStore
from storage.sqlite import SqliteJobStore

PG_DSN_VARIABLE = "STEMCORD_TEST_PG_DSN"
DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
# Fixtures that need the PostgreSQL server; a test using any of them is marked postgresql.
_PG_FIXTURES = frozenset({"pg_dsn", "pg_schema", "pg_store", "pg_backend"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs PostgreSQL, so ``-m "not postgresql"`` leaves it out."""
    for item in items:
        if _PG_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgresql)


def _server_answers(dsn: str) -> str | None:
    """``None`` when the server runs ``SELECT 1``, else why not (one line)."""

    async def probe() -> None:
        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            await conn.fetchval("SELECT 1")
        finally:
            await conn.close()

    try:
        asyncio.run(probe())
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """The PostgreSQL test server's DSN, checked once; fails (never skips) without it."""
    dsn = os.environ.get(PG_DSN_VARIABLE, DEFAULT_PG_DSN)
    problem = _server_answers(dsn)
    if problem is not None:
        pytest.fail(
            f"PostgreSQL does not answer at {PG_DSN_VARIABLE} ({problem}). Start it with "
            "'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start', "
            f"point {PG_DSN_VARIABLE} at a server, or run SQLite alone with "
            "-m 'not postgresql'.",
            pytrace=False,
        )
    return dsn


@pytest.fixture
async def pg_schema(pg_dsn: str) -> AsyncIterator[str]:
    """A schema name no other test uses; the schema (if created) is dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:20]}"
    yield schema
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await conn.close()


class StoreBackend:
    """Opens stores on one database; every store it opened is closed at teardown."""

    def __init__(self, name: str, *, path: Path | None = None, dsn: str = "", schema: str = ""):
        self.name = name
        self.path = path
        self.dsn = dsn
        self.schema = schema
        # Names this test's PostgreSQL sessions (see tests.storage.backends).
        self.application_name = f"stemcord-{schema}" if schema else ""
        self.opened: list[JobStore] = []

    def new_store(self, **options: Any) -> JobStore:
        """A store on this backend's database, not yet opened (``options`` for its class)."""
        if self.name == "sqlite":
            assert self.path is not None
            return SqliteJobStore(self.path, **options)
        return PostgresJobStore(
            self.dsn, schema=self.schema, application_name=self.application_name, **options
        )

    async def open_store(self) -> JobStore:
        """Another open store on the same database (a second process, say)."""
        store = self.new_store()
        self.opened.append(store)
        await store.open()
        return store

    async def close(self) -> None:
        """Close every store opened here (closing twice is harmless)."""
        for store in reversed(self.opened):
            await store.close()


@pytest.fixture
async def sqlite_backend(tmp_path: Path) -> AsyncIterator[StoreBackend]:
    """Stores on one SQLite file (in a folder that does not exist yet)."""
    backend = StoreBackend("sqlite", path=tmp_path / "sub" / "jobs.sqlite3")
    yield backend
    await backend.close()


@pytest.fixture
async def pg_backend(pg_dsn: str, pg_schema: str) -> AsyncIterator[StoreBackend]:
    """Stores on one fresh PostgreSQL schema."""
    backend = StoreBackend("postgresql", dsn=pg_dsn, schema=pg_schema)
    yield backend
    await backend.close()


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgresql),
    ]
)
def backend(request: pytest.FixtureRequest) -> StoreBackend:
    """Each backend in turn (PostgreSQL's fixtures are asked for only on its turn)."""
    name = "sqlite_backend" if request.param == "sqlite" else "pg_backend"
    value = request.getfixturevalue(name)
    assert isinstance(value, StoreBackend)
    return value


@pytest.fixture
async def store(backend: StoreBackend) -> JobStore:
    """An open, empty store on each backend in turn."""
    return await backend.open_store()


@pytest.fixture
async def sqlite_store(sqlite_backend: StoreBackend) -> SqliteJobStore:
    """An open, empty SQLite store (for tests of SQLite's own features)."""
    store = await sqlite_backend.open_store()
    assert isinstance(store, SqliteJobStore)
    return store


@pytest.fixture
async def pg_store(pg_backend: StoreBackend) -> PostgresJobStore:
    """An open, empty PostgreSQL store in a fresh schema."""
    store = await pg_backend.open_store()
    assert isinstance(store, PostgresJobStore)
    return store
