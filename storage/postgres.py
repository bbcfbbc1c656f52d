"""PostgreSQL backend of :class:`storage.base.JobStore` (asyncpg, one pool per process).

Several bot processes share one database, so where the SQLite backend relies on one writer
at a time (``BEGIN IMMEDIATE``), this backend says what it locks:

* a read-modify-write selects its job row ``FOR UPDATE`` and checks the state machine
  (:func:`storage.jobstate.check_transition`) and the caller's lease inside the same
  transaction;
* :meth:`PostgresJobStore.claim_due` locks due rows ``FOR UPDATE SKIP LOCKED``, so
  processes claiming at the same moment get disjoint jobs and never wait on each other;
  every claim bumps the job's ``lease_id`` (the fencing token) and names its owner;
* a worker's single-row write carries ``AND leased AND lease_id = $n`` in its ``WHERE``,
  so it lands only while the job still holds the worker's lease;
* :meth:`PostgresJobStore.admit` takes transaction advisory locks on the server (only when
  it has a daily cap) and on the requester (guild, member) before counting their limits,
  and on the source key before looking for an identical job in flight, so two processes
  can neither both pass a cap nor both become the leader of one source; the leader it
  joins is locked ``FOR SHARE`` so that its outcome cannot be recorded between the look-up
  and the insert (a follower would wait forever);
* callback batches lock their rows in id order before changing them, so two processes
  storing overlapping batches cannot deadlock;
* :meth:`PostgresJobStore.release_orphaned_leases` first reads which owners are gone, then
  releases only their leases: a lease taken meanwhile by a process that registered after the
  read is never mistaken for an orphan.

**Waking other processes.** A write that makes a job due sooner than "later" (an admission,
a callback, a released lease, an expedite, an outcome owed to a channel, an heir after a
cancel) sends ``pg_notify`` on a channel named for the schema, inside its transaction, so it
is delivered when (and only if) the write commits. :meth:`PostgresJobStore.listen_for_due`
keeps one extra connection that ``LISTEN``\\s there and hands each due time to the process's
dispatcher. A notification carries the due time and a token naming the sending store; a
store ignores its own (its process woke its dispatcher itself).

Every statement is a module constant or built by one small function next to it, so a new
condition is added in one place. Times are double precision epoch seconds, JSON columns the
``json`` type (kept verbatim), Discord ids bigint.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import random
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any, TypeAlias, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from storage.base import (
    UPDATABLE_COLUMNS,
    CallbackNote,
    JobNotFound,
    JobStore,
    LeaseLost,
    first_limit_reached,
    is_redundant,
)
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
from storage.sqlite import OutdatedSchema

log = logging.getLogger(__name__)

_T = TypeVar("_T")
Conn: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"
ListenerConnection: TypeAlias = "asyncpg.Connection[asyncpg.Record]"

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
_JSON_COLUMNS = frozenset({"options", "result", "track"})
# The two columns a callback can name its job by: the key its token is derived from, or (for
# jobs recorded before keys existed) the SHA-256 of a random token.
_CALLBACK_COLUMNS = ("callback_key", "callback_token_hash")
_CALLBACK_BATCH = 256
# Callback batches in flight at once, each on its own pooled connection: the next batch is
# sent while the previous one is still being written (more made the batches smaller, which
# cost PostgreSQL more per callback than it saved in waiting, in bench/ingest.py).
_FLUSHERS = 2
_DAY = 86400.0
# A transaction that lost a deadlock or a serialization conflict is run again from the
# start (it was rolled back whole); past this many tries the error is the caller's.
_TX_ATTEMPTS = 5
# PostgreSQL refuses a channel name of 64 bytes or more (NAMEDATALEN).
_MAX_CHANNEL = 63
# What a listener hands its dispatcher after it (re)connected late: "something may be due
# already" (the epoch is before any planned time, so the dispatcher looks at once).
WAKE_AFTER_GAP = 0.0


def _state_list(states: Collection[JobState]) -> str:
    """A fixed SQL list of state literals (from the enum, never from input)."""
    return "(" + ", ".join(f"'{state.value}'" for state in sorted(states)) + ")"


_ACTIVE_SQL = _state_list(ACTIVE_STATES)
_FINAL_SQL = _state_list(FINAL_STATES)
_COLS = ", ".join(_COLUMNS)

# --- statements ---------------------------------------------------------------------------
# Fixed SQL only: values are always $n parameters; the f-strings insert column and state
# lists defined above.

SELECT_JOB = f"SELECT {_COLS} FROM jobs WHERE id = $1"  # noqa: S608
LOCK_JOB = f"{SELECT_JOB} FOR UPDATE"
SELECT_BY_TASK = f"SELECT {_COLS} FROM jobs WHERE vidgo_task_id = $1"  # noqa: S608
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
    created_at, updated_at, finished_at, result_channel_id, dm_on_completion,
    lease_id, lease_owner, callback_key
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
          $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32)
RETURNING {_COLS}
"""  # noqa: S608
# One statement, each part on an index (jobs_requester, jobs_requester_active).
# A request counts towards the daily quota and the server's daily cap unless it ended
# failed or expired (Vidgo charged nothing and the member got nothing).
_COUNTS_TODAY_SQL = "(outcome IS NULL OR outcome NOT IN ('failed', 'expired'))"
# $4: the server's daily cap; the server-wide count is made only when one is set.
MEMBER_USAGE = f"""
SELECT
    (SELECT COUNT(*) FROM jobs
     WHERE guild_id = $1 AND requester_id = $2 AND created_at >= $3 AND {_COUNTS_TODAY_SQL}),
    (SELECT COUNT(*) FROM jobs
     WHERE guild_id = $1 AND requester_id = $2 AND state IN {_ACTIVE_SQL}),
    (SELECT MAX(created_at) FROM jobs WHERE guild_id = $1 AND requester_id = $2),
    CASE WHEN $4::bigint > 0 THEN
        (SELECT COUNT(*) FROM jobs
         WHERE guild_id = $1 AND created_at >= $3 AND {_COUNTS_TODAY_SQL})
    ELSE 0 END
"""  # noqa: S608

# Operator flags (V8). The upsert returns a row only when it inserted or really changed the
# value: ON CONFLICT locks the row, so of two processes setting it at once one sees a change.
GET_FLAG = "SELECT value FROM operator_flags WHERE name = $1"
SET_FLAG = """
INSERT INTO operator_flags (name, value, changed_at) VALUES ($1, $2, $3)
ON CONFLICT (name) DO UPDATE SET value = excluded.value, changed_at = excluded.changed_at
    WHERE operator_flags.value IS DISTINCT FROM excluded.value
RETURNING name
"""
CLEAR_FLAG = """
UPDATE operator_flags SET value = false, changed_at = $2 WHERE name = $1 AND value
RETURNING name
"""

