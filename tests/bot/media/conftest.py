"""Fixtures for the media tests: a scripted origin and fetchers with short timeouts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from bot.media.fetcher import StemFetcher
from tests.bot.media.origin import Origin

MakeFetcher = Callable[..., StemFetcher]
CAP = 64 * 1024


@pytest.fixture
async def origin() -> AsyncIterator[Origin]:
    async with Origin() as server:
        yield server


@pytest.fixture
async def other_origin() -> AsyncIterator[Origin]:
    async with Origin() as server:
        yield server


@pytest.fixture
def make_fetcher(session: aiohttp.ClientSession) -> MakeFetcher:
    """A fetcher allowed 127.0.0.1 only, with a 64 KiB cap and timeouts short enough for tests."""

    def make(**options: Any) -> StemFetcher:
        client = options.pop("session", session)
        settings: dict[str, Any] = {
            "allowed_hosts": {"127.0.0.1"},
            "max_bytes": CAP,
            "connect_timeout": 2.0,
            "read_timeout": 0.3,
            "total_timeout": 5.0,
            "max_redirects": 3,
        }
        settings.update(options)
        return StemFetcher(client, **settings)

    return make


@pytest.fixture
def fetcher(make_fetcher: MakeFetcher) -> StemFetcher:
    return make_fetcher()
