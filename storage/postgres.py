"""PostgreSQL backend of :class:`storage.base.JobStore` (asyncpg, one pool per process).

Several bot processes share one database, so where the SQLite backend relies on one writer
at a time (``BEGIN IMMEDIATE``), this backend says what it locks:

* a read-modify-write selects its job row ``FOR UPDATE`` and checks the state machine
  (:func:`storage.jobstate.check_transition`) inside the same transaction;
* :meth:`PostgresJobStore.claim_due` locks due rows ``FOR UPDATE SKIP LOCKED``, so
  processes claiming at the same moment get disjoint jobs and never wait on each other;
* :meth:`PostgresJobStore.admit` takes transaction advisory locks on the requester
  (guild, member) before counting their limits and on the source key before looking for an
  identical job in flight, so two processes can neither both pass a cap nor both become the
  leader of one source; the leader it joins is locked ``FOR SHARE`` so that its outcome
  cannot be recorded between the look-up and the insert (a follower would wait forever).

Every statement is a module constant or built by one small function next to it, so a new
condition (a lease owner, say) is added in one place. Times are double precision epoch
seconds, JSON columns the ``json`` type (kept verbatim), Discord ids bigint.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeAlias, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from storage.base import UPDATABLE_COLUMNS, JobNotFound, JobStore
from storage.jobstate import (
    ACTIVE_STATES,
    FINAL_STATES,
    InvalidTransition,
    JobState,
    check_transition,
)
from storage.migrate import (
    advisory_key,
    available_migrations,
    check_schema_name,
    migrate_postgresql,
    postgresql_schema_version,
)
from storage.records import (
    Admission,
    AdmissionLimits,
    AdmitResult,
    CachedResult,
    JobRecord,
    LimitReached,
    LimitRule,
    NewJob,
    SourceKind,
)
from storage.sqlite import OutdatedSchema

_T = TypeVar("_T")
Conn: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"

_COLUMNS = (
    "id",
    "kind",
    "source_kind",
    "source_key",
    "model",
    "requester_id",
    "channel_id",
    "guild_id",
    "source_task_id",
    "source_audio_id",
    "source_url",
    "options",
    "status_message_id",
    "reply_to_message_id",
    "vidgo_task_id",
    "leader_id",
    "state",
    "outcome",
    "attempts",
    "polls",
    "delivery_attempts",
    "due_at",
    "deadline_at",
    "last_error",
    "error_kind",
    "callback_token_hash",
    "callbacks",
    "result",
    "track",
    "result_message_id",
    "created_at",
    "updated_at",
    "finished_at",
    "result_channel_id",
    "dm_on_completion",
)
_JSON_COLUMNS = frozenset({"options", "result", "track"})
_CALLBACK_BATCH = 256
_DAY = 86400.0
# A transaction that lost a deadlock or a serialization conflict is run again from the
# start (it was rolled back whole); past this many tries the error is the caller's.
_TX_ATTEMPTS = 5


def _state_list(states: Collection[JobState]) -> str:
    """A fixed SQL list of state literals (from the enum, never from input)."""
    return "(" + ", ".join(f"'{state.value}'" for state in sorted(states)) + ")"


_ACTIVE_SQL = _state_list(ACTIVE_STATES)
_FINAL_SQL = _state_list(FINAL_STATES)
_COLS = ", ".join(_COLUMNS)
_JOBS_COLS = ", ".join(f"jobs.{column}" for column in _COLUMNS)

# --- statements ---------------------------------------------------------------------------
# Fixed SQL only: values are always $n parameters; the f-strings insert column and state
# lists defined above.

SELECT_JOB = f"SELECT {_COLS} FROM jobs WHERE id = $1"  # noqa: S608
LOCK_JOB = f"{SELECT_JOB} FOR UPDATE"
SELECT_BY_TASK = f"SELECT {_COLS} FROM jobs WHERE vidgo_task_id = $1"  # noqa: S608
SELECT_JOBS_BY_IDS = f"SELECT {_COLS} FROM jobs WHERE id = ANY($1::text[])"  # noqa: S608
SELECT_FOLLOWERS = f"SELECT {_COLS} FROM jobs WHERE leader_id = $1 ORDER BY created_at"  # noqa: S608
LOCK_WAITING_FOLLOWERS = (
    f"SELECT {_COLS} FROM jobs WHERE leader_id = $1 AND state IN {_ACTIVE_SQL} "  # noqa: S608
    "ORDER BY created_at FOR UPDATE"
)

# Admission. The leader is locked FOR SHARE: an outcome being recorded for it (FOR UPDATE)
# either finishes first (then the row no longer matches and is skipped) or waits for us.
LOCK_LEADER = (
    f"SELECT {_COLS} FROM jobs "  # noqa: S608
    f"WHERE source_key = $1 AND leader_id IS NULL AND state IN {_ACTIVE_SQL} "
    "ORDER BY created_at LIMIT 1 FOR SHARE"
)
ADVISORY_XACT_LOCK = "SELECT pg_advisory_xact_lock($1)"
INSERT_JOB = f"""
INSERT INTO jobs (
    id, kind, source_kind, source_key, model, requester_id, channel_id,
    guild_id, source_task_id, source_audio_id, source_url, options,
    status_message_id, reply_to_message_id, vidgo_task_id, leader_id, state,
    outcome, due_at, leased, deadline_at, callback_token_hash, result, track,
    created_at, updated_at, finished_at, result_channel_id, dm_on_completion
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
          $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29)
