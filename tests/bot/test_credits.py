"""The credit watch: read rarely, reported, one stored warning per fall below the threshold."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest

from bot.balance import Balance, BalanceCache
from bot.credits import WARNED_FLAG, CreditsWatch
from bot.metrics import StemcordMetrics
from bot.vidgo.client import VidgoClient
from bot.vidgo.errors import VidgoTransientError
from storage.base import JobStore
from tests.fakes.vidgo import FakeVidgo
from tests.helpers import wait_for

NOW = 1_800_000_000.0
INTERVAL = 1800.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


class Vidgo:
    """Answers the balance with whatever the test set, and counts the questions."""

    def __init__(self, credits: int) -> None:
        self.credits = credits
        self.reads = 0
        self.fail = False

    async def balance(self) -> int:
        self.reads += 1
        if self.fail:
            raise VidgoTransientError("Vidgo is down")
        return self.credits


def watch(
    store: JobStore, vidgo: Vidgo, clock: Clock, *, warn_below: int = 500
) -> tuple[CreditsWatch, list[str], list[Balance]]:
    warnings: list[str] = []
    reports: list[Balance] = []

    async def warn(text: str) -> None:
        warnings.append(text)

    cache = BalanceCache(vidgo.balance, clock=clock)
    credits = CreditsWatch(
        cache,
        store,
        interval=INTERVAL,
        warn_below=warn_below,
        warn=warn,
        report=reports.append,
        clock=clock,
    )
    return credits, warnings, reports


async def test_the_owner_is_warned_once_when_credits_fall_below_the_threshold(
    store: JobStore, caplog: pytest.LogCaptureFixture
) -> None:
    vidgo, clock = Vidgo(800), Clock()
    credits, warnings, reports = watch(store, vidgo, clock)
    await credits.check()
    assert warnings == [] and reports[-1].credits == 800
    vidgo.credits = 499
    clock.now += INTERVAL
    with caplog.at_level(logging.WARNING, logger="bot.credits"):
        await credits.check()
    assert len(warnings) == 1 and "499 left" in warnings[0] and "500" in warnings[0]
    assert [r.message for r in caplog.records if "credits are low" in r.message] == [warnings[0]]
    # Lower still, later: no second warning.
    for left in (300, 10, 0):
        vidgo.credits = left
        clock.now += INTERVAL
        await credits.check()
    assert len(warnings) == 1
    assert await store.get_flag(WARNED_FLAG) is True


async def test_the_warning_comes_again_only_after_credits_rose_to_the_threshold(
    store: JobStore,
) -> None:
    vidgo, clock = Vidgo(100), Clock()
    credits, warnings, _ = watch(store, vidgo, clock)
    await credits.check()
    assert len(warnings) == 1
    vidgo.credits = 500  # topped up to the threshold: no longer below it
    clock.now += INTERVAL
    await credits.check()
    assert await store.get_flag(WARNED_FLAG) is False
    vidgo.credits = 200
    clock.now += INTERVAL
    await credits.check()
    assert len(warnings) == 2


async def test_a_restart_does_not_repeat_the_warning(store: JobStore) -> None:
    vidgo, clock = Vidgo(100), Clock()
    first, warned_first, _ = watch(store, vidgo, clock)
    await first.check()
    # A new process (new watch, new cache) on the same database.
    second, warned_second, _ = watch(store, vidgo, clock)
    await second.check()
    assert len(warned_first) == 1 and warned_second == []


async def test_zero_turns_the_warning_off_but_keeps_reporting(store: JobStore) -> None:
    vidgo, clock = Vidgo(3), Clock()
    credits, warnings, reports = watch(store, vidgo, clock, warn_below=0)
    await credits.check()
    assert warnings == [] and reports[-1].credits == 3
    assert await store.get_flag(WARNED_FLAG) is False


async def test_a_failed_read_is_logged_and_changes_nothing(store: JobStore) -> None:
    vidgo, clock = Vidgo(100), Clock()
    vidgo.fail = True
    credits, warnings, reports = watch(store, vidgo, clock)
    assert await credits.check() is None
    assert warnings == [] and reports == []


async def test_reads_share_the_minute_cache_so_a_second_check_asks_vidgo_nothing(
    store: JobStore,
) -> None:
    vidgo, clock = Vidgo(1000), Clock()
    credits, _, reports = watch(store, vidgo, clock)
    await credits.check()
    clock.now += 30
    await credits.check()
    assert vidgo.reads == 1 and len(reports) == 2


def test_charged_jobs_wake_the_watch_at_most_once_per_interval(store: JobStore) -> None:
    vidgo, clock = Vidgo(1000), Clock()
    credits, _, _ = watch(store, vidgo, clock)
    wake = credits._wake
    credits.delivered("failed", 1.0)  # Vidgo charges nothing for a failure
    assert not wake.is_set()
    credits.delivered("succeeded", 1.0)
    assert wake.is_set()
    wake.clear()
    for _ in range(20):  # a busy evening: many more successes within the interval
        clock.now += 60
        credits.delivered("succeeded", 1.0)
    assert not wake.is_set()
    clock.now = NOW + INTERVAL
    credits.delivered("succeeded", 1.0)
    assert wake.is_set()


async def test_the_running_watch_reads_at_start_and_after_a_charged_job(store: JobStore) -> None:
    vidgo, clock = Vidgo(1000), Clock()
    credits, _, reports = watch(store, vidgo, clock)
    credits.start()
    try:
        await wait_for(lambda: bool(reports))
        clock.now += 120  # past the balance cache's minute
        vidgo.credits = 990
        credits.delivered("succeeded", 1.0)
        await wait_for(lambda: len(reports) == 2)
        assert reports[-1].credits == 990 and vidgo.reads == 2
    finally:
        await credits.stop()


async def test_the_gauge_appears_with_the_first_read_through_the_real_client(
    store: JobStore,
) -> None:
    metrics = StemcordMetrics()
    assert b"stemcord_vidgo_credits" not in metrics.render()  # unknown is not zero
    async with FakeVidgo() as fake, aiohttp.ClientSession() as session:
        fake.credits = 17276
        client = VidgoClient(session, fake.base_url, fake.api_key, rate_per_second=1000)
        credits = CreditsWatch(
            BalanceCache(client.balance),
            store,
            interval=INTERVAL,
            warn_below=500,
            warn=lambda text: asyncio.sleep(0),
            report=lambda read: metrics.vidgo_credits(read.credits, read.fetched_at),
        )
        await credits.check()
        assert fake.requests.count(("GET", "/api/user/balance")) == 1
    text = metrics.render().decode()
    assert "stemcord_vidgo_credits 17276.0" in text
    assert "stemcord_vidgo_credits_read_timestamp_seconds" in text
