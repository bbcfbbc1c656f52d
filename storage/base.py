"""The repository interface every storage backend implements.

All SQL lives behind :class:`JobStore`. A backend must run each read-modify-write in one
transaction and enforce the state machine (:func:`storage.jobstate.check_transition`) inside it,
so that concurrent writers (the poller, callbacks, commands) can never skip a state.

**Leases.** A worker works on a job only while it holds the job's lease: :meth:`JobStore.claim_due`
(or :meth:`JobStore.admit` for a new job) records the claiming process (``lease_owner``) and
bumps ``lease_id``, the fencing token. Every write a worker makes passes ``lease=job.lease_id``
and lands only if the job still carries that lease; otherwise :class:`LeaseLost` is raised and
nothing is written. A lease runs until ``due_at``; its owner renews all of its leases while it
lives (:meth:`JobStore.renew_leases`), so a held job is never claimed by another worker, and the
leases of a process that is gone are released (:meth:`JobStore.release_orphaned_leases`).
Writes made for a person (cancel, the status message) take no lease.

**Waking.** A process's dispatcher sleeps until the earliest due time it knows of. Where
several processes share a database, a job made due by one of them must wake the others too:
:meth:`JobStore.listen_for_due` hands them each such due time (a no-op where one process owns
the database).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping
from typing import Any

from storage.jobstate import JobState
from storage.records import (
    AdmissionLimits,
    AdmitResult,
    CachedResult,
    InstanceInfo,
    JobRecord,
    LimitReached,
    LimitRule,
    NewJob,
)

_DAY = 86400.0

# Columns that callers may change through ``update``/``transition``/``reschedule``.
UPDATABLE_COLUMNS = frozenset(
    {
        "status_message_id",
        "vidgo_task_id",
        "attempts",
        "polls",
        "delivery_attempts",
        "due_at",
        "deadline_at",
        "last_error",
        "error_kind",
        "result",
        "track",
        "result_message_id",
        "options",
        "callback_token_hash",
        "callback_key",
        "unconfirmed_submit_at",
        "task_hint",
        "faults",
        "delivery_started_at",
        "polled_at",
        "prepared_at",
    }
)


def is_redundant(new: NewJob, leader: JobRecord) -> bool:
    """A request identical to ``leader`` that would post to the very same place.

    A second press of one button (by anyone) would only repeat the reply the first press
    already has coming: :meth:`JobStore.admit` records nothing for it.
    """
    return (
        new.reply_to_message_id is not None
        and new.reply_to_message_id == leader.reply_to_message_id
        and new.channel_id == leader.channel_id
    )


def first_limit_reached(
    limits: AdmissionLimits,
    now: float,
    *,
    member_today: int,
    unfinished: int,
    last: float | None,
    server_today: int,
) -> LimitReached | None:
    """The limit a new request would break, given what the store counted, or ``None``.

    Every backend counts the same things (see :class:`AdmissionLimits`) and decides here, in
    the order that frees up last: the member's daily quota, then the server's daily cap (both
    reset at 00:00 UTC; the member's own rule is the one to name when both hold), then
    unfinished jobs, then the cooldown.
    """
    day_end = now - now % _DAY + _DAY
    if limits.daily_quota and member_today >= limits.daily_quota:
        return LimitReached(LimitRule.DAILY_QUOTA, limits.daily_quota, day_end)
    if limits.server_daily_cap and server_today >= limits.server_daily_cap:
        return LimitReached(LimitRule.SERVER_DAILY_CAP, limits.server_daily_cap, day_end)
    if limits.max_unfinished and unfinished >= limits.max_unfinished:
        return LimitReached(LimitRule.MAX_UNFINISHED, limits.max_unfinished, None)
    if limits.cooldown_seconds and last is not None and now - last < limits.cooldown_seconds:
        return LimitReached(
            LimitRule.COOLDOWN, limits.cooldown_seconds, last + limits.cooldown_seconds
        )
    return None


# What :meth:`JobStore.note_callback_brief` answers: the job's id, state, due time and task id.
CallbackNote = tuple[str, JobState, float | None, str | None]


class JobNotFound(LookupError):
    """No job has that id."""


class LeaseLost(RuntimeError):
    """A worker's write was refused: the job no longer carries the worker's lease.

    Another worker claimed it after the lease ran out (or a member cancelled it); whatever the
    first worker was doing must stop without writing anything more.
    """

    def __init__(self, job_id: str, lease: int) -> None:
        super().__init__(f"job {job_id}: lease {lease} is no longer held")
        self.job_id = job_id
        self.lease = lease


class JobStore(ABC):
    """Durable jobs, the results cache and per-guild settings."""

    @abstractmethod
    async def open(self) -> None:
        """Connect and apply pending migrations."""

    @abstractmethod
    async def close(self) -> None:
        """Finish in-flight writes and close."""

    # --- jobs -----------------------------------------------------------------------------

    @abstractmethod
    async def admit(
        self,
        new: NewJob,
        now: float,
        *,
        submit_lease_until: float,
        owner: str | None = None,
        limits: AdmissionLimits | None = None,
    ) -> AdmitResult:
        """Record a request atomically, answering from the cache or joining an identical job.

        With ``limits`` (and a guild), the requester's per-member limits and the server's
        daily cap are checked in the same transaction, so two simultaneous requests can never
        both pass a cap: the one over it raises :class:`storage.records.LimitReached` and
        nothing is recorded.

        * a cached result for ``new.source_key`` -> the job is stored ``succeeded`` with it
          (delivery due now);
        * an identical job in flight (same ``source_key``, no leader) -> stored as its follower
          in ``submitted``, with nothing scheduled: the leader's outcome is copied to it —
          unless it would post to the very same message (:func:`is_redundant`): then nothing
          is recorded and the leader is returned as ``dropped``;
        * otherwise -> stored ``accepted`` and leased to ``owner`` until ``submit_lease_until``
          (the caller submits it now; if the process dies, the lease is released and the job
          is taken up again).
        """

    @abstractmethod
    async def get(self, job_id: str) -> JobRecord | None:
        """One job by id."""

    @abstractmethod
    async def get_by_vidgo_task(self, vidgo_task_id: str) -> JobRecord | None:
        """The job that owns a Vidgo task id."""

    @abstractmethod
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
        """Move a job to ``target`` (checked against the table) and apply ``changes``.

        Raises :class:`storage.jobstate.InvalidTransition` when the table forbids it or the
        current state is not in ``expect``; :class:`JobNotFound` when there is no such job;
        :class:`LeaseLost` when ``lease`` is given and the job no longer carries it.
        Setting ``due_at`` releases the job's lease.
        """

    @abstractmethod
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
        """Record a job's outcome (succeeded, failed, expired) and copy it to its followers.

        One transaction: the job and every follower still waiting move to ``target`` with
        delivery due now, and ``cache`` (if given) is stored. Returns every changed job,
        the job itself first. A job already past its outcome is left alone (returns ``[]``).
        ``lease``: the caller's lease on the job (:class:`LeaseLost` if it is gone).
        With ``lease_until`` the changed jobs are leased to ``owner`` (each with a new lease
        id, in the returned records): the caller delivers them now.
        """

    @abstractmethod
    async def cancel(self, job_id: str, now: float) -> JobRecord:
        """Move a job to ``cancelled``, handing its Vidgo task to its first waiting follower.

        Followers of a cancelled job must not wait forever: the oldest becomes the leader
        (taking the task id, callback token and schedule) and the others follow it.
        Raises :class:`storage.jobstate.InvalidTransition` for a job past Vidgo.
        """

    @abstractmethod
    async def update(
        self, job_id: str, now: float, *, lease: int | None = None, **changes: Any
    ) -> JobRecord:
        """Change non-state columns. Setting ``due_at`` releases the job's lease.

        With ``lease``, the write lands only while the job carries that lease
        (:class:`LeaseLost` otherwise).
        """

    @abstractmethod
    async def expedite(self, job_id: str, now: float, **changes: Any) -> JobRecord:
        """Make a job due now (a member asked), with ``changes``, unless it is leased.

        A leased job is being worked on right now: it is returned unchanged, so a second
        worker can never claim it meanwhile (its worker reschedules it when done).
        Raises :class:`JobNotFound` when there is no such job.
        """

    @abstractmethod
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
        """Release a job's lease with its next due time.

        If a callback arrived after the caller read ``seen_callbacks``, the job is due as
        soon as ``min_poll_gap`` after its last detail read allows instead: a hint that came
        in while the job was being worked on is never lost. ``lease`` as for :meth:`update`.
        """

    @abstractmethod
    async def note_callback(
        self,
        now: float,
        *,
        callback_key: str | None = None,
        token_hash: str | None = None,
        task_hint: str | None = None,
        min_poll_gap: float = 0.0,
    ) -> JobRecord | None:
        """A callback arrived for the job with this callback key (or, for jobs recorded before
        keys existed, this token hash).

        Unknown -> ``None`` and nothing written. A job still waiting on Vidgo gets its
        callback count raised and becomes due — now, or ``min_poll_gap`` after its last
        detail read, so a flood of callbacks costs at most one read per gap — unless it is
        leased: then its worker sees the new count when it reschedules. ``task_hint`` (the
        task id the callback names) is kept on an ``accepted`` job that has no task id yet,
        for the worker to check. A finished job is returned unchanged.
        """

    @abstractmethod
    async def note_callback_brief(
        self,
        now: float,
        *,
        callback_key: str | None = None,
        token_hash: str | None = None,
        task_hint: str | None = None,
        min_poll_gap: float = 0.0,
    ) -> CallbackNote | None:
        """:meth:`note_callback`'s write, answering only the job's id, state, due time and
        task id: what the callback listener needs to answer, without reading back and
        decoding the whole record."""

    @abstractmethod
    async def next_due_at(self) -> float | None:
        """The earliest due time of any job, or ``None``."""

    @abstractmethod
    async def claim_due(
        self, now: float, lease_until: float, limit: int, *, owner: str
    ) -> list[JobRecord]:
        """Lease up to ``limit`` jobs due at ``now`` (earliest first) to ``owner``.

        A leased job is due only once its lease ran out (its owner stopped renewing it).
        Each claimed job gets a new ``lease_id``; the returned records carry it.
        """

    @abstractmethod
    async def renew_leases(self, owner: str, lease_until: float, job_ids: Collection[str]) -> int:
        """Extend to ``lease_until`` the leases ``owner`` holds on ``job_ids``; return how many.

        Only jobs being worked on are renewed: a job whose worker ended without releasing it
        (a bug, a database error) runs out and is taken up again.
        """

    # --- processes --------------------------------------------------------------------------

    @abstractmethod
    async def register_instance(self, instance: InstanceInfo) -> None:
        """Record a process that works on this database (it heartbeats while it lives)."""

    @abstractmethod
    async def heartbeat_instance(self, instance_id: str, now: float) -> None:
        """The process is alive (re-registering it if its row was removed meanwhile)."""

    @abstractmethod
    async def list_instances(self) -> list[InstanceInfo]:
        """Every registered process."""

    @abstractmethod
    async def release_orphaned_leases(
        self, now: float, *, stale_before: float, dead: Collection[str] = ()
    ) -> int:
        """Release the leases of processes that are gone; return how many jobs were freed.

        Gone means: listed in ``dead``, not registered at all, or silent since
        ``stale_before``. Their jobs become due now and their registrations are removed.
        """

    @abstractmethod
    async def unregister_instance(self, instance_id: str, now: float) -> int:
        """A clean stop: release the process's leases (due now) and forget it."""

    # --- waking other processes ---------------------------------------------------------------

    @abstractmethod
    async def listen_for_due(self, on_due: Callable[[float], None]) -> None:
        """Call ``on_due(due_at)`` whenever another process makes a job due sooner than later.

        Admissions, callbacks, released leases, expedites, outcomes owed to a channel and
        the heir of a cancelled job are announced by the process that wrote them, once the
        write commits; ``on_due`` (the dispatcher's wake-up) decides whether that is sooner
        than it planned. This store's own writes are not echoed: its process woke itself.
        After a gap in listening (a lost connection), ``on_due(0.0)`` is called once, since
        announcements may have been missed. A backend whose database only one process uses
        does nothing. Listening lasts until :meth:`stop_listening` or :meth:`close`; a lost
        connection is never raised to the caller.
        """

    @abstractmethod
    async def stop_listening(self) -> None:
        """Stop what :meth:`listen_for_due` started (harmless when nothing listens)."""

    # --- secrets ------------------------------------------------------------------------------

    @abstractmethod
    async def secret(self, name: str) -> bytes:
        """A 32-byte server secret, generated and stored on first use, the same for every
        process that shares the database."""

    @abstractmethod
    async def latest_posted(self, source_key: str, guild_id: int | None) -> JobRecord | None:
        """The newest job of ``source_key`` in the guild whose result was posted, if any.

        Only delivered successes with a result message count.
        """

    @abstractmethod
    async def followers(self, leader_id: str) -> list[JobRecord]:
        """Jobs waiting on ``leader_id``."""

    @abstractmethod
    async def list_jobs(
        self,
        *,
        guild_id: int | None = None,
        requester_id: int | None = None,
        states: Collection[JobState] | None = None,
        limit: int = 50,
        oldest_first: bool = False,
    ) -> list[JobRecord]:
        """Jobs filtered by guild, requester and state; newest first unless asked."""

    @abstractmethod
    async def count_by_state(self) -> dict[JobState, int]:
        """How many jobs are in each state."""

    # --- results cache --------------------------------------------------------------------

    @abstractmethod
    async def cache_get(self, source_key: str) -> CachedResult | None:
        """The cached result of a source, if any."""

    @abstractmethod
    async def cache_put(self, entry: CachedResult) -> None:
        """Store (or replace) a cached result."""

    @abstractmethod
    async def cache_update_result(
        self, source_key: str, vidgo_task_id: str | None, result: Mapping[str, Any]
    ) -> bool:
        """Replace the result of the cached entry of ``source_key`` if it still holds the
        Vidgo task ``vidgo_task_id`` (its time is kept, so retention is unchanged).

        Returns whether an entry was changed. A job's post-success step (its kept files)
        reaches later requests for the same source this way.
        """

    @abstractmethod
    async def cache_forget(self, source_key: str, vidgo_task_id: str | None) -> bool:
        """Delete the cached entry of ``source_key`` if it still holds ``vidgo_task_id``.

        For a cached result that can no longer be delivered (its files are gone everywhere):
        the next request for the source is then treated as new. A once-only separation
        (``records.ONCE_ONLY_MODELS`` with a task id) is not deleted but becomes a pointer
        (``CachedResult.is_pointer``: its task id, no result), so a later request can read the
        task again instead of losing the track's one separation. Returns whether one changed.
        """

    # --- per-guild settings ---------------------------------------------------------------

    @abstractmethod
    async def get_guild_settings(self, guild_id: int) -> dict[str, Any]:
        """A guild's stored settings (``{}`` when none)."""

    @abstractmethod
    async def put_guild_settings(
        self, guild_id: int, settings: Mapping[str, Any], now: float
    ) -> None:
        """Replace a guild's settings."""

    # --- operations: health, retention ----------------------------------------------------

    @abstractmethod
    async def ping(self) -> None:
        """Answer one trivial query (readiness); raise if the database does not answer."""

    @abstractmethod
    async def oldest_unfinished_created_at(self) -> float | None:
        """When the oldest job not in a final state was created, or ``None``."""

    @abstractmethod
    async def prune_finished(self, before: float, *, batch: int = 1000) -> int:
        """Delete jobs in a final state that ended before ``before``; return how many.

        Only delivered, undeliverable and cancelled jobs are deleted, and never a job that a
        remaining job names as its leader (``leader_id``): a leader goes only together with
        all of its followers. Deletes run in batches of ``batch`` so writers are not held up.
        """

    @abstractmethod
    async def prune_cache(self, before: float) -> int:
        """Retire cached results made before ``before``; return how many.

        Every such entry is deleted, except a once-only separation's, which becomes a pointer
        (see :meth:`cache_forget`) and stays: it is the only record of a task Vidgo will not
        make again for that track. Admission treats a pointer as no cache.
        """

    @abstractmethod
    async def checkpoint(self) -> bool:
        """Fold the write-ahead log back into the database (if the backend has one).

        Returns ``False`` when readers kept part of it from being folded (try again later).
        """

    # --- operator flags ---------------------------------------------------------------------

    @abstractmethod
    async def get_flag(self, name: str) -> bool:
        """A named on/off flag shared by every process on this database (absent = off)."""

    @abstractmethod
    async def set_flag(self, name: str, value: bool, now: float) -> bool:
        """Set a named flag; return ``True`` only if this call changed it (absent = off).

        Atomic: of several processes setting the same flag at once, exactly one is told it
        changed it, so whatever that change announces (a warning) is announced once.
        """

    # --- per-member limits ----------------------------------------------------------------

    @abstractmethod
    async def limit_reached(
        self, guild_id: int, requester_id: int, limits: AdmissionLimits, now: float
    ) -> LimitReached | None:
        """The limit a request would break now, or ``None`` (a read-only early answer).

        Only a hint for a quick refusal: :meth:`admit` checks again in its transaction.
        """

    # --- progress of unfinished jobs --------------------------------------------------------

    @abstractmethod
    async def queue_position(self, guild_id: int, job_id: str) -> tuple[int, int] | None:
        """``(position, unfinished)`` of a job among its guild's unfinished jobs, oldest first.

        Unfinished means accepted, submitted or running; position 1 is the oldest. ``None``
        when the job is not an unfinished job of that guild.
        """

    @abstractmethod
    async def recent_durations(self, model: str, limit: int = 50) -> list[float]:
        """Seconds from creation to outcome of the last ``limit`` succeeded jobs of ``model``.

        Only jobs that ran their own Vidgo task count: answers from the results cache and
        followers of an identical job finish sooner than Vidgo does. Newest first.
        """

    # --- readiness --------------------------------------------------------------------------

    @abstractmethod
    async def check_writable(self, now: float) -> None:
        """Make one tiny committed write (the readiness probe); raise if the store cannot.

        Reading alone is not enough: a read-only file or a full disk still answers queries
        while every job update fails. ``now`` is what the write records.
        """