RETURNING {_COLS}
"""  # noqa: S608
# One statement, each part on an index (jobs_requester, jobs_requester_active).
MEMBER_USAGE = f"""
SELECT
    (SELECT COUNT(*) FROM jobs
     WHERE guild_id = $1 AND requester_id = $2 AND created_at >= $3
       AND (outcome IS NULL OR outcome NOT IN ('failed', 'expired'))),
    (SELECT COUNT(*) FROM jobs
     WHERE guild_id = $1 AND requester_id = $2 AND state IN {_ACTIVE_SQL}),
    (SELECT MAX(created_at) FROM jobs WHERE guild_id = $1 AND requester_id = $2)
"""  # noqa: S608

# Outcomes and cancellation.
RECORD_OUTCOME = f"""
UPDATE jobs SET state = $1, outcome = $1, result = $2, track = COALESCE($3, track),
    last_error = $4, error_kind = $5, due_at = $6, leased = $7, finished_at = $8,
    updated_at = $8
WHERE id = ANY($9::text[])
RETURNING {_COLS}
"""  # noqa: S608
CANCEL_JOB = """
UPDATE jobs SET state = 'cancelled', outcome = 'cancelled', due_at = NULL, leased = FALSE,
    vidgo_task_id = NULL, callback_token_hash = NULL,
    finished_at = COALESCE(finished_at, $2), updated_at = $2
WHERE id = $1
"""
CROWN_HEIR = """
UPDATE jobs SET leader_id = NULL, state = $2, vidgo_task_id = $3, callback_token_hash = $4,
    due_at = $5, leased = FALSE, attempts = $6, polls = $7, callbacks = $8,
    track = COALESCE(track, $9), updated_at = $10
WHERE id = $1
"""
FOLLOW_HEIR = "UPDATE jobs SET leader_id = $1, updated_at = $2 WHERE leader_id = $3 AND id <> $1"

# Scheduling.
NEXT_DUE_AT = "SELECT MIN(due_at) FROM jobs"
LOCK_DUE = (
    f"SELECT {_COLS} FROM jobs WHERE due_at IS NOT NULL AND due_at <= $1 "  # noqa: S608
    "ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED"
)
LEASE_JOBS = "UPDATE jobs SET leased = TRUE, due_at = $1 WHERE id = ANY($2::text[])"
RELEASE_LEASES = "UPDATE jobs SET leased = FALSE, due_at = $1 WHERE leased"
# Rows are locked in id order, so two processes storing overlapping batches cannot deadlock.
NOTE_CALLBACKS = f"""
WITH target AS (
    SELECT id FROM jobs
    WHERE callback_token_hash = ANY($2::text[]) AND state IN {_ACTIVE_SQL}
    ORDER BY id FOR UPDATE
)
UPDATE jobs SET callbacks = jobs.callbacks + 1, updated_at = $1,
    due_at = CASE WHEN jobs.leased THEN jobs.due_at
                  WHEN jobs.due_at IS NULL OR jobs.due_at > $1 THEN $1 ELSE jobs.due_at END