# Outcomes and cancellation. With $7 (kept for immediate delivery) every changed job is
# leased afresh to $8: a new lease id, as a claim would give it.
RECORD_OUTCOME = f"""
UPDATE jobs SET state = $1, outcome = $1, result = $2, track = COALESCE($3, track),
    last_error = $4, error_kind = $5, due_at = $6, leased = $7, lease_owner = $8,
    lease_id = lease_id + CASE WHEN $7 THEN 1 ELSE 0 END, finished_at = $9,
    updated_at = $9, unconfirmed_submit_at = NULL, task_hint = NULL
WHERE id = ANY($10::text[])
RETURNING {_COLS}
"""  # noqa: S608
CANCEL_JOB = """
UPDATE jobs SET state = 'cancelled', outcome = 'cancelled', due_at = NULL, leased = FALSE,
    lease_owner = NULL, vidgo_task_id = NULL, callback_token_hash = NULL, callback_key = NULL,
    task_hint = NULL, finished_at = COALESCE(finished_at, $2), updated_at = $2
WHERE id = $1
"""
# The heir takes the task, the callback key (so Vidgo's callback finds it) and any
# unconfirmed submit: a submit still in flight for the old leader may create the task, which
# the heir then adopts instead of paying again.
CROWN_HEIR = """
UPDATE jobs SET leader_id = NULL, state = $2, vidgo_task_id = $3, callback_token_hash = $4,
    callback_key = $5, due_at = $6, leased = FALSE, lease_owner = NULL, attempts = $7,
    polls = $8, callbacks = $9, unconfirmed_submit_at = $10, task_hint = $11,
    polled_at = $12, track = COALESCE(track, $13), updated_at = $14
WHERE id = $1
"""
FOLLOW_HEIR = "UPDATE jobs SET leader_id = $1, updated_at = $2 WHERE leader_id = $3 AND id <> $1"

# Scheduling. A leased job's due_at is the end of its lease: it is due again only once its
# owner stopped renewing it.
NEXT_DUE_AT = "SELECT MIN(due_at) FROM jobs"
LOCK_DUE = (
    "SELECT id FROM jobs WHERE due_at IS NOT NULL AND due_at <= $1 "
    "ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED"
)
CLAIM_JOBS = f"""
UPDATE jobs SET leased = TRUE, lease_owner = $1, lease_id = lease_id + 1, due_at = $2
WHERE id = ANY($3::text[])
RETURNING {_COLS}
"""  # noqa: S608
# LOCK_DUE and CLAIM_JOBS in one statement (one round trip instead of four with BEGIN and
# COMMIT): the due rows are locked in due order, skipping rows another process is claiming,
# and leased; each comes back with the due time it had, to keep the dispatcher's order.
CLAIM_DUE = f"""
WITH due AS (
    SELECT id, due_at FROM jobs WHERE due_at IS NOT NULL AND due_at <= $1
    ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED
)
UPDATE jobs SET leased = TRUE, lease_owner = $3, lease_id = lease_id + 1, due_at = $4
FROM due WHERE jobs.id = due.id
RETURNING {", ".join("jobs." + column for column in _COLUMNS)}, due.due_at AS was_due
"""  # noqa: S608
RENEW_LEASES = (
    "UPDATE jobs SET due_at = $1 WHERE leased AND lease_owner = $2 AND id = ANY($3::text[])"
)

# Callbacks: one statement per batch (group commit), so a batch costs one round trip. Every
# row the batch names is found on its own unique index (a UNION, not an OR, which would send
# the planner to every unfinished job), then by primary key, and locked first, in id order (a
# materialized CTE is read in its own order): two processes storing overlapping batches
# cannot deadlock, and the UPDATE only touches rows this statement holds. A job is due at $1
# or $4 after its last detail read, whichever is later (a flood of callbacks costs one read
# per gap); an earlier due time stands, and a leased job keeps its lease's end (its worker
# sees the new count when it reschedules). The soonest job made due is announced to other
# processes ($5 the channel, $6 the sending store) when the statement commits.
# The statement commits without waiting for its WAL flush (``synchronous_commit`` off for
# this transaction only): a callback is a hint, and a server crash can at worst forget the
# last fraction of a second of them, which the polling safety net covers; the database stays
# consistent either way. Everything else commits durably as before.
_NOTE_CALLBACKS = """
WITH targets AS MATERIALIZED (
    SELECT id FROM jobs
    WHERE id = ANY(ARRAY(
        SELECT id FROM jobs WHERE callback_key = ANY($2::text[])
        UNION ALL
        SELECT id FROM jobs WHERE callback_token_hash = ANY($3::text[])
    )) AND state IN {active}
    ORDER BY id FOR UPDATE
), changed AS (
    UPDATE jobs SET callbacks = callbacks + 1, updated_at = $1,
        due_at = CASE
            WHEN leased THEN due_at
            WHEN due_at IS NULL OR due_at > GREATEST($1, COALESCE(polled_at, 0) + $4)
            THEN GREATEST($1, COALESCE(polled_at, 0) + $4)
            ELSE due_at END
    FROM targets WHERE jobs.id = targets.id
    RETURNING {returning}
), announced AS (
    SELECT pg_notify($5, MIN(due_at)::text || ' ' || $6) FROM changed
    WHERE NOT leased AND due_at IS NOT NULL HAVING COUNT(*) > 0
), relaxed AS (
    SELECT set_config('synchronous_commit', 'off', TRUE)
)
SELECT {columns}, (SELECT COUNT(*) FROM announced) AS notified,
    (SELECT COUNT(*) FROM relaxed) AS relaxed
FROM changed
"""
NOTE_CALLBACKS = _NOTE_CALLBACKS.format(
    active=_ACTIVE_SQL,
    returning=", ".join("jobs." + column for column in _COLUMNS),
    columns=_COLS,
)
SELECT_BY_CALLBACK = {
    column: f"SELECT {_COLS} FROM jobs WHERE {column} = ANY($1::text[])"  # noqa: S608
    for column in _CALLBACK_COLUMNS
}
# Stored text to a state by a dict look-up (on the listener's path).
_STATES = {state.value: state for state in JobState}
# The listener's path: only a CallbackNote's columns and the two key columns.
_BRIEF = "id, state, due_at, vidgo_task_id, callback_key, callback_token_hash"
NOTE_CALLBACKS_BRIEF = _NOTE_CALLBACKS.format(
    active=_ACTIVE_SQL,
    returning=", ".join("jobs." + c.strip() for c in f"{_BRIEF}, leased".split(",")),
    columns=_BRIEF,
)
SELECT_BY_CALLBACK_BRIEF = {
    column: f"SELECT {_BRIEF} FROM jobs WHERE {column} = ANY($1::text[])"  # noqa: S608
    for column in _CALLBACK_COLUMNS
}
# Rare: a callback named a task for a job that never learned its task id (a lost answer).
KEEP_TASK_HINT = "UPDATE jobs SET task_hint = $1 WHERE id = $2 AND vidgo_task_id IS NULL"
COUNT_BY_STATE = "SELECT state, COUNT(*) FROM jobs GROUP BY state"
NOTIFY = "SELECT pg_notify($1, $2)"

