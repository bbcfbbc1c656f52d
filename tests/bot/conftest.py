"""Fixtures for engine-level tests: the fake Vidgo, an HTTP session, engine harnesses.

Engine tests run on every store backend (``backend``, from ``tests/conftest.py``); a test that
needs SQLite itself (its file, its locks) asks for ``make_sqlite_harness``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.bot.engine_harness import Harness
from tests.conftest import StoreBackend
from tests.fakes.vidgo import FakeVidgo

MakeHarness = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def vidgo() -> AsyncIterator[FakeVidgo]:
    fake = FakeVidgo(callback_retry_delays=(0.05, 0.1, 0.2))
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


class _Harnesses:
    """Makes harnesses, each on a database of its own on one backend; closes them all."""

    def __init__(
        self, vidgo: FakeVidgo, session: aiohttp.ClientSession, backend: StoreBackend, tmp: Path
    ) -> None:
        self.vidgo = vidgo
        self.session = session
        self.backend = backend
        self.tmp = tmp
        self.made: list[Harness] = []
        self.schemas: list[str] = []

    def _database(self) -> StoreBackend:
        if not self.made:
            return self.backend
        if self.backend.name == "sqlite":
            return StoreBackend("sqlite", path=self.tmp / f"jobs{len(self.made)}.sqlite3")
        schema = f"t_{uuid.uuid4().hex[:20]}"
        self.schemas.append(schema)
        return StoreBackend("postgresql", dsn=self.backend.dsn, schema=schema)

    async def make(self, **options: Any) -> Harness:
        harness = Harness(
            vidgo=self.vidgo, backend=self._database(), session=self.session, **options
        )
        self.made.append(harness)
        await harness.start()
        return harness

    async def close(self) -> None:
        for harness in self.made:
            await harness.close()
        if self.schemas:
            conn = await asyncpg.connect(self.backend.dsn)
            try:
                for schema in self.schemas:
                    await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            finally:
                await conn.close()


@pytest.fixture
async def make_harness(
    vidgo: FakeVidgo, session: aiohttp.ClientSession, backend: StoreBackend, tmp_path: Path
) -> AsyncIterator[MakeHarness]:
    """Start an engine harness with the given options, on each backend in turn."""
    harnesses = _Harnesses(vidgo, session, backend, tmp_path)
    yield harnesses.make
    await harnesses.close()


@pytest.fixture
async def make_sqlite_harness(
    vidgo: FakeVidgo, session: aiohttp.ClientSession, sqlite_backend: StoreBackend, tmp_path: Path
) -> AsyncIterator[MakeHarness]:
    """Like ``make_harness``, on SQLite only (for tests of SQLite's own behaviour)."""
    harnesses = _Harnesses(vidgo, session, sqlite_backend, tmp_path)
    yield harnesses.make
    await harnesses.close()


@pytest.fixture
async def h(make_harness: MakeHarness) -> Harness:
    """An engine with callbacks on."""
    return await make_harness()


@pytest.fixture
async def polling(make_harness: MakeHarness) -> Harness:
    """An engine that only polls."""
    return await make_harness(callbacks=False)
