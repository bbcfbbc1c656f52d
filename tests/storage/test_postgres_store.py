"""What only the PostgreSQL backend has to get right: several processes on one database.

Each store here has its own connection pool, as a separate bot process would. Where a test
checks an interleaving, it holds a lock from a plain connection, starts the store calls,
waits until they queue behind it (``wait_for_lock_waiters``) and only then lets go, so the
race it is about happens on every run instead of by chance.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import asyncpg
import pytest

from storage import migrate as migrate_module
from storage import postgres
from storage.base import LeaseLost
from storage.jobstate import JobState
from storage.migrate import Migration, advisory_key, available_migrations
from storage.postgres import PostgresJobStore
from storage.records import Admission, AdmissionLimits, CachedResult, LimitReached
from storage.sqlite import OutdatedSchema
from tests.conftest import StoreBackend
from tests.helpers import NOW, new_job
from tests.storage.backends import fetch_rows, job_ids, plan_of, wait_for_lock_waiters

# Guards against a call that hangs (the bug some tests look for); never a speed target.
HANG_GUARD = 30.0


def pg_store_for(backend: StoreBackend) -> PostgresJobStore:
    """A store on the backend's schema, not opened yet (closed with the backend's stores)."""
    store = backend.new_store()
    assert isinstance(store, PostgresJobStore)
    backend.opened.append(store)
    return store


async def tables_in(conn: asyncpg.Connection[Any], schema: str) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", schema)
    return {str(row[0]) for row in rows}


async def test_postgresql_claim_skips_jobs_another_process_is_claiming(
    pg_backend: StoreBackend, pg_dsn: str
) -> None:
    store = await pg_backend.open_store()
    for i in range(5):
        await store.admit(new_job(f"j{i}", key=f"k{i}"), NOW + i, submit_lease_until=NOW + i)
    other = await asyncpg.connect(pg_dsn, server_settings={"search_path": pg_backend.schema})
    try:
        async with other.transaction():
            # Another process is half-way through claiming the two earliest jobs.
            held = await other.fetch(postgres.LOCK_DUE, NOW + 10, 2)
            assert [row["id"] for row in held] == ["j0", "j1"]
            claimed = await asyncio.wait_for(
                store.claim_due(NOW + 10, NOW + 600, 10, owner="w1"), HANG_GUARD
            )
            assert [job.id for job in claimed] == ["j2", "j3", "j4"]
            await other.execute(postgres.CLAIM_JOBS, "w2", NOW + 600, ["j0", "j1"])
    finally:
        await other.close()
    assert await store.claim_due(NOW + 10, NOW + 600, 10, owner="w1") == []
    owners = {job.id: job.lease_owner for job in await store.list_jobs()}
    assert owners == {"j0": "w2", "j1": "w2", "j2": "w1", "j3": "w1", "j4": "w1"}


async def test_postgresql_member_lock_orders_two_processes_racing_a_cap_of_one(
    pg_backend: StoreBackend, pg_dsn: str
) -> None:
    first, second = await pg_backend.open_store(), await pg_backend.open_store()
    limits = AdmissionLimits(max_unfinished=1)
    blocker = await asyncpg.connect(pg_dsn)
    try:
        async with blocker.transaction():
            # Hold the lock an admit takes after counting, so both admits are in flight
            # together: one at that lock, the other waiting for the member's lock.
            await blocker.execute(
                postgres.ADVISORY_XACT_LOCK,
                advisory_key("stemcord", "source", pg_backend.schema, "same-song"),
            )
            racing = [
                asyncio.create_task(
                    store.admit(
                        new_job(job_id, key="same-song"),
                        NOW,
                        submit_lease_until=NOW + 60,
                        limits=limits,
                    )
                )
                for store, job_id in ((first, "a"), (second, "b"))
            ]
            await wait_for_lock_waiters(blocker, pg_backend.application_name, 2)
        results = await asyncio.wait_for(
            asyncio.gather(*racing, return_exceptions=True), HANG_GUARD
        )
    finally:
        await blocker.close()
    assert sum(isinstance(r, LimitReached) for r in results) == 1, results
    assert len(await first.list_jobs(requester_id=1)) == 1


async def test_postgresql_two_processes_opening_a_fresh_schema_migrate_it_once(
    pg_backend: StoreBackend, pg_dsn: str
) -> None:
    stores = [pg_store_for(pg_backend), pg_store_for(pg_backend)]
    blocker = await asyncpg.connect(pg_dsn)
    try:
        key = advisory_key("stemcord", "migrate", pg_backend.schema)
        await blocker.execute("SELECT pg_advisory_lock($1)", key)
        opening = [asyncio.create_task(s.open()) for s in stores]
        # Both processes start together and queue on the migration lock.
        await wait_for_lock_waiters(blocker, pg_backend.application_name, 2)
        await blocker.execute("SELECT pg_advisory_unlock($1)", key)
        await asyncio.wait_for(asyncio.gather(*opening), HANG_GUARD)
        assert await tables_in(blocker, pg_backend.schema) >= {"jobs", "schema_migrations"}
    finally:
        await blocker.close()
    applied = sorted((s.applied_migrations for s in stores), key=len)
    assert applied == [[], [m.version for m in available_migrations("postgresql")]]
    rows = await fetch_rows(stores[0], "SELECT version FROM schema_migrations")
    assert sorted(row[0] for row in rows) == [m.version for m in available_migrations("postgresql")]


async def test_postgresql_opens_racing_without_help_all_succeed(pg_backend: StoreBackend) -> None:
    stores = [pg_store_for(pg_backend) for _ in range(3)]
    await asyncio.wait_for(asyncio.gather(*(s.open() for s in stores)), HANG_GUARD)
    applied = [s.applied_migrations for s in stores]
    assert sorted(map(len, applied)) == [0, 0, len(available_migrations("postgresql"))]


async def test_postgresql_failed_migration_leaves_the_previous_version(
    pg_backend: StoreBackend, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = available_migrations("postgresql")
    bad = Migration(good[-1].version + 1, "broken", "CREATE TABLE x (a INTEGER); NOT SQL;")

    def with_broken(backend: str = "sqlite") -> list[Migration]:
        return [*good, bad] if backend == "postgresql" else available_migrations(backend)

    monkeypatch.setattr(migrate_module, "available_migrations", with_broken)
    with pytest.raises(asyncpg.PostgresSyntaxError):
        await pg_backend.open_store()
    conn = await asyncpg.connect(pg_dsn, server_settings={"search_path": pg_backend.schema})
    try:
        assert "x" not in await tables_in(conn, pg_backend.schema)
        versions = await conn.fetch("SELECT version FROM schema_migrations")
        # The lock was given back: another open can take it at once.
        key = advisory_key("stemcord", "migrate", pg_backend.schema)
        assert await conn.fetchval("SELECT pg_try_advisory_lock($1)", key) is True
    finally:
        await conn.close()
    assert sorted(row[0] for row in versions) == [m.version for m in good]


async def test_postgresql_a_follower_never_joins_a_leader_whose_outcome_is_being_recorded(
    pg_backend: StoreBackend, pg_dsn: str
) -> None:
    store = await pg_backend.open_store()
    await store.admit(new_job("lead"), NOW, submit_lease_until=NOW + 60)
    recorder = await asyncpg.connect(pg_dsn, server_settings={"search_path": pg_backend.schema})
    try:
        async with recorder.transaction():
            # Another process is recording the leader's outcome and caching its result.
            await recorder.execute(postgres.LOCK_JOB, "lead")
            joining = asyncio.create_task(
                store.admit(new_job("late", requester=2), NOW + 1, submit_lease_until=NOW + 61)
            )
            await wait_for_lock_waiters(recorder, pg_backend.application_name, 1)
            await recorder.execute(
                "UPDATE jobs SET state = 'succeeded', outcome = 'succeeded', due_at = $1 "
                "WHERE id = 'lead'",
                NOW + 1,
            )
            await recorder.execute(
                postgres.UPSERT_CACHE,
                "separate-vocals:T:A",
                "separate-vocals",
                "t",
                '{"stems":{}}',
                None,
                NOW + 1,
            )
        late = await asyncio.wait_for(joining, HANG_GUARD)
    finally:
        await recorder.close()
    # Joining now would leave it waiting for an outcome that was already copied.
    assert late.admission is Admission.CACHED
    assert late.job.leader_id is None and late.job.state is JobState.SUCCEEDED


async def test_postgresql_a_transaction_that_loses_a_deadlock_is_run_again(
    pg_backend: StoreBackend, pg_dsn: str
) -> None:
    store = await pg_backend.open_store()
    await store.admit(new_job("lead"), NOW, submit_lease_until=NOW + 60)
    await store.admit(new_job("fol", requester=2), NOW, submit_lease_until=NOW + 60)
    other = await asyncpg.connect(pg_dsn, server_settings={"search_path": pg_backend.schema})
    try:
        async with other.transaction():
            await other.execute("SELECT 1 FROM jobs WHERE id = 'fol' FOR UPDATE")
            recording = asyncio.create_task(
                store.record_outcome("lead", JobState.FAILED, NOW + 1, last_error="x")
            )
            # The store holds the leader and waits for the follower; now take the leader:
            # a cycle. The store waited first, so its session detects it and rolls back.
            await wait_for_lock_waiters(other, pg_backend.application_name, 1)
            await other.execute("SELECT 1 FROM jobs WHERE id = 'lead' FOR UPDATE")
        changed = await asyncio.wait_for(recording, HANG_GUARD)
    finally:
        await other.close()
    assert [job.id for job in changed] == ["lead", "fol"]
    assert all(job.state is JobState.FAILED for job in changed)


async def test_postgresql_schemas_keep_two_bots_apart(
    pg_backend: StoreBackend, pg_dsn: str, pg_schema: str
) -> None:
    mine = await pg_backend.open_store()
    neighbour = PostgresJobStore(pg_dsn, schema=f"{pg_schema}_n")
    try:
        await neighbour.open()
        await mine.admit(new_job("j"), NOW, submit_lease_until=NOW)
        await neighbour.admit(new_job("k"), NOW, submit_lease_until=NOW)
        assert await job_ids(mine) == {"j"}
        assert await job_ids(neighbour) == {"k"}
    finally:
        await neighbour.close()
        conn = await asyncpg.connect(pg_dsn)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {pg_schema}_n CASCADE")
        finally:
            await conn.close()


async def test_postgresql_read_only_open_reads_but_never_writes(
    pg_backend: StoreBackend, pg_dsn: str
) -> None:
    writer = await pg_backend.open_store()
    await writer.admit(new_job("j"), NOW, submit_lease_until=NOW)
    reader = PostgresJobStore(pg_dsn, schema=pg_backend.schema)
    pg_backend.opened.append(reader)
    await reader.open(read_only=True)
    assert [job.id for job in await reader.list_jobs()] == ["j"]
    assert reader.applied_migrations == []
    with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
        await reader.update("j", NOW, attempts=3)


async def test_postgresql_read_only_open_refuses_an_older_schema(
    pg_backend: StoreBackend, pg_dsn: str
) -> None:
    await pg_backend.open_store()
    *older, latest = [m.version for m in available_migrations("postgresql")]
    conn = await asyncpg.connect(pg_dsn, server_settings={"search_path": pg_backend.schema})
    try:
        await conn.execute("DELETE FROM schema_migrations WHERE version = $1", latest)
    finally:
        await conn.close()
    reader = PostgresJobStore(pg_dsn, schema=pg_backend.schema)
    with pytest.raises(OutdatedSchema) as caught:
        await reader.open(read_only=True)
    assert (caught.value.have, caught.value.want) == (older[-1], latest)
    with pytest.raises(RuntimeError, match="not open"):
        await reader.ping()


async def test_postgresql_without_a_schema_uses_the_dsns_search_path(
    pg_dsn: str, pg_schema: str
) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(f"CREATE SCHEMA {pg_schema}")
    finally:
        await conn.close()
    separator = "&" if "?" in pg_dsn else "?"
    store = PostgresJobStore(f"{pg_dsn}{separator}search_path={pg_schema}")
    await store.open()
    try:
        assert store.schema == pg_schema
        await store.admit(new_job("j"), NOW, submit_lease_until=NOW)
    finally:
        await store.close()
    checker = PostgresJobStore(pg_dsn, schema=pg_schema)
    await checker.open()
    try:
        assert checker.applied_migrations == []
        assert await checker.get("j") is not None
    finally:
        await checker.close()


def test_postgresql_schema_names_are_plain_lower_case_identifiers() -> None:
    for bad in ("Jobs", "a-b", "1abc", 'x"; DROP TABLE jobs; --', "", "a" * 64):
        with pytest.raises(ValueError, match="schema name"):
            PostgresJobStore("postgresql://h/db", schema=bad)
    assert PostgresJobStore("postgresql://h/db", schema="stemcord_2").schema == "stemcord_2"


async def test_postgresql_store_never_shows_its_password() -> None:
    store = PostgresJobStore("postgresql://bot:hunter2@127.0.0.1:1/db", schema="s")
    assert "hunter2" not in repr(store)


async def test_postgresql_open_fails_cleanly_when_nothing_listens() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # The port is free again: nothing listens there.
    store = PostgresJobStore(f"postgresql://postgres@127.0.0.1:{port}/test", schema="s")
    with pytest.raises(OSError):
        await store.open()
    with pytest.raises(RuntimeError, match="not open"):
        await store.ping()


async def test_postgresql_callbacks_from_two_processes_each_count_once(
    pg_backend: StoreBackend,
) -> None:
    first, second = await pg_backend.open_store(), await pg_backend.open_store()
    for i in range(20):
        await first.admit(new_job(f"j{i}", key=f"k{i}"), NOW, submit_lease_until=NOW)
        await first.transition(
            f"j{i}", JobState.SUBMITTED, NOW, vidgo_task_id=f"t{i}", due_at=NOW + 60
        )
    # Vidgo retries each callback, and the retries land on the other process.
    hashes = [f"hash-j{i}" for i in range(20)]
    await asyncio.wait_for(
        asyncio.gather(
            *(first.note_callback(NOW + 1, token_hash=h) for h in hashes),
            *(second.note_callback(NOW + 2, token_hash=h) for h in reversed(hashes)),
        ),
        HANG_GUARD,
    )
    for i in range(20):
        job = await first.get(f"j{i}")
        assert job is not None and job.callbacks == 2 and job.due_at == NOW + 1


async def test_postgresql_cache_put_replaces_an_entry(pg_store: PostgresJobStore) -> None:
    await pg_store.cache_put(CachedResult("k", "m", "t1", {"v": 1}, None, NOW))
    await pg_store.cache_put(CachedResult("k", "m2", "t2", {"v": 2}, {"title": "T"}, NOW + 1))
    assert await pg_store.cache_get("k") == CachedResult(
        "k", "m2", "t2", {"v": 2}, {"title": "T"}, NOW + 1
    )


async def test_postgresql_two_processes_racing_a_claim_get_disjoint_jobs_and_the_loser_is_fenced(
    pg_backend: StoreBackend, pg_dsn: str
) -> None:
    first, second = await pg_backend.open_store(), await pg_backend.open_store()
    for i in range(10):
        await first.admit(new_job(f"j{i}", key=f"k{i}"), NOW, submit_lease_until=NOW)
    blocker = await asyncpg.connect(pg_dsn, server_settings={"search_path": pg_backend.schema})
    try:
        async with blocker.transaction():
            # Both claims queue behind this lock and then run at the same moment.
            await blocker.execute("LOCK TABLE jobs IN EXCLUSIVE MODE")
            racing = [
                asyncio.create_task(store.claim_due(NOW, NOW + 60, 10, owner=owner))
                for store, owner in ((first, "w1"), (second, "w2"))
            ]
            await wait_for_lock_waiters(blocker, pg_backend.application_name, 2)
        got_first, got_second = await asyncio.wait_for(asyncio.gather(*racing), HANG_GUARD)
    finally:
        await blocker.close()
    ids_first, ids_second = {j.id for j in got_first}, {j.id for j in got_second}
    assert ids_first.isdisjoint(ids_second)
    assert ids_first | ids_second == {f"j{i}" for i in range(10)}
    assert {j.lease_owner for j in got_first} <= {"w1"}
    assert {j.lease_owner for j in got_second} <= {"w2"}
    # A worker stalls past its lease; the other process takes its job over.
    stalled_store, stalled = (first, got_first[0]) if got_first else (second, got_second[0])
    taker = second if stalled_store is first else first
    retaken = await taker.claim_due(NOW + 61, NOW + 200, 10, owner="w3")
    assert stalled.id in {j.id for j in retaken}
    before = await taker.get(stalled.id)
    with pytest.raises(LeaseLost):
        await stalled_store.transition(
            stalled.id, JobState.SUBMITTED, NOW + 62, lease=stalled.lease_id, vidgo_task_id="t"
        )
    with pytest.raises(LeaseLost):
        await stalled_store.update(stalled.id, NOW + 62, lease=stalled.lease_id, attempts=9)
    assert await taker.get(stalled.id) == before


async def test_postgresql_two_processes_creating_the_secret_at_once_get_one_value(
    pg_backend: StoreBackend, pg_dsn: str
) -> None:
    first, second = await pg_backend.open_store(), await pg_backend.open_store()
    blocker = await asyncpg.connect(pg_dsn, server_settings={"search_path": pg_backend.schema})
    try:
        tx = blocker.transaction()
        await tx.start()
        # A third process is creating the secret: both stores find no row and both insert.
        await blocker.execute(
            "INSERT INTO app_secrets (name, value, created_at) VALUES ('callback-token', $1, 0)",
            "00" * 32,
        )
        racing = [asyncio.create_task(store.secret("callback-token")) for store in (first, second)]
        await wait_for_lock_waiters(blocker, pg_backend.application_name, 2)
        # It gives up: now the two stores race each other for the first value.
        await tx.rollback()
        one, two = await asyncio.wait_for(asyncio.gather(*racing), HANG_GUARD)
        stored = await blocker.fetchval(
            "SELECT value FROM app_secrets WHERE name = 'callback-token'"
        )
    finally:
        await blocker.close()
    assert one == two == bytes.fromhex(stored)
    assert one != bytes(32)


async def test_postgresql_lease_callback_and_posted_queries_use_the_v6_indexes(
    pg_store: PostgresJobStore,
) -> None:
    for sql, args in (
        (postgres.LATEST_POSTED_IN_GUILD, ("song", 100)),
        (postgres.LATEST_POSTED_WITHOUT_GUILD, ("song",)),
    ):
        assert "jobs_source_posted" in await plan_of(pg_store, sql, *args)
    assert "jobs_lease_owner" in await plan_of(pg_store, postgres.RELEASE_OWNER, NOW, "w1")
    assert "jobs_callback_key" in await plan_of(
        pg_store, postgres.NOTE_CALLBACKS, NOW, ["key"], [], 2.0, pg_store.channel, "t"
    )


async def test_postgresql_a_lease_taken_while_orphans_are_released_is_kept(
    pg_backend: StoreBackend, pg_dsn: str
) -> None:
    store = await pg_backend.open_store()
    await store.admit(new_job("j"), NOW, submit_lease_until=NOW + 60, owner="gone")
    blocker = await asyncpg.connect(pg_dsn, server_settings={"search_path": pg_backend.schema})
    try:
        async with blocker.transaction():
            # A process that has just started registers and claims the orphaned job; the
            # release runs meanwhile and must wait for the job's row.
            await blocker.execute(
                "INSERT INTO instances (id, pid, host, started_at, heartbeat_at) "
                "VALUES ('new', 1, 'h', $1, $1)",
                NOW,
            )
            await blocker.execute(
                "UPDATE jobs SET lease_owner = 'new', lease_id = lease_id + 1, due_at = $1 "
                "WHERE id = 'j'",
                NOW + 200,
            )
            releasing = asyncio.create_task(
                store.release_orphaned_leases(NOW + 1, stale_before=NOW - 45)
            )
            await wait_for_lock_waiters(blocker, pg_backend.application_name, 1)
        released = await asyncio.wait_for(releasing, HANG_GUARD)
    finally:
        await blocker.close()
    assert released == 0
    job = await store.get("j")
    assert job is not None
    assert (job.leased, job.lease_owner, job.lease_id, job.due_at) == (True, "new", 2, NOW + 200)


async def test_postgresql_the_readiness_probe_commits_and_fails_where_writes_would(
    pg_backend: StoreBackend, pg_dsn: str
) -> None:
    writer = await pg_backend.open_store()
    await writer.check_writable(1234.5)
    assert isinstance(writer, PostgresJobStore)
    async with writer.pool.acquire() as conn:
        rows = await conn.fetch("SELECT id, written_at FROM health_probe")
    assert [(r[0], r[1]) for r in rows] == [(1, 1234.5)]
    # A server that answers reads but takes no writes (here: a read-only session) fails it.
    reader = PostgresJobStore(pg_dsn, schema=pg_backend.schema)
    pg_backend.opened.append(reader)
    await reader.open(read_only=True)
    await reader.ping()
    with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
        await reader.check_writable(1300.0)


async def test_postgresql_jobs_pages_leave_room_for_updates_in_place(
    pg_store: PostgresJobStore,
) -> None:
    # V9: a job's updates (callbacks noted, leases renewed) can stay on their page without a
    # new entry in every index of the table.
    rows = await fetch_rows(
        pg_store, "SELECT reloptions FROM pg_class WHERE oid = 'jobs'::regclass"
    )
    assert rows == [(["fillfactor=70"],)]
