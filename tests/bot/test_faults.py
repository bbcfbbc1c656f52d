"""Fault suite, engine side: each Vidgo or database fault has an asserted outcome.

Every accepted job still ends delivered exactly once (result or explicit failure).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from bot.engine import ErrorKind
from storage.jobstate import JobState
from tests.bot.engine_harness import FAST, Harness
from tests.fakes.vidgo import FakeVidgo


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


async def make(
    vidgo: FakeVidgo, session: aiohttp.ClientSession, tmp_path: Path, **kw: object
) -> Harness:
    h = Harness(vidgo=vidgo, db_path=tmp_path / "jobs.sqlite3", session=session, **kw)  # type: ignore[arg-type]
    await h.start()
    return h


async def finish_and_expect_one_delivery(h: Harness, vidgo: FakeVidgo) -> None:
    job = (await h.separate_ids()).job
    job = await h.wait_state(job.id, JobState.SUBMITTED, JobState.RUNNING)
    await vidgo.finish(job.vidgo_task_id or "")
    done = await h.wait_state(job.id, JobState.DELIVERED, timeout=10)
    assert done.outcome is JobState.SUCCEEDED
    await asyncio.sleep(0.2)
    assert len(h.delivery.for_job(job.id)) == 1


async def test_burst_of_server_errors_on_every_endpoint(
    vidgo: FakeVidgo, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    h = await make(vidgo, session, tmp_path)
    try:
        vidgo.fail_next(6, 500)
        await finish_and_expect_one_delivery(h, vidgo)
    finally:
        await h.close()


async def test_timeouts_on_detail_are_retried(
    vidgo: FakeVidgo, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    h = await make(vidgo, session, tmp_path, client_timeout=0.2)
    try:
        vidgo.slow_next(3, 0.5, path_prefix="/api/generate/detail")
        await finish_and_expect_one_delivery(h, vidgo)
    finally:
        await h.close()


async def test_ambiguous_submit_timeout_is_resolved_explicitly(
    vidgo: FakeVidgo, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    # Vidgo took the submit but answered too late: the task exists, we never learn its id.
    h = await make(vidgo, session, tmp_path, client_timeout=0.2)
    try:
        vidgo.slow_next(1, 0.5, path_prefix="/api/generate/submit")
        job = (await h.separate_ids()).job
        assert job.state is JobState.ACCEPTED
        done = await h.wait_state(job.id, JobState.DELIVERED, timeout=10)
        # The retry hits Vidgo's once-per-track rule: the member is told, nothing hangs.
        assert done.outcome is JobState.FAILED
        assert done.error_kind == ErrorKind.DUPLICATE
        assert len(h.delivery.for_job(job.id)) == 1
    finally:
        await h.close()


async def test_rate_limit_with_retry_after(
    vidgo: FakeVidgo, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    h = await make(vidgo, session, tmp_path)
    try:
        vidgo.fail_next(3, 429, retry_after=0.01)
        await finish_and_expect_one_delivery(h, vidgo)
        assert h.client is not None
        assert (
            sum(n for (_, outcome), n in h.client.calls.items() if outcome == "rate_limited") == 3
        )
    finally:
        await h.close()


async def test_long_retry_after_reschedules_instead_of_blocking(
    vidgo: FakeVidgo, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    h = await make(vidgo, session, tmp_path, callbacks=False)
    try:
        job = (await h.separate_ids()).job
        vidgo.fail_next(1, 429, retry_after=0.5, path_prefix="/api/generate/detail")
        await vidgo.finish(job.vidgo_task_id or "")
        done = await h.wait_state(job.id, JobState.DELIVERED, timeout=10)
        assert done.outcome is JobState.SUCCEEDED
    finally:
        await h.close()


async def test_connection_resets(
    vidgo: FakeVidgo, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    h = await make(vidgo, session, tmp_path)
    try:
        vidgo.reset_next(3, path_prefix="/api/generate/detail")
        await finish_and_expect_one_delivery(h, vidgo)
    finally:
        await h.close()


async def test_malformed_json_replies(
    vidgo: FakeVidgo, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    h = await make(vidgo, session, tmp_path)
    try:
        vidgo.malformed_next(3, path_prefix="/api/generate/detail")
        await finish_and_expect_one_delivery(h, vidgo)
    finally:
        await h.close()


@pytest.mark.parametrize("variant", ["flat_bodies", "vocal_removal_variant", "spaced_keys"])
async def test_reply_shape_variants_still_deliver_every_stem(
    vidgo: FakeVidgo, session: aiohttp.ClientSession, tmp_path: Path, variant: str
) -> None:
    setattr(vidgo, variant, True)
    h = await make(vidgo, session, tmp_path)
    try:
        job = (await h.separate_ids()).job
        await vidgo.finish(job.vidgo_task_id or "")
        done = await h.wait_state(job.id, JobState.DELIVERED)
        assert done.result is not None
        assert set(done.result["stems"]) == {"vocals", "instrumental"}
    finally:
        await h.close()


async def test_callback_that_never_comes_is_caught_by_polling(
    vidgo: FakeVidgo, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    vidgo.send_callbacks = False
    h = await make(vidgo, session, tmp_path)
    try:
        await finish_and_expect_one_delivery(h, vidgo)
    finally:
        await h.close()


async def test_vidgo_down_for_good_fails_the_job_explicitly(
    vidgo: FakeVidgo, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    h = await make(vidgo, session, tmp_path, config=replace(FAST, submit_max_attempts=3))
    try:
        vidgo.fail_next(1000, 503)
        job = (await h.separate_ids()).job
        done = await h.wait_state(job.id, JobState.DELIVERED, timeout=10)
        assert done.outcome is JobState.FAILED
        assert done.error_kind == ErrorKind.SUBMIT_GAVE_UP
        # Three engine attempts, each with the client's two bounded retries, then it stops.
        assert vidgo.submit_count == 3 * 3
    finally:
        await h.close()


async def test_database_busy_for_a_moment(
    vidgo: FakeVidgo, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    h = await make(vidgo, session, tmp_path)
    try:
        job = (await h.separate_ids()).job
        other = sqlite3.connect(tmp_path / "jobs.sqlite3", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        await vidgo.finish(job.vidgo_task_id or "")
        await asyncio.sleep(0.5)
        other.execute("COMMIT")
        other.close()
        done = await h.wait_state(job.id, JobState.DELIVERED, timeout=10)
        assert done.outcome is JobState.SUCCEEDED
        assert len(h.delivery.for_job(job.id)) == 1
    finally:
        await h.close()


async def test_database_locked_longer_than_busy_timeout_recovers(
    vidgo: FakeVidgo, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    h = await make(
        vidgo, session, tmp_path, busy_timeout_ms=50, config=replace(FAST, work_lease=0.5)
    )
    try:
        job = (await h.separate_ids()).job
        other = sqlite3.connect(tmp_path / "jobs.sqlite3", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        await vidgo.finish(job.vidgo_task_id or "")
        await asyncio.sleep(0.8)  # writes fail with "database is locked" meanwhile
        other.execute("COMMIT")
        other.close()
        done = await h.wait_state(job.id, JobState.DELIVERED, timeout=10)
        assert done.outcome is JobState.SUCCEEDED
        await asyncio.sleep(0.3)
        assert len(h.delivery.for_job(job.id)) == 1
    finally:
        await h.close()
