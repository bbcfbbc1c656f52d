"""The job store contract: admission, the state machine, scheduling, callbacks, settings.

Every test takes the ``store`` fixture (tests/conftest.py), so it runs on SQLite and on
PostgreSQL and both backends must give the same answers.
"""

from __future__ import annotations

import asyncio

import pytest

from storage.base import JobNotFound, JobStore
from storage.jobstate import TRANSITIONS, InvalidTransition, JobState
from storage.migrate import MIGRATION_PACKAGES, available_migrations
from storage.postgres import PostgresJobStore
from storage.records import Admission, AdmissionLimits, CachedResult, LimitReached
from storage.sqlite import SqliteJobStore
from tests.conftest import StoreBackend
from tests.helpers import NOW, new_job
from tests.storage.backends import fetch_rows


async def test_opening_again_keeps_the_data_and_applies_nothing(backend: StoreBackend) -> None:
    first = await backend.open_store()
    assert isinstance(first, SqliteJobStore | PostgresJobStore)
    assert first.applied_migrations == [m.version for m in available_migrations(backend.name)]
    await first.admit(new_job("j1"), NOW, submit_lease_until=NOW + 60)
    await first.close()
    again = await backend.open_store()
    assert isinstance(again, SqliteJobStore | PostgresJobStore)
    assert again.applied_migrations == []
    assert (await again.get("j1")) is not None
    rows = await fetch_rows(again, "SELECT version FROM schema_migrations ORDER BY version")
    assert [row[0] for row in rows] == [m.version for m in available_migrations(backend.name)]


def test_each_backend_ships_the_same_migration_versions_and_names() -> None:
    names = {
        backend: [(m.version, m.name) for m in available_migrations(backend)]
        for backend in MIGRATION_PACKAGES
    }
    assert names["sqlite"] == names["postgresql"]
    assert [version for version, _ in names["sqlite"]] == [1, 2, 3, 4, 5, 6, 7, 8, 9]


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
    claimed = await store.claim_due(NOW + 30, NOW + 500, limit=10, owner="w1")
    assert [j.id for j in claimed] == ["j1", "j2", "j0"]
    # Claimed jobs are leased: not claimable again until the lease runs out.
    assert await store.claim_due(NOW + 30, NOW + 500, limit=10, owner="w1") == []
    assert await store.next_due_at() == NOW + 99
    # A new process releases the leases of the one that died (never registered, here).
    assert await store.release_orphaned_leases(NOW + 31, stale_before=NOW) == 3
    again = await store.claim_due(NOW + 31, NOW + 500, limit=2, owner="w2")
    assert len(again) == 2


async def test_callback_for_unknown_token_writes_nothing(store: JobStore) -> None:
    await store.admit(new_job("j"), NOW, submit_lease_until=NOW + 60)
    before = await store.get("j")
    assert await store.note_callback(NOW + 5, token_hash="nope") is None
    assert await store.get("j") == before


async def test_callback_makes_an_idle_job_due_now(store: JobStore) -> None:
    await store.admit(new_job("j"), NOW, submit_lease_until=NOW)
    await store.transition("j", JobState.SUBMITTED, NOW, vidgo_task_id="t", due_at=NOW + 60)
    job = await store.note_callback(NOW + 5, token_hash="hash-j")
    assert job is not None
    assert job.callbacks == 1
    assert job.due_at == NOW + 5


async def test_callback_while_leased_is_not_lost(store: JobStore) -> None:
    await store.admit(new_job("j"), NOW, submit_lease_until=NOW)
    await store.transition("j", JobState.SUBMITTED, NOW, vidgo_task_id="t", due_at=NOW)
    [claimed] = await store.claim_due(NOW, NOW + 120, limit=1, owner="w1")
    noted = await store.note_callback(NOW + 1, token_hash="hash-j")
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
    results = await asyncio.gather(*(store.note_callback(NOW + 1, token_hash=h) for h in hashes))
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
    job = await store.note_callback(NOW + 1, token_hash="hash-j")
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
    noted = await store.note_callback(NOW + 4, token_hash="hash-lead")
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
    assert [j.id for j in await store.claim_due(NOW + 1, NOW + 100, limit=5, owner="w1")] == ["j"]


async def test_expedite_leaves_a_job_a_worker_holds_alone(store: JobStore) -> None:
    await store.admit(new_job("j"), NOW, submit_lease_until=NOW)
    await store.update("j", NOW, due_at=NOW)
    assert len(await store.claim_due(NOW, NOW + 100, limit=5, owner="w1")) == 1
    job = await store.expedite("j", NOW + 1, delivery_attempts=0)
    assert job.due_at == NOW + 100  # still the lease's end
    # Still leased: no second worker can claim it while the first one works.
    assert await store.claim_due(NOW + 2, NOW + 200, limit=5, owner="w1") == []
    with pytest.raises(JobNotFound):
        await store.expedite("nope", NOW)


