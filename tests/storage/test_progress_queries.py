"""Store queries behind status-message progress: queue position and recent durations.

The answers are checked on both backends; each backend's plan test checks that its queries
read the V3 indexes.
"""

from __future__ import annotations

from storage import postgres
from storage.base import JobStore
from storage.jobstate import JobState
from storage.postgres import PostgresJobStore
from storage.records import NewJob, SourceKind
from storage.sqlite import QUEUE_POSITION_SQL, RECENT_DURATIONS_SQL, SqliteJobStore
from tests.storage.backends import plan_of

NOW = 1_800_000_000.0


def new_job(
    job_id: str, *, guild: int | None = 100, key: str | None = None, **kw: object
) -> NewJob:
    fields: dict[str, object] = {
        "id": job_id,
        "kind": "separation",
        "source_kind": SourceKind.IDS,
        "source_key": key or f"separate-vocals:T:{job_id}",
        "model": "separate-vocals",
        "requester_id": 1,
        "channel_id": 10,
        "guild_id": guild,
        "source_task_id": "T",
        "source_audio_id": job_id,
        "deadline_at": NOW + 1800,
    }
    fields.update(kw)
    return NewJob(**fields)  # type: ignore[arg-type]


async def finish_after(store: JobStore, job_id: str, created: float, seconds: float) -> None:
    """A job created at ``created`` that ran Vidgo task ``task-<id>`` and succeeded."""
    await store.admit(new_job(job_id), created, submit_lease_until=created + 60)
    await store.transition(job_id, JobState.SUBMITTED, created + 1, vidgo_task_id=f"task-{job_id}")
    await store.record_outcome(job_id, JobState.SUCCEEDED, created + seconds, result={"stems": {}})


async def test_position_counts_the_guilds_unfinished_jobs_oldest_first(store: JobStore) -> None:
    for i, job_id in enumerate(["a", "b", "c"]):
        await store.admit(new_job(job_id), NOW + i, submit_lease_until=NOW + 60)
    await store.admit(new_job("other", guild=200), NOW - 5, submit_lease_until=NOW + 60)
    assert await store.queue_position(100, "a") == (1, 3)
    assert await store.queue_position(100, "c") == (3, 3)
    # The oldest one finishing moves everyone up.
    await store.record_outcome("a", JobState.FAILED, NOW + 10, last_error="x", error_kind="x")
    assert await store.queue_position(100, "c") == (2, 2)
    # A finished job, a job of another guild and an unknown id have no position.
    assert await store.queue_position(100, "a") is None
    assert await store.queue_position(100, "other") is None
    assert await store.queue_position(100, "nope") is None
    assert await store.queue_position(200, "other") == (1, 1)


async def test_jobs_created_in_the_same_instant_get_distinct_positions(store: JobStore) -> None:
    for job_id in ["x", "y"]:
        await store.admit(new_job(job_id), NOW, submit_lease_until=NOW + 60)
    positions = {await store.queue_position(100, "x"), await store.queue_position(100, "y")}
    assert positions == {(1, 2), (2, 2)}


async def test_recent_durations_are_the_models_last_succeeded_runs(store: JobStore) -> None:
    for i in range(5):
        await finish_after(store, f"s{i}", NOW + i * 100, 30.0 + i)
    # A failure, a cached answer and a follower do not count.
    await store.admit(new_job("f"), NOW, submit_lease_until=NOW + 60)
    await store.record_outcome("f", JobState.FAILED, NOW + 2, last_error="x", error_kind="x")
    await store.admit(new_job("lead", key="same"), NOW, submit_lease_until=NOW + 60)
    await store.admit(new_job("follow", key="same"), NOW + 50, submit_lease_until=NOW + 60)
    await store.transition("lead", JobState.SUBMITTED, NOW + 1, vidgo_task_id="task-lead")
    await store.record_outcome("lead", JobState.SUCCEEDED, NOW + 60, result={"stems": {}})
    await store.admit(new_job("cached", key="same"), NOW + 70, submit_lease_until=NOW + 99)
    durations = await store.recent_durations("separate-vocals", 50)
    # Newest first: s4 (34 s) … s0 (30 s), and the leader (60 s) finished at NOW + 60.
    assert durations == [34.0, 33.0, 32.0, 31.0, 60.0, 30.0]
    assert await store.recent_durations("separate-vocals", 2) == [34.0, 33.0]
    assert await store.recent_durations("stem-split", 50) == []


async def test_sqlite_progress_queries_use_their_indexes(sqlite_store: SqliteJobStore) -> None:
    store = sqlite_store
    async with store.conn.execute(
        f"EXPLAIN QUERY PLAN {RECENT_DURATIONS_SQL}", ("separate-vocals", 50)
    ) as cur:
        plan = " ".join(str(row[-1]) for row in await cur.fetchall())
    assert "jobs_model_succeeded" in plan and "TEMP B-TREE" not in plan
    async with store.conn.execute(f"EXPLAIN QUERY PLAN {QUEUE_POSITION_SQL}", ("a", 100)) as cur:
        plan = " ".join(str(row[-1]) for row in await cur.fetchall())
    assert "jobs_guild_unfinished" in plan


async def test_postgresql_progress_queries_use_their_indexes(pg_store: PostgresJobStore) -> None:
    plan = await plan_of(pg_store, postgres.RECENT_DURATIONS_SQL, "separate-vocals", 50)
    assert "jobs_model_succeeded" in plan and "Sort" not in plan
    plan = await plan_of(pg_store, postgres.QUEUE_POSITION_SQL, "a", 100)
    assert "jobs_guild_unfinished" in plan
