"""Store methods behind operations: retention pruning, checkpoint, readiness, metrics.

Pruning, readiness and metrics run on both backends; the WAL checkpoint and query plans
are checked per backend.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from bot.vidgo.results import Model
from storage import postgres, sqlite
from storage.base import JobStore
from storage.jobstate import FINAL_STATES, JobState
from storage.postgres import PostgresJobStore
from storage.records import ONCE_ONLY_MODELS, POINTER_RESULT, Admission, CachedResult
from storage.sqlite import SqliteJobStore
from tests.conftest import StoreBackend
from tests.helpers import NOW, delivered, new_job
from tests.storage.backends import assert_consistent, execute, job_ids, plan_of

DAY = 86400.0


@pytest.mark.parametrize("final_sql", [sqlite._FINAL_SQL, postgres._FINAL_SQL])
def test_final_states_in_sql_match_the_state_machine(final_sql: str) -> None:
    assert {s.strip(" '") for s in final_sql.strip("()").split(",")} == {
        s.value for s in FINAL_STATES
    }


async def test_prune_deletes_only_final_jobs_that_ended_before_the_cutoff(
    store: JobStore,
) -> None:
    await delivered(store, "old", NOW - 40 * DAY)
    await delivered(store, "recent", NOW - 1 * DAY)
    # Old but unfinished, or finished with a message still owed: never pruned.
    await store.admit(new_job("waiting", key="k-w"), NOW - 40 * DAY, submit_lease_until=NOW)
    await store.admit(new_job("owed", key="k-o"), NOW - 40 * DAY, submit_lease_until=NOW)
    await store.record_outcome("owed", JobState.FAILED, NOW - 40 * DAY, last_error="x")
    # Cancelled and undeliverable are final too.
    await store.admit(new_job("cancelled", key="k-c"), NOW - 40 * DAY, submit_lease_until=NOW)
    await store.cancel("cancelled", NOW - 40 * DAY)
    await store.admit(new_job("lost", key="k-l"), NOW - 40 * DAY, submit_lease_until=NOW)
    await store.record_outcome("lost", JobState.FAILED, NOW - 40 * DAY, last_error="x")
    await store.transition("lost", JobState.UNDELIVERABLE, NOW - 40 * DAY, due_at=None)

    assert await store.prune_finished(NOW - 30 * DAY) == 3
    assert await job_ids(store) == {"recent", "waiting", "owed"}
    assert await store.prune_finished(NOW - 30 * DAY) == 0


async def test_a_leader_is_kept_while_a_follower_still_needs_it(store: JobStore) -> None:
    old = NOW - 40 * DAY
    await store.admit(new_job("lead"), old, submit_lease_until=old)
    await store.admit(new_job("f1", requester=2), old, submit_lease_until=old)
    await store.admit(new_job("f2", requester=3), old, submit_lease_until=old)
    await store.record_outcome("lead", JobState.SUCCEEDED, old, result={"stems": {}})
    await store.transition("lead", JobState.DELIVERED, old, due_at=None)
    await store.transition("f1", JobState.DELIVERED, old, due_at=None)
    # f2's message is still owed: f2 and its leader stay; f1 (nobody follows it) goes.
    assert await store.prune_finished(NOW - 30 * DAY) == 1
    assert await job_ids(store) == {"lead", "f2"}
    follower = await store.get("f2")
    assert follower is not None and follower.leader_id == "lead"

    await store.transition("f2", JobState.DELIVERED, old, due_at=None)
    assert await store.prune_finished(NOW - 30 * DAY) == 2
    assert await job_ids(store) == set()
    await assert_consistent(store)


async def test_a_leader_is_kept_while_a_recent_follower_is_kept(store: JobStore) -> None:
    old = NOW - 40 * DAY
    await store.admit(new_job("lead"), old, submit_lease_until=old)
    await store.admit(new_job("f1", requester=2), old, submit_lease_until=old)
    await store.record_outcome("lead", JobState.SUCCEEDED, old, result={"stems": {}})
    await store.transition("lead", JobState.DELIVERED, old, due_at=None)
    await store.transition("f1", JobState.DELIVERED, old, due_at=None)
    # The follower ended recently (a moderator retry can do that): it and its leader stay.
    await execute(store, "UPDATE jobs SET finished_at = ? WHERE id = 'f1'", NOW)
    assert await store.prune_finished(NOW - 30 * DAY) == 0
    assert await job_ids(store) == {"lead", "f1"}


async def test_leader_chains_are_followed(store: JobStore) -> None:
    old = NOW - 40 * DAY
    for job_id in ("a", "b", "c"):
        await delivered(store, job_id, old)
    # c follows b, which follows a; c is recent, so the whole chain must stay.
    await execute(store, "UPDATE jobs SET leader_id = 'a' WHERE id = 'b'")
    await execute(store, "UPDATE jobs SET leader_id = 'b', finished_at = ? WHERE id = 'c'", NOW)
    assert await store.prune_finished(NOW - 30 * DAY) == 0
    await execute(store, "UPDATE jobs SET finished_at = ? WHERE id = 'c'", old)
    assert await store.prune_finished(NOW - 30 * DAY) == 3


async def test_prune_works_in_batches(store: JobStore) -> None:
    for i in range(7):
        await delivered(store, f"j{i}", NOW - 40 * DAY + i)
    assert await store.prune_finished(NOW - 30 * DAY, batch=3) == 7
    assert await job_ids(store) == set()


UPLOAD = "upload-and-separate-vocals"


async def test_prune_cache_by_age(store: JobStore) -> None:
    for key, at in (("old", NOW - 100 * DAY), ("new", NOW - DAY)):
        await store.cache_put(CachedResult(key, UPLOAD, "t", {"stems": {}}, None, at))
    assert await store.prune_cache(NOW - 90 * DAY) == 1
    assert await store.cache_get("old") is None
    assert await store.cache_get("new") is not None


@pytest.mark.parametrize("model", ONCE_ONLY_MODELS)
async def test_prune_cache_keeps_a_pointer_to_a_once_only_separation(
    store: JobStore, model: str
) -> None:
    old = NOW - 100 * DAY
    await store.cache_put(CachedResult("once", model, "t-1", {"stems": {"v": "u"}}, None, old))
    await store.cache_put(CachedResult("no-task", model, None, {"stems": {}}, None, old))
    await store.cache_put(CachedResult("upload", UPLOAD, "t-2", {"stems": {}}, None, old))
    assert await store.prune_cache(NOW - 90 * DAY) == 3
    pointer = await store.cache_get("once")
    assert pointer is not None and pointer.is_pointer
    assert pointer.result == POINTER_RESULT  # the links are gone
    assert (pointer.model, pointer.vidgo_task_id) == (model, "t-1")
    assert await store.cache_get("no-task") is None  # nothing to point at
    assert await store.cache_get("upload") is None  # an upload can be separated again
    # A pointer is kept for good and not counted again.
    assert await store.prune_cache(NOW + 1000 * DAY) == 0
    assert await store.cache_get("once") is not None


async def test_admission_treats_a_pointer_as_no_cache(store: JobStore) -> None:
    key = "separate-vocals:T:A"
    await store.cache_put(CachedResult(key, "separate-vocals", "t-1", POINTER_RESULT, None, NOW))
    admitted = await store.admit(new_job("j", key=key), NOW, submit_lease_until=NOW + 60)
    assert admitted.admission is Admission.NEW
    assert admitted.job.state is JobState.ACCEPTED and admitted.job.result is None


def test_the_once_only_models_are_vidgos_track_separations() -> None:
    assert set(ONCE_ONLY_MODELS) == {Model.SEPARATE_VOCALS, Model.STEM_SPLIT}


async def test_sqlite_checkpoint_empties_the_wal(sqlite_store: SqliteJobStore) -> None:
    for i in range(20):
        await delivered(sqlite_store, f"j{i}", NOW)
    wal = f"{sqlite_store.path}-wal"
    assert os.stat(wal).st_size > 0
    assert await sqlite_store.checkpoint() is True
    assert os.stat(wal).st_size == 0


async def test_checkpoint_answers_true_when_nothing_holds_it_back(store: JobStore) -> None:
    await delivered(store, "j", NOW)
    assert await store.checkpoint() is True


async def test_oldest_unfinished_and_ping(store: JobStore) -> None:
    await store.ping()
    assert await store.oldest_unfinished_created_at() is None
    await delivered(store, "done", NOW - 50)
    await store.admit(new_job("w1", key="k1"), NOW - 30, submit_lease_until=NOW)
    await store.admit(new_job("w2", key="k2"), NOW - 10, submit_lease_until=NOW)
    assert await store.oldest_unfinished_created_at() == NOW - 30


async def test_ping_and_checkpoint_fail_on_a_closed_store(backend: StoreBackend) -> None:
    s = await backend.open_store()
    await s.close()
    with pytest.raises(RuntimeError):
        await s.ping()
    with pytest.raises(RuntimeError):
        await s.checkpoint()


async def test_sqlite_retention_queries_use_the_v4_indexes(tmp_path: Path) -> None:
    s = SqliteJobStore(tmp_path / "plan.sqlite3")
    await s.open()
    await s.close()
    conn = sqlite3.connect(tmp_path / "plan.sqlite3")
    try:
        plan = " ".join(
            str(row[3])
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT id FROM jobs WHERE finished_at IS NOT NULL "
                "AND finished_at < 1"
            )
        )
        assert "jobs_finished" in plan
        plan = " ".join(
            str(row[3])
            for row in conn.execute(
                "EXPLAIN QUERY PLAN DELETE FROM results_cache WHERE created_at < 1"
            )
        )
        assert "results_cache_created" in plan
    finally:
        conn.close()


async def test_postgresql_retention_queries_use_the_v4_indexes(
    pg_store: PostgresJobStore,
) -> None:
    plan = await plan_of(
        pg_store, "SELECT id FROM jobs WHERE finished_at IS NOT NULL AND finished_at < $1", NOW
    )
    assert "jobs_finished" in plan
    # The prune itself reads indexes only (which one depends on the table's statistics).
    plan = await plan_of(pg_store, postgres.PRUNE_FINISHED, NOW, 1000)
    assert "Seq Scan" not in plan and "jobs_followers" in plan
    assert "results_cache_created" in await plan_of(pg_store, postgres.PRUNE_CACHE, NOW)
    plan = await plan_of(pg_store, postgres.OLDEST_UNFINISHED)
    assert "jobs_state_created" in plan


async def test_a_batch_that_cuts_a_group_of_followers_never_orphans_one(
    store: JobStore,
) -> None:
    old = NOW - 40 * DAY
    await store.admit(new_job("lead"), old, submit_lease_until=old)
    for i in range(3):
        await store.admit(new_job(f"f{i}", requester=10 + i), old, submit_lease_until=old)
    # One outcome for the leader and its followers: they all end at the same moment.
    await store.record_outcome("lead", JobState.SUCCEEDED, old, result={"stems": {}})
    for job_id in ("lead", "f0", "f1", "f2"):
        await store.transition(job_id, JobState.DELIVERED, old, due_at=None)
    assert await store.prune_finished(NOW - 30 * DAY, batch=2) == 4
    assert await job_ids(store) == set()
    await assert_consistent(store)
