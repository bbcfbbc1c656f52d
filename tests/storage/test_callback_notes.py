"""The brief callback note (both backends): the listener's path writes exactly what
``note_callback`` writes, answers only the job's id, state, due time and task id, and shares
batches with callers of ``note_callback``."""

from __future__ import annotations

import asyncio
from typing import Any

from storage.base import JobStore
from storage.jobstate import JobState
from storage.postgres import PostgresJobStore
from storage.records import JobRecord
from storage.sqlite import SqliteJobStore
from tests.helpers import NOW, new_job
from tests.storage.test_leases_contract import submitted

BriefStore = SqliteJobStore | PostgresJobStore


async def scene(store: JobStore, p: str) -> None:
    """One job of every kind a callback can meet, its ids and keys prefixed with ``p``."""
    await submitted(store, f"{p}sub", due_at=NOW + 60, callback_key=f"{p}key-sub")
    await store.update(f"{p}sub", NOW, polled_at=NOW)
    await submitted(store, f"{p}old", due_at=NOW + 60, callback_token_hash=f"{p}hash-old")
    await submitted(store, f"{p}held", due_at=NOW, callback_key=f"{p}key-held")
    await store.claim_due(NOW, NOW + 120, limit=1, owner="w1")
    await store.admit(
        new_job(f"{p}acc", key=f"{p}ka", callback_key=f"{p}key-acc"), NOW, submit_lease_until=NOW
    )
    await store.update(f"{p}acc", NOW, due_at=NOW + 900)  # never learned its task id
    await store.admit(
        new_job(f"{p}end", key=f"{p}ke", callback_key=f"{p}key-end"), NOW, submit_lease_until=NOW
    )
    await store.record_outcome(f"{p}end", JobState.FAILED, NOW, last_error="x", error_kind="x")
    await store.update(f"{p}end", NOW, due_at=None)  # delivered: not due, not claimed


def calls(p: str) -> list[dict[str, Any]]:
    return [
        {"callback_key": f"{p}key-sub", "min_poll_gap": 5.0},
        {"token_hash": f"{p}hash-old"},
        {"callback_key": f"{p}key-held"},
        {"callback_key": f"{p}key-acc", "task_hint": "task-acc"},
        {"callback_key": f"{p}key-end", "task_hint": "task-end"},
        {"callback_key": f"{p}key-none"},
        {"token_hash": f"{p}key-sub"},  # a key is not a token hash
    ]


def unprefixed(note: tuple[Any, ...], p: str) -> tuple[Any, ...]:
    """A note with the prefix taken off its id and task id (``t-<id>``)."""
    job_id, state, due_at, task_id = note
    return (job_id.removeprefix(p), state, due_at, task_id and task_id.replace(p, ""))


def touched(job: JobRecord, p: str) -> tuple[Any, ...]:
    """What a callback may change, with the prefix taken off the id."""
    return (
        job.id.removeprefix(p),
        job.state,
        job.callbacks,
        job.due_at,
        job.updated_at,
        job.task_hint,
        job.leased,
        job.lease_id,
    )


async def test_a_brief_note_writes_what_a_full_note_writes_and_answers_its_part(
    store: JobStore,
) -> None:
    assert isinstance(store, BriefStore)
    await scene(store, "f-")
    await scene(store, "b-")
    records = [await store.note_callback(NOW + 1, **call) for call in calls("f-")]
    notes = [await store.note_callback_brief(NOW + 1, **call) for call in calls("b-")]
    assert [None if n is None else unprefixed(n, "b-") for n in notes] == [
        None if r is None else unprefixed((r.id, r.state, r.due_at, r.vidgo_task_id), "f-")
        for r in records
    ]
    assert notes[0] == ("b-sub", JobState.SUBMITTED, NOW + 5, "t-b-sub")  # the read gap holds
    assert notes[2] is not None and notes[2][2] == NOW + 120  # leased: the lease end stands
    assert notes[4] is not None and notes[4][1] is JobState.FAILED
    assert notes[5] is None and notes[6] is None
    jobs = await store.list_jobs(limit=100)
    full = sorted(touched(j, "f-") for j in jobs if j.id.startswith("f-"))
    brief = sorted(touched(j, "b-") for j in jobs if j.id.startswith("b-"))
    assert brief == full
    stored = {j.id: (j.callbacks, j.task_hint) for j in jobs if j.id.startswith("b-")}
    assert stored == {
        "b-sub": (1, None),
        "b-old": (1, None),
        "b-held": (1, None),
        "b-acc": (1, "task-acc"),
        "b-end": (0, None),
    }


async def test_brief_and_full_callers_share_a_batch(store: JobStore) -> None:
    assert isinstance(store, BriefStore)
    await scene(store, "")
    note, record, again = await asyncio.gather(
        store.note_callback_brief(NOW + 1, callback_key="key-sub"),
        store.note_callback(NOW + 1, callback_key="key-acc", task_hint="task-acc"),
        store.note_callback_brief(NOW + 2, callback_key="key-held"),
    )
    assert isinstance(record, JobRecord)
    assert (record.id, record.callbacks, record.task_hint) == ("acc", 1, "task-acc")
    assert note == ("sub", JobState.SUBMITTED, NOW + 2, "t-sub")
    assert again == ("held", JobState.SUBMITTED, NOW + 120, "t-held")


async def test_on_sqlite_a_mixed_batch_is_one_thread_hop(sqlite_store: SqliteJobStore) -> None:
    await scene(sqlite_store, "")
    before = sqlite_store.thread_hops
    await asyncio.gather(
        sqlite_store.note_callback_brief(NOW + 1, callback_key="key-sub"),
        sqlite_store.note_callback(NOW + 1, callback_key="key-acc"),
        sqlite_store.note_callback_brief(NOW + 2, token_hash="hash-old"),
    )
    assert sqlite_store.thread_hops - before == 1


async def test_a_failed_batch_fails_every_caller_and_the_next_batch_is_stored(
    sqlite_store: SqliteJobStore,
) -> None:
    await scene(sqlite_store, "")
    # The next transaction is made to fail: every caller of its batch sees the error.
    await sqlite_store._run(
        lambda db: db.execute(
            "CREATE TRIGGER no_count BEFORE UPDATE OF callbacks ON jobs "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    )
    results = await asyncio.gather(
        sqlite_store.note_callback_brief(NOW + 1, callback_key="key-sub"),
        sqlite_store.note_callback(NOW + 1, callback_key="key-held"),
        return_exceptions=True,
    )
    assert [type(r).__name__ for r in results] == ["IntegrityError", "IntegrityError"]
    await sqlite_store._run(lambda db: db.execute("DROP TRIGGER no_count"))
    noted = await sqlite_store.note_callback_brief(NOW + 2, callback_key="key-sub")
    assert noted is not None and noted[0] == "sub"
    job = await sqlite_store.get("sub")
    assert job is not None and job.callbacks == 1  # the failed batch left nothing