# Processes and their leases.
UPSERT_INSTANCE = """
INSERT INTO instances (id, pid, host, started_at, heartbeat_at) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at
"""
HEARTBEAT_INSTANCE = "UPDATE instances SET heartbeat_at = $2 WHERE id = $1"
LIST_INSTANCES = (
    "SELECT id, pid, host, started_at, heartbeat_at FROM instances ORDER BY started_at, id"
)
DELETE_GONE_INSTANCES = "DELETE FROM instances WHERE heartbeat_at < $1 OR id = ANY($2::text[])"
# Owners of leases who are not registered. Read in one snapshot with the registrations, so
# an owner whose lease is visible here is visible as registered if it registered first
# (every process registers before it claims anything).
ORPHANED_OWNERS = """
SELECT DISTINCT lease_owner FROM jobs
WHERE leased AND lease_owner IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM instances WHERE instances.id = jobs.lease_owner)
"""
# A row claimed meanwhile by a live process is re-checked on its new version and skipped.
RELEASE_ORPHANS = """
UPDATE jobs SET leased = FALSE, lease_owner = NULL, due_at = $1
WHERE leased AND (lease_owner IS NULL OR lease_owner = ANY($2::text[]))
"""
RELEASE_OWNER = (
    "UPDATE jobs SET leased = FALSE, lease_owner = NULL, due_at = $1 "
    "WHERE leased AND lease_owner = $2"
)
DELETE_INSTANCE = "DELETE FROM instances WHERE id = $1"

# Server secrets (table app_secrets). The insert waits for a concurrent insert of the same
# name and then does nothing; the select after it (a new snapshot) reads whichever value
# committed first.
INSERT_SERVER_KEY = (
    "INSERT INTO app_secrets (name, value, created_at) VALUES ($1, $2, $3) "
    "ON CONFLICT (name) DO NOTHING"
)
SELECT_SERVER_KEY = "SELECT value FROM app_secrets WHERE name = $1"

# A result already posted in a server (reads jobs_source_posted, V6). Two statements, so the
# index serves the guild comparison in both cases (IS NOT DISTINCT FROM would not use it).
_POSTED = (
    f"SELECT {_COLS} FROM jobs WHERE source_key = $1 AND state = 'delivered' "  # noqa: S608
    "AND outcome = 'succeeded' AND result_message_id IS NOT NULL"
)
LATEST_POSTED_IN_GUILD = f"{_POSTED} AND guild_id = $2 ORDER BY finished_at DESC LIMIT 1"
LATEST_POSTED_WITHOUT_GUILD = f"{_POSTED} AND guild_id IS NULL ORDER BY finished_at DESC LIMIT 1"

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
UPDATE_CACHE_RESULT = (
    "UPDATE results_cache SET result = $3 "
    "WHERE source_key = $1 AND vidgo_task_id IS NOT DISTINCT FROM $2"
)
# Cached results that retention turns into pointers instead of deleting (records.ONCE_ONLY_MODELS).
_KEEPS_POINTER = (
    "(model IN (" + ", ".join(f"'{m}'" for m in ONCE_ONLY_MODELS) + ") "
    "AND vidgo_task_id IS NOT NULL)"
)
POINTER = json.dumps(POINTER_RESULT, separators=(",", ":"))
# $3 is the pointer as JSON, $4 the same as text (one parameter cannot take both types).
POINT_CACHE_OF_TASK = f"""
UPDATE results_cache SET result = $3
WHERE source_key = $1 AND vidgo_task_id IS NOT DISTINCT FROM $2
  AND {_KEEPS_POINTER} AND result::text <> $4
"""  # noqa: S608 - fixed SQL, values are parameters
DELETE_CACHE_OF_TASK = f"""
DELETE FROM results_cache WHERE source_key = $1 AND vidgo_task_id IS NOT DISTINCT FROM $2
  AND NOT {_KEEPS_POINTER}
"""  # noqa: S608
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
POINT_OLD_CACHE = f"""
UPDATE results_cache SET result = $2
WHERE created_at < $1 AND {_KEEPS_POINTER} AND result::text <> $3
"""  # noqa: S608
PRUNE_CACHE = f"""
DELETE FROM results_cache WHERE created_at < $1 AND NOT {_KEEPS_POINTER}
"""  # noqa: S608

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


class _Params:
    """The positional parameters of one statement, numbered in the order they are added."""

    def __init__(self, *values: Any) -> None:
        self.values: list[Any] = list(values)

    def add(self, value: Any) -> str:
        """Append ``value`` and return its placeholder (``$n``)."""
        self.values.append(value)
        return f"${len(self.values)}"


def _update_job_sql(assignments: Sequence[str], where: str, *, notify: str | None = None) -> str:
    """``UPDATE jobs SET <assignments> WHERE <where>``, returning the changed row.

    ``assignments`` and ``where`` are fixed fragments written in this module with ``$n``
    placeholders; column names in them come from :data:`UPDATABLE_COLUMNS` only. ``notify``
    (from :func:`_notify_if`) is evaluated on the changed row, in the same statement, so a
    single-row write wakes other processes without a transaction of its own.
    """
    update = f"UPDATE jobs SET {', '.join(assignments)} WHERE {where} RETURNING {_COLS}"  # noqa: S608
    if notify is None:
        return update
    return f"WITH changed AS ({update}) SELECT {_COLS}, {notify} AS notified FROM changed"  # noqa: S608


def _notify_if(condition: str, channel: str, payload_tail: str) -> str:
    """A SQL expression that notifies ``channel`` of the row's due time when ``condition``.

    Only a job that is due and not leased is announced: a leased job's due time is the end
    of its lease, which other processes need not hear about.
    """
    return (
        f"CASE WHEN ({condition}) AND due_at IS NOT NULL AND NOT leased "
        f"THEN pg_notify({channel}, due_at::text || ' ' || {payload_tail}) END"
    )


def _list_jobs_sql(clauses: Sequence[str], *, oldest_first: bool, limit_param: int) -> str:
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    order = "ASC" if oldest_first else "DESC"
    return f"SELECT {_COLS} FROM jobs {where} ORDER BY created_at {order} LIMIT ${limit_param}"  # noqa: S608


