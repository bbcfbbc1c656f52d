"""SQLite backend of :class:`storage.base.JobStore` (aiosqlite, WAL).

One connection serves the whole process, and it lives in one thread of its own (aiosqlite's).
Every operation of this store is one plain function run in that thread: a transaction
(``BEGIN IMMEDIATE``, its statements, ``COMMIT`` or ``ROLLBACK``) goes there whole, as one
hop from the event loop to the thread and one back, instead of one round trip per statement.
The thread runs the functions one at a time in the order they were queued, so no
transaction ever interleaves with another's statements, and the event loop never waits on
SQLite in between (5 to 7 hops per transaction before, each a wake-up of the loop).

A function that has been queued runs to its end even if the coroutine awaiting it is
cancelled: its transaction commits or rolls back whole, never half. The caller that was
cancelled then does not learn the outcome; that is the same as a process stopped right after
the commit, which every write is already safe against (leases run out, deliveries carry
their nonce).
"""

from __future__ import annotations

import asyncio
import functools
import json
import secrets
import sqlite3
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar, cast

import aiosqlite

from storage.base import (
    UPDATABLE_COLUMNS,
    CallbackNote,
    JobNotFound,
    JobStore,
    LeaseLost,
    first_limit_reached,
    is_redundant,
)
from storage.jobstate import FINAL_STATES, InvalidTransition, JobState, check_transition
from storage.migrate import available_migrations, migrate
from storage.records import (
    ONCE_ONLY_MODELS,
    POINTER_RESULT,
    Admission,
    AdmissionLimits,
    AdmitResult,
    CachedResult,
    InstanceInfo,
    JobRecord,
    LimitReached,
    NewJob,
    SourceKind,
)

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
    "leased",
    "lease_id",
    "lease_owner",
    "unconfirmed_submit_at",
    "task_hint",
    "faults",
    "delivery_started_at",
    "polled_at",
    "callback_key",
    "prepared_at",
)
_SELECT = "SELECT " + ", ".join(_COLUMNS) + " FROM jobs"  # noqa: S608 - fixed column names
_JSON_COLUMNS = frozenset({"options", "result", "track"})
_ACTIVE_SQL = "('accepted', 'submitted', 'running')"
_FINAL_SQL = "('delivered', 'undeliverable', 'cancelled')"
_CALLBACK_BATCH = 256
# Callback batches in flight at once (one being written, one waiting in the thread's queue).
_FLUSHERS = 2
_DAY = 86400.0
# A request counts towards the daily quota and the server's daily cap unless it ended
# failed or expired (Vidgo charged nothing and the member got nothing).
_COUNTS_TODAY_SQL = "(outcome IS NULL OR outcome NOT IN ('failed', 'expired'))"
_T = TypeVar("_T")
# One function run in the connection's thread (see the module docstring).
Work = Callable[[sqlite3.Connection], _T]

# Progress of unfinished jobs (status messages); each reads one partial index of V3.
QUEUE_POSITION_SQL = f"""
SELECT
    SUM(j.created_at < t.created_at OR (j.created_at = t.created_at AND j.id <= t.id)),
    COUNT(*)
FROM jobs AS t
JOIN jobs AS j ON j.guild_id = t.guild_id AND j.state IN {_ACTIVE_SQL}
WHERE t.id = ? AND t.guild_id = ? AND t.state IN {_ACTIVE_SQL}
"""  # noqa: S608 - a fixed list of states
RECENT_DURATIONS_SQL = (
    "SELECT finished_at - created_at FROM jobs "
    "WHERE model = ? AND outcome = 'succeeded' AND vidgo_task_id IS NOT NULL "
    "AND finished_at IS NOT NULL ORDER BY finished_at DESC LIMIT ?"
)


@dataclass(slots=True)
class _QueuedCallback:
    """A callback waiting for the next group commit."""

    column: str  # "callback_key" or, for jobs from before keys, "callback_token_hash"
    value: str
    now: float
    task_hint: str | None
    min_poll_gap: float


@dataclass(slots=True)
class _CallbackBatch:
    """Callbacks stored by one transaction; every caller waits for the batch's one future.

    ``brief`` while every caller wants only a :data:`CallbackNote` (the listener's path):
    then the rows are not decoded into records.
    """

    entries: list[_QueuedCallback]
    done: asyncio.Future[dict[tuple[str, str], JobRecord | CallbackNote]]
    brief: bool = True