FROM target WHERE jobs.id = target.id
RETURNING {_JOBS_COLS}
"""  # noqa: S608
SELECT_BY_TOKENS = f"SELECT {_COLS} FROM jobs WHERE callback_token_hash = ANY($1::text[])"  # noqa: S608
COUNT_BY_STATE = "SELECT state, COUNT(*) FROM jobs GROUP BY state"

# Results cache and guild settings.
SELECT_CACHE = (
    "SELECT source_key, model, vidgo_task_id, result, track, created_at "
    "FROM results_cache WHERE source_key = $1"
)
UPSERT_CACHE = """
INSERT INTO results_cache (source_key, model, vidgo_task_id, result, track, created_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (source_key) DO UPDATE SET model = EXCLUDED.model,
    vidgo_task_id = EXCLUDED.vidgo_task_id, result = EXCLUDED.result,
    track = EXCLUDED.track, created_at = EXCLUDED.created_at
"""
SELECT_GUILD_SETTINGS = "SELECT settings FROM guild_settings WHERE guild_id = $1"
UPSERT_GUILD_SETTINGS = """
INSERT INTO guild_settings (guild_id, settings, updated_at) VALUES ($1, $2, $3)
ON CONFLICT (guild_id) DO UPDATE SET settings = EXCLUDED.settings,
    updated_at = EXCLUDED.updated_at
"""

# Operations. One MIN per unfinished state, each a single look-up in jobs_state_created (V4).
_PER_STATE_MIN = " UNION ALL ".join(
    f"SELECT MIN(created_at) AS m FROM jobs WHERE state = '{state.value}'"  # noqa: S608 - enum
    for state in JobState
    if state not in FINAL_STATES
)
OLDEST_UNFINISHED = f"SELECT MIN(m) FROM ({_PER_STATE_MIN}) AS per_state"  # noqa: S608
# Followers go first and their leader in a later pass, so leader_id never names a deleted
# row (the foreign key would refuse it), however a batch cuts a group that ended together.
PRUNE_FINISHED = f"""
DELETE FROM jobs WHERE id IN (
    SELECT p.id FROM jobs AS p
    WHERE p.state IN {_FINAL_SQL}
      AND p.finished_at IS NOT NULL AND p.finished_at < $1
      AND NOT EXISTS (SELECT 1 FROM jobs AS f WHERE f.leader_id = p.id)
    ORDER BY p.finished_at LIMIT $2
)
"""  # noqa: S608
PRUNE_CACHE = "DELETE FROM results_cache WHERE created_at < $1"

# Progress of unfinished jobs (status messages); each reads one partial index of V3.
QUEUE_POSITION_SQL = f"""
SELECT
    COUNT(*) FILTER (
        WHERE j.created_at < t.created_at OR (j.created_at = t.created_at AND j.id <= t.id)
    ),
    COUNT(*)
FROM jobs AS t
JOIN jobs AS j ON j.guild_id = t.guild_id AND j.state IN {_ACTIVE_SQL}
WHERE t.id = $1 AND t.guild_id = $2 AND t.state IN {_ACTIVE_SQL}
"""  # noqa: S608
RECENT_DURATIONS_SQL = (
    "SELECT finished_at - created_at FROM jobs "
    "WHERE model = $1 AND outcome = 'succeeded' AND vidgo_task_id IS NOT NULL "
    "AND finished_at IS NOT NULL ORDER BY finished_at DESC LIMIT $2"
)


def _update_job_sql(assignments: Sequence[str], where: str) -> str:
    """``UPDATE jobs SET <assignments> WHERE <where> RETURNING <columns>``.

    ``assignments`` and ``where`` are fixed fragments written in this module with ``$n``
    placeholders; column names in them come from :data:`UPDATABLE_COLUMNS` only.
    """
    return f"UPDATE jobs SET {', '.join(assignments)} WHERE {where} RETURNING {_COLS}"  # noqa: S608


def _list_jobs_sql(clauses: Sequence[str], *, oldest_first: bool, limit_param: int) -> str:
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    order = "ASC" if oldest_first else "DESC"
    return f"SELECT {_COLS} FROM jobs {where} ORDER BY created_at {order} LIMIT ${limit_param}"  # noqa: S608


# --- values -------------------------------------------------------------------------------


def _loads(value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    loaded = json.loads(value)
    return loaded if isinstance(loaded, dict) else None


def _dumps(value: Mapping[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(dict(value), separators=(",", ":"))


def _clean(value: Any) -> Any:
    """A parameter PostgreSQL can store: text may not contain NUL (SQLite's may).

    Untrusted text (a Vidgo error, a link) with a NUL character would make the write fail
    and the job retry forever; it is stored with U+FFFD in its place instead. JSON is
    unaffected (``json.dumps`` escapes NUL as ``\\u0000``).
    """
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_clean(item) for item in value]
    return value


def _args(values: Sequence[Any]) -> list[Any]:
    return [_clean(value) for value in values]


def _row_to_job(row: asyncpg.Record) -> JobRecord:
    return JobRecord(
        id=row["id"],
        kind=row["kind"],
        source_kind=SourceKind(row["source_kind"]),
        source_key=row["source_key"],
        model=row["model"],
        requester_id=row["requester_id"],
        channel_id=row["channel_id"],
        guild_id=row["guild_id"],
        source_task_id=row["source_task_id"],
        source_audio_id=row["source_audio_id"],
        source_url=row["source_url"],
        options=_loads(row["options"]) or {},
        status_message_id=row["status_message_id"],
        reply_to_message_id=row["reply_to_message_id"],
        vidgo_task_id=row["vidgo_task_id"],
        leader_id=row["leader_id"],
        state=JobState(row["state"]),
        outcome=JobState(row["outcome"]) if row["outcome"] else None,
        attempts=row["attempts"],
        polls=row["polls"],
        delivery_attempts=row["delivery_attempts"],
        due_at=row["due_at"],
        deadline_at=row["deadline_at"],
        last_error=row["last_error"],
        error_kind=row["error_kind"],
        callback_token_hash=row["callback_token_hash"],
        callbacks=row["callbacks"],
        result=_loads(row["result"]),
        track=_loads(row["track"]),
        result_message_id=row["result_message_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
        result_channel_id=row["result_channel_id"],
        dm_on_completion=bool(row["dm_on_completion"]),
    )


def _assignments(changes: Mapping[str, Any], first: int) -> tuple[list[str], list[Any]]:
    """SET fragments (placeholders from ``$first``) and parameters for whitelisted columns."""
    unknown = set(changes) - UPDATABLE_COLUMNS
    if unknown:
        raise ValueError(f"cannot update columns: {sorted(unknown)}")
    parts: list[str] = []
    params: list[Any] = []
    for column, value in changes.items():
        parts.append(f"{column} = ${first + len(params)}")
        params.append(_dumps(value) if column in _JSON_COLUMNS else value)
    if "due_at" in changes:
        parts.append("leased = FALSE")
    return parts, params


def _affected(status: str) -> int:
    """Rows counted in a command tag such as ``UPDATE 3``."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class PostgresJobStore(JobStore):
    """Jobs in a PostgreSQL schema, shared safely by several processes.

    ``dsn`` is a libpq-style URL (``postgresql://user:password@host:5432/database``); it may
    hold a password, so it is never logged or shown. ``schema`` (a lower-case identifier)
    is created on :meth:`open` if missing and becomes the connections' ``search_path``;
    without it the store uses the DSN's current schema (normally ``public``).
    ``application_name`` names the connections in ``pg_stat_activity`` (one per process,
    say ``stemcord-worker-2``, tells the processes apart).
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str | None = None,
        min_pool_size: int = 1,
        max_pool_size: int = 10,
        connect_timeout: float = 10.0,
        application_name: str = "stemcord",
    ) -> None:
        self._dsn = dsn
        self._schema = check_schema_name(schema) if schema is not None else None
        self._min_pool_size = min_pool_size
        self._max_pool_size = max_pool_size
        self._connect_timeout = connect_timeout
        self._application_name = application_name
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._callback_queue: list[tuple[str, float, asyncio.Future[JobRecord | None]]] = []
        self._callback_flusher: asyncio.Task[None] | None = None
        # Versions the last open() applied (the ``migrate`` command reports them).
        self.applied_migrations: list[int] = []

    def __repr__(self) -> str:
        # Never the DSN: it may carry a password.
        return f"PostgresJobStore(schema={self._schema!r})"

    @property
    def schema(self) -> str | None:
        """The schema the jobs live in (known after :meth:`open` when not given)."""
        return self._schema

    @property
    def pool(self) -> asyncpg.Pool[asyncpg.Record]:
        """The open connection pool (for tests and maintenance commands)."""
        if self._pool is None:
            raise RuntimeError("store is not open")
        return self._pool

    async def open(self, *, read_only: bool = False) -> None:
        """Connect, create the schema if needed and migrate (one process at a time).

        ``read_only`` (the offline ``jobs`` command): every transaction is read-only and
        nothing is migrated; a schema behind this version is refused with
        :class:`storage.sqlite.OutdatedSchema` instead of being read wrongly.
        """
        settings: dict[str, str] = {"application_name": self._application_name}
        if self._schema is not None:
            settings["search_path"] = self._schema
        if read_only:
            settings["default_transaction_read_only"] = "on"
        pool = await asyncpg.create_pool(
            self._dsn,
            min_size=self._min_pool_size,
            max_size=self._max_pool_size,
            timeout=self._connect_timeout,
            server_settings=settings,
        )
        try:
            async with pool.acquire() as conn:
                if self._schema is None:
                    current = await conn.fetchval("SELECT current_schema()")
                    if current is None:
                        raise RuntimeError(
                            "the DSN's search_path names no existing schema; "
                            "create it or give the store a schema"
                        )
                    self._schema = check_schema_name(str(current))
                if read_only:
                    have = await postgresql_schema_version(conn)
                    want = max(m.version for m in available_migrations("postgresql"))
                    if have < want:
                        raise OutdatedSchema(have, want)
                else:
                    self.applied_migrations = await migrate_postgresql(conn, self._schema)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def schema_version(self) -> int:
        """The highest migration applied to this store's schema."""
        async with self.pool.acquire() as conn:
            return await postgresql_schema_version(conn)

    async def close(self) -> None:
        """Wait for pending callback writes, then close every connection."""
        if self._pool is None:
            return
        if self._callback_flusher is not None:
            await asyncio.gather(self._callback_flusher, return_exceptions=True)
        pool, self._pool = self._pool, None
        await pool.close()

    # --- plumbing -------------------------------------------------------------------------

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[Conn]:
        async with self.pool.acquire() as conn:
            yield conn

    async def _in_tx(self, work: Callable[[Conn], Awaitable[_T]]) -> _T:
        """Run ``work`` in one transaction, again from the start if it lost a deadlock."""
        for attempt in range(1, _TX_ATTEMPTS + 1):
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    return await work(conn)
            except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
                if attempt == _TX_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    @staticmethod
    async def _one(conn: Conn, sql: str, *params: Any) -> JobRecord | None:
        row = await conn.fetchrow(sql, *_args(params))
        return _row_to_job(row) if row is not None else None

    @staticmethod
    async def _many(conn: Conn, sql: str, *params: Any) -> list[JobRecord]:
        return [_row_to_job(row) for row in await conn.fetch(sql, *_args(params))]

    # --- jobs -----------------------------------------------------------------------------

    async def admit(
        self,
        new: NewJob,
        now: float,
        *,
        submit_lease_until: float,
        limits: AdmissionLimits | None = None,
    ) -> AdmitResult:
        """See :meth:`JobStore.admit`.

        Locks in a fixed order (member, then source, then the leader row), so two admits
        never wait on each other in a cycle.
        """
        schema = self._schema

        async def work(conn: Conn) -> AdmitResult:
            if limits is not None and limits.any and new.guild_id is not None:
                # Every admit of this member in this server waits here; the count below is
                # a new statement, so it sees what the previous holder committed.
                await conn.execute(
                    ADVISORY_XACT_LOCK,
                    advisory_key("stemcord", "member", schema, new.guild_id, new.requester_id),
                )
                refused = await self._limit_reached(
                    conn, new.guild_id, new.requester_id, limits, now
                )
                if refused is not None:
                    raise refused
            await conn.execute(
                ADVISORY_XACT_LOCK, advisory_key("stemcord", "source", schema, new.source_key)
            )
            leader = await self._one(conn, LOCK_LEADER, new.source_key)
            # Read after the leader: an outcome recorded meanwhile has cached its result.
            cached = await self._cache_get(conn, new.source_key)
            if cached is not None:
                admission = Admission.CACHED
                state, outcome, due_at, leased = JobState.SUCCEEDED, JobState.SUCCEEDED, now, False
                leader = None
            elif leader is not None:
                admission = Admission.JOINED
                state, outcome, due_at, leased = JobState.SUBMITTED, None, None, False
            else:
                admission = Admission.NEW
                state, outcome, due_at, leased = JobState.ACCEPTED, None, submit_lease_until, True
            if cached is not None:
                track = _dumps(cached.track if cached.track is not None else new.track)
            else:
                track = _dumps(leader.track if leader and leader.track else new.track)
            job = await self._one(
                conn,
                INSERT_JOB,
                new.id,
                new.kind,
                new.source_kind.value,
                new.source_key,
                new.model,
                new.requester_id,
                new.channel_id,
                new.guild_id,
                new.source_task_id,
                new.source_audio_id,
                new.source_url,
                _dumps(new.options),
                new.status_message_id,
                new.reply_to_message_id,
                None,  # vidgo_task_id is unique to the job that ran the task
                leader.id if leader else None,
                state.value,
                outcome.value if outcome else None,
                due_at,
                leased,
                new.deadline_at,
                new.callback_token_hash if admission is Admission.NEW else None,
                _dumps(cached.result) if cached else None,
                track,
                now,
                now,
                now if cached else None,
                new.result_channel_id,
                new.dm_on_completion,
            )
            assert job is not None  # noqa: S101 - INSERT … RETURNING always returns the row
            return AdmitResult(job, admission)

        return await self._in_tx(work)

    async def get(self, job_id: str) -> JobRecord | None:
        """See :meth:`JobStore.get`."""
        async with self._conn() as conn:
            return await self._one(conn, SELECT_JOB, job_id)

    async def get_by_vidgo_task(self, vidgo_task_id: str) -> JobRecord | None:
        """See :meth:`JobStore.get_by_vidgo_task`."""
        async with self._conn() as conn:
            return await self._one(conn, SELECT_BY_TASK, vidgo_task_id)

    async def transition(
        self,
        job_id: str,
        target: JobState,
        now: float,
        *,
        expect: Collection[JobState] | None = None,
        **changes: Any,
    ) -> JobRecord:
        """See :meth:`JobStore.transition`."""
        if target is JobState.CANCELLED:
            # A cancelled job is never due (SQLite lets the later assignment win; PostgreSQL
            # refuses a column assigned twice, so the caller's due time is dropped here).
            changes.pop("due_at", None)
        parts, params = _assignments(changes, first=4)

        async def work(conn: Conn) -> JobRecord:
            job = await self._one(conn, LOCK_JOB, job_id)
            if job is None:
                raise JobNotFound(job_id)
            if expect is not None and job.state not in expect:
                raise InvalidTransition(job_id, job.state, target)
            check_transition(job_id, job.state, target)
            assignments = ["state = $2", "updated_at = $3", *parts]
            if target.awaits_delivery:
                assignments += ["outcome = $2", "finished_at = COALESCE(finished_at, $3)"]
            elif target is JobState.CANCELLED:
                assignments += [
                    "outcome = $2",
                    "finished_at = COALESCE(finished_at, $3)",
                    "due_at = NULL",
                    "leased = FALSE",
                ]
            updated = await self._one(
                conn, _update_job_sql(assignments, "id = $1"), job_id, target.value, now, *params
            )
            assert updated is not None  # noqa: S101 - the row is locked by this transaction
            return updated

        return await self._in_tx(work)

    async def record_outcome(
        self,
        job_id: str,
        target: JobState,
        now: float,
        *,
        result: Mapping[str, Any] | None = None,
        track: Mapping[str, Any] | None = None,
        last_error: str | None = None,
        error_kind: str | None = None,
        cache: CachedResult | None = None,
        lease_until: float | None = None,
    ) -> list[JobRecord]:
        """See :meth:`JobStore.record_outcome`."""
        if not target.awaits_delivery:
            raise ValueError(f"{target} is not an outcome")

        async def work(conn: Conn) -> list[JobRecord]:
            job = await self._one(conn, LOCK_JOB, job_id)
            if job is None:
                raise JobNotFound(job_id)
            if not job.state.is_active:
                return []
            check_transition(job_id, job.state, target)
            # A new statement after the lock: it sees every follower that joined before.
            waiting = await self._many(conn, LOCK_WAITING_FOLLOWERS, job_id)
            for other in waiting:
                check_transition(other.id, other.state, target)
            ids = [job_id, *(f.id for f in waiting)]
            changed = await self._many(
                conn,
                RECORD_OUTCOME,
                target.value,
                _dumps(result),
                _dumps(track),
                last_error,
                error_kind,
                now if lease_until is None else lease_until,
                lease_until is not None,
                now,
                ids,
            )
            if cache is not None:
                await self._cache_put(conn, cache)
            order = {jid: i for i, jid in enumerate(ids)}
            return sorted(changed, key=lambda j: order[j.id])

        return await self._in_tx(work)

    async def cancel(self, job_id: str, now: float) -> JobRecord:
        """See :meth:`JobStore.cancel`."""

        async def work(conn: Conn) -> JobRecord:
            job = await self._one(conn, LOCK_JOB, job_id)
            if job is None:
                raise JobNotFound(job_id)
            check_transition(job_id, job.state, JobState.CANCELLED)
            waiting = await self._many(conn, LOCK_WAITING_FOLLOWERS, job_id)
            # Free the unique task id and token before handing them over.
            await conn.execute(CANCEL_JOB, job_id, now)
            if waiting:
                heir = waiting[0]
                await conn.execute(
                    CROWN_HEIR,
                    heir.id,
                    job.state.value,
                    job.vidgo_task_id,
                    job.callback_token_hash,
                    # A submit still in flight for the old leader is orphaned: resubmit.
                    now if job.state is JobState.ACCEPTED else (job.due_at or now),
                    job.attempts,
                    job.polls,
                    job.callbacks,
                    _dumps(job.track),
                    now,
                )
                await conn.execute(FOLLOW_HEIR, heir.id, now, job_id)
            cancelled = await self._one(conn, SELECT_JOB, job_id)
            assert cancelled is not None  # noqa: S101 - locked by this transaction
            return cancelled

        return await self._in_tx(work)

    async def update(self, job_id: str, now: float, **changes: Any) -> JobRecord:
        """See :meth:`JobStore.update`."""
        return await self._set(job_id, now, changes, guard=None)

    async def expedite(self, job_id: str, now: float, **changes: Any) -> JobRecord:
        """See :meth:`JobStore.expedite`: one statement, guarded by ``NOT leased``."""
        return await self._set(job_id, now, {**changes, "due_at": now}, guard="NOT leased")

    async def _set(
        self, job_id: str, now: float, changes: Mapping[str, Any], *, guard: str | None
    ) -> JobRecord:
        """One UPDATE of whitelisted columns (``guard``: a fixed extra condition), then read.

        When the guard holds the row back, the job is returned as it is.
        """
        parts, params = _assignments(changes, first=3)
        where = "id = $1" if guard is None else f"id = $1 AND {guard}"
        sql = _update_job_sql(["updated_at = $2", *parts], where)
        async with self._conn() as conn:
            job = await self._one(conn, sql, job_id, now, *params)
            if job is None:
                job = await self._one(conn, SELECT_JOB, job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    async def reschedule(
        self, job_id: str, now: float, due_at: float | None, *, seen_callbacks: int, **changes: Any
    ) -> JobRecord:
        """See :meth:`JobStore.reschedule`."""
        changes.pop("due_at", None)
        parts, params = _assignments(changes, first=5)
        assignments = [
            "updated_at = $2",
            "leased = FALSE",
            "due_at = CASE WHEN callbacks > $3 THEN $2 ELSE $4::double precision END",
            *parts,
        ]
        async with self._conn() as conn:
            job = await self._one(
                conn,
                _update_job_sql(assignments, "id = $1"),
                job_id,
                now,
                seen_callbacks,
                due_at,
                *params,
            )
        if job is None:
            raise JobNotFound(job_id)
        return job

    async def note_callback(self, token_hash: str, now: float) -> JobRecord | None:
        """See :meth:`JobStore.note_callback`.

        Callbacks that arrive together are written together: each caller waits for its own
        row to be stored, but one statement stores a whole batch (group commit), as in the
        SQLite backend.
        """
        future: asyncio.Future[JobRecord | None] = asyncio.get_running_loop().create_future()
        self._callback_queue.append((token_hash, now, future))
        if self._callback_flusher is None or self._callback_flusher.done():
            self._callback_flusher = asyncio.create_task(self._flush_callbacks())
        return await future

    async def _flush_callbacks(self) -> None:
        while self._callback_queue:
            batch = self._callback_queue[:_CALLBACK_BATCH]
            del self._callback_queue[:_CALLBACK_BATCH]
            try:
                found = await self._note_callbacks(
                    [h for h, _, _ in batch], max(now for _, now, _ in batch)
                )
            except Exception as exc:
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for token_hash, _, future in batch:
                if not future.done():
                    future.set_result(found.get(token_hash))

    async def _note_callbacks(self, hashes: list[str], now: float) -> dict[str, JobRecord]:
        unique = list(dict.fromkeys(_clean(h) for h in hashes))

        async def work(conn: Conn) -> dict[str, JobRecord]:
            found: dict[str, JobRecord] = {}
            for job in await self._many(conn, NOTE_CALLBACKS, now, unique):
                found[job.callback_token_hash or ""] = job
            missing = [h for h in unique if h not in found]
            if missing:
                # Finished jobs are returned unchanged; unknown hashes stay absent.
                for job in await self._many(conn, SELECT_BY_TOKENS, missing):
                    found[job.callback_token_hash or ""] = job
            return found

        found = await self._in_tx(work)
        return {h: found[_clean(h)] for h in hashes if _clean(h) in found}

    async def next_due_at(self) -> float | None:
        """See :meth:`JobStore.next_due_at`."""
        async with self._conn() as conn:
            value = await conn.fetchval(NEXT_DUE_AT)
        return None if value is None else float(value)

    async def claim_due(self, now: float, lease_until: float, limit: int) -> list[JobRecord]:
        """See :meth:`JobStore.claim_due`: rows another process is claiming are skipped."""

        async def work(conn: Conn) -> list[JobRecord]:
            claimed = await self._many(conn, LOCK_DUE, now, limit)
            if claimed:
                await conn.execute(LEASE_JOBS, lease_until, [job.id for job in claimed])
            return claimed

        return await self._in_tx(work)

    async def release_leases(self, now: float) -> int:
        """See :meth:`JobStore.release_leases`."""
        async with self._conn() as conn:
            return _affected(await conn.execute(RELEASE_LEASES, now))

    async def followers(self, leader_id: str) -> list[JobRecord]:
        """See :meth:`JobStore.followers`."""
        async with self._conn() as conn:
            return await self._many(conn, SELECT_FOLLOWERS, leader_id)

    async def list_jobs(
        self,
        *,
        guild_id: int | None = None,
        requester_id: int | None = None,
        states: Collection[JobState] | None = None,
        limit: int = 50,
        oldest_first: bool = False,
    ) -> list[JobRecord]:
        """See :meth:`JobStore.list_jobs`."""
        clauses: list[str] = []
        params: list[Any] = []
        if guild_id is not None:
            params.append(guild_id)
            clauses.append(f"guild_id = ${len(params)}")
        if requester_id is not None:
            params.append(requester_id)
            clauses.append(f"requester_id = ${len(params)}")
        if states is not None:
            values = [JobState(s).value for s in states]
            if not values:
                return []
            params.append(values)
            clauses.append(f"state = ANY(${len(params)}::text[])")
        params.append(limit)
        sql = _list_jobs_sql(clauses, oldest_first=oldest_first, limit_param=len(params))
        async with self._conn() as conn:
            return await self._many(conn, sql, *params)

    async def count_by_state(self) -> dict[JobState, int]:
        """See :meth:`JobStore.count_by_state`."""
        async with self._conn() as conn:
            rows = await conn.fetch(COUNT_BY_STATE)
        return {JobState(row[0]): int(row[1]) for row in rows}

    # --- results cache --------------------------------------------------------------------

    @staticmethod
    async def _cache_get(conn: Conn, source_key: str) -> CachedResult | None:
        row = await conn.fetchrow(SELECT_CACHE, _clean(source_key))
        if row is None:
            return None
        result = _loads(row["result"])
        if result is None:
            return None
        return CachedResult(
            row["source_key"],
            row["model"],
            row["vidgo_task_id"],
            result,
            _loads(row["track"]),
            row["created_at"],
        )

    @staticmethod
    async def _cache_put(conn: Conn, entry: CachedResult) -> None:
        await conn.execute(
            UPSERT_CACHE,
            *_args(
                [
                    entry.source_key,
                    entry.model,
                    entry.vidgo_task_id,
                    _dumps(entry.result),
                    _dumps(entry.track),
                    entry.created_at,
                ]
            ),
        )

    async def cache_get(self, source_key: str) -> CachedResult | None:
        """See :meth:`JobStore.cache_get`."""
        async with self._conn() as conn:
            return await self._cache_get(conn, source_key)

    async def cache_put(self, entry: CachedResult) -> None:
        """See :meth:`JobStore.cache_put`."""
        async with self._conn() as conn:
            await self._cache_put(conn, entry)

    # --- per-guild settings ---------------------------------------------------------------

    async def get_guild_settings(self, guild_id: int) -> dict[str, Any]:
        """See :meth:`JobStore.get_guild_settings`."""
        async with self._conn() as conn:
            value = await conn.fetchval(SELECT_GUILD_SETTINGS, guild_id)
        return (_loads(value) or {}) if value is not None else {}

    async def put_guild_settings(
        self, guild_id: int, settings: Mapping[str, Any], now: float
    ) -> None:
        """See :meth:`JobStore.put_guild_settings`."""
        async with self._conn() as conn:
            await conn.execute(UPSERT_GUILD_SETTINGS, guild_id, _dumps(settings), now)

    # --- operations: health, retention ----------------------------------------------------

    async def ping(self) -> None:
        """See :meth:`JobStore.ping`."""
        async with self._conn() as conn:
            await conn.fetchval("SELECT 1")

    async def oldest_unfinished_created_at(self) -> float | None:
        """See :meth:`JobStore.oldest_unfinished_created_at`."""
        async with self._conn() as conn:
            value = await conn.fetchval(OLDEST_UNFINISHED)
        return None if value is None else float(value)

    async def prune_finished(self, before: float, *, batch: int = 1000) -> int:
        """See :meth:`JobStore.prune_finished`: one transaction per batch."""
        total = 0
        while True:
            async with self._conn() as conn:
                deleted = _affected(await conn.execute(PRUNE_FINISHED, before, batch))
            total += deleted
            if deleted == 0:
                return total

    async def prune_cache(self, before: float) -> int:
        """See :meth:`JobStore.prune_cache`."""
        async with self._conn() as conn:
            return _affected(await conn.execute(PRUNE_CACHE, before))

    async def checkpoint(self) -> bool:
        """See :meth:`JobStore.checkpoint`: PostgreSQL manages its own log, so a no-op."""
        if self._pool is None:
            raise RuntimeError("store is not open")
        return True

    # --- per-member limits ----------------------------------------------------------------

    @staticmethod
    async def _limit_reached(
        conn: Conn, guild_id: int, requester_id: int, limits: AdmissionLimits, now: float
    ) -> LimitReached | None:
        """The first limit a new request would break, or ``None`` (see AdmissionLimits).

        Checked in the order that frees up last: the daily quota, then unfinished jobs,
        then the cooldown, so the reply names the rule that really holds the member back.
        """
        day_start = now - now % _DAY
        row = await conn.fetchrow(MEMBER_USAGE, guild_id, requester_id, day_start)
        today, unfinished, last = (int(row[0]), int(row[1]), row[2]) if row else (0, 0, None)
        if limits.daily_quota and today >= limits.daily_quota:
            return LimitReached(LimitRule.DAILY_QUOTA, limits.daily_quota, day_start + _DAY)
        if limits.max_unfinished and unfinished >= limits.max_unfinished:
            return LimitReached(LimitRule.MAX_UNFINISHED, limits.max_unfinished, None)
        if limits.cooldown_seconds and last is not None and now - last < limits.cooldown_seconds:
            return LimitReached(
                LimitRule.COOLDOWN, limits.cooldown_seconds, last + limits.cooldown_seconds
            )
        return None

    async def limit_reached(
        self, guild_id: int, requester_id: int, limits: AdmissionLimits, now: float
    ) -> LimitReached | None:
        """See :meth:`JobStore.limit_reached`."""
        if not limits.any:
            return None
        async with self._conn() as conn:
            return await self._limit_reached(conn, guild_id, requester_id, limits, now)

    # --- progress of unfinished jobs --------------------------------------------------------

    async def queue_position(self, guild_id: int, job_id: str) -> tuple[int, int] | None:
        """See :meth:`JobStore.queue_position` (reads the partial index of unfinished jobs)."""
        async with self._conn() as conn:
            row = await conn.fetchrow(QUEUE_POSITION_SQL, _clean(job_id), guild_id)
        if row is None or not row[1]:
            return None
        return int(row[0]), int(row[1])

    async def recent_durations(self, model: str, limit: int = 50) -> list[float]:
        """See :meth:`JobStore.recent_durations` (reads ``jobs_model_succeeded``)."""
        async with self._conn() as conn:
            rows = await conn.fetch(RECENT_DURATIONS_SQL, _clean(model), limit)
        return [max(0.0, float(row[0])) for row in rows]