async def test_two_stores_on_one_database_never_claim_the_same_job(backend: StoreBackend) -> None:
    # Two stores on one database stand for two bot processes sharing it.
    first, second = await backend.open_store(), await backend.open_store()
    for i in range(40):
        await first.admit(new_job(f"j{i}", key=f"k{i}"), NOW, submit_lease_until=NOW)
    claimed: list[str] = []
    for _ in range(12):
        batches = await asyncio.gather(
            first.claim_due(NOW, NOW + 600, limit=3, owner="w1"),
            second.claim_due(NOW, NOW + 600, limit=3, owner="w2"),
        )
        claimed += [job.id for batch in batches for job in batch]
    assert sorted(claimed) == sorted(f"j{i}" for i in range(40))


async def test_discord_snowflakes_keep_all_their_digits(store: JobStore) -> None:
    big = 2**63 - 1  # the largest id a Discord snowflake can reach
    admitted = await store.admit(
        new_job("j", requester=big, guild_id=big - 1, channel_id=big - 2, result_channel_id=big),
        NOW,
        submit_lease_until=NOW,
    )
    job = await store.update("j", NOW, status_message_id=big - 3, result_message_id=big - 4)
    assert (admitted.job.requester_id, admitted.job.guild_id) == (big, big - 1)
    assert (job.channel_id, job.result_channel_id) == (big - 2, big)
    assert (job.status_message_id, job.result_message_id) == (big - 3, big - 4)
    assert [j.id for j in await store.list_jobs(guild_id=big - 1, requester_id=big)] == ["j"]
    await store.put_guild_settings(big, {"max_unfinished": 2}, NOW)
    assert await store.get_guild_settings(big) == {"max_unfinished": 2}


async def test_json_objects_come_back_with_their_keys_in_order(store: JobStore) -> None:
    # Stems are shown in the order Vidgo listed them; a store that sorts keys would reorder.
    result = {"stems": {"vocals": "https://v", "drums": "https://d", "bass": "https://b"}}
    await store.admit(new_job("j", options={"z": 1, "a": 2}), NOW, submit_lease_until=NOW)
    [job] = await store.record_outcome("j", JobState.SUCCEEDED, NOW, result=result)
    assert list(job.options) == ["z", "a"]
    assert job.result is not None and list(job.result["stems"]) == ["vocals", "drums", "bass"]
    stored = await store.get("j")
    assert stored is not None and stored.result == result


async def test_text_with_a_nul_character_is_stored_without_failing_the_write(
    store: JobStore,
) -> None:
    # Vidgo's error text is untrusted: a NUL in it must not make the outcome unwritable.
    await store.admit(new_job("j", track={"title": "a\x00b"}), NOW, submit_lease_until=NOW)
    [job] = await store.record_outcome(
        "j", JobState.FAILED, NOW, last_error="bad\x00byte", error_kind="vidgo_failed"
    )
    assert job.state is JobState.FAILED
    assert job.last_error is not None
    assert job.last_error.startswith("bad") and job.last_error.endswith("byte")
    assert job.track == {"title": "a\x00b"}  # JSON keeps it exactly (escaped)


async def test_limits_and_coalescing_hold_together_under_a_burst(store: JobStore) -> None:
    # Ten members ask for one song at once, each with a cap of one unfinished job, twice.
    limits = AdmissionLimits(max_unfinished=1)
    results = await asyncio.gather(
        *(
            store.admit(
                new_job(f"j{member}-{n}", requester=member),
                NOW,
                submit_lease_until=NOW + 60,
                limits=limits,
            )
            for member in range(10)
            for n in range(2)
        ),
        return_exceptions=True,
    )
    admitted = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, LimitReached)]
    assert len(admitted) == 10 and len(refused) == 10
    assert sorted(r.job.requester_id for r in admitted) == list(range(10))
    assert [r.admission for r in admitted].count(Admission.NEW) == 1


async def test_a_job_cancelled_by_transition_is_never_due_whatever_the_caller_passed(
    store: JobStore,
) -> None:
    await store.admit(new_job("j"), NOW, submit_lease_until=NOW + 60)
    job = await store.transition("j", JobState.CANCELLED, NOW + 1, due_at=NOW + 5, attempts=2)
    assert job.state is JobState.CANCELLED and job.outcome is JobState.CANCELLED
    assert job.due_at is None and job.finished_at == NOW + 1 and job.attempts == 2
    assert await store.claim_due(NOW + 10, NOW + 100, limit=5, owner="w1") == []


async def test_a_request_bound_for_the_same_message_as_one_in_flight_is_dropped(
    store: JobStore,
) -> None:
    await store.admit(new_job("first", reply_to_message_id=77), NOW, submit_lease_until=NOW + 60)
    dropped = await store.admit(
        new_job("second", requester=2, reply_to_message_id=77), NOW + 1, submit_lease_until=NOW
    )
    assert dropped.admission is Admission.DROPPED
    assert dropped.job.id == "first"
    assert await store.get("second") is None  # nothing recorded
    # Bound for another message (or none): it joins as before.
    joined = await store.admit(
        new_job("third", requester=3, reply_to_message_id=78), NOW + 2, submit_lease_until=NOW
    )
    assert joined.admission is Admission.JOINED
    plain = await store.admit(new_job("fourth", requester=4), NOW + 3, submit_lease_until=NOW)
    assert plain.admission is Admission.JOINED
