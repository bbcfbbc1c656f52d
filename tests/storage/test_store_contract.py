"""The SQLite job store: migrations, admission, the state machine, scheduling queries.

Every test runs against the ``store`` fixture, so a second backend can be added to the
fixture's parameters and must pass the same tests.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage.base import JobNotFound, JobStore
from storage.jobstate import TRANSITIONS, InvalidTransition, JobState
from storage.migrate import available_migrations, migrate, schema_version
from storage.records import Admission, CachedResult, NewJob, SourceKind
from storage.sqlite import SqliteJobStore, integrity_ok

NOW = 1_800_000_000.0


def new_job(
    job_id: str, *, key: str = "separate-vocals:T:A", requester: int = 1, **kw: object
) -> NewJob:
    fields: dict[str, object] = {
        "id": job_id,
        "kind": "separation",
        "source_kind": SourceKind.IDS,
        "source_key": key,
        "model": "separate-vocals",
        "requester_id": requester,
        "channel_id": 10,
        "guild_id": 100,
        "source_task_id": "T",
        "source_audio_id": "A",
        "deadline_at": NOW + 1800,
        "callback_token_hash": f"hash-{job_id}",
    }
    fields.update(kw)
    return NewJob(**fields)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[JobStore]:
    assert request.param == "sqlite"
    s = SqliteJobStore(tmp_path / "sub" / "jobs.sqlite3")
    await s.open()
    yield s
    await s.close()


async def test_open_creates_folder_and_applies_all_migrations(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "db.sqlite3"
    s = SqliteJobStore(path)
    await s.open()
    try:
        assert path.exists()
        assert await schema_version(s.conn) == max(m.version for m in available_migrations())
        async with s.conn.execute("PRAGMA journal_mode") as cur:
            assert (await cur.fetchone())[0] == "wal"  # type: ignore[index]
        async with s.conn.execute("PRAGMA foreign_keys") as cur:
            assert (await cur.fetchone())[0] == 1  # type: ignore[index]
    finally:
        await s.close()


async def test_migrating_twice_is_a_no_op(tmp_path: Path) -> None:
    s = SqliteJobStore(tmp_path / "db.sqlite3")
    await s.open()
    try:
        await s.admit(new_job("j1"), NOW, submit_lease_until=NOW + 60)
        assert await migrate(s.conn) == []
        async with s.conn.execute("SELECT COUNT(*) FROM schema_migrations") as cur:
            assert (await cur.fetchone())[0] == len(available_migrations())  # type: ignore[index]
    finally:
        await s.close()
    # Re-opening the same file keeps the data and applies nothing.
    again = SqliteJobStore(tmp_path / "db.sqlite3")
    await again.open()
    try:
        assert (await again.get("j1")) is not None
    finally:
        await again.close()
    assert integrity_ok(tmp_path / "db.sqlite3")


async def test_new_job_is_accepted_and_leased_for_its_submit(store: JobStore) -> None:
    admitted = await store.admit(new_job("j1"), NOW, submit_lease_until=NOW + 60)
    assert admitted.admission is Admission.NEW
    job = admitted.job
    assert job.state is JobState.ACCEPTED
    assert job.due_at == NOW + 60
    assert job.created_at == NOW
    assert job.callback_token_hash == "hash-j1"


async def test_identical_request_in_flight_joins_it(store: JobStore) -> None:
    await store.admit(new_job("lead"), NOW, submit_lease_until=NOW + 60)
    joined = await store.admit(new_job("fol", requester=2), NOW + 1, submit_lease_until=NOW + 61)
    assert joined.admission is Admission.JOINED
    assert joined.job.leader_id == "lead"
    assert joined.job.state is JobState.SUBMITTED
    assert joined.job.due_at is None
    assert joined.job.callback_token_hash is None
    assert [f.id for f in await store.followers("lead")] == ["fol"]
    # A different source does not join.
    other = await store.admit(new_job("x", key="other"), NOW, submit_lease_until=NOW + 60)
    assert other.admission is Admission.NEW


async def test_cached_source_is_answered_without_a_new_submit(store: JobStore) -> None:
    await store.cache_put(
        CachedResult(
            "k",
            "separate-vocals",
            "task-1",
            {"stems": {"vocals": "https://v"}},
            {"title": "Song"},
            NOW,
        )
    )
    admitted = await store.admit(new_job("j", key="k"), NOW, submit_lease_until=NOW + 60)
    assert admitted.admission is Admission.CACHED
    assert admitted.job.state is JobState.SUCCEEDED
    assert admitted.job.outcome is JobState.SUCCEEDED
    assert admitted.job.result == {"stems": {"vocals": "https://v"}}
    assert admitted.job.track == {"title": "Song"}
    assert admitted.job.due_at == NOW  # delivery is due at once


async def test_concurrent_identical_requests_make_one_leader(store: JobStore) -> None:
    results = await asyncio.gather(
        *(
            store.admit(new_job(f"j{i}", requester=i), NOW, submit_lease_until=NOW + 60)
            for i in range(20)
        )
    )
    kinds = [r.admission for r in results]
    assert kinds.count(Admission.NEW) == 1
    assert kinds.count(Admission.JOINED) == 19


async def test_transition_table_is_enforced(store: JobStore) -> None:
    await store.admit(new_job("j"), NOW, submit_lease_until=NOW + 60)
    with pytest.raises(InvalidTransition):
        await store.transition("j", JobState.DELIVERED, NOW)
    with pytest.raises(InvalidTransition):
        await store.transition("j", JobState.RUNNING, NOW, expect={JobState.SUBMITTED})
    job = await store.transition(
        "j", JobState.SUBMITTED, NOW + 1, vidgo_task_id="task-1", due_at=NOW + 6
    )
    assert job.state is JobState.SUBMITTED
    assert job.vidgo_task_id == "task-1"
    assert job.due_at == NOW + 6
    assert job.updated_at == NOW + 1
    with pytest.raises(JobNotFound):
        await store.transition("missing", JobState.SUBMITTED, NOW)


def test_every_state_has_a_row_in_the_transition_table() -> None:
    assert set(TRANSITIONS) == set(JobState)
    # Final states have no way out except undeliverable -> delivered (a moderator's retry).
    assert TRANSITIONS[JobState.DELIVERED] == frozenset()
    assert TRANSITIONS[JobState.CANCELLED] == frozenset()
    assert TRANSITIONS[JobState.UNDELIVERABLE] == frozenset({JobState.DELIVERED})


async def test_unknown_columns_cannot_be_updated(store: JobStore) -> None:
    await store.admit(new_job("j"), NOW, submit_lease_until=NOW + 60)
    with pytest.raises(ValueError, match="cannot update"):
        await store.update("j", NOW, state="delivered")
    with pytest.raises(ValueError, match="cannot update"):
        await store.update("j", NOW, **{"id = 'x'; --": 1})


async def test_outcome_is_copied_to_followers_and_cached_in_one_step(store: JobStore) -> None:
    await store.admit(new_job("lead"), NOW, submit_lease_until=NOW + 60)
    await store.admit(new_job("f1", requester=2), NOW, submit_lease_until=NOW + 60)
    await store.admit(new_job("f2", requester=3), NOW, submit_lease_until=NOW + 60)
    await store.transition("lead", JobState.SUBMITTED, NOW, vidgo_task_id="t", due_at=NOW + 5)
    result = {"stems": {"vocals": "https://v", "instrumental": "https://i"}}
    changed = await store.record_outcome(
        "lead",
        JobState.SUCCEEDED,
        NOW + 10,
        result=result,
        track={"title": "T"},
        cache=CachedResult(
            "separate-vocals:T:A", "separate-vocals", "t", result, {"title": "T"}, NOW + 10
        ),
    )
    assert [j.id for j in changed] == ["lead", "f1", "f2"]
    for job in changed:
        assert job.state is JobState.SUCCEEDED
        assert job.result == result
        assert job.track == {"title": "T"}
        assert job.due_at == NOW + 10
        assert job.finished_at == NOW + 10
    cached = await store.cache_get("separate-vocals:T:A")
    assert cached is not None and cached.result == result
    # Recording again is a no-op (a duplicate callback read the same detail twice).
    assert await store.record_outcome("lead", JobState.SUCCEEDED, NOW + 11, result=result) == []


async def test_failure_keeps_its_outcome_after_delivery(store: JobStore) -> None:
    await store.admit(new_job("j"), NOW, submit_lease_until=NOW + 60)
    await store.record_outcome(
        "j", JobState.FAILED, NOW, last_error="content policy", error_kind="vidgo_failed"
    )
    job = await store.transition(
        "j", JobState.DELIVERED, NOW + 1, due_at=None, result_message_id=55
    )
    assert job.state is JobState.DELIVERED
    assert job.outcome is JobState.FAILED
    assert job.last_error == "content policy"
    assert job.result_message_id == 55
    assert job.due_at is None


async def test_claim_due_leases_only_due_jobs_earliest_first(store: JobStore) -> None:
    for i, due in enumerate([NOW + 30, NOW + 10, NOW + 20, NOW + 99]):
        await store.admit(new_job(f"j{i}", key=f"k{i}"), NOW, submit_lease_until=NOW)
        await store.update(f"j{i}", NOW, due_at=due)
    assert await store.next_due_at() == NOW + 10
    claimed = await store.claim_due(NOW + 30, NOW + 500, limit=10)
    assert [j.id for j in claimed] == ["j1", "j2", "j0"]
    # Claimed jobs are leased: not claimable again until the lease runs out.
    assert await store.claim_due(NOW + 30, NOW + 500, limit=10) == []
    assert await store.next_due_at() == NOW + 99
    # A new process releases the leases of the one that died.
    assert await store.release_leases(NOW + 31) == 3
    again = await store.claim_due(NOW + 31, NOW + 500, limit=2)
    assert len(again) == 2


async def test_callback_for_unknown_token_writes_nothing(store: JobStore) -> None:
    await store.admit(new_job("j"), NOW, submit_lease_until=NOW + 60)
    before = await store.get("j")
    assert await store.note_callback("nope", NOW + 5) is None
    assert await store.get("j") == before


async def test_callback_makes_an_idle_job_due_now(store: JobStore) -> None:
    await store.admit(new_job("j"), NOW, submit_lease_until=NOW)
    await store.transition("j", JobState.SUBMITTED, NOW, vidgo_task_id="t", due_at=NOW + 60)
    job = await store.note_callback("hash-j", NOW + 5)
    assert job is not None
    assert job.callbacks == 1
    assert job.due_at == NOW + 5


async def test_callback_while_leased_is_not_lost(store: JobStore) -> None:
    await store.admit(new_job("j"), NOW, submit_lease_until=NOW)
    await store.transition("j", JobState.SUBMITTED, NOW, vidgo_task_id="t", due_at=NOW)
    [claimed] = await store.claim_due(NOW, NOW + 120, limit=1)
    noted = await store.note_callback("hash-j", NOW + 1)
    assert noted is not None and noted.due_at == NOW + 120  # the worker owns it
    # The worker read the job before the callback; its reschedule must honour the callback.
    after = await store.reschedule("j", NOW + 2, NOW + 60, seen_callbacks=claimed.callbacks)
    assert after.due_at == NOW + 2
    # Without a new callback the planned time stands.
    later = await store.reschedule("j", NOW + 3, NOW + 60, seen_callbacks=after.callbacks)
    assert later.due_at == NOW + 60


async def test_a_burst_of_callbacks_is_stored_together(store: JobStore) -> None:
    for i in range(30):
        await store.admit(new_job(f"j{i}", key=f"k{i}"), NOW, submit_lease_until=NOW)
        await store.transition(
            f"j{i}", JobState.SUBMITTED, NOW, vidgo_task_id=f"t{i}", due_at=NOW + 60
        )
    await store.record_outcome("j0", JobState.FAILED, NOW, last_error="x", error_kind="x")
    hashes = [f"hash-j{i}" for i in range(30)] + ["hash-j5", "unknown-1", "unknown-2"]
    results = await asyncio.gather(*(store.note_callback(h, NOW + 1) for h in hashes))
    assert results[0] is not None and results[0].state is JobState.FAILED  # unchanged
    assert results[0].callbacks == 0
    for i in range(1, 30):
        job = results[i]
        assert job is not None and job.id == f"j{i}"
        assert job.due_at == NOW + 1
    assert results[30] is not None and results[30].id == "j5"
    assert results[31] is None and results[32] is None
    stored = await store.get("j7")
    assert stored is not None and stored.callbacks == 1 and stored.due_at == NOW + 1


async def test_callback_after_the_outcome_changes_nothing(store: JobStore) -> None:
    await store.admit(new_job("j"), NOW, submit_lease_until=NOW)
    await store.record_outcome("j", JobState.FAILED, NOW, last_error="x", error_kind="vidgo_failed")
    before = await store.get("j")
    job = await store.note_callback("hash-j", NOW + 1)
    assert job == before


async def test_list_and_count_jobs(store: JobStore) -> None:
    await store.admit(new_job("a", key="1", requester=1), NOW, submit_lease_until=NOW)
    await store.admit(new_job("b", key="2", requester=2), NOW + 1, submit_lease_until=NOW)
    await store.admit(
        new_job("c", key="3", requester=1, guild_id=200), NOW + 2, submit_lease_until=NOW
    )
    await store.record_outcome("b", JobState.FAILED, NOW + 3, last_error="x", error_kind="x")
    assert [j.id for j in await store.list_jobs(guild_id=100)] == ["b", "a"]
    assert [j.id for j in await store.list_jobs(guild_id=100, oldest_first=True)] == ["a", "b"]
    assert [j.id for j in await store.list_jobs(requester_id=1)] == ["c", "a"]
    assert [j.id for j in await store.list_jobs(states={JobState.FAILED})] == ["b"]
    assert await store.list_jobs(states=set()) == []
    assert await store.count_by_state() == {JobState.ACCEPTED: 2, JobState.FAILED: 1}


async def test_guild_settings_round_trip(store: JobStore) -> None:
    assert await store.get_guild_settings(1) == {}
    await store.put_guild_settings(1, {"max_unfinished": 3}, NOW)
    await store.put_guild_settings(1, {"max_unfinished": 4}, NOW + 1)
    assert await store.get_guild_settings(1) == {"max_unfinished": 4}


async def test_failed_migration_leaves_the_previous_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from storage import migrate as migrate_module
    from storage.migrate import Migration

    good = available_migrations()
    bad = Migration(good[-1].version + 1, "broken", "CREATE TABLE x (a INTEGER); THIS IS NOT SQL;")
    monkeypatch.setattr(migrate_module, "available_migrations", lambda: [*good, bad])
    s = SqliteJobStore(tmp_path / "db.sqlite3")
    with pytest.raises(sqlite3.OperationalError):
        await s.open()
    conn = sqlite3.connect(tmp_path / "db.sqlite3")
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        versions = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
    finally:
        conn.close()
    assert "x" not in tables
    assert versions == {m.version for m in good}


async def test_cancelling_a_leader_hands_its_task_to_the_oldest_follower(store: JobStore) -> None:
    await store.admit(new_job("lead"), NOW, submit_lease_until=NOW + 60)
    await store.admit(new_job("f1", requester=2), NOW + 1, submit_lease_until=NOW)
    await store.admit(new_job("f2", requester=3), NOW + 2, submit_lease_until=NOW)
    await store.transition("lead", JobState.SUBMITTED, NOW, vidgo_task_id="t", due_at=NOW + 5)
    cancelled = await store.cancel("lead", NOW + 3)
    assert cancelled.state is JobState.CANCELLED
    assert cancelled.vidgo_task_id is None
    heir = await store.get("f1")
    assert heir is not None
    assert heir.leader_id is None and heir.vidgo_task_id == "t"
    assert heir.callback_token_hash == "hash-lead" and heir.due_at == NOW + 5
    assert [f.id for f in await store.followers("f1")] == ["f2"]
    # The callback for the task now reaches the heir.
    noted = await store.note_callback("hash-lead", NOW + 4)
    assert noted is not None and noted.id == "f1"
    # Its outcome reaches the remaining follower.
    changed = await store.record_outcome("f1", JobState.SUCCEEDED, NOW + 5, result={"stems": {}})
    assert [j.id for j in changed] == ["f1", "f2"]


async def test_cancel_after_the_outcome_is_refused(store: JobStore) -> None:
    await store.admit(new_job("j"), NOW, submit_lease_until=NOW)
    await store.record_outcome("j", JobState.FAILED, NOW, last_error="x", error_kind="x")
    with pytest.raises(InvalidTransition):
        await store.cancel("j", NOW + 1)


async def test_expedite_makes_a_waiting_job_due_now(store: JobStore) -> None:
    await store.admit(new_job("j"), NOW, submit_lease_until=NOW)
    await store.update("j", NOW, due_at=NOW + 300, delivery_attempts=3)
    job = await store.expedite("j", NOW + 1, delivery_attempts=0)
    assert job.due_at == NOW + 1 and job.delivery_attempts == 0
    assert [j.id for j in await store.claim_due(NOW + 1, NOW + 100, limit=5)] == ["j"]


async def test_expedite_leaves_a_job_a_worker_holds_alone(store: JobStore) -> None:
    await store.admit(new_job("j"), NOW, submit_lease_until=NOW)
    await store.update("j", NOW, due_at=NOW)
    assert len(await store.claim_due(NOW, NOW + 100, limit=5)) == 1
    job = await store.expedite("j", NOW + 1, delivery_attempts=0)
    assert job.due_at == NOW + 100  # still the lease's end
    # Still leased: no second worker can claim it while the first one works.
    assert await store.claim_due(NOW + 2, NOW + 200, limit=5) == []
    with pytest.raises(JobNotFound):
        await store.expedite("nope", NOW)