def due_channel(schema: str) -> str:
    """The ``LISTEN``/``NOTIFY`` channel of the jobs in ``schema`` (a checked identifier).

    One channel per schema, so bots (or test runs) sharing a database never wake each
    other. A name too long for PostgreSQL keeps its start and gets a stable hash instead.
    """
    name = f"stemcord_due_{check_schema_name(schema)}"
    if len(name) <= _MAX_CHANNEL:
        return name
    digest = hashlib.blake2b(schema.encode("utf-8"), digest_size=8).hexdigest()
    return f"{name[: _MAX_CHANNEL - len(digest) - 1]}_{digest}"


def _payload(due_at: float, sender: str) -> str:
    """A notification's text: the due time, then the sending store's token."""
    return f"{due_at!r} {sender}"


def parse_due_payload(payload: object) -> tuple[float, str] | None:
    """``(due_at, sender)`` of a notification, or ``None`` when it is not one of ours.

    Anyone who may connect can notify the channel: the text is untrusted, and anything but
    a finite time is dropped instead of waking the dispatcher.
    """
    if not isinstance(payload, str) or len(payload) > 200:
        return None
    head, _, sender = payload.partition(" ")
    try:
        due_at = float(head)
    except ValueError:
        return None
    if not math.isfinite(due_at):
        return None
    return due_at, sender


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
        leased=bool(row["leased"]),
        lease_id=int(row["lease_id"]),
        lease_owner=row["lease_owner"],
        unconfirmed_submit_at=row["unconfirmed_submit_at"],
        task_hint=row["task_hint"],
        faults=row["faults"],
        delivery_started_at=row["delivery_started_at"],
        polled_at=row["polled_at"],
        callback_key=row["callback_key"],
        prepared_at=row["prepared_at"],
    )


# Releasing a lease (a write that sets the next due time) forgets its owner.
_RELEASE = ("leased = FALSE", "lease_owner = NULL")


def _assignments(changes: Mapping[str, Any], params: _Params) -> list[str]:
    """SET fragments for whitelisted columns, their values appended to ``params``."""
    unknown = set(changes) - UPDATABLE_COLUMNS
    if unknown:
        raise ValueError(f"cannot update columns: {sorted(unknown)}")
    parts: list[str] = []
    for column, value in changes.items():
        placeholder = params.add(_dumps(value) if column in _JSON_COLUMNS else value)
        parts.append(f"{column} = {placeholder}")
    if "due_at" in changes:
        parts.extend(_RELEASE)
    return parts


def _lease_guard(lease: int | None, params: _Params) -> str:
    """The WHERE fragment of a fenced write: the job still holds the worker's lease."""
    return "" if lease is None else f" AND leased AND lease_id = {params.add(lease)}"


def _check_lease(job: JobRecord, lease: int | None) -> None:
    """Inside a transaction: raise :class:`LeaseLost` unless the job holds ``lease``."""
    if lease is not None and not (job.leased and job.lease_id == lease):
        raise LeaseLost(job.id, lease)


