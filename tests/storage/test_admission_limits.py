"""Per-member limits checked inside the admitting transaction: quota, unfinished, cooldown.

Every test runs on both backends (the ``store`` and ``backend`` fixtures of tests/conftest.py).
"""

from __future__ import annotations

import asyncio

import pytest

from storage.base import JobStore
from storage.jobstate import JobState
from storage.records import (
    Admission,
    AdmissionLimits,
    AdmitResult,
    CachedResult,
    LimitReached,
    LimitRule,
)
from tests.conftest import StoreBackend
from tests.helpers import new_job

# 1_800_000_000 is 2027-01-15 08:00:00 UTC; the day started 8 hours earlier.
NOW = 1_800_000_000.0
DAY_START = NOW - 8 * 3600


async def admit(
    store: JobStore, job_id: str, limits: AdmissionLimits, now: float = NOW, **kw: object
) -> AdmitResult:
    key = kw.pop("key", f"separate-vocals:T:{job_id}")
    return await store.admit(
        new_job(job_id, key=str(key), **kw), now, submit_lease_until=now + 60, limits=limits
    )


async def test_unfinished_cap_refuses_the_next_request_until_one_finishes(store: JobStore) -> None:
    limits = AdmissionLimits(max_unfinished=2)
    await admit(store, "a", limits)
    await admit(store, "b", limits)
    with pytest.raises(LimitReached) as caught:
        await admit(store, "c", limits)
    assert caught.value.rule is LimitRule.MAX_UNFINISHED
    assert caught.value.limit == 2 and caught.value.frees_at is None
    assert await store.get("c") is None  # nothing recorded
    await store.record_outcome("a", JobState.FAILED, NOW + 1, last_error="x")
    assert (await admit(store, "c", limits, NOW + 2)).admission is Admission.NEW


async def test_joined_requests_count_as_unfinished(store: JobStore) -> None:
    limits = AdmissionLimits(max_unfinished=1)
    await admit(store, "leader", limits, requester=7, key="same")
    joined = await admit(store, "f", limits, key="same")
    assert joined.admission is Admission.JOINED
    with pytest.raises(LimitReached):
        await admit(store, "g", limits)


async def test_limits_are_per_member_and_per_server(store: JobStore) -> None:
    limits = AdmissionLimits(max_unfinished=1)
    await admit(store, "a", limits)
    await admit(store, "b", limits, requester=2)
    await admit(store, "c", limits, guild_id=200)
    with pytest.raises(LimitReached):
        await admit(store, "d", limits)


async def test_daily_quota_counts_cached_answers_and_resets_at_utc_midnight(
    store: JobStore,
) -> None:
    limits = AdmissionLimits(daily_quota=2)
    await store.cache_put(
        CachedResult("cached-key", "separate-vocals", "t", {"stems": {}}, None, 1)
    )
    assert (await admit(store, "a", limits, key="cached-key")).admission is Admission.CACHED
    await admit(store, "b", limits)
    with pytest.raises(LimitReached) as caught:
        await admit(store, "c", limits)
    assert caught.value.rule is LimitRule.DAILY_QUOTA
    assert caught.value.frees_at == DAY_START + 86400
    # Yesterday's requests do not count; the new day starts at 00:00 UTC.
    assert (await admit(store, "c", limits, DAY_START + 86400)).job.id == "c"


async def test_failed_jobs_do_not_use_up_the_daily_quota(store: JobStore) -> None:
    limits = AdmissionLimits(daily_quota=1)
    await admit(store, "a", limits)
    await store.record_outcome("a", JobState.FAILED, NOW + 1, last_error="Vidgo said no")
    assert (await admit(store, "b", limits, NOW + 2)).job.id == "b"


async def test_cancelled_jobs_still_count_for_the_day(store: JobStore) -> None:
    limits = AdmissionLimits(daily_quota=1)
    await admit(store, "a", limits)
    await store.cancel("a", NOW + 1)
    with pytest.raises(LimitReached):
        await admit(store, "b", limits, NOW + 2)


async def test_cooldown_says_when_the_member_may_ask_again(store: JobStore) -> None:
    limits = AdmissionLimits(cooldown_seconds=30)
    await admit(store, "a", limits)
    with pytest.raises(LimitReached) as caught:
        await admit(store, "b", limits, NOW + 10)
    assert caught.value.rule is LimitRule.COOLDOWN
    assert caught.value.frees_at == NOW + 30
    assert (await admit(store, "b", limits, NOW + 30)).job.id == "b"


async def test_quota_is_named_before_the_shorter_limits(store: JobStore) -> None:
    limits = AdmissionLimits(max_unfinished=1, daily_quota=1, cooldown_seconds=60)
    await admit(store, "a", limits)
    with pytest.raises(LimitReached) as caught:
        await admit(store, "b", limits, NOW + 1)
    assert caught.value.rule is LimitRule.DAILY_QUOTA


async def test_zero_means_unlimited(store: JobStore) -> None:
    limits = AdmissionLimits()
    assert not limits.any
    for index in range(5):
        await admit(store, f"j{index}", limits)
    assert await store.limit_reached(100, 1, limits, NOW) is None


async def test_limit_reached_is_the_same_answer_without_writing(store: JobStore) -> None:
    limits = AdmissionLimits(max_unfinished=1)
    assert await store.limit_reached(100, 1, limits, NOW) is None
    await admit(store, "a", limits)
    refused = await store.limit_reached(100, 1, limits, NOW)
    assert refused is not None and refused.rule is LimitRule.MAX_UNFINISHED
    assert await store.limit_reached(100, 2, limits, NOW) is None


async def test_two_simultaneous_requests_cannot_both_pass_a_cap_of_one(store: JobStore) -> None:
    limits = AdmissionLimits(max_unfinished=1)
    results = await asyncio.gather(
        admit(store, "a", limits), admit(store, "b", limits), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, LimitReached)]
    assert len(refused) == 1
    assert len(await store.list_jobs(requester_id=1)) == 1


async def test_two_stores_on_one_database_cannot_both_pass_a_cap(backend: StoreBackend) -> None:
    # Two stores are two connections (two processes): only the database can order them.
    first, second = await backend.open_store(), await backend.open_store()
    for round_no in range(10):
        limits = AdmissionLimits(daily_quota=round_no + 1)
        results = await asyncio.gather(
            admit(first, f"x{round_no}", limits),
            admit(second, f"y{round_no}", limits),
            return_exceptions=True,
        )
        assert sum(isinstance(r, LimitReached) for r in results) == 1, results
    assert len(await first.list_jobs(requester_id=1, limit=100)) == 10


async def test_new_jobs_keep_their_result_channel_and_dm_choice(store: JobStore) -> None:
    admitted = await admit(
        store, "a", AdmissionLimits(), result_channel_id=55, dm_on_completion=True
    )
    assert admitted.job.result_channel_id == 55 and admitted.job.dm_on_completion is True
    plain = await admit(store, "b", AdmissionLimits())
    assert plain.job.result_channel_id is None and plain.job.dm_on_completion is False
