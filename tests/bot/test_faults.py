"""Fault suite, engine side: each Vidgo or database fault has an asserted outcome.

Every accepted job still ends delivered exactly once (result or explicit failure).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from dataclasses import replace

import pytest

from bot.jobs import ErrorKind
from storage.jobstate import JobState
from tests.bot.conftest import MakeHarness
from tests.bot.engine_harness import FAST, Harness
from tests.fakes.vidgo import FakeVidgo


async def finish_and_expect_one_delivery(h: Harness, vidgo: FakeVidgo) -> None:
    job = (await h.separate_ids()).job
    job = await h.wait_state(job.id, JobState.SUBMITTED, JobState.RUNNING)
    await vidgo.finish(job.vidgo_task_id or "")
    done = await h.wait_state(job.id, JobState.DELIVERED, timeout=10)
    assert done.outcome is JobState.SUCCEEDED
    await asyncio.sleep(0.2)
    assert len(h.delivery.for_job(job.id)) == 1


async def test_burst_of_server_errors_on_every_endpoint(
    make_harness: MakeHarness, vidgo: FakeVidgo
) -> None:
    h = await make_harness()
    vidgo.fail_next(6, 500)
    await finish_and_expect_one_delivery(h, vidgo)


async def test_timeouts_on_detail_are_retried(make_harness: MakeHarness, vidgo: FakeVidgo) -> None:
    h = await make_harness(client_timeout=0.2)
    vidgo.slow_next(3, 0.5, path_prefix="/api/generate/detail")
    await finish_and_expect_one_delivery(h, vidgo)


async def test_ambiguous_submit_timeout_is_resolved_by_the_callback(
    make_harness: MakeHarness, vidgo: FakeVidgo
) -> None:
    # Vidgo took the submit but answered too late: the task exists, we never learn its id.
    h = await make_harness(client_timeout=0.2)
    vidgo.slow_next(1, 0.5, path_prefix="/api/generate/submit")
    job = (await h.separate_ids()).job
    assert job.state is JobState.ACCEPTED
    assert job.unconfirmed_submit_at is not None
    [task] = await vidgo.wait_for_task(1)
    # The resend (same token) hits Vidgo's once-per-track rule: the job keeps waiting.
    await _wait_for(lambda: vidgo.submit_count == 2)
    await vidgo.finish(task.task_id)
    done = await h.wait_state(job.id, JobState.DELIVERED, timeout=10)
    # The callback named the task; the engine read it itself and adopted it.
    assert done.outcome is JobState.SUCCEEDED
    assert done.vidgo_task_id == task.task_id
    assert len(vidgo.tasks) == 1
    assert len(h.delivery.for_job(job.id)) == 1


async def _wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.01)


async def test_rate_limit_with_retry_after(make_harness: MakeHarness, vidgo: FakeVidgo) -> None:
    h = await make_harness()
    vidgo.fail_next(3, 429, retry_after=0.01)
    await finish_and_expect_one_delivery(h, vidgo)
    assert h.client is not None
    assert sum(n for (_, outcome), n in h.client.calls.items() if outcome == "rate_limited") == 3


async def test_long_retry_after_reschedules_instead_of_blocking(
    make_harness: MakeHarness, vidgo: FakeVidgo
) -> None:
    h = await make_harness(callbacks=False)
    job = (await h.separate_ids()).job
    vidgo.fail_next(1, 429, retry_after=0.5, path_prefix="/api/generate/detail")
    await vidgo.finish(job.vidgo_task_id or "")
    done = await h.wait_state(job.id, JobState.DELIVERED, timeout=10)
    assert done.outcome is JobState.SUCCEEDED


async def test_connection_resets(make_harness: MakeHarness, vidgo: FakeVidgo) -> None:
    h = await make_harness()
    vidgo.reset_next(3, path_prefix="/api/generate/detail")
    await finish_and_expect_one_delivery(h, vidgo)


async def test_malformed_json_replies(make_harness: MakeHarness, vidgo: FakeVidgo) -> None:
    h = await make_harness()
    vidgo.malformed_next(3, path_prefix="/api/generate/detail")
    await finish_and_expect_one_delivery(h, vidgo)


@pytest.mark.parametrize("variant", ["flat_bodies", "vocal_removal_variant", "spaced_keys"])
async def test_reply_shape_variants_still_deliver_every_stem(
    make_harness: MakeHarness, vidgo: FakeVidgo, variant: str
) -> None:
    setattr(vidgo, variant, True)
    h = await make_harness()
    job = (await h.separate_ids()).job
    await vidgo.finish(job.vidgo_task_id or "")
    done = await h.wait_state(job.id, JobState.DELIVERED)
    assert done.result is not None
    assert set(done.result["stems"]) == {"vocals", "instrumental"}


async def test_callback_that_never_comes_is_caught_by_polling(
    make_harness: MakeHarness, vidgo: FakeVidgo
) -> None:
    vidgo.send_callbacks = False
    h = await make_harness()
    await finish_and_expect_one_delivery(h, vidgo)


async def test_vidgo_down_for_good_fails_the_job_explicitly(
    make_harness: MakeHarness, vidgo: FakeVidgo
) -> None:
    h = await make_harness(config=replace(FAST, submit_max_attempts=3))
    vidgo.fail_next(1000, 503)
    job = (await h.separate_ids()).job
    done = await h.wait_state(job.id, JobState.DELIVERED, timeout=10)
    assert done.outcome is JobState.FAILED
    assert done.error_kind == ErrorKind.SUBMIT_GAVE_UP
    # Three engine attempts, each with the client's two bounded retries, then it stops.
    assert vidgo.submit_count == 3 * 3


async def test_database_busy_for_a_moment(
    make_sqlite_harness: MakeHarness, vidgo: FakeVidgo
) -> None:
    h = await make_sqlite_harness()
    job = (await h.separate_ids()).job
    other = sqlite3.connect(h.db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    await vidgo.finish(job.vidgo_task_id or "")
    await asyncio.sleep(0.5)
    other.execute("COMMIT")
    other.close()
    done = await h.wait_state(job.id, JobState.DELIVERED, timeout=10)
    assert done.outcome is JobState.SUCCEEDED
    assert len(h.delivery.for_job(job.id)) == 1


async def test_database_locked_longer_than_busy_timeout_recovers(
    make_sqlite_harness: MakeHarness, vidgo: FakeVidgo
) -> None:
    h = await make_sqlite_harness(busy_timeout_ms=50, config=replace(FAST, work_lease=0.5))
    job = (await h.separate_ids()).job
    other = sqlite3.connect(h.db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    await vidgo.finish(job.vidgo_task_id or "")
    await asyncio.sleep(0.8)  # writes fail with "database is locked" meanwhile
    other.execute("COMMIT")
    other.close()
    done = await h.wait_state(job.id, JobState.DELIVERED, timeout=10)
    assert done.outcome is JobState.SUCCEEDED
    await asyncio.sleep(0.3)
    assert len(h.delivery.for_job(job.id)) == 1
