"""The store contract for fenced leases, processes, secrets, callbacks and posted results.

Every test takes the ``store`` (or ``backend``) fixture of tests/conftest.py, so it runs on
SQLite and on PostgreSQL and both backends must give the same answers. A job is taken over
the way it happens in production: its lease runs out and another worker claims it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from storage.base import JobNotFound, JobStore, LeaseLost
from storage.jobstate import JobState
from storage.records import Admission, CachedResult, InstanceInfo, JobRecord
from tests.conftest import StoreBackend
from tests.helpers import NOW, new_job

# Fenced writes a worker makes, each with the lease it believes it holds.
FencedWrite = Callable[[JobStore, int], Awaitable[Any]]
FENCED_WRITES: dict[str, FencedWrite] = {
    "update": lambda store, lease: store.update("j", NOW + 70, lease=lease, attempts=5),
    "transition": lambda store, lease: store.transition(
        "j", JobState.SUBMITTED, NOW + 70, lease=lease, vidgo_task_id="task-1"
    ),
    "reschedule": lambda store, lease: store.reschedule(
        "j", NOW + 70, NOW + 500, seen_callbacks=0, lease=lease, polls=3
    ),
    "record_outcome": lambda store, lease: store.record_outcome(
        "j", JobState.FAILED, NOW + 70, last_error="gone", error_kind="x", lease=lease
    ),
}


async def must_get(store: JobStore, job_id: str) -> JobRecord:
    job = await store.get(job_id)
    assert job is not None, job_id
    return job


async def taken_over(store: JobStore) -> JobRecord:
    """Job ``j`` admitted by w1 (lease 1), whose lease ran out and w2 claimed (lease 2)."""
    admitted = await store.admit(new_job("j"), NOW, submit_lease_until=NOW + 60, owner="w1")
    assert admitted.job.lease_id == 1
    [job] = await store.claim_due(NOW + 61, NOW + 200, limit=5, owner="w2")
    assert (job.lease_id, job.lease_owner) == (2, "w2")
    return job


def instance(instance_id: str, heartbeat_at: float, started_at: float = NOW) -> InstanceInfo:
    return InstanceInfo(instance_id, 4242, "host ns", started_at, heartbeat_at)


# --- fencing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("write", FENCED_WRITES.values(), ids=FENCED_WRITES.keys())
async def test_a_stale_lease_is_refused_and_writes_nothing(
    store: JobStore, write: FencedWrite
) -> None:
    await taken_over(store)
    before = await must_get(store, "j")
    with pytest.raises(LeaseLost) as caught:
        await write(store, 1)
    assert (caught.value.job_id, caught.value.lease) == ("j", 1)
    assert await must_get(store, "j") == before
    # The worker that holds the lease now writes as usual.
    await write(store, 2)
    assert await must_get(store, "j") != before


@pytest.mark.parametrize("write", FENCED_WRITES.values(), ids=FENCED_WRITES.keys())
async def test_a_lease_its_holder_released_no_longer_fences_in(
    store: JobStore, write: FencedWrite
) -> None:
    await taken_over(store)
    # w2 finished its turn: the job waits for its next poll, leased to nobody.
    await store.reschedule("j", NOW + 65, NOW + 300, seen_callbacks=0, lease=2)
    before = await must_get(store, "j")
    assert (before.leased, before.lease_owner, before.lease_id) == (False, None, 2)
    with pytest.raises(LeaseLost):
        await write(store, 2)
    assert await must_get(store, "j") == before


async def test_a_fenced_write_to_a_missing_job_is_not_found(store: JobStore) -> None:
    with pytest.raises(JobNotFound):
        await store.update("nope", NOW, lease=1, attempts=1)
    with pytest.raises(JobNotFound):
        await store.transition("nope", JobState.SUBMITTED, NOW, lease=1)


async def test_a_cancel_fences_out_the_worker_holding_the_job(store: JobStore) -> None:
    await store.admit(new_job("j"), NOW, submit_lease_until=NOW + 60, owner="w1")
    cancelled = await store.cancel("j", NOW + 1)
    assert (cancelled.leased, cancelled.lease_owner, cancelled.due_at) == (False, None, None)
    with pytest.raises(LeaseLost):
        await store.update("j", NOW + 2, lease=1, attempts=2)


# --- admission and claims ---------------------------------------------------------------------


async def test_a_new_job_is_leased_to_its_admitter_with_lease_one(store: JobStore) -> None:
    new = await store.admit(
        new_job("lead", callback_key="key-lead"), NOW, submit_lease_until=NOW + 60, owner="w1"
    )
    assert new.admission is Admission.NEW
    assert (new.job.leased, new.job.lease_id, new.job.lease_owner) == (True, 1, "w1")
    assert new.job.callback_key == "key-lead" and new.job.due_at == NOW + 60
    joined = await store.admit(
        new_job("fol", requester=2, callback_key="key-fol"),
        NOW,
        submit_lease_until=NOW + 60,
        owner="w1",
    )
    assert joined.admission is Admission.JOINED
    assert (joined.job.leased, joined.job.lease_id, joined.job.lease_owner) == (False, 0, None)
    assert joined.job.callback_key is None  # the leader's task calls back to the leader
    await store.cache_put(CachedResult("c", "separate-vocals", "t", {"stems": {}}, None, NOW))
    cached = await store.admit(new_job("c", key="c"), NOW, submit_lease_until=NOW + 60, owner="w1")
    assert cached.admission is Admission.CACHED
    assert (cached.job.leased, cached.job.lease_id, cached.job.lease_owner) == (False, 0, None)
    assert await must_get(store, "lead") == new.job


async def test_claims_bump_the_lease_id_and_name_their_owner(store: JobStore) -> None:
    await store.admit(new_job("a", key="ka"), NOW, submit_lease_until=NOW + 60, owner="w1")
    await store.admit(new_job("b", key="kb"), NOW, submit_lease_until=NOW + 60)
    await store.update("b", NOW, due_at=NOW + 10)  # b waits, leased to nobody (lease id 1)
    claimed = await store.claim_due(NOW + 61, NOW + 300, limit=5, owner="w2")
    assert [(j.id, j.lease_id, j.lease_owner, j.leased) for j in claimed] == [
        ("b", 2, "w2", True),
        ("a", 2, "w2", True),
    ]
    assert all(job.due_at == NOW + 300 for job in claimed)
    # What the claim returns is what was stored.
    assert [await must_get(store, job.id) for job in claimed] == claimed
    # Both leases ran out without a renewal: w3 takes both over.
    again = await store.claim_due(NOW + 301, NOW + 400, limit=5, owner="w3")
    assert sorted((j.id, j.lease_id, j.lease_owner) for j in again) == [
        ("a", 3, "w3"),
        ("b", 3, "w3"),
    ]


async def test_renewal_extends_only_the_listed_jobs_the_owner_holds(store: JobStore) -> None:
    for job_id, owner in (("a", "w1"), ("b", "w1"), ("c", "w2"), ("d", "w1")):
        await store.admit(
            new_job(job_id, key=f"k{job_id}"), NOW, submit_lease_until=NOW + 60, owner=owner
        )
    await store.update("d", NOW, due_at=NOW + 30)  # released: w1 no longer holds it
    renewed = await store.renew_leases("w1", NOW + 900, ["a", "c", "d", "missing"])
    assert renewed == 1
    due = {job.id: job.due_at for job in await store.list_jobs()}
    assert due == {"a": NOW + 900, "b": NOW + 60, "c": NOW + 60, "d": NOW + 30}
    assert await store.renew_leases("w1", NOW + 900, []) == 0


async def test_outcome_kept_for_delivery_leases_every_changed_job_afresh(store: JobStore) -> None:
    await store.admit(new_job("lead"), NOW, submit_lease_until=NOW + 60, owner="w1")
    await store.admit(new_job("f1", requester=2), NOW, submit_lease_until=NOW + 60)
    await store.admit(new_job("f2", requester=3), NOW, submit_lease_until=NOW + 60)
    changed = await store.record_outcome(
        "lead",
        JobState.SUCCEEDED,
        NOW + 10,
        result={"stems": {}},
        lease=1,
        lease_until=NOW + 130,
        owner="w1",
    )
    assert [(j.id, j.leased, j.lease_owner, j.lease_id, j.due_at) for j in changed] == [
        ("lead", True, "w1", 2, NOW + 130),
        ("f1", True, "w1", 1, NOW + 130),
        ("f2", True, "w1", 1, NOW + 130),
    ]
    assert [await must_get(store, job.id) for job in changed] == changed
    # Delivered by w1 under those leases; a write with the old lease is refused.
    with pytest.raises(LeaseLost):
        await store.update("lead", NOW + 11, lease=1, delivery_started_at=NOW + 11)
    await store.update("f1", NOW + 11, lease=1, delivery_started_at=NOW + 11)


async def test_outcome_for_any_worker_releases_the_lease(store: JobStore) -> None:
    await store.admit(new_job("j"), NOW, submit_lease_until=NOW + 60, owner="w1")
    [job] = await store.record_outcome(
        "j", JobState.FAILED, NOW + 5, last_error="x", error_kind="x", lease=1
    )
    assert (job.leased, job.lease_owner, job.lease_id, job.due_at) == (False, None, 1, NOW + 5)
    assert job.unconfirmed_submit_at is None and job.task_hint is None


# --- processes --------------------------------------------------------------------------------


async def test_registration_is_an_upsert_and_heartbeats_move_it(store: JobStore) -> None:
    await store.register_instance(instance("w1", NOW))
    await store.register_instance(instance("w2", NOW + 1, started_at=NOW + 1))
    await store.register_instance(instance("w1", NOW + 5))  # its periodic re-registration
    await store.heartbeat_instance("w2", NOW + 9)
    assert await store.list_instances() == [
        instance("w1", NOW + 5),
        instance("w2", NOW + 9, NOW + 1),
    ]


async def test_orphaned_leases_of_gone_processes_are_released(store: JobStore) -> None:
    await store.register_instance(instance("live", NOW))
    await store.register_instance(instance("stale", NOW - 100))
    await store.register_instance(instance("dead", NOW))
    owners = {"j-live": "live", "j-stale": "stale", "j-dead": "dead", "j-ghost": "ghost"}
    for job_id, owner in owners.items():
        await store.admit(
            new_job(job_id, key=job_id), NOW, submit_lease_until=NOW + 60, owner=owner
        )
    await store.admit(new_job("j-nobody", key="nobody"), NOW, submit_lease_until=NOW + 60)

    released = await store.release_orphaned_leases(NOW + 1, stale_before=NOW - 45, dead=["dead"])

    assert released == 4
    jobs = {job.id: job for job in await store.list_jobs()}
    assert (jobs["j-live"].leased, jobs["j-live"].lease_owner, jobs["j-live"].due_at) == (
        True,
        "live",
        NOW + 60,
    )
    for job_id in ("j-stale", "j-dead", "j-ghost", "j-nobody"):
        job = jobs[job_id]
        assert (job.leased, job.lease_owner, job.due_at) == (False, None, NOW + 1), job_id
    assert [i.id for i in await store.list_instances()] == ["live"]
    assert await store.release_orphaned_leases(NOW + 2, stale_before=NOW - 45) == 0


async def test_a_clean_stop_releases_only_its_own_leases(store: JobStore) -> None:
    await store.register_instance(instance("w1", NOW))
    await store.register_instance(instance("w2", NOW))
    for job_id, owner in (("a", "w1"), ("b", "w1"), ("c", "w2")):
        await store.admit(
            new_job(job_id, key=f"k{job_id}"), NOW, submit_lease_until=NOW + 60, owner=owner
        )
    await store.update("b", NOW, due_at=NOW + 300)  # w1 had finished with b already

    assert await store.unregister_instance("w1", NOW + 5) == 1

    jobs = {job.id: job for job in await store.list_jobs()}
    assert (jobs["a"].leased, jobs["a"].lease_owner, jobs["a"].due_at) == (False, None, NOW + 5)
    assert jobs["b"].due_at == NOW + 300
    assert (jobs["c"].leased, jobs["c"].lease_owner, jobs["c"].due_at) == (True, "w2", NOW + 60)
    assert [i.id for i in await store.list_instances()] == ["w2"]


# --- secrets and posted results ---------------------------------------------------------------


async def test_the_secret_is_stable_and_shared_by_every_store_on_the_database(
    backend: StoreBackend,
) -> None:
    first, second = await backend.open_store(), await backend.open_store()
    key = await first.secret("callback-token")
    assert len(key) == 32
    assert await second.secret("callback-token") == key
    assert await first.secret("callback-token") == key
    other = await second.secret("another")
    assert len(other) == 32 and other != key


async def posted(
    store: JobStore,
    job_id: str,
    at: float,
    *,
    guild_id: int | None = 100,
    message_id: int | None,
    outcome: JobState = JobState.SUCCEEDED,
) -> None:
    """A job for source ``song`` whose outcome was delivered at ``at``."""
    await store.admit(
        new_job(job_id, key="song", guild_id=guild_id), at, submit_lease_until=at + 60
    )
    await store.record_outcome(job_id, outcome, at, result={"stems": {}}, last_error="x")
    await store.transition(
        job_id, JobState.DELIVERED, at, due_at=None, result_message_id=message_id
    )


async def test_latest_posted_finds_the_newest_success_posted_in_that_server(
    store: JobStore,
) -> None:
    await posted(store, "old", NOW, message_id=11)
    await posted(store, "new", NOW + 10, message_id=12)
    await posted(store, "elsewhere", NOW + 20, guild_id=200, message_id=13)
    await posted(store, "failed", NOW + 30, message_id=14, outcome=JobState.FAILED)
    await posted(store, "no-message", NOW + 40, message_id=None)
    await posted(store, "in-dm", NOW + 50, guild_id=None, message_id=15)
    await store.admit(new_job("owed", key="song"), NOW + 60, submit_lease_until=NOW + 60)
    await store.record_outcome("owed", JobState.SUCCEEDED, NOW + 60, result={"stems": {}})

    found = await store.latest_posted("song", 100)
    assert found is not None and (found.id, found.result_message_id) == ("new", 12)
    elsewhere = await store.latest_posted("song", 200)
    assert elsewhere is not None and elsewhere.id == "elsewhere"
    in_dm = await store.latest_posted("song", None)
    assert in_dm is not None and in_dm.id == "in-dm"
    assert await store.latest_posted("other-song", 100) is None
    assert await store.latest_posted("song", 300) is None


# --- callbacks --------------------------------------------------------------------------------


async def submitted(store: JobStore, job_id: str, *, due_at: float, **kw: Any) -> None:
    """A job waiting on Vidgo (task ``t-<id>``), leased to nobody."""
    kw.setdefault("key", f"k-{job_id}")
    await store.admit(new_job(job_id, **kw), NOW, submit_lease_until=NOW)
    await store.transition(
        job_id, JobState.SUBMITTED, NOW, vidgo_task_id=f"t-{job_id}", due_at=due_at
    )


async def test_a_callback_names_its_job_by_key_or_by_token_hash_never_across(
    store: JobStore,
) -> None:
    await submitted(store, "k", due_at=NOW + 60, callback_key="key-k", callback_token_hash=None)
    await submitted(store, "h", due_at=NOW + 60, callback_token_hash="hash-h")
    assert await store.note_callback(NOW + 1, token_hash="key-k") is None
    assert await store.note_callback(NOW + 1, callback_key="hash-h") is None
    by_key = await store.note_callback(NOW + 2, callback_key="key-k")
    by_hash = await store.note_callback(NOW + 3, token_hash="hash-h")
    assert by_key is not None and (by_key.id, by_key.callbacks, by_key.due_at) == ("k", 1, NOW + 2)
    assert by_hash is not None and (by_hash.id, by_hash.callbacks, by_hash.due_at) == (
        "h",
        1,
        NOW + 3,
    )
    with pytest.raises(ValueError, match="exactly one"):
        await store.note_callback(NOW, callback_key="key-k", token_hash="hash-h")
    with pytest.raises(ValueError, match="exactly one"):
        await store.note_callback(NOW)


async def test_callbacks_make_a_job_due_no_sooner_than_the_read_gap_allows(
    store: JobStore,
) -> None:
    await submitted(store, "j", due_at=NOW + 60, callback_key="key-j")
    await store.update("j", NOW, polled_at=NOW)
    first = await store.note_callback(NOW + 1, callback_key="key-j", min_poll_gap=5)
    assert first is not None and first.due_at == NOW + 5  # read at NOW, so not before NOW+5
    second = await store.note_callback(NOW + 2, callback_key="key-j", min_poll_gap=5)
    assert second is not None and (second.callbacks, second.due_at) == (2, NOW + 5)
    # Long after the last read the callback makes the job due at once.
    await store.update("j", NOW + 20, due_at=NOW + 100, polled_at=NOW + 20)
    late = await store.note_callback(NOW + 30, callback_key="key-j", min_poll_gap=5)
    assert late is not None and late.due_at == NOW + 30
    # A due time sooner than the gap allows stands.
    await store.update("j", NOW + 30, due_at=NOW + 31, polled_at=NOW + 29)
    early = await store.note_callback(NOW + 30, callback_key="key-j", min_poll_gap=5)
    assert early is not None and early.due_at == NOW + 31


async def test_a_callback_while_leased_leaves_the_lease_end_alone(store: JobStore) -> None:
    await submitted(store, "j", due_at=NOW, callback_key="key-j")
    [claimed] = await store.claim_due(NOW, NOW + 120, limit=1, owner="w1")
    noted = await store.note_callback(NOW + 1, callback_key="key-j", min_poll_gap=5)
    assert noted is not None
    assert (noted.callbacks, noted.due_at, noted.leased, noted.lease_id) == (
        1,
        NOW + 120,
        True,
        claimed.lease_id,
    )


async def test_reschedule_after_a_callback_waits_for_the_read_gap(store: JobStore) -> None:
    await submitted(store, "j", due_at=NOW, callback_key="key-j")
    [claimed] = await store.claim_due(NOW, NOW + 120, limit=1, owner="w1")
    await store.note_callback(NOW + 1, callback_key="key-j")
    # The worker read the task at NOW+2 (recorded by this very write).
    after = await store.reschedule(
        "j",
        NOW + 2,
        NOW + 60,
        seen_callbacks=claimed.callbacks,
        lease=claimed.lease_id,
        min_poll_gap=5,
        polled_at=NOW + 2,
        polls=1,
    )
    assert (after.due_at, after.polled_at, after.polls) == (NOW + 7, NOW + 2, 1)
    assert (after.leased, after.lease_owner) == (False, None)
    # The gap counts from the last recorded read when this write records none.
    [again] = await store.claim_due(NOW + 7, NOW + 120, limit=1, owner="w1")
    await store.note_callback(NOW + 8, callback_key="key-j")
    gap_from_last_read = await store.reschedule(
        "j", NOW + 8, NOW + 60, seen_callbacks=again.callbacks, lease=again.lease_id, min_poll_gap=9
    )
    assert gap_from_last_read.due_at == NOW + 11
    # Without a new callback the planned time stands.
    [third] = await store.claim_due(NOW + 11, NOW + 120, limit=1, owner="w1")
    planned = await store.reschedule(
        "j",
        NOW + 12,
        NOW + 60,
        seen_callbacks=third.callbacks,
        lease=third.lease_id,
        min_poll_gap=9,
    )
    assert planned.due_at == NOW + 60


async def test_a_task_hint_is_kept_only_for_an_accepted_job_without_a_task(
    store: JobStore,
) -> None:
    await store.admit(new_job("a", key="ka", callback_key="key-a"), NOW, submit_lease_until=NOW)
    await store.update("a", NOW, due_at=NOW + 900)  # waits for Vidgo to report the task
    await submitted(store, "b", due_at=NOW + 60, callback_key="key-b")
    await store.admit(new_job("c", key="kc", callback_key="key-c"), NOW, submit_lease_until=NOW)
    await store.update("c", NOW, due_at=NOW + 900, vidgo_task_id="t-c")
    await store.admit(new_job("d", key="kd", callback_key="key-d"), NOW, submit_lease_until=NOW)
    await store.record_outcome("d", JobState.FAILED, NOW, last_error="x", error_kind="x")

    hinted = {
        job_id: await store.note_callback(
            NOW + 1, callback_key=f"key-{job_id}", task_hint=f"task-{job_id}"
        )
        for job_id in "abcd"
    }

    returned = {job_id: job.task_hint if job else "?" for job_id, job in hinted.items()}
    assert returned == {"a": "task-a", "b": None, "c": None, "d": None}
    stored = {job.id: job.task_hint for job in await store.list_jobs()}
    assert stored == {"a": "task-a", "b": None, "c": None, "d": None}
    assert await store.note_callback(NOW + 1, callback_key="key-x", task_hint="task-x") is None


async def test_cancel_hands_the_callback_key_unconfirmed_submit_and_hint_to_the_heir(
    store: JobStore,
) -> None:
    await store.admit(
        new_job("lead", callback_key="key-lead"), NOW, submit_lease_until=NOW + 60, owner="w1"
    )
    await store.admit(new_job("f1", requester=2), NOW + 1, submit_lease_until=NOW)
    await store.admit(new_job("f2", requester=3), NOW + 2, submit_lease_until=NOW)
    # The submit's answer was lost; a callback named a task; the worker gave the job back.
    await store.update(
        "lead",
        NOW + 3,
        lease=1,
        attempts=1,
        unconfirmed_submit_at=NOW + 1,
        task_hint="task-h",
        polled_at=NOW + 2,
        due_at=NOW + 900,
    )

    cancelled = await store.cancel("lead", NOW + 4)

    assert (cancelled.callback_key, cancelled.task_hint, cancelled.leased) == (None, None, False)
    heir = await must_get(store, "f1")
    assert heir.leader_id is None and heir.state is JobState.ACCEPTED
    assert (heir.callback_key, heir.unconfirmed_submit_at, heir.task_hint, heir.polled_at) == (
        "key-lead",
        NOW + 1,
        "task-h",
        NOW + 2,
    )
    assert (heir.attempts, heir.due_at, heir.leased, heir.lease_owner) == (1, NOW + 4, False, None)
    assert [f.id for f in await store.followers("f1")] == ["f2"]
    # Vidgo's callback for the task the old leader may have created reaches the heir.
    noted = await store.note_callback(NOW + 5, callback_key="key-lead", task_hint="task-h2")
    assert noted is not None and (noted.id, noted.task_hint) == ("f1", "task-h2")