def _affected(status: str) -> int:
    """Rows counted in a command tag such as ``UPDATE 3``."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


@dataclass(slots=True)
class _QueuedCallback:
    """A callback waiting for the next group commit."""

    column: str  # one of _CALLBACK_COLUMNS
    value: str  # as stored (NUL replaced)
    now: float
    task_hint: str | None
    min_poll_gap: float


@dataclass(slots=True)
class _CallbackBatch:
    """Callbacks stored by one statement; every caller waits for the batch's one future.

    ``brief`` while every caller wants only a :data:`CallbackNote` (the listener's path):
    then only those columns are returned.
    """

    entries: list[_QueuedCallback]
    done: asyncio.Future[dict[tuple[str, str], JobRecord | CallbackNote]]
    brief: bool = True


async def _leave_session_as_is(conn: ListenerConnection) -> None:
    """The pool's reset of a connection given back: nothing beyond asyncpg's own part.

    asyncpg always rolls back an open transaction and drops listener callbacks; by default
    it then also sends ``RESET ALL``, ``UNLISTEN *``, ``CLOSE ALL`` and
    ``pg_advisory_unlock_all()`` — one more round trip for every operation of the store.
    This store leaves no session state on a pooled connection: settings are made with
    ``SET LOCAL`` or ``set_config(…, true)`` inside a transaction, ``LISTEN`` runs on a
    connection of its own, no cursor outlives its transaction, and the migrator's session
    lock is released in a ``finally`` (a connection that lost it is closed).
    """


def _hand_over(on_due: Callable[[float], None], due_at: float) -> None:
    """Give a due time to the dispatcher; its failure must not end the listener."""
    try:
        on_due(due_at)
    except Exception:
        log.exception("waking the dispatcher failed")


class PostgresJobStore(JobStore):
    """Jobs in a PostgreSQL schema, shared safely by several processes.

    ``dsn`` is a libpq-style URL (``postgresql://user:password@host:5432/database``); it may
    hold a password, so it is never logged or shown. ``schema`` (a lower-case identifier)
    is created on :meth:`open` if missing and becomes the connections' ``search_path``;
    without it the store uses the DSN's current schema (normally ``public``).
    ``application_name`` names the connections in ``pg_stat_activity`` (one per process,
    say ``stemcord-worker-2``, tells the processes apart); the connection that listens for
    due jobs is named ``<application_name>-listener``.

    ``listen_retry`` is the first and the longest wait (seconds) before the listener tries
    to reconnect, doubling in between; ``listen_check`` how often an idle listener checks
    that its connection still answers (a silently dropped network path sends no error).
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
        listen_retry: tuple[float, float] = (0.5, 30.0),
        listen_check: float = 30.0,
    ) -> None:
        self._dsn = dsn
        self._schema = check_schema_name(schema) if schema is not None else None
        self._min_pool_size = min_pool_size
        self._max_pool_size = max_pool_size
        self._connect_timeout = connect_timeout
        self._application_name = application_name
        self._listen_retry = listen_retry
        self._listen_check = listen_check
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        # Callback batches waiting to be sent, oldest first; the last one takes new callbacks
        # until it is full or a flusher takes it.
        self._callback_batches: deque[_CallbackBatch] = deque()
        self._callback_flushers: set[asyncio.Task[None]] = set()
        # Names this store in its notifications, so its own listener skips them.
        self._token = secrets.token_hex(8)
        self._channel = ""
        self._listener: asyncio.Task[None] | None = None
        self._listener_conn: ListenerConnection | None = None
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

    @property
    def channel(self) -> str:
        """The channel this store notifies and listens on (known after :meth:`open`)."""
        return self._channel

    @property
    def listening(self) -> bool:
        """:meth:`listen_for_due` was called and :meth:`stop_listening` was not."""
        return self._listener is not None and not self._listener.done()

    @property
    def listener_backend_pid(self) -> int | None:
        """The server process of the listening connection while it is connected."""
        conn = self._listener_conn
        if conn is None or conn.is_closed():
            return None
        return conn.get_server_pid()

    async def open(
        self, *, read_only: bool = False, migrate: bool = True, require_current: bool = True
    ) -> None:
        """Connect, create the schema if needed and migrate (one process at a time).

        ``read_only`` (the offline ``jobs`` command): every transaction is read-only and
        nothing is migrated; a schema behind this version is refused with
        :class:`storage.sqlite.OutdatedSchema` instead of being read wrongly.
        ``migrate=False`` (``check``, ``migrate`` looking before it leaps) writes nothing at
        open either, but later writes may; ``require_current=False`` then opens an outdated
        or missing schema too, for the caller to report (:meth:`schema_version`).
        """
        migrating = migrate and not read_only
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
            reset=_leave_session_as_is,
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
                if migrating:
                    self.applied_migrations = await migrate_postgresql(conn, self._schema)
                elif require_current:
                    have = await postgresql_schema_version(conn)
                    want = max(m.version for m in available_migrations("postgresql"))
                    if have < want:
                        raise OutdatedSchema(have, want)
        except BaseException:
            await pool.close()
            raise
        self._channel = due_channel(self._schema)
        self._pool = pool

    async def server_version(self) -> str:
        """The server's version as it reports it (``16.4``, ``15.8 (Debian 15.8-0+deb12u1)``)."""
        async with self.pool.acquire() as conn:
            return str(await conn.fetchval("SHOW server_version"))

    async def live_instances(self, now: float, *, stale_after: float) -> list[InstanceInfo]:
        """Registered processes whose last heartbeat is less than ``stale_after`` s old.

        An empty list for a schema that has no process registry yet (before V6).
        """
        async with self.pool.acquire() as conn:
            if not await conn.fetchval("SELECT to_regclass('instances') IS NOT NULL"):
                return []
        return [i for i in await self.list_instances() if i.heartbeat_at >= now - stale_after]

    async def schema_version(self) -> int:
        """The highest migration applied to this store's schema."""
        async with self.pool.acquire() as conn:
            return await postgresql_schema_version(conn)

    async def close(self) -> None:
        """Stop listening, wait for pending callback writes, then close every connection."""
        await self.stop_listening()
        if self._pool is None:
            return
        if self._callback_flushers:
            await asyncio.gather(*self._callback_flushers, return_exceptions=True)
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

    async def _notify(self, conn: Conn, due_at: float | None) -> None:
        """Inside a transaction: tell other processes a job is due at ``due_at`` (on commit)."""
        if due_at is not None:
            await conn.execute(NOTIFY, self._channel, _payload(due_at, self._token))

    def _notify_sql(self, params: _Params, condition: str) -> str:
        """:func:`_notify_if` with this store's channel and token as parameters."""
        return _notify_if(condition, params.add(self._channel), params.add(self._token))

    async def _write_one(
        self, job_id: str, sql: str, params: _Params, *, lease: int | None
    ) -> JobRecord:
        """Run a single-row UPDATE; when it changed nothing, say why.

        No such job -> :class:`JobNotFound`; a fenced write (``lease``) that matched
        nothing -> :class:`LeaseLost`; otherwise (a guard such as "not leased" held the row
        back) the job as it is.
        """
        async with self._conn() as conn:
            job = await self._one(conn, sql, *params.values)
            matched = job is not None
            if job is None:
                job = await self._one(conn, SELECT_JOB, job_id)
        if job is None:
            raise JobNotFound(job_id)
        if lease is not None and not matched:
            raise LeaseLost(job_id, lease)
        return job

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
        """See :meth:`JobStore.admit`.

        Locks in a fixed order (server when it has a daily cap, member, then source, then the
        leader row), so two admits never wait on each other in a cycle. A job due now (a
        cached answer) or leased to its admitter is announced to other processes on commit.
        """
        schema = self._schema

        async def work(conn: Conn) -> AdmitResult:
            if limits is not None and limits.any and new.guild_id is not None:
                if limits.server_daily_cap:
                    # With a server-wide cap every admit in this server waits here first
                    # (server, then member: always the same order, so no cycle).
                    await conn.execute(
                        ADVISORY_XACT_LOCK,
                        advisory_key("stemcord", "guild", schema, new.guild_id),
                    )
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
            if cached is not None and cached.is_pointer:
                cached = None  # nothing to post: the job asks Vidgo (see CachedResult)
            if cached is not None:
                admission = Admission.CACHED
                state, outcome, due_at, leased = JobState.SUCCEEDED, JobState.SUCCEEDED, now, False
                leader = None
            elif leader is not None and is_redundant(new, leader):
                return AdmitResult(leader, Admission.DROPPED)
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
            fresh = admission is Admission.NEW
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
                new.callback_token_hash if fresh else None,
                _dumps(cached.result) if cached else None,
                track,
                now,
                now,
                now if cached else None,
                new.result_channel_id,
                new.dm_on_completion,
                # A new job is leased to its admitter, who submits it at once.
                1 if leased else 0,
                owner if leased else None,
                new.callback_key if fresh else None,
            )
            assert job is not None  # noqa: S101 - INSERT … RETURNING always returns the row
            # The end of the admitter's lease is when another process may take the job up.
            await self._notify(conn, due_at)
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
        lease: int | None = None,
        **changes: Any,
    ) -> JobRecord:
        """See :meth:`JobStore.transition`."""
        if target is JobState.CANCELLED:
            # A cancelled job is never due (SQLite lets the later assignment win; PostgreSQL
            # refuses a column assigned twice, so the caller's due time is dropped here).
            changes.pop("due_at", None)
        params = _Params(job_id, target.value, now)
        parts = _assignments(changes, params)
        assignments = ["state = $2", "updated_at = $3", *parts]
        if target.awaits_delivery:
            assignments += ["outcome = $2", "finished_at = COALESCE(finished_at, $3)"]
        elif target is JobState.CANCELLED:
            assignments += [
                "outcome = $2",
                "finished_at = COALESCE(finished_at, $3)",
                "due_at = NULL",
                *_RELEASE,
            ]
        sql = _update_job_sql(assignments, "id = $1")

        async def work(conn: Conn) -> JobRecord:
            job = await self._one(conn, LOCK_JOB, job_id)
            if job is None:
                raise JobNotFound(job_id)
            _check_lease(job, lease)
            if expect is not None and job.state not in expect:
                raise InvalidTransition(job_id, job.state, target)
            check_transition(job_id, job.state, target)
            updated = await self._one(conn, sql, *params.values)
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
        lease: int | None = None,
        lease_until: float | None = None,
        owner: str | None = None,
    ) -> list[JobRecord]:
        """See :meth:`JobStore.record_outcome`.

        Without ``lease_until`` the deliveries are due now for any process, which is told
        on commit; with it, the caller delivers them itself.
        """
        if not target.awaits_delivery:
            raise ValueError(f"{target} is not an outcome")
        keep = lease_until is not None

        async def work(conn: Conn) -> list[JobRecord]:
            job = await self._one(conn, LOCK_JOB, job_id)
            if job is None:
                raise JobNotFound(job_id)
            if not job.state.is_active:
                return []
            _check_lease(job, lease)
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
                lease_until if keep else now,
                keep,
                owner if keep else None,
                now,
                ids,
            )
            if cache is not None:
                await self._cache_put(conn, cache)
            if not keep:
                await self._notify(conn, now)
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
            # Free the unique task id and callback key before handing them over.
            await conn.execute(CANCEL_JOB, job_id, now)
            if waiting:
                heir = waiting[0]
                # A submit still in flight for the old leader is orphaned: resubmit.
                heir_due = now if job.state is JobState.ACCEPTED else (job.due_at or now)
                await conn.execute(
                    CROWN_HEIR,
                    *_args(
                        [
                            heir.id,
                            job.state.value,
                            job.vidgo_task_id,
                            job.callback_token_hash,
                            job.callback_key,
                            heir_due,
                            job.attempts,
                            job.polls,
                            job.callbacks,
                            job.unconfirmed_submit_at,
                            job.task_hint,
                            job.polled_at,
                            _dumps(job.track),
                            now,
                        ]
                    ),
                )
                await conn.execute(FOLLOW_HEIR, heir.id, now, job_id)
                await self._notify(conn, heir_due)
            cancelled = await self._one(conn, SELECT_JOB, job_id)
            assert cancelled is not None  # noqa: S101 - locked by this transaction
            return cancelled

        return await self._in_tx(work)

    async def update(
        self, job_id: str, now: float, *, lease: int | None = None, **changes: Any
    ) -> JobRecord:
        """See :meth:`JobStore.update`: one statement, fenced by ``lease`` when given."""
        params = _Params(job_id, now)
        parts = _assignments(changes, params)
        where = "id = $1" + _lease_guard(lease, params)
        sql = _update_job_sql(["updated_at = $2", *parts], where)
        return await self._write_one(job_id, sql, params, lease=lease)

    async def expedite(self, job_id: str, now: float, **changes: Any) -> JobRecord:
        """See :meth:`JobStore.expedite`: one statement, guarded by ``NOT leased``.

        The job, due now, is announced to other processes in the same statement.
        """
        params = _Params(job_id, now)
        parts = _assignments({**changes, "due_at": now}, params)
        sql = _update_job_sql(
            ["updated_at = $2", *parts],
            "id = $1 AND NOT leased",
            notify=self._notify_sql(params, "TRUE"),
        )
        return await self._write_one(job_id, sql, params, lease=None)

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
        """See :meth:`JobStore.reschedule`.

        When a callback came in meanwhile, the job's new (sooner) due time is announced to
        other processes in the same statement.
        """
        changes.pop("due_at", None)
        params = _Params(job_id, now)
        seen = params.add(seen_callbacks)
        planned = params.add(due_at)
        # SET expressions read the row as it was: the detail read this very write records
        # (polled_at in changes) is passed on its own.
        polled = params.add(changes.get("polled_at"))
        gap = params.add(min_poll_gap)
        assignments = [
            "updated_at = $2",
            *_RELEASE,
            f"due_at = CASE WHEN callbacks > {seen} "
            f"THEN GREATEST($2, COALESCE({polled}::double precision, polled_at, 0) "
            f"+ {gap}::double precision) "
            f"ELSE {planned}::double precision END",
            *_assignments(changes, params),
        ]
        where = "id = $1" + _lease_guard(lease, params)
        notify = self._notify_sql(params, f"callbacks > {seen}")
        sql = _update_job_sql(assignments, where, notify=notify)
        return await self._write_one(job_id, sql, params, lease=lease)

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
        row to be stored, but one transaction stores a whole batch (group commit), as in the
        SQLite backend, and announces the soonest job it made due.
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

        The same write; what the callback listener needs to answer, without returning and
        decoding the whole record.
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
            key = ("callback_key", _clean(callback_key))
        else:
            assert token_hash is not None  # noqa: S101 - checked above
            key = ("callback_token_hash", _clean(token_hash))
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
            try:
                found = await self._note_callbacks(batch.entries, brief=batch.brief)
            except Exception as exc:
                batch.done.set_exception(exc)
                continue
            batch.done.set_result(found)

    async def _note_callbacks(
        self, batch: list[_QueuedCallback], *, brief: bool
    ) -> dict[tuple[str, str], JobRecord | CallbackNote]:
        now = max(entry.now for entry in batch)
        gap = max(entry.min_poll_gap for entry in batch)
        values = {
            column: list(dict.fromkeys(e.value for e in batch if e.column == column))
            for column in _CALLBACK_COLUMNS
        }
        found: dict[tuple[str, str], JobRecord | CallbackNote] = {}
        for attempt in range(1, _TX_ATTEMPTS + 1):
            try:
                async with self._conn() as conn:
                    rows = await conn.fetch(
                        NOTE_CALLBACKS_BRIEF if brief else NOTE_CALLBACKS,
                        now,
                        values["callback_key"],
                        values["callback_token_hash"],
                        gap,
                        self._channel,
                        self._token,
                    )
                break
            except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
                if attempt == _TX_ATTEMPTS:
                    raise
        self._take_noted(rows, found, brief=brief)
        missing = {
            column: [v for v in values[column] if (column, v) not in found]
            for column in _CALLBACK_COLUMNS
        }
        hinted: list[tuple[_QueuedCallback, str]] = []
        for entry in batch:
            if entry.task_hint is None:
                continue
            named = found.get((entry.column, entry.value))
            if isinstance(named, JobRecord):
                if named.state is JobState.ACCEPTED and named.vidgo_task_id is None:
                    hinted.append((entry, named.id))
            elif named is not None and named[1] is JobState.ACCEPTED and named[3] is None:
                hinted.append((entry, named[0]))
        if any(missing.values()) or hinted:
            async with self._conn() as conn:
                for column in _CALLBACK_COLUMNS:
                    if missing[column]:
                        # Finished jobs are returned unchanged; unknown ones stay absent.
                        query = (SELECT_BY_CALLBACK_BRIEF if brief else SELECT_BY_CALLBACK)[column]
                        self._take_noted(
                            await conn.fetch(query, missing[column]), found, brief=brief
                        )
                for entry, job_id in hinted:
                    # Rare: the job never learned its task id (a submit answer was lost).
                    hint = _clean(entry.task_hint)
                    await conn.execute(KEEP_TASK_HINT, hint, job_id)
                    named = found[(entry.column, entry.value)]
                    if isinstance(named, JobRecord):
                        found[(entry.column, entry.value)] = replace(named, task_hint=hint)
        return found

    @staticmethod
    def _take_noted(
        rows: Sequence[asyncpg.Record],
        found: dict[tuple[str, str], JobRecord | CallbackNote],
        *,
        brief: bool,
    ) -> None:
        """File each returned job under the key and token hash it is named by."""
        for row in rows:
            noted: JobRecord | CallbackNote
            if brief:
                state = row["state"]
                noted = (
                    row["id"],
                    _STATES.get(state) or JobState(state),
                    row["due_at"],
                    row["vidgo_task_id"],
                )
            else:
                noted = _row_to_job(row)
            for column in _CALLBACK_COLUMNS:
                value = row[column]
                if value is not None and (column, value) not in found:
                    found[(column, str(value))] = noted

    async def next_due_at(self) -> float | None:
        """See :meth:`JobStore.next_due_at`."""
        async with self._conn() as conn:
            value = await conn.fetchval(NEXT_DUE_AT)
        return None if value is None else float(value)

    async def claim_due(
        self, now: float, lease_until: float, limit: int, *, owner: str
    ) -> list[JobRecord]:
        """See :meth:`JobStore.claim_due`: rows another process is claiming are skipped.

        One statement (:data:`CLAIM_DUE`); the jobs come back in the order they were due.
        """
        for attempt in range(1, _TX_ATTEMPTS + 1):
            try:
                async with self._conn() as conn:
                    rows = await conn.fetch(CLAIM_DUE, now, limit, _clean(owner), lease_until)
                break
            except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
                if attempt == _TX_ATTEMPTS:
                    raise
        rows = sorted(rows, key=lambda row: (row["was_due"], row["id"]))
        return [_row_to_job(row) for row in rows]

    async def renew_leases(self, owner: str, lease_until: float, job_ids: Collection[str]) -> int:
        """See :meth:`JobStore.renew_leases`."""
        ids = list(job_ids)
        if not ids:
            return 0
        async with self._conn() as conn:
            return _affected(await conn.execute(RENEW_LEASES, lease_until, *_args([owner, ids])))

    # --- processes --------------------------------------------------------------------------

    async def register_instance(self, instance: InstanceInfo) -> None:
        """See :meth:`JobStore.register_instance`."""
        async with self._conn() as conn:
            await conn.execute(
                UPSERT_INSTANCE,
                *_args(
                    [
                        instance.id,
                        instance.pid,
                        instance.host,
                        instance.started_at,
                        instance.heartbeat_at,
                    ]
                ),
            )

    async def heartbeat_instance(self, instance_id: str, now: float) -> None:
        """See :meth:`JobStore.heartbeat_instance`."""
        async with self._conn() as conn:
            await conn.execute(HEARTBEAT_INSTANCE, _clean(instance_id), now)

    async def list_instances(self) -> list[InstanceInfo]:
        """See :meth:`JobStore.list_instances`."""
        async with self._conn() as conn:
            rows = await conn.fetch(LIST_INSTANCES)
        return [
            InstanceInfo(str(r[0]), int(r[1]), str(r[2]), float(r[3]), float(r[4])) for r in rows
        ]

    async def release_orphaned_leases(
        self, now: float, *, stale_before: float, dead: Collection[str] = ()
    ) -> int:
        """See :meth:`JobStore.release_orphaned_leases`.

        Three statements in one transaction: forget the gone, read which lease owners are
        not registered, release exactly their leases (see :data:`ORPHANED_OWNERS`).
        """
        gone = _args(list(dead))

        async def work(conn: Conn) -> int:
            await conn.execute(DELETE_GONE_INSTANCES, stale_before, gone)
            orphans = [str(row[0]) for row in await conn.fetch(ORPHANED_OWNERS)]
            count = _affected(await conn.execute(RELEASE_ORPHANS, now, orphans))
            if count:
                await self._notify(conn, now)
            return count

        return await self._in_tx(work)

    async def unregister_instance(self, instance_id: str, now: float) -> int:
        """See :meth:`JobStore.unregister_instance`."""
        instance_id = _clean(instance_id)

        async def work(conn: Conn) -> int:
            count = _affected(await conn.execute(RELEASE_OWNER, now, instance_id))
            await conn.execute(DELETE_INSTANCE, instance_id)
            if count:
                await self._notify(conn, now)
            return count

        return await self._in_tx(work)

    # --- waking other processes -------------------------------------------------------------

    async def listen_for_due(self, on_due: Callable[[float], None]) -> None:
        """See :meth:`JobStore.listen_for_due`: a dedicated connection ``LISTEN``\\s.

        Returns once the first attempt to listen ended; when it failed, the listener keeps
        trying in the background (waiting ``listen_retry``, doubling) and, once it listens,
        calls ``on_due`` once with :data:`WAKE_AFTER_GAP`, since notifications may have been
        missed meanwhile. The same happens after a lost connection.
        """
        if self._pool is None:
            raise RuntimeError("store is not open")
        if self.listening:
            raise RuntimeError("this store already listens for due jobs")
        first_attempt: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._listener = asyncio.create_task(
            self._listen(on_due, first_attempt), name="stemcord-due-listener"
        )
        await asyncio.wait({first_attempt, self._listener}, return_when=asyncio.FIRST_COMPLETED)

    async def stop_listening(self) -> None:
        """See :meth:`JobStore.stop_listening`."""
        task, self._listener = self._listener, None
        if task is None:
            return
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def _listen(
        self, on_due: Callable[[float], None], first_attempt: asyncio.Future[None]
    ) -> None:
        """Listen until cancelled, reconnecting with backoff whenever the connection is lost."""
        shortest, longest = self._listen_retry
        delay = shortest
        missed = False  # notifications may have been sent while nobody listened
        while True:
            connected: tuple[ListenerConnection, asyncio.Event] | None = None
            try:
                connected = await self._connect_listener(on_due)
            except asyncio.CancelledError:
                raise
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning(
                    "cannot listen for due jobs (%s); retrying in %.1f s",
                    type(exc).__name__,
                    delay,
                )
            except Exception:
                log.exception("cannot listen for due jobs; retrying in %.1f s", delay)
            finally:
                if not first_attempt.done():
                    first_attempt.set_result(None)
            if connected is None:
                missed = True
                # A random part of the wait keeps processes from reconnecting in step.
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(longest, delay * 2)
                continue
            conn, dropped = connected
            delay = shortest
            if missed:
                missed = False
                _hand_over(on_due, WAKE_AFTER_GAP)
            try:
                await self._hold(conn, dropped)
            finally:
                self._listener_conn = None
                await self._close_listener(conn)
            log.warning("lost the connection that listens for due jobs; reconnecting")
            missed = True
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))

    async def _connect_listener(
        self, on_due: Callable[[float], None]
    ) -> tuple[ListenerConnection, asyncio.Event]:
        """Open the listening connection; the event is set when it is lost."""
        conn: ListenerConnection = await asyncpg.connect(
            self._dsn,
            timeout=self._connect_timeout,
            server_settings={"application_name": f"{self._application_name}-listener"},
        )
        dropped = asyncio.Event()

        def lost(_conn: object) -> None:
            dropped.set()

        def heard(_conn: object, _pid: int, _channel: str, payload: object) -> None:
            parsed = parse_due_payload(payload)
            if parsed is None:
                log.debug("ignored a notification that names no due time")
                return
            due_at, sender = parsed
            if sender != self._token:  # this store's own writes woke its process already
                _hand_over(on_due, due_at)

        try:
            conn.add_termination_listener(lost)
            await conn.add_listener(self._channel, heard)
        except BaseException:
            await self._close_listener(conn)
            raise
        self._listener_conn = conn
        return conn, dropped

    async def _hold(self, conn: ListenerConnection, dropped: asyncio.Event) -> None:
        """Return when the listening connection is lost (or stops answering a check)."""
        while not conn.is_closed():
            try:
                await asyncio.wait_for(dropped.wait(), timeout=self._listen_check)
            except TimeoutError:
                pass
            else:
                return
            try:
                await asyncio.wait_for(conn.fetchval("SELECT 1"), timeout=self._connect_timeout)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                conn.terminate()  # a path that went silent would not carry a goodbye either
                return

    async def _close_listener(self, conn: ListenerConnection) -> None:
        if conn.is_closed():
            return
        try:
            await asyncio.wait_for(conn.close(), timeout=self._connect_timeout)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            conn.terminate()

    # --- secrets ------------------------------------------------------------------------------

    async def secret(self, name: str) -> bytes:
        """See :meth:`JobStore.secret`: the first value committed wins in every process."""
        name = _clean(name)
        async with self._conn() as conn:
            await conn.execute(INSERT_SERVER_KEY, name, secrets.token_hex(32), time.time())
            value = await conn.fetchval(SELECT_SERVER_KEY, name)
        if value is None:  # pragma: no cover - inserted above unless deleted in between
            raise RuntimeError(f"secret {name!r} vanished while it was read")
        return bytes.fromhex(str(value))

    async def latest_posted(self, source_key: str, guild_id: int | None) -> JobRecord | None:
        """See :meth:`JobStore.latest_posted` (reads ``jobs_source_posted``, V6)."""
        async with self._conn() as conn:
            if guild_id is None:
                return await self._one(conn, LATEST_POSTED_WITHOUT_GUILD, source_key)
            return await self._one(conn, LATEST_POSTED_IN_GUILD, source_key, guild_id)

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

    async def cache_update_result(
        self, source_key: str, vidgo_task_id: str | None, result: Mapping[str, Any]
    ) -> bool:
        """See :meth:`JobStore.cache_update_result`."""
        async with self._conn() as conn:
            status = await conn.execute(
                UPDATE_CACHE_RESULT,
                *_args([source_key, vidgo_task_id, _dumps(result)]),
            )
        return _affected(status) > 0

    async def cache_forget(self, source_key: str, vidgo_task_id: str | None) -> bool:
        """See :meth:`JobStore.cache_forget`."""
        async with self._conn() as conn, conn.transaction():
            # A once-only separation keeps its pointer (see prune_cache).
            args = _args([source_key, vidgo_task_id])
            status = await conn.execute(POINT_CACHE_OF_TASK, *args, POINTER, POINTER)
            if _affected(status) == 0:
                status = await conn.execute(DELETE_CACHE_OF_TASK, *args)
        return _affected(status) > 0

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

    async def check_writable(self, now: float) -> None:
        """See :meth:`JobStore.check_writable`: rewrites the one row of ``health_probe`` (V5)
        in a transaction of its own, so a server that answers reads but refuses writes (read
        only, out of space, a standby) fails the probe."""
        async with self._conn() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO health_probe (id, written_at) VALUES (1, $1) "
                "ON CONFLICT (id) DO UPDATE SET written_at = excluded.written_at",
                now,
            )

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
        async with self._conn() as conn, conn.transaction():
            # The only record of a once-only separation's task keeps its task id (a pointer)
            # and loses its links; every other cached result goes.
            pointed = _affected(await conn.execute(POINT_OLD_CACHE, before, POINTER, POINTER))
            return pointed + _affected(await conn.execute(PRUNE_CACHE, before))

    async def checkpoint(self) -> bool:
        """See :meth:`JobStore.checkpoint`: PostgreSQL manages its own log, so a no-op."""
        if self._pool is None:
            raise RuntimeError("store is not open")
        return True

    # --- operator flags ---------------------------------------------------------------------

    async def get_flag(self, name: str) -> bool:
        """See :meth:`JobStore.get_flag`."""
        async with self._conn() as conn:
            value = await conn.fetchval(GET_FLAG, _clean(name))
        return bool(value)

    async def set_flag(self, name: str, value: bool, now: float) -> bool:
        """See :meth:`JobStore.set_flag`: one statement, atomic on its own."""
        async with self._conn() as conn:
            if value:
                changed = await conn.fetchval(SET_FLAG, _clean(name), True, now)
            else:
                # An absent flag is already off: nothing to insert.
                changed = await conn.fetchval(CLEAR_FLAG, _clean(name), now)
        return changed is not None

    # --- per-member limits ----------------------------------------------------------------

    @staticmethod
    async def _limit_reached(
        conn: Conn, guild_id: int, requester_id: int, limits: AdmissionLimits, now: float
    ) -> LimitReached | None:
        """The first limit a new request would break, or ``None`` (see AdmissionLimits and
        :func:`storage.base.first_limit_reached`, which decides for every backend)."""
        day_start = now - now % _DAY
        row = await conn.fetchrow(
            MEMBER_USAGE, guild_id, requester_id, day_start, limits.server_daily_cap
        )
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
