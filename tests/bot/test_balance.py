"""The balance cache: one fetch per minute at most, shared by concurrent callers."""

from __future__ import annotations

import asyncio

import pytest

from bot.balance import BalanceCache
from bot.vidgo.client import VidgoClient
from bot.vidgo.errors import VidgoTransientError
from tests.fakes.vidgo import FakeVidgo


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_balance_is_fetched_once_per_ttl() -> None:
    calls: list[int] = []
    clock = Clock()

    async def fetch() -> int:
        calls.append(1)
        return 100 - len(calls)

    cache = BalanceCache(fetch, ttl=60, clock=clock)
    assert (await cache.get()).credits == 99
    clock.now += 59
    assert (await cache.get()).credits == 99
    clock.now += 1
    fresh = await cache.get()
    assert fresh.credits == 98 and fresh.fetched_at == clock.now
    assert len(calls) == 2


async def test_concurrent_callers_share_one_fetch() -> None:
    calls: list[int] = []
    release = asyncio.Event()

    async def fetch() -> int:
        calls.append(1)
        await release.wait()
        return 7

    cache = BalanceCache(fetch)
    waiting = [asyncio.create_task(cache.get()) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    assert {b.credits for b in await asyncio.gather(*waiting)} == {7}
    assert len(calls) == 1


async def test_a_failed_fetch_is_not_cached() -> None:
    answers: list[int | Exception] = [VidgoTransientError("down"), 5]

    async def fetch() -> int:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    cache = BalanceCache(fetch)
    with pytest.raises(VidgoTransientError):
        await cache.get()
    assert (await cache.get()).credits == 5


async def test_balance_through_the_real_client(vidgo: FakeVidgo, session: object) -> None:
    client = VidgoClient(session, vidgo.base_url, vidgo.api_key, max_retries=0)  # type: ignore[arg-type]
    cache = BalanceCache(client.balance)
    first = await cache.get()
    await cache.get()
    assert first.credits == vidgo.credits
    assert sum(1 for _, path in vidgo.requests if path.endswith("/balance")) == 1
