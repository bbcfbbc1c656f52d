"""The server's daily cap: every member's requests together, checked inside ``admit``.

Every test runs on both backends (the ``store`` and ``backend`` fixtures of tests/conftest.py).
It counts what the per-member daily quota counts (docs/decisions.md, "Per-server policy").
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


async def test_server_cap_counts_every_member_together(store: JobStore) -> None:
    limits = AdmissionLimits(server_daily_cap=3)
    await admit(store, "a", limits, requester=1)
    await admit(store, "b", limits, requester=2)
    await admit(store, "c", limits, requester=3)
    with pytest.raises(LimitReached) as caught:
        await admit(store, "d", limits, requester=4)  # a member who asked nothing yet today
    assert caught.value.rule is LimitRule.SERVER_DAILY_CAP
    assert caught.value.limit == 3
    assert caught.value.frees_at == DAY_START + 86400
    assert await store.get("d") is None  # nothing recorded


async def test_server_cap_resets_at_utc_midnight(store: JobStore) -> None:
    limits = AdmissionLimits(server_daily_cap=1)
    await admit(store, "a", limits, requester=1)
    with pytest.raises(LimitReached):
        await admit(store, "b", limits, DAY_START + 86400 - 1, requester=2)
    assert (await admit(store, "b", limits, DAY_START + 86400, requester=2)).job.id == "b"


async def test_server_cap_is_per_server(store: JobStore) -> None:
    limits = AdmissionLimits(server_daily_cap=1)
    await admit(store, "a", limits, requester=1)
    assert (await admit(store, "b", limits, requester=1, guild_id=200)).job.id == "b"


async def test_server_cap_counts_cached_answers_and_joins_like_the_member_quota(
    store: JobStore,
) -> None:
    limits = AdmissionLimits(server_daily_cap=3)
    await store.cache_put(
        CachedResult("cached-key", "separate-vocals", "t", {"stems": {}}, None, 1)
    )
    assert (await admit(store, "a", limits, key="cached-key")).admission is Admission.CACHED
    await admit(store, "b", limits, key="same", requester=2)
    assert (await admit(store, "c", limits, key="same", requester=3)).admission is (
        Admission.JOINED
    )
    with pytest.raises(LimitReached) as caught:
        await admit(store, "d", limits, requester=4)
    assert caught.value.rule is LimitRule.SERVER_DAILY_CAP


async def test_failed_and_expired_jobs_do_not_use_up_the_server_cap(store: JobStore) -> None:
    limits = AdmissionLimits(server_daily_cap=1)
    await admit(store, "a", limits, requester=1)
    await store.record_outcome("a", JobState.FAILED, NOW + 1, last_error="Vidgo said no")
    await admit(store, "b", limits, NOW + 2, requester=2)
    await store.record_outcome("b", JobState.EXPIRED, NOW + 3)
    assert (await admit(store, "c", limits, NOW + 4, requester=3)).job.id == "c"


async def test_cancelled_jobs_count_towards_the_server_cap(store: JobStore) -> None:
    limits = AdmissionLimits(server_daily_cap=1)
    await admit(store, "a", limits, requester=1)
    await store.cancel("a", NOW + 1)
    with pytest.raises(LimitReached):
        await admit(store, "b", limits, NOW + 2, requester=2)


async def test_the_members_own_quota_is_named_before_the_server_cap(store: JobStore) -> None:
    # Both reset at 00:00 UTC; the member's own rule is the one they can act on.
    limits = AdmissionLimits(daily_quota=1, server_daily_cap=1)
    await admit(store, "a", limits, requester=1)
    with pytest.raises(LimitReached) as own:
        await admit(store, "b", limits, requester=1)
    assert own.value.rule is LimitRule.DAILY_QUOTA
    with pytest.raises(LimitReached) as server:
        await admit(store, "c", limits, requester=2)
    assert server.value.rule is LimitRule.SERVER_DAILY_CAP


async def test_server_cap_is_named_before_unfinished_jobs_and_cooldown(store: JobStore) -> None:
    limits = AdmissionLimits(max_unfinished=1, cooldown_seconds=60, server_daily_cap=1)
    await admit(store, "a", limits, requester=1)
    with pytest.raises(LimitReached) as caught:
        await admit(store, "b", limits, NOW + 1, requester=1)
    assert caught.value.rule is LimitRule.SERVER_DAILY_CAP


async def test_early_answer_names_the_server_cap_without_writing(store: JobStore) -> None:
    limits = AdmissionLimits(server_daily_cap=1)
    assert await store.limit_reached(100, 2, limits, NOW) is None
    await admit(store, "a", limits, requester=1)
    refused = await store.limit_reached(100, 2, limits, NOW)
    assert refused is not None and refused.rule is LimitRule.SERVER_DAILY_CAP
    assert await store.limit_reached(200, 2, limits, NOW) is None
    assert len(await store.list_jobs(guild_id=100)) == 1


async def test_members_asking_at_once_cannot_all_pass_the_server_cap(store: JobStore) -> None:
    limits = AdmissionLimits(server_daily_cap=2)
    results = await asyncio.gather(
        *(admit(store, f"j{member}", limits, requester=member) for member in range(1, 6)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, AdmitResult) for r in results) == 2, results
    assert all(isinstance(r, AdmitResult | LimitReached) for r in results), results
    assert len(await store.list_jobs(guild_id=100)) == 2


async def test_two_stores_on_one_database_cannot_both_pass_the_server_cap(
    backend: StoreBackend,
) -> None:
    # Two stores are two processes; different members, so only the server's cap orders them.
    first, second = await backend.open_store(), await backend.open_store()
    for round_no in range(8):
        limits = AdmissionLimits(server_daily_cap=round_no + 1)
        results = await asyncio.gather(
            admit(first, f"x{round_no}", limits, requester=1000 + round_no),
            admit(second, f"y{round_no}", limits, requester=2000 + round_no),
            return_exceptions=True,
        )
        assert sum(isinstance(r, LimitReached) for r in results) == 1, results
    assert len(await first.list_jobs(guild_id=100, limit=100)) == 8
