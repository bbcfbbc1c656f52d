"""Fixtures for engine-level tests: the fake Vidgo, an HTTP session, engine harnesses."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.bot.engine_harness import Harness
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


@pytest.fixture
async def make_harness(
    vidgo: FakeVidgo, session: aiohttp.ClientSession, tmp_path: Path
) -> AsyncIterator[MakeHarness]:
    """Start an engine harness with the given options; every one is closed afterwards."""
    made: list[Harness] = []

    async def make(**options: Any) -> Harness:
        name = f"jobs{len(made)}.sqlite3"
        harness = Harness(vidgo=vidgo, db_path=tmp_path / name, session=session, **options)
        made.append(harness)
        await harness.start()
        return harness

    yield make
    for harness in made:
        await harness.close()


@pytest.fixture
async def h(make_harness: MakeHarness) -> Harness:
    """An engine with callbacks on."""
    return await make_harness()


@pytest.fixture
async def polling(make_harness: MakeHarness) -> Harness:
    """An engine that only polls."""
    return await make_harness(callbacks=False)
