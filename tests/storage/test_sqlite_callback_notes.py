"""SQLite's brief callback note: the listener's path writes exactly what ``note_callback``
writes, answers only the job's id, state, due time and task id, and shares batches."""

from __future__ import annotations

import asyncio
from pathlib import Path

from storage.jobstate import JobState
from storage.records import JobRecord
from storage.sqlite import SqliteJobStore
from tests.helpers import NOW, new_job
from tests.storage.test_leases_contract import submitted


async def scene(store: SqliteJobStore) -> None:
    """One job of every kind a callback can meet."""
    await submitted(store, "sub", due_at=NOW + 60, callback_key="key-sub")
    await store.update("sub", NOW, polled_at=NOW)
    await submitted(store, "old", due_at=NOW + 60, callback_token_hash="hash-old")
    await submitted(store, "held", due_at=NOW, callback_key="key-held")
    await store.claim_due(NOW, NOW + 120, limit=1, owner="w1")
    await store.admit(new_job("acc", key="ka", callback_key="key-acc"), NOW, submit_lease_until=NOW)
    await store.update("acc", NOW, due_at=NOW + 900)  # never learned its task id
    await store.admit(new_job("end", key="ke", callback_key="key-end"), NOW, submit_lease_until=NOW)
    await store.record_outcome("end", JobState.FAILED, NOW, last_error="x", error_kind="x")


CALLS: list[dict[str, object]] = [
    {"callback_key": "key-sub", "min_poll_gap": 5.0},
    {"token_hash": "hash-old"},
    {"callback_key": "key-held"},
    {"callback_key": "key-acc", "task_hint": "task-acc"},
    {"callback_key": "key-end", "task_hint": "task-end"},
    {"callback_key": "key-none"},
    {"token_hash": "key-sub"},  # a key is not a token hash
]


async def open_store(path: Path) -> SqliteJobStore:
    store = SqliteJobStore(path)
    await store.open()
    await scene(store)
    return store


async def test_a_brief_note_writes_what_a_full_note_writes_and_answers_its_part(
    tmp_path: Path,
) -> None:
    full = await open_store(tmp_path / "full.sqlite3")
    brief = await open_store(tmp_path / "brief.sqlite3")
    try:
        records = [await full.note_callback(NOW + 1, **call) for call in CALLS]  # type: ignore[arg-type]
        notes = [await brief.note_callback_brief(NOW + 1, **call) for call in CALLS]  # type: ignore[arg-type]
        assert notes == [
            None if r is None else (r.id, r.state, r.due_at, r.vidgo_task_id) for r in records
        ]
        assert notes[0] == ("sub", JobState.SUBMITTED, NOW + 5, "t-sub")  # the read gap holds
        assert notes[4] is not None and notes[4][1] is JobState.FAILED
        assert notes[5] is None and notes[6] is None
        # Every stored column is the same, the counts and the kept task hint included.
        assert await brief.list_jobs(limit=100) == await full.list_jobs(limit=100)
        stored = {j.id: (j.callbacks, j.task_hint) for j in await brief.list_jobs(limit=100)}
        assert stored == {
            "sub": (1, None),
            "old": (1, None),
            "held": (1, None),
            "acc": (1, "task-acc"),
            "end": (0, None),
        }
    finally:
        await full.close()
        await brief.close()


async def test_brief_and_full_callers_share_one_batch_and_one_hop(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "mixed.sqlite3")
    try:
        before = store.thread_hops
        note, record, again = await asyncio.gather(
            store.note_callback_brief(NOW + 1, callback_key="key-sub"),
            store.note_callback(NOW + 1, callback_key="key-acc", task_hint="task-acc"),
            store.note_callback_brief(NOW + 2, callback_key="key-held"),
        )
        assert store.thread_hops - before == 1
        assert isinstance(record, JobRecord)
        assert (record.id, record.callbacks, record.task_hint) == ("acc", 1, "task-acc")
        assert note == ("sub", JobState.SUBMITTED, NOW + 2, "t-sub")
        assert again is not None and again[:2] == ("held", JobState.SUBMITTED)
        assert again[2] == NOW + 120  # leased: the lease end stands
    finally:
        await store.close()


async def test_a_failed_batch_fails_every_caller_and_the_next_batch_is_stored(
    tmp_path: Path,
) -> None:
    store = await open_store(tmp_path / "fail.sqlite3")
    try:
        # The thread is made to fail the next transaction: every caller sees the error.
        await store._run(
            lambda db: db.execute(
                "CREATE TRIGGER no_count BEFORE UPDATE OF callbacks ON jobs "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        )
        results = await asyncio.gather(
            store.note_callback_brief(NOW + 1, callback_key="key-sub"),
            store.note_callback(NOW + 1, callback_key="key-held"),
            return_exceptions=True,
        )
        assert [type(r).__name__ for r in results] == ["IntegrityError", "IntegrityError"]
        await store._run(lambda db: db.execute("DROP TRIGGER no_count"))
        noted = await store.note_callback_brief(NOW + 2, callback_key="key-sub")
        assert noted is not None and noted[0] == "sub"
        job = await store.get("sub")
        assert job is not None and job.callbacks == 1  # the failed batch left nothing
    finally:
        await store.close()