def _loads(value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    if value == "{}":  # most jobs' options: no parser needed
        return {}
    loaded = json.loads(value)
    return loaded if isinstance(loaded, dict) else None


def _dumps(value: Mapping[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(dict(value), separators=(",", ":"))


# Cached results that retention turns into pointers instead of deleting (records.ONCE_ONLY_MODELS).
_KEEPS_POINTER = (
    "(model IN (" + ", ".join(f"'{m}'" for m in ONCE_ONLY_MODELS) + ") "
    "AND vidgo_task_id IS NOT NULL)"
)
_POINTER = _dumps(POINTER_RESULT)
_POINT_CACHE_OF_TASK = f"""
UPDATE results_cache SET result = ? WHERE source_key = ? AND vidgo_task_id IS ?
  AND {_KEEPS_POINTER} AND result <> ?
"""  # noqa: S608 - fixed SQL, values are parameters
_DELETE_CACHE_OF_TASK = f"""
DELETE FROM results_cache WHERE source_key = ? AND vidgo_task_id IS ? AND NOT {_KEEPS_POINTER}
"""  # noqa: S608
_POINT_OLD_CACHE = f"""
UPDATE results_cache SET result = ? WHERE created_at < ? AND {_KEEPS_POINTER} AND result <> ?
"""  # noqa: S608
_PRUNE_CACHE = f"""
DELETE FROM results_cache WHERE created_at < ? AND NOT {_KEEPS_POINTER}
"""  # noqa: S608

# Stored text to enum by a dict look-up (the enum's own call is slower, on every row read).
_STATES = {state.value: state for state in JobState}
_SOURCE_KINDS = {kind.value: kind for kind in SourceKind}


def _row_to_job(row: Iterable[Any]) -> JobRecord:
    # Unpacked by position (the order of _COLUMNS): this runs for every row the store reads.
    (
        id_,
        kind,
        source_kind,
        source_key,
        model,
        requester_id,
        channel_id,
        guild_id,
        source_task_id,
        source_audio_id,
        source_url,
        options,
        status_message_id,
        reply_to_message_id,
        vidgo_task_id,
        leader_id,
        state,
        outcome,
        attempts,
        polls,
        delivery_attempts,
        due_at,
        deadline_at,
        last_error,
        error_kind,
        callback_token_hash,
        callbacks,
        result,
        track,
        result_message_id,
        created_at,
        updated_at,
        finished_at,
        result_channel_id,
        dm_on_completion,
        leased,
        lease_id,
        lease_owner,
        unconfirmed_submit_at,
        task_hint,
        faults,
        delivery_started_at,
        polled_at,
        callback_key,
        prepared_at,
    ) = row
    return JobRecord(
        id=id_,
        kind=kind,
        source_kind=_SOURCE_KINDS.get(source_kind) or SourceKind(source_kind),
        source_key=source_key,
        model=model,
        requester_id=requester_id,
        channel_id=channel_id,
        guild_id=guild_id,
        source_task_id=source_task_id,
        source_audio_id=source_audio_id,
        source_url=source_url,
        options=_loads(options) or {},
        status_message_id=status_message_id,
        reply_to_message_id=reply_to_message_id,
        vidgo_task_id=vidgo_task_id,
        leader_id=leader_id,
        state=_STATES.get(state) or JobState(state),
        outcome=(_STATES.get(outcome) or JobState(outcome)) if outcome else None,
        attempts=attempts,
        polls=polls,
        delivery_attempts=delivery_attempts,
        due_at=due_at,
        deadline_at=deadline_at,
        last_error=last_error,
        error_kind=error_kind,
        callback_token_hash=callback_token_hash,
        callbacks=callbacks,
        result=_loads(result),
        track=_loads(track),
        result_message_id=result_message_id,
        created_at=created_at,
        updated_at=updated_at,
        finished_at=finished_at,
        result_channel_id=result_channel_id,
        dm_on_completion=bool(dm_on_completion),
        leased=bool(leased),
        lease_id=lease_id,
        lease_owner=lease_owner,
        unconfirmed_submit_at=unconfirmed_submit_at,
        task_hint=task_hint,
        faults=faults,
        delivery_started_at=delivery_started_at,
        polled_at=polled_at,
        callback_key=callback_key,
        prepared_at=prepared_at,
    )


def _assignments(changes: Mapping[str, Any]) -> tuple[list[str], list[Any]]:
    """SET fragments and parameters for whitelisted columns (names never come from users)."""
    unknown = set(changes) - UPDATABLE_COLUMNS
    if unknown:
        raise ValueError(f"cannot update columns: {sorted(unknown)}")
    parts: list[str] = []
    params: list[Any] = []
    for column, value in changes.items():
        parts.append(f"{column} = ?")
        params.append(_dumps(value) if column in _JSON_COLUMNS else value)
    if "due_at" in changes:
        parts.append(_RELEASE)
    return parts, params


# Releasing a lease (a write that sets the next due time) forgets its owner.
_RELEASE = "leased = 0, lease_owner = NULL"
# The condition a worker's write carries: the job still holds the worker's lease.
_HOLDS_LEASE = " AND leased = 1 AND lease_id = ?"


def _lease_guard(lease: int | None) -> tuple[str, list[Any]]:
    """The WHERE fragment and parameter of a fenced write (none without a lease)."""
    return ("", []) if lease is None else (_HOLDS_LEASE, [lease])


def _check_lease(job: JobRecord, lease: int | None) -> None:
    """Inside a transaction: raise :class:`LeaseLost` unless the job holds ``lease``."""
    if lease is not None and not (job.leased and job.lease_id == lease):
        raise LeaseLost(job.id, lease)


class OutdatedSchema(RuntimeError):
    """A database older than this version's schema, opened read-only (so not migrated)."""

    def __init__(self, have: int, want: int) -> None:
        super().__init__(f"the database is at schema V{have}; this version needs V{want}")
        self.have = have
        self.want = want


def _fetch_job(db: sqlite3.Connection, job_id: str) -> JobRecord | None:
    row = db.execute(f"{_SELECT} WHERE id = ?", (job_id,)).fetchone()
    return _row_to_job(row) if row else None


def _fetch_many(db: sqlite3.Connection, where: str, params: Iterable[Any]) -> list[JobRecord]:
    return [_row_to_job(row) for row in db.execute(f"{_SELECT} {where}", tuple(params))]


def _in_transaction(work: Work[_T], db: sqlite3.Connection) -> _T:
    """``BEGIN IMMEDIATE``, ``work``, ``COMMIT`` — or ``ROLLBACK`` if it raised."""
    db.execute("BEGIN IMMEDIATE")
    try:
        result = work(db)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return result


def _cache_get(db: sqlite3.Connection, source_key: str) -> CachedResult | None:
    row = db.execute(
        "SELECT source_key, model, vidgo_task_id, result, track, created_at "
        "FROM results_cache WHERE source_key = ?",
        (source_key,),
    ).fetchone()
    if row is None:
        return None
    result = _loads(row[3])
    if result is None:
        return None
    return CachedResult(row[0], row[1], row[2], result, _loads(row[4]), row[5])


def _cache_put(db: sqlite3.Connection, entry: CachedResult) -> None:
    db.execute(
        "INSERT OR REPLACE INTO results_cache "
        "(source_key, model, vidgo_task_id, result, track, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (
            entry.source_key,
            entry.model,
            entry.vidgo_task_id,
            _dumps(entry.result),
            _dumps(entry.track),
            entry.created_at,
        ),
    )


def _limit_reached(
    db: sqlite3.Connection,
    guild_id: int,
    requester_id: int,
    limits: AdmissionLimits,
    now: float,
) -> LimitReached | None:
    """The first limit a new request would break, or ``None`` (see AdmissionLimits).

    Checked in the order that frees up last: the member's daily quota and the server's
    daily cap (both at 00:00 UTC; the member's own rule is named first), then unfinished
    jobs, then the cooldown, so the reply names the rule that really holds the member back.
    """
    day_start = now - now % _DAY
    # One statement, each part on an index.
    row = db.execute(
        f"""
        SELECT
            (SELECT COUNT(*) FROM jobs
             WHERE guild_id = :guild AND requester_id = :member AND created_at >= :day
               AND {_COUNTS_TODAY_SQL}),
            (SELECT COUNT(*) FROM jobs
             WHERE guild_id = :guild AND requester_id = :member AND state IN {_ACTIVE_SQL}),
            (SELECT MAX(created_at) FROM jobs
             WHERE guild_id = :guild AND requester_id = :member),
            CASE WHEN :cap > 0 THEN
                (SELECT COUNT(*) FROM jobs
                 WHERE guild_id = :guild AND created_at >= :day AND {_COUNTS_TODAY_SQL})
            ELSE 0 END
        """,  # noqa: S608 - fixed state lists
        {
            "guild": guild_id,
            "member": requester_id,
            "day": day_start,
            "cap": limits.server_daily_cap,
        },
    ).fetchone()
    today, unfinished, last, server_today = (
        (int(row[0]), int(row[1]), row[2], int(row[3])) if row else (0, 0, None, 0)
    )
    return first_limit_reached(
        limits,
        now,
        member_today=today,
        unfinished=unfinished,
        last=last,
        server_today=server_today,
    )


def _set(
    db: sqlite3.Connection,
    job_id: str,
    now: float,
    changes: Mapping[str, Any],
    *,
    guard: str,
    guard_params: Sequence[Any] = (),
    extra_sql: Sequence[str] = (),
    extra_params: Sequence[Any] = (),
) -> JobRecord:
    """One UPDATE of whitelisted columns, then read (in the connection's thread).

    ``guard``: a fixed extra condition; when it carries parameters it is a lease guard, and
    an UPDATE that matched nothing raises :class:`LeaseLost`. ``extra_sql``: fixed SET
    fragments computed in SQL (with ``extra_params``), written before ``changes``.
    """
    parts, params = _assignments(changes)
    set_sql = ", ".join(["updated_at = ?", *extra_sql, *parts])
    matched = db.execute(
        f"UPDATE jobs SET {set_sql} WHERE id = ?{guard}",  # noqa: S608
        (now, *extra_params, *params, job_id, *guard_params),
    ).rowcount
    job = _fetch_job(db, job_id)
    if job is None:
        raise JobNotFound(job_id)
    if guard_params and matched == 0:
        raise LeaseLost(job_id, int(guard_params[0]))
    return job


def _update_callbacks(
    db: sqlite3.Connection, batch: Sequence[_QueuedCallback], column: str, returning: str
) -> tuple[list[str], list[Any]]:
    """Count the callbacks of ``batch`` that name jobs by ``column`` and make those jobs due.

    The distinct values named, and the rows of the active jobs changed (``returning``).
    """
    now = max(entry.now for entry in batch)
    gap = max(entry.min_poll_gap for entry in batch)
    unique = list(dict.fromkeys(e.value for e in batch if e.column == column))
    if not unique:
        return unique, []
    placeholders = ", ".join("?" * len(unique))
    rows = db.execute(
        f"""
        UPDATE jobs SET callbacks = callbacks + 1, updated_at = ?1,
            due_at = CASE
                WHEN leased = 1 THEN due_at
                WHEN due_at IS NULL
                    OR due_at > MAX(?1, COALESCE(polled_at, 0) + ?2)
                THEN MAX(?1, COALESCE(polled_at, 0) + ?2)
                ELSE due_at END
        WHERE {column} IN ({placeholders}) AND state IN {_ACTIVE_SQL}
        RETURNING {returning}
        """,  # noqa: S608 - placeholders and fixed column names only
        [now, gap, *unique],
    ).fetchall()
    return unique, rows


# The columns of a brief note (CallbackNote), in its order.
_BRIEF = "id, state, due_at, vidgo_task_id"


def _note_callbacks_brief(
    db: sqlite3.Connection, batch: Sequence[_QueuedCallback]
) -> dict[tuple[str, str], JobRecord | CallbackNote]:
    """:func:`_note_callbacks` answering only each job's :data:`CallbackNote`.

    The listener needs no more, and decoding whole records was most of the batch's work.
    """
    found: dict[tuple[str, str], JobRecord | CallbackNote] = {}
    states = _STATES
    for column in ("callback_key", "callback_token_hash"):
        unique, rows = _update_callbacks(db, batch, column, f"{_BRIEF}, {column}")
        if not unique:
            continue
        for job_id, state, due_at, task_id, value in rows:
            found[(column, value)] = (job_id, states[state], due_at, task_id)
        if len(rows) < len(unique):
            # Finished jobs are answered unchanged; unknown ones stay absent.
            missing = [v for v in unique if (column, v) not in found]
            marks = ", ".join("?" * len(missing))
            for job_id, state, due_at, task_id, value in db.execute(
                f"SELECT {_BRIEF}, {column} FROM jobs WHERE {column} IN ({marks})",  # noqa: S608
                missing,
            ):
                found[(column, value)] = (job_id, states[state], due_at, task_id)
    for entry in batch:
        if entry.task_hint is None:
            continue
        noted = found.get((entry.column, entry.value))
        if isinstance(noted, tuple) and noted[1] is JobState.ACCEPTED and noted[3] is None:
            # Rare: the job never learned its task id (a submit answer was lost).
            db.execute(
                "UPDATE jobs SET task_hint = ? WHERE id = ? AND vidgo_task_id IS NULL",
                (entry.task_hint, noted[0]),
            )
    return found


def _note_callbacks(
    db: sqlite3.Connection, batch: Sequence[_QueuedCallback]
) -> dict[tuple[str, str], JobRecord | CallbackNote]:
    """Store a batch of callbacks in one transaction; the job each one names, if any."""
    found: dict[tuple[str, str], JobRecord | CallbackNote] = {}
    for column in ("callback_key", "callback_token_hash"):
        unique, rows = _update_callbacks(db, batch, column, ", ".join(_COLUMNS))
        if not unique:
            continue
        for row in rows:
            job = _row_to_job(row)
            found[(column, str(getattr(job, column)))] = job
        missing = [v for v in unique if (column, v) not in found]
        if missing:
            # Finished jobs are returned unchanged; unknown ones stay absent.
            marks = ", ".join("?" for _ in missing)
            for job in _fetch_many(db, f"WHERE {column} IN ({marks})", missing):
                found[(column, str(getattr(job, column)))] = job
    for entry in batch:
        hinted = found.get((entry.column, entry.value))
        if (
            entry.task_hint is None
            or not isinstance(hinted, JobRecord)
            or hinted.state is not JobState.ACCEPTED
            or hinted.vidgo_task_id is not None
        ):
            continue
        # Rare: the job never learned its task id (a submit answer was lost).
        db.execute(
            "UPDATE jobs SET task_hint = ? WHERE id = ? AND vidgo_task_id IS NULL",
            (entry.task_hint, hinted.id),
        )
        found[(entry.column, entry.value)] = replace(hinted, task_hint=entry.task_hint)
    return found


class SqliteJobStore(JobStore):
    """Jobs in one SQLite file."""

    def __init__(self, path: Path | str, *, busy_timeout_ms: int = 5000) -> None:
        self._path = Path(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._conn: aiosqlite.Connection | None = None
        # Callback batches waiting for the thread, oldest first; the last one takes new
        # callbacks until it is full or a flusher takes it.
        self._callback_batches: deque[_CallbackBatch] = deque()
        # Tasks storing callback batches: at most _FLUSHERS at once, so that the next batch
        # is already queued for the thread while the previous one is being written.
        self._callback_flushers: set[asyncio.Task[None]] = set()
        # Versions the last open() applied (the ``migrate`` command reports them).
        self.applied_migrations: list[int] = []
        # Functions sent to the connection's thread so far (each is one round trip).
        self.thread_hops = 0

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @property
    def conn(self) -> aiosqlite.Connection:
        """The open connection (for tests and maintenance commands)."""
        if self._conn is None:
            raise RuntimeError("store is not open")
        return self._conn

    async def open(self, *, read_only: bool = False) -> None:
        """Create the folder and file if needed, set pragmas and migrate.

        ``read_only`` (the offline ``jobs`` command): open an existing file without writing
        anything, not even a migration; a database behind this version's schema is refused
        with :class:`OutdatedSchema` instead of being read wrongly.
        """
        if read_only:
            await self._open_read_only()
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(self._path, isolation_level=None)
        try:
            await conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            await conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode survives a killed process; only an OS crash can lose the
            # last commits, and every job is then resumed from an earlier state.
            await conn.execute("PRAGMA synchronous = NORMAL")
            await conn.execute("PRAGMA foreign_keys = ON")
            self.applied_migrations = await migrate(conn)
        except BaseException:
            await conn.close()
            raise
        self._conn = conn

    async def _open_read_only(self) -> None:
        uri = f"{self._path.resolve().as_uri()}?mode=ro"
        conn = await aiosqlite.connect(uri, uri=True, isolation_level=None)
        try:
            await conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            try:
                async with conn.execute("SELECT MAX(version) FROM schema_migrations") as cur:
                    row = await cur.fetchone()
            except sqlite3.OperationalError:
                row = None
            have = int(row[0]) if row and row[0] is not None else 0
            want = max(m.version for m in available_migrations())
            if have < want:
                raise OutdatedSchema(have, want)
        except BaseException:
            await conn.close()
            raise
        self._conn = conn

    async def close(self) -> None:
        """Wait for pending callback writes, then close (after every queued function)."""
        if self._conn is None:
            return
        if self._callback_flushers:
            await asyncio.gather(*self._callback_flushers, return_exceptions=True)
        conn, self._conn = self._conn, None
        await conn.close()

    # --- one hop per operation ------------------------------------------------------------

    async def _run(self, work: Work[_T]) -> _T:
        """Run ``work`` with the raw connection in the connection's thread: one hop.

        aiosqlite runs each queued function in its thread, in order; ``_execute`` is the
        one entry point that takes an arbitrary function (the public ones take one SQL
        statement each).
        """
        conn = self.conn
        execute = cast(
            "Callable[[Work[_T], sqlite3.Connection], Awaitable[_T]]",
            conn._execute,  # aiosqlite queues the function into its thread
        )
        self.thread_hops += 1
        return await execute(work, conn._conn)  # the sqlite3 connection it wraps

    async def _write(self, work: Work[_T]) -> _T:
        """Run ``work`` as one ``BEGIN IMMEDIATE`` … ``COMMIT`` transaction, in one hop."""
        return await self._run(functools.partial(_in_transaction, work))

    # --- jobs -----------------------------------------------------------------------------

    async def admit(
        self,
        new: NewJob,
        now: float,
        *,
        submit_lease_until: float,
        owner: str | None = None,
        limits: AdmissionLimits | None = None,
    ) -> AdmitResult:
        """See :meth:`JobStore.admit`."""

        def work(db: sqlite3.Connection) -> AdmitResult:
            if limits is not None and limits.any and new.guild_id is not None:
                # Inside BEGIN IMMEDIATE: no other admit can count in between.
                refused = _limit_reached(db, new.guild_id, new.requester_id, limits, now)
                if refused is not None:
                    raise refused
            cached = _cache_get(db, new.source_key)
            if cached is not None and cached.is_pointer:
                cached = None  # nothing to post: the job asks Vidgo (see CachedResult)
            leader: JobRecord | None = None
            if cached is None:
                found = _fetch_many(
                    db,
                    f"WHERE source_key = ? AND leader_id IS NULL AND state IN {_ACTIVE_SQL} "
                    "ORDER BY created_at LIMIT 1",
                    (new.source_key,),
                )
                leader = found[0] if found else None
            if leader is not None and is_redundant(new, leader):
                return AdmitResult(leader, Admission.DROPPED)
            if cached is not None:
                admission = Admission.CACHED
                state, outcome, due_at, leased = JobState.SUCCEEDED, JobState.SUCCEEDED, now, 0
            elif leader is not None:
                admission = Admission.JOINED
                state, outcome, due_at, leased = JobState.SUBMITTED, None, None, 0
            else:
                admission = Admission.NEW
                state, outcome, due_at, leased = (
                    JobState.ACCEPTED,
                    None,
                    submit_lease_until,
                    1,
                )
            db.execute(
                """
                INSERT INTO jobs (
                    id, kind, source_kind, source_key, model, requester_id, channel_id,
                    guild_id, source_task_id, source_audio_id, source_url, options,
                    status_message_id, reply_to_message_id, vidgo_task_id, leader_id, state,
                    outcome, due_at, leased, deadline_at, callback_token_hash, result, track,
                    created_at, updated_at, finished_at, result_channel_id, dm_on_completion,
                    lease_id, lease_owner, callback_key
                ) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
                          ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                (
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
                    _dumps(cached.track if cached.track is not None else new.track)
                    if cached
                    else _dumps(leader.track if leader and leader.track else new.track),
                    now,
                    now,
                    now if cached else None,
                    new.result_channel_id,
                    int(new.dm_on_completion),
                    # A new job is leased to its admitter, who submits it at once.
                    1 if leased else 0,
                    owner if leased else None,
                    new.callback_key if admission is Admission.NEW else None,
                ),
            )
            job = _fetch_job(db, new.id)
            assert job is not None  # noqa: S101 - inserted in this transaction
            return AdmitResult(job, admission)

        return await self._write(work)

    async def get(self, job_id: str) -> JobRecord | None:
        """See :meth:`JobStore.get`."""
        return await self._run(functools.partial(_fetch_job, job_id=job_id))

    async def get_by_vidgo_task(self, vidgo_task_id: str) -> JobRecord | None:
        """See :meth:`JobStore.get_by_vidgo_task`."""
        found = await self._run(
            functools.partial(_fetch_many, where="WHERE vidgo_task_id = ?", params=(vidgo_task_id,))
        )
        return found[0] if found else None

    async def transition(
        self,
        job_id: str,
        target: JobState,
        now: float,
        *,
        expect: Collection[JobState] | None = None,
        lease: int | None = None,
        **changes: Any,
    ) -> JobRecord:
        """See :meth:`JobStore.transition`."""
        parts, params = _assignments(changes)
        extra = ""
        params_extra: list[Any] = []
        if target.awaits_delivery:
            extra = ", outcome = ?, finished_at = COALESCE(finished_at, ?)"
            params_extra = [target.value, now]
        elif target is JobState.CANCELLED:
            extra = (
                f", outcome = ?, finished_at = COALESCE(finished_at, ?), due_at = NULL, {_RELEASE}"
            )
            params_extra = [target.value, now]
        set_sql = ", ".join(["state = ?", "updated_at = ?", *parts])
        sql = f"UPDATE jobs SET {set_sql}{extra} WHERE id = ?"  # noqa: S608

        def work(db: sqlite3.Connection) -> JobRecord:
            job = _fetch_job(db, job_id)
            if job is None:
                raise JobNotFound(job_id)
            _check_lease(job, lease)
            if expect is not None and job.state not in expect:
                raise InvalidTransition(job_id, job.state, target)
            check_transition(job_id, job.state, target)
            db.execute(sql, (target.value, now, *params, *params_extra, job_id))
            updated = _fetch_job(db, job_id)
            assert updated is not None  # noqa: S101
            return updated

        return await self._write(work)

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
        lease: int | None = None,
        lease_until: float | None = None,
        owner: str | None = None,
    ) -> list[JobRecord]:
        """See :meth:`JobStore.record_outcome`."""
        if not target.awaits_delivery:
            raise ValueError(f"{target} is not an outcome")
        keep = lease_until is not None
        result_json = _dumps(result)
        track_json = _dumps(track)

        def work(db: sqlite3.Connection) -> list[JobRecord]:
            job = _fetch_job(db, job_id)
            if job is None:
                raise JobNotFound(job_id)
            if not job.state.is_active:
                return []
            _check_lease(job, lease)
            check_transition(job_id, job.state, target)
            waiting = _fetch_many(
                db,
                f"WHERE leader_id = ? AND state IN {_ACTIVE_SQL} ORDER BY created_at",
                (job_id,),
            )
            ids = [job_id, *(f.id for f in waiting)]
            for other in waiting:
                check_transition(other.id, other.state, target)
            placeholders = ", ".join("?" for _ in ids)
            db.execute(
                f"""
                UPDATE jobs SET state = ?, outcome = ?, result = ?,
                    track = COALESCE(?, track), last_error = ?, error_kind = ?,
                    due_at = ?, leased = ?, lease_owner = ?, lease_id = lease_id + ?,
                    finished_at = ?, updated_at = ?, unconfirmed_submit_at = NULL,
                    task_hint = NULL
                WHERE id IN ({placeholders})
                """,  # noqa: S608 - placeholders only
                (
                    target.value,
                    target.value,
                    result_json,
                    track_json,
                    last_error,
                    error_kind,
                    lease_until if keep else now,
                    1 if keep else 0,
                    owner if keep else None,
                    # Kept for immediate delivery: a fresh claim of every changed job.
                    1 if keep else 0,
                    now,
                    now,
                    *ids,
                ),
            )
            if cache is not None:
                _cache_put(db, cache)
            changed = _fetch_many(db, f"WHERE id IN ({placeholders})", ids)
            order = {jid: i for i, jid in enumerate(ids)}
            return sorted(changed, key=lambda j: order[j.id])

        return await self._write(work)

    async def cancel(self, job_id: str, now: float) -> JobRecord:
        """See :meth:`JobStore.cancel`."""

        def work(db: sqlite3.Connection) -> JobRecord:
            job = _fetch_job(db, job_id)
            if job is None:
                raise JobNotFound(job_id)
            check_transition(job_id, job.state, JobState.CANCELLED)
            waiting = _fetch_many(
                db,
                f"WHERE leader_id = ? AND state IN {_ACTIVE_SQL} ORDER BY created_at",
                (job_id,),
            )
            # Free the unique task id and callback key before handing them over.
            db.execute(
                "UPDATE jobs SET state = 'cancelled', outcome = 'cancelled', due_at = NULL, "  # noqa: S608
                f"{_RELEASE}, vidgo_task_id = NULL, callback_token_hash = NULL, "
                "callback_key = NULL, task_hint = NULL, "
                "finished_at = COALESCE(finished_at, ?), updated_at = ? WHERE id = ?",
                (now, now, job_id),
            )
            if waiting:
                heir = waiting[0]
                # The heir takes the task, the callback key (so Vidgo's callback finds it)
                # and any unconfirmed submit: a submit still in flight for the old leader
                # may create the task, which the heir then adopts instead of paying again.
                db.execute(
                    "UPDATE jobs SET leader_id = NULL, state = ?, vidgo_task_id = ?, "
                    "callback_token_hash = ?, callback_key = ?, due_at = ?, leased = 0, "
                    "lease_owner = NULL, attempts = ?, polls = ?, callbacks = ?, "
                    "unconfirmed_submit_at = ?, task_hint = ?, polled_at = ?, "
                    "track = COALESCE(track, ?), updated_at = ? WHERE id = ?",
                    (
                        job.state.value,
                        job.vidgo_task_id,
                        job.callback_token_hash,
                        job.callback_key,
                        now if job.state is JobState.ACCEPTED else (job.due_at or now),
                        job.attempts,
                        job.polls,
                        job.callbacks,
                        job.unconfirmed_submit_at,
                        job.task_hint,
                        job.polled_at,
                        _dumps(job.track),
                        now,
                        heir.id,
                    ),
                )
                db.execute(
                    "UPDATE jobs SET leader_id = ?, updated_at = ? WHERE leader_id = ? AND id != ?",
                    (heir.id, now, job_id, heir.id),
                )
            cancelled = _fetch_job(db, job_id)
            assert cancelled is not None  # noqa: S101
            return cancelled

        return await self._write(work)

    async def update(
        self, job_id: str, now: float, *, lease: int | None = None, **changes: Any
    ) -> JobRecord:
        """See :meth:`JobStore.update`."""
        guard, guard_params = _lease_guard(lease)
        return await self._run(
            functools.partial(
                _set,
                job_id=job_id,
                now=now,
                changes=changes,
                guard=guard,
                guard_params=guard_params,
            )
        )

    async def expedite(self, job_id: str, now: float, **changes: Any) -> JobRecord:
        """See :meth:`JobStore.expedite`: one statement, guarded by ``leased = 0``."""
        return await self._run(
            functools.partial(
                _set,
                job_id=job_id,
                now=now,
                changes={**changes, "due_at": now},
                guard=" AND leased = 0",
            )
        )

    async def reschedule(
        self,
        job_id: str,
        now: float,
        due_at: float | None,
        *,
        seen_callbacks: int,
        lease: int | None = None,
        min_poll_gap: float = 0.0,
        **changes: Any,
    ) -> JobRecord:
        """See :meth:`JobStore.reschedule`."""
        changes.pop("due_at", None)
        guard, guard_params = _lease_guard(lease)
        return await self._run(
            functools.partial(
                _set,
                job_id=job_id,
                now=now,
                changes=changes,
                guard=guard,
                guard_params=guard_params,
                extra_sql=[
                    _RELEASE,
                    # A callback that came in meanwhile makes the job due as soon as the
                    # throttle on detail reads allows (polled_at may be set by this very
                    # write).
                    "due_at = CASE WHEN callbacks > ? "
                    "THEN MAX(?, COALESCE(?, polled_at, 0) + ?) ELSE ? END",
                ],
                extra_params=[seen_callbacks, now, changes.get("polled_at"), min_poll_gap, due_at],
            )
        )

    async def note_callback(
        self,
        now: float,
        *,
        callback_key: str | None = None,
        token_hash: str | None = None,
        task_hint: str | None = None,
        min_poll_gap: float = 0.0,
    ) -> JobRecord | None:
        """See :meth:`JobStore.note_callback`.

        Callbacks that arrive together are written together: each caller waits for its own
        row to be stored, but one transaction stores a whole batch (group commit), which
        keeps ingest fast under bursts without answering before the write. The callbacks
        that arrive while a batch is being stored make up the next batch.
        """
        noted = await self._queue_callback(
            now, callback_key, token_hash, task_hint, min_poll_gap, brief=False
        )
        assert not isinstance(noted, tuple)  # noqa: S101 - a record was asked for
        return noted

    async def note_callback_brief(
        self,
        now: float,
        *,
        callback_key: str | None = None,
        token_hash: str | None = None,
        task_hint: str | None = None,
        min_poll_gap: float = 0.0,
    ) -> CallbackNote | None:
        """:meth:`note_callback`, answering only the job's id, state, due time and task id.

        The same write; what the callback listener needs to answer, without decoding the
        whole record.
        """
        noted = await self._queue_callback(
            now, callback_key, token_hash, task_hint, min_poll_gap, brief=True
        )
        if isinstance(noted, JobRecord):  # it shared a batch with a caller of note_callback
            return (noted.id, noted.state, noted.due_at, noted.vidgo_task_id)
        return noted

    async def _queue_callback(
        self,
        now: float,
        callback_key: str | None,
        token_hash: str | None,
        task_hint: str | None,
        min_poll_gap: float,
        *,
        brief: bool,
    ) -> JobRecord | CallbackNote | None:
        if (callback_key is None) == (token_hash is None):
            raise ValueError("give exactly one of callback_key and token_hash")
        if callback_key is not None:
            key = ("callback_key", callback_key)
        else:
            assert token_hash is not None  # noqa: S101 - checked above
            key = ("callback_token_hash", token_hash)
        pending = self._callback_batches
        batch = pending[-1] if pending else None
        if batch is None or len(batch.entries) >= _CALLBACK_BATCH:
            batch = _CallbackBatch([], asyncio.get_running_loop().create_future())
            pending.append(batch)
        batch.entries.append(_QueuedCallback(key[0], key[1], now, task_hint, min_poll_gap))
        if not brief:
            batch.brief = False
        if len(self._callback_flushers) < _FLUSHERS:
            flusher = asyncio.create_task(self._flush_callbacks())
            self._callback_flushers.add(flusher)
            flusher.add_done_callback(self._callback_flushers.discard)
        found = await batch.done
        return found.get(key)

    async def _flush_callbacks(self) -> None:
        pending = self._callback_batches
        while pending:
            batch = pending.popleft()  # closed: later callbacks start the next batch
            work = _note_callbacks_brief if batch.brief else _note_callbacks
            try:
                found = await self._write(functools.partial(work, batch=batch.entries))
            except Exception as exc:
                batch.done.set_exception(exc)
                continue
            batch.done.set_result(found)

    async def next_due_at(self) -> float | None:
        """See :meth:`JobStore.next_due_at`."""

        def work(db: sqlite3.Connection) -> float | None:
            row = db.execute("SELECT MIN(due_at) FROM jobs").fetchone()
            return None if row is None or row[0] is None else float(row[0])

        return await self._run(work)

    async def claim_due(
        self, now: float, lease_until: float, limit: int, *, owner: str
    ) -> list[JobRecord]:
        """See :meth:`JobStore.claim_due`.

        A leased job's ``due_at`` is the end of its lease, so it is due only once its owner
        stopped renewing it.
        """

        def work(db: sqlite3.Connection) -> list[JobRecord]:
            due = _fetch_many(
                db,
                "WHERE due_at IS NOT NULL AND due_at <= ? ORDER BY due_at LIMIT ?",
                (now, limit),
            )
            if not due:
                return []
            ids = [job.id for job in due]
            placeholders = ", ".join("?" for _ in ids)
            db.execute(
                "UPDATE jobs SET leased = 1, lease_owner = ?, lease_id = lease_id + 1, "  # noqa: S608
                f"due_at = ? WHERE id IN ({placeholders})",
                (owner, lease_until, *ids),
            )
            return [
                replace(
                    job,
                    leased=True,
                    lease_id=job.lease_id + 1,
                    lease_owner=owner,
                    due_at=lease_until,
                )
                for job in due
            ]

        return await self._write(work)

    async def renew_leases(self, owner: str, lease_until: float, job_ids: Collection[str]) -> int:
        """See :meth:`JobStore.renew_leases`."""
        ids = list(job_ids)
        if not ids:
            return 0
        marks = ", ".join("?" for _ in ids)

        def work(db: sqlite3.Connection) -> int:
            return db.execute(
                "UPDATE jobs SET due_at = ? WHERE leased = 1 AND lease_owner = ? "  # noqa: S608
                f"AND id IN ({marks})",
                (lease_until, owner, *ids),
            ).rowcount

        return await self._run(work)

    # --- processes --------------------------------------------------------------------------

    async def register_instance(self, instance: InstanceInfo) -> None:
        """See :meth:`JobStore.register_instance`."""

        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO instances (id, pid, host, started_at, heartbeat_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "heartbeat_at = excluded.heartbeat_at",
                (
                    instance.id,
                    instance.pid,
                    instance.host,
                    instance.started_at,
                    instance.heartbeat_at,
                ),
            )

        await self._run(work)

    async def heartbeat_instance(self, instance_id: str, now: float) -> None:
        """See :meth:`JobStore.heartbeat_instance`."""

        def work(db: sqlite3.Connection) -> None:
            db.execute("UPDATE instances SET heartbeat_at = ? WHERE id = ?", (now, instance_id))

        await self._run(work)

    async def list_instances(self) -> list[InstanceInfo]:
        """See :meth:`JobStore.list_instances`."""

        def work(db: sqlite3.Connection) -> list[InstanceInfo]:
            rows = db.execute(
                "SELECT id, pid, host, started_at, heartbeat_at FROM instances ORDER BY started_at"
            ).fetchall()
            return [InstanceInfo(r[0], int(r[1]), r[2], float(r[3]), float(r[4])) for r in rows]

        return await self._run(work)

    async def release_orphaned_leases(
        self, now: float, *, stale_before: float, dead: Collection[str] = ()
    ) -> int:
        """See :meth:`JobStore.release_orphaned_leases`."""
        gone = list(dead)
        marks = ", ".join("?" for _ in gone) or "NULL"

        def work(db: sqlite3.Connection) -> int:
            db.execute(
                f"DELETE FROM instances WHERE heartbeat_at < ? OR id IN ({marks})",  # noqa: S608
                (stale_before, *gone),
            )
            return db.execute(
                f"UPDATE jobs SET {_RELEASE}, due_at = ? WHERE leased = 1 AND "  # noqa: S608
                "(lease_owner IS NULL OR lease_owner NOT IN (SELECT id FROM instances))",
                (now,),
            ).rowcount

        return await self._write(work)

    async def unregister_instance(self, instance_id: str, now: float) -> int:
        """See :meth:`JobStore.unregister_instance`."""

        def work(db: sqlite3.Connection) -> int:
            count = db.execute(
                f"UPDATE jobs SET {_RELEASE}, due_at = ? "  # noqa: S608 - a fixed fragment
                "WHERE leased = 1 AND lease_owner = ?",
                (now, instance_id),
            ).rowcount
            db.execute("DELETE FROM instances WHERE id = ?", (instance_id,))
            return count

        return await self._write(work)

    # --- waking other processes ---------------------------------------------------------------

    async def listen_for_due(self, on_due: Callable[[float], None]) -> None:
        """See :meth:`JobStore.listen_for_due`: nothing to do, one process owns the file."""

    async def stop_listening(self) -> None:
        """See :meth:`JobStore.stop_listening`: nothing listens."""

    # --- secrets ------------------------------------------------------------------------------

    async def secret(self, name: str) -> bytes:
        """See :meth:`JobStore.secret`."""
        value = secrets.token_hex(32)

        def work(db: sqlite3.Connection) -> str:
            db.execute(
                "INSERT INTO app_secrets (name, value, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO NOTHING",
                (name, value, time.time()),
            )
            row = db.execute("SELECT value FROM app_secrets WHERE name = ?", (name,)).fetchone()
            assert row is not None  # noqa: S101 - inserted above if absent
            return str(row[0])

        return bytes.fromhex(await self._write(work))

    async def latest_posted(self, source_key: str, guild_id: int | None) -> JobRecord | None:
        """See :meth:`JobStore.latest_posted` (reads ``jobs_source_posted``, V6)."""
        found = await self._run(
            functools.partial(
                _fetch_many,
                where="WHERE source_key = ? AND guild_id IS ? AND state = 'delivered' "
                "AND outcome = 'succeeded' AND result_message_id IS NOT NULL "
                "ORDER BY finished_at DESC LIMIT 1",
                params=(source_key, guild_id),
            )
        )
        return found[0] if found else None

    async def followers(self, leader_id: str) -> list[JobRecord]:
        """See :meth:`JobStore.followers`."""
        return await self._run(
            functools.partial(
                _fetch_many, where="WHERE leader_id = ? ORDER BY created_at", params=(leader_id,)
            )
        )

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
            clauses.append("guild_id = ?")
            params.append(guild_id)
        if requester_id is not None:
            clauses.append("requester_id = ?")
            params.append(requester_id)
        if states is not None:
            values = [JobState(s).value for s in states]
            if not values:
                return []
            clauses.append(f"state IN ({', '.join('?' for _ in values)})")
            params.extend(values)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        order = "ASC" if oldest_first else "DESC"
        return await self._run(
            functools.partial(
                _fetch_many,
                where=f"{where} ORDER BY created_at {order} LIMIT ?",
                params=[*params, limit],
            )
        )

    async def count_by_state(self) -> dict[JobState, int]:
        """See :meth:`JobStore.count_by_state`."""

        def work(db: sqlite3.Connection) -> dict[JobState, int]:
            rows = db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
            return {JobState(state): int(count) for state, count in rows}

        return await self._run(work)

    # --- results cache --------------------------------------------------------------------

    async def cache_get(self, source_key: str) -> CachedResult | None:
        """See :meth:`JobStore.cache_get`."""
        return await self._run(functools.partial(_cache_get, source_key=source_key))

    async def cache_put(self, entry: CachedResult) -> None:
        """See :meth:`JobStore.cache_put`."""
        await self._write(functools.partial(_cache_put, entry=entry))

    async def cache_update_result(
        self, source_key: str, vidgo_task_id: str | None, result: Mapping[str, Any]
    ) -> bool:
        """See :meth:`JobStore.cache_update_result`."""
        text = _dumps(result)

        def work(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                "UPDATE results_cache SET result = ? WHERE source_key = ? AND vidgo_task_id IS ?",
                (text, source_key, vidgo_task_id),
            )
            return cur.rowcount > 0

        return await self._write(work)

    async def cache_forget(self, source_key: str, vidgo_task_id: str | None) -> bool:
        """See :meth:`JobStore.cache_forget`."""

        def work(db: sqlite3.Connection) -> bool:
            # A once-only separation keeps its pointer (see prune_cache).
            cur = db.execute(_POINT_CACHE_OF_TASK, (_POINTER, source_key, vidgo_task_id, _POINTER))
            if cur.rowcount > 0:
                return True
            cur = db.execute(_DELETE_CACHE_OF_TASK, (source_key, vidgo_task_id))
            return cur.rowcount > 0

        return await self._write(work)

    # --- per-guild settings ---------------------------------------------------------------

    async def get_guild_settings(self, guild_id: int) -> dict[str, Any]:
        """See :meth:`JobStore.get_guild_settings`."""

        def work(db: sqlite3.Connection) -> dict[str, Any]:
            row = db.execute(
                "SELECT settings FROM guild_settings WHERE guild_id = ?", (guild_id,)
            ).fetchone()
            return (_loads(row[0]) or {}) if row else {}

        return await self._run(work)

    async def put_guild_settings(
        self, guild_id: int, settings: Mapping[str, Any], now: float
    ) -> None:
        """See :meth:`JobStore.put_guild_settings`."""
        text = _dumps(settings)

        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO guild_settings (guild_id, settings, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (guild_id) DO UPDATE SET settings = excluded.settings, "
                "updated_at = excluded.updated_at",
                (guild_id, text, now),
            )

        await self._write(work)

    # --- operations: health, retention ----------------------------------------------------

    async def ping(self) -> None:
        """See :meth:`JobStore.ping`."""

        def work(db: sqlite3.Connection) -> None:
            db.execute("SELECT 1").fetchone()

        await self._run(work)

    async def oldest_unfinished_created_at(self) -> float | None:
        """See :meth:`JobStore.oldest_unfinished_created_at`.

        One ``MIN`` per unfinished state, each a single lookup in ``jobs_state_created``
        (V4), instead of scanning every unfinished job (0.1 ms instead of 40 ms at 200,000
        jobs, ``bench/operations.py``).
        """
        states = [state.value for state in JobState if state not in FINAL_STATES]
        parts = " UNION ALL ".join(
            "SELECT MIN(created_at) AS m FROM jobs WHERE state = ?" for _ in states
        )

        def work(db: sqlite3.Connection) -> float | None:
            row = db.execute(f"SELECT MIN(m) FROM ({parts})", states).fetchone()  # noqa: S608
            return None if row is None or row[0] is None else float(row[0])

        return await self._run(work)

    async def prune_finished(self, before: float, *, batch: int = 1000) -> int:
        """See :meth:`JobStore.prune_finished`.

        A job is deleted only once no row names it as its leader: followers go first and
        their leader in a later pass, so ``leader_id`` never points at a deleted row (the
        foreign key would refuse it), however a batch cuts a group of jobs that ended
        together. A leader whose follower is not prunable stays with it.
        """
        sql = f"""
            DELETE FROM jobs WHERE id IN (
                SELECT p.id FROM jobs AS p
                WHERE p.state IN {_FINAL_SQL}
                  AND p.finished_at IS NOT NULL AND p.finished_at < :before
                  AND NOT EXISTS (SELECT 1 FROM jobs AS f WHERE f.leader_id = p.id)
                ORDER BY p.finished_at LIMIT :batch
            )
        """  # noqa: S608 - fixed SQL, values are parameters

        def work(db: sqlite3.Connection) -> int:
            return db.execute(sql, {"before": before, "batch": batch}).rowcount

        total = 0
        while True:
            # One transaction per batch: other work gets the database in between.
            deleted = await self._write(work)
            total += deleted
            if deleted == 0:
                return total

    async def prune_cache(self, before: float) -> int:
        """See :meth:`JobStore.prune_cache`."""

        def work(db: sqlite3.Connection) -> int:
            # The only record of a once-only separation's task keeps its task id (a pointer)
            # and loses its links; every other cached result goes.
            pointed = db.execute(_POINT_OLD_CACHE, (_POINTER, before, _POINTER)).rowcount
            deleted = db.execute(_PRUNE_CACHE, (before,)).rowcount
            return pointed + deleted

        return await self._write(work)

    async def checkpoint(self) -> bool:
        """See :meth:`JobStore.checkpoint`: ``PRAGMA wal_checkpoint(TRUNCATE)``."""

        def work(db: sqlite3.Connection) -> bool:
            row = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            # (busy, frames in the log, frames checkpointed); busy = 1: readers blocked it.
            return row is not None and int(row[0]) == 0

        return await self._run(work)

    # --- per-member limits ----------------------------------------------------------------

    # --- operator flags ---------------------------------------------------------------------

    async def get_flag(self, name: str) -> bool:
        """See :meth:`JobStore.get_flag`."""

        def work(db: sqlite3.Connection) -> bool:
            row = db.execute("SELECT value FROM operator_flags WHERE name = ?", (name,)).fetchone()
            return bool(row and row[0])

        return await self._run(work)

    async def set_flag(self, name: str, value: bool, now: float) -> bool:
        """See :meth:`JobStore.set_flag` (inside ``BEGIN IMMEDIATE``: one writer at a time)."""

        def work(db: sqlite3.Connection) -> bool:
            row = db.execute("SELECT value FROM operator_flags WHERE name = ?", (name,)).fetchone()
            if bool(row and row[0]) is value:
                return False
            db.execute(
                "INSERT INTO operator_flags (name, value, changed_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value, "
                "changed_at = excluded.changed_at",
                (name, int(value), now),
            )
            return True

        return await self._write(work)

    async def limit_reached(
        self, guild_id: int, requester_id: int, limits: AdmissionLimits, now: float
    ) -> LimitReached | None:
        """See :meth:`JobStore.limit_reached`."""
        if not limits.any:
            return None
        return await self._run(
            functools.partial(
                _limit_reached,
                guild_id=guild_id,
                requester_id=requester_id,
                limits=limits,
                now=now,
            )
        )

    # --- progress of unfinished jobs --------------------------------------------------------

    async def queue_position(self, guild_id: int, job_id: str) -> tuple[int, int] | None:
        """See :meth:`JobStore.queue_position` (reads the partial index of unfinished jobs)."""

        def work(db: sqlite3.Connection) -> tuple[int, int] | None:
            row = db.execute(QUEUE_POSITION_SQL, (job_id, guild_id)).fetchone()
            if row is None or not row[1]:
                return None
            return int(row[0]), int(row[1])

        return await self._run(work)

    async def recent_durations(self, model: str, limit: int = 50) -> list[float]:
        """See :meth:`JobStore.recent_durations` (reads ``jobs_model_succeeded``)."""

        def work(db: sqlite3.Connection) -> list[float]:
            rows = db.execute(RECENT_DURATIONS_SQL, (model, limit)).fetchall()
            return [max(0.0, float(row[0])) for row in rows]

        return await self._run(work)

    # --- readiness --------------------------------------------------------------------------

    async def check_writable(self, now: float) -> None:
        """See :meth:`JobStore.check_writable`: rewrites the one row of ``health_probe`` (V5).

        Through a connection of its own, opened the way the next start will open the file
        (``mode=rw``: never creates it), in a write transaction of its own (``BEGIN
        IMMEDIATE`` ... ``COMMIT``). So the answer covers the write lock, the write-ahead log
        and the commit, and also a file made read-only or replaced under the running bot:
        the bot's open connection would go on writing to it, but no restart, backup or
        maintenance command could.
        """
        uri = f"{self._path.resolve().as_uri()}?mode=rw"
        conn = await aiosqlite.connect(uri, uri=True, isolation_level=None)
        try:
            await conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            await conn.execute("BEGIN IMMEDIATE")
            cur = await conn.execute(
                "INSERT INTO health_probe (id, written_at) VALUES (1, ?) "
                "ON CONFLICT (id) DO UPDATE SET written_at = excluded.written_at",
                (now,),
            )
            await cur.close()
            await conn.execute("COMMIT")
        finally:
            # Closing rolls back whatever a failure left open and frees the write lock.
            await conn.close()


def integrity_ok(path: Path | str) -> bool:
    """``PRAGMA integrity_check`` on a database file (used by tests and the soak)."""
    conn = sqlite3.connect(path)
    try:
        row = conn.execute("PRAGMA integrity_check").fetchone()
    finally:
        conn.close()
    return bool(row and row[0] == "ok")
