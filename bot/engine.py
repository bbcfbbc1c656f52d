"""The job engine: from a validated request to exactly one delivered message.

The engine owns the life of every job (see :mod:`storage.jobstate` for the state machine):

1. :meth:`JobEngine.submit` records the job first (answering from the results cache or
   joining an identical job in flight when it can), then submits it to Vidgo.
2. One :class:`~bot.scheduler.DueScheduler` wakes for whatever is due next: a submit to retry,
   a poll, a delivery. Polls start after ``poll_interval`` and grow x1.5 with jitter up to a
   cap (higher when callbacks are on, since polling is then only the safety net).
3. A callback (:meth:`JobEngine.on_callback`) is only a hint: it makes the job due (at most
   one detail read per ``callback_min_poll_gap``), and the worker re-reads the task from
   Vidgo's detail endpoint before changing anything.
4. When the outcome is known it is recorded for the job and every follower in one
   transaction, then delivered through :class:`~bot.delivery.Delivery` with a stable nonce.

Money and songs that cannot be recovered are protected by four rules:

* **One callback token per job, for its whole life.** The token is an HMAC of the job's
  ``callback_key`` under a server secret kept in the database, so every resubmit (and every
  process) sends the same URL, and a forged token is refused without touching the database.
* **An ambiguous submit is never resent blindly.** The attempt is recorded before it is sent
  (``unconfirmed_submit_at``); a failure after which Vidgo may have created the task (timeout
  after sending, 5xx, reset, unreadable reply, a process that died mid-call) keeps it. Then a
  submit is sent again only where Vidgo refuses a second task itself (a Vidgo song's
  once-per-track rule, :meth:`bot.kinds.JobKind.resend_is_safe`), and always with the same
  token; a 409 after such an attempt means "our earlier attempt probably made it". Otherwise
  the job waits for Vidgo's callback, which names the task: the worker reads that task itself,
  checks it against the job (:meth:`bot.kinds.JobKind.contradicts`) and adopts it. When
  ``unconfirmed_grace`` passes without one (or at once without callbacks, where nothing could
  confirm it), the job fails with an explicit "Vidgo may have this task" message.
* **Fenced leases.** A worker holds a job's lease while it works on it; every write it makes
  is conditional on that lease (:class:`storage.base.LeaseLost` otherwise). The engine renews
  the leases of the jobs it is working on and heartbeats its registration; at start and then
  periodically it releases only the leases of processes that are gone (:mod:`bot.instances`).
* **Odd data ends a job, it never loops.** A reply that cannot be read fails the job as
  malformed; any other unexpected error counts as a fault, and after ``max_faults`` the job
  ends with an explicit message.

A delivery is recorded (``delivery_started_at``) before the post; an implementation of
:class:`~bot.delivery.Delivery` uses it to find its own earlier post once Discord's nonce no
longer would. The engine never imports Discord.

Between a success and its delivery the job's kind may run a **post-success step**
(:meth:`bot.kinds.JobKind.prepare`: a separation keeps its files and makes its backing track).
It runs under the job's lease, once per job (``prepared_at`` records that it ran; the
leader's finished step is shared with its followers), saving its progress in the result as it
goes, so a process that dies mid-step leaves the next one to resume it. Its changes also reach
the cached copy of the result. An error in it counts as a fault and is retried with backoff;
past ``max_faults`` the result is delivered anyway, with what the kind says about the failure.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import random
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Protocol

from bot.delivery import Delivery, DeliveryError
from bot.instances import dead_instances, this_instance
from bot.jobs import ErrorKind, JobRequest, Submitted
from bot.kinds import JobKind, Prepared, TryLater, Unsubmittable, UnusableResult
from bot.logs import job_context, set_job_context, set_vidgo_task_id
from bot.observe import DeliveryObserver
from bot.policy import GuildPolicy
from bot.scheduler import DueScheduler
from bot.vidgo.errors import (
    VidgoAuthError,
    VidgoDuplicateError,
    VidgoError,
    VidgoInvalidRequest,
    VidgoMalformedResponse,
    VidgoNotFound,
    VidgoRateLimited,
    VidgoTransientError,
)
from bot.vidgo.results import SubmitReceipt, TaskDetail, TaskStatus, TrackInfo
from storage.base import JobStore, LeaseLost
from storage.jobstate import InvalidTransition, JobState
from storage.records import Admission, CachedResult, JobRecord, NewJob, SourceKind

log = logging.getLogger(__name__)

_ID_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
JOB_ID_LENGTH = 10
CALLBACK_PATH = "/vidgo/callback/"
# The name of the database-kept secret that callback tokens are derived from.
TOKEN_SECRET_NAME = "callback-token"  # noqa: S105 - the name of a secret, not one
_TOKEN_CONTEXT = b"stemcord-callback:"
UNCONFIRMED_MESSAGE = (
    "Vidgo may have this task, but it could not be confirmed: the answer to the request was "
    "lost and Vidgo never reported back"
)
INTERNAL_MESSAGE = "Stemcord kept failing while working on this job"
# How many verified callback tokens the engine remembers (see JobEngine._remember_verified).
VERIFIED_TOKENS_KEPT = 4096


class KindNotEnabled(LookupError):
    """A job of a kind this build or configuration does not run (a local condition)."""


class VidgoApi(Protocol):
    """The part of :class:`bot.vidgo.client.VidgoClient` the engine itself uses: task reads.

    Submits belong to the job kinds (:mod:`bot.kinds`), each with its own part of the client.
    """

    async def get_task(self, task_id: str) -> TaskDetail: ...

    async def get_track(self, task_id: str, audio_id: str) -> TrackInfo | None: ...


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Timing and limits of the engine (built from :class:`bot.settings.Settings`)."""

    public_url: str | None = None
    poll_interval: float = 5.0
    poll_max_interval: float = 60.0
    poll_max_interval_with_callbacks: float = 300.0
    job_timeout: float = 1800.0
    submit_max_attempts: int = 8
    submit_backoff_max: float = 120.0
    delivery_max_attempts: int = 6
    delivery_backoff_base: float = 2.0
    delivery_backoff_max: float = 300.0
    work_lease: float = 120.0
    # While callbacks are seen to arrive, polls wait at least this long (safety net only).
    callback_trust_window: float = 600.0
    # However many callbacks arrive, a job's task is read at most once per this many seconds.
    callback_min_poll_gap: float = 2.0
    # How long a job whose submit may have reached Vidgo waits for Vidgo's callback.
    unconfirmed_grace: float = 900.0
    # Unexpected errors on one job before it ends with an explicit failure, and the backoff
    # between them (doubling from the base).
    max_faults: int = 5
    fault_backoff_base: float = 2.0
    fault_backoff_max: float = 300.0
    # Registration heartbeat (and lease renewal) period, and the silence after which another
    # process counts as gone.
    instance_heartbeat: float = 10.0
    instance_timeout: float = 45.0
    max_parallel: int = 32
    claim_batch: int = 64

    @property
    def callbacks_enabled(self) -> bool:
        """Callbacks are requested only with a public URL."""
        return self.public_url is not None


class CallbackOutcome(StrEnum):
    """How a callback was taken."""

    UNKNOWN = "unknown"  # no job has that token: 404, nothing written
    ACCEPTED = "accepted"  # the job will be re-read from Vidgo now
    IGNORED = "ignored"  # the job is already past Vidgo (duplicate or late callback)


def new_job_id() -> str:
    """A short random id members can type (10 characters, no look-alike letters)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(JOB_ID_LENGTH))


def follow_up_id(parent_id: str, kind_name: str) -> str:
    """The id of the ``kind_name`` job that the job ``parent_id`` starts once it is posted.

    Derived, not random, so that a follow-up is recorded at most once however often its
    parent's delivery is retried; four more characters than a random id, so the two never
    clash.
    """
    digest = hashlib.sha256(f"follow-up:{kind_name}".encode()).digest()
    tag = "".join(_ID_ALPHABET[b % len(_ID_ALPHABET)] for b in digest[:4])
    return f"{parent_id}{tag}"


def callback_token(secret: bytes, key: str) -> str:
    """The callback token of the job with ``key``: ``<key>.<128-bit HMAC-SHA256, base64url>``.

    Derived, not stored: the same job always gets the same token (across resubmits, restarts
    and processes), and only someone holding the server's secret can make one.
    """
    mac = hmac.new(secret, _TOKEN_CONTEXT + key.encode(), hashlib.sha256).digest()[:16]
    return f"{key}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"


def callback_key_of(secret: bytes, token: str) -> str | None:
    """The callback key a token was made for, or ``None`` if it was not made with ``secret``."""
    key, dot, _ = token.rpartition(".")
    if not dot or not key:
        return None
    return key if hmac.compare_digest(callback_token(secret, key), token) else None


def hash_token(token: str) -> str:
    """The stored SHA-256 of a random callback token (jobs recorded before derived tokens)."""
    return hashlib.sha256(token.encode()).hexdigest()


def track_dict(track: TrackInfo | None) -> dict[str, Any] | None:
    """A track's display fields as stored in a job."""
    if track is None:
        return None
    return {
        "title": track.title,
        "cover_url": track.cover_url,
        "duration": track.duration,
        "audio_id": track.audio_id,
    }


def _policy_fields(policy: GuildPolicy | None) -> dict[str, Any]:
    """What a new job keeps of its server's policy (where and how its result is sent)."""
    if policy is None:
        return {}
    return {
        "result_channel_id": policy.result_channel_id,
        "dm_on_completion": policy.dm_on_completion,
    }


class JobEngine:
    """Submits, tracks and delivers jobs; survives restarts through the store."""

    def __init__(
        self,
        store: JobStore,
        vidgo: VidgoApi,
        delivery: Delivery,
        config: EngineConfig,
        *,
        kinds: Sequence[JobKind],
        clock: Callable[[], float] = time.time,
        observer: DeliveryObserver | None = None,
    ) -> None:
        self.store = store
        self.observer = observer
        self.vidgo = vidgo
        self.delivery = delivery
        self.config = config
        # Every kind this bot runs, by the name its jobs are stored under; the composition
        # root lists them (a job of a kind not listed fails as "not enabled").
        self.kinds: dict[str, JobKind] = {kind.NAME: kind for kind in kinds}
        if len(self.kinds) != len(kinds):
            raise ValueError("two job kinds share a name")
        self._clock = clock
        self.instance = this_instance(clock())
        self._scheduler = DueScheduler(
            store,
            self._work,
            clock=clock,
            lease=config.work_lease,
            batch=config.claim_batch,
            max_parallel=config.max_parallel,
            owner=self.instance.id,
        )
        self._background: set[asyncio.Task[Any]] = set()
        self._housekeeper: asyncio.Task[None] | None = None
        self._running = False
        self._last_callback_at: float | None = None
        self._token_secret: bytes | None = None
        # Callback tokens whose HMAC was checked, and the key each names (bounded).
        self._verified: dict[str, str] = {}
        # Jobs this process is working on right now (their leases are renewed).
        self._held: Counter[str] = Counter()

    # --- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Register this process, take over the work of processes that are gone, dispatch."""
        await self._secret()
        now = self._clock()
        self.instance = replace(self.instance, heartbeat_at=now)
        await self.store.register_instance(self.instance)
        released = await self._release_orphans(now)
        if released:
            log.info(
                "resuming %d job(s) that were in progress when a bot process stopped", released
            )
        # Jobs made due by other processes sharing the database wake this dispatcher too.
        await self.store.listen_for_due(self._scheduler.notify_due)
        self._running = True
        self._scheduler.start()
        self._housekeeper = asyncio.create_task(self._housekeep(), name="stemcord-housekeeping")

    async def stop(self, *, grace: float = 10.0) -> None:
        """Stop taking work; let in-flight work finish for ``grace`` seconds; hand over."""
        self._running = False
        if self._housekeeper is not None:
            task, self._housekeeper = self._housekeeper, None
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self.store.stop_listening()
        await self._scheduler.stop(grace=grace)
        if self._background:
            _, pending = await asyncio.wait(set(self._background), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        try:
            # Whatever this process still held is due now, for the next process to take.
            await self.store.unregister_instance(self.instance.id, self._clock())
        except Exception:
            log.warning("could not hand over this process's jobs; their leases will run out")

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _secret(self) -> bytes:
        if self._token_secret is None:
            self._token_secret = await self.store.secret(TOKEN_SECRET_NAME)
        return self._token_secret

    async def _housekeep(self) -> None:
        """Heartbeat, renew the leases of the jobs being worked on, free the gone's work."""
        while True:
            await asyncio.sleep(self.config.instance_heartbeat)
            try:
                now = self._clock()
                self.instance = replace(self.instance, heartbeat_at=now)
                # An upsert: if another process thought this one gone, it is back.
                await self.store.register_instance(self.instance)
                if self._held:
                    await self.store.renew_leases(
                        self.instance.id, now + self.config.work_lease, list(self._held)
                    )
                if await self._release_orphans(now):
                    self._scheduler.wake()
            except Exception:
                log.warning("housekeeping failed; retrying at the next heartbeat", exc_info=True)

    async def _release_orphans(self, now: float) -> int:
        dead = dead_instances(await self.store.list_instances(), self.instance)
        return await self.store.release_orphaned_leases(
            now, stale_before=now - self.config.instance_timeout, dead=dead
        )

    @contextlib.contextmanager
    def _holding(self, job_id: str) -> Iterator[None]:
        """While the body runs, this process works on the job and renews its lease."""
        self._held[job_id] += 1
        try:
            yield
        finally:
            self._held[job_id] -= 1
            if self._held[job_id] <= 0:
                del self._held[job_id]

    @property
    def dispatcher_running(self) -> bool:
        """Started, not stopped, and its dispatcher task alive (readiness asks this)."""
        return self._running and self._scheduler.running

    # --- requests -------------------------------------------------------------------------

    async def submit(self, request: JobRequest, *, policy: GuildPolicy | None = None) -> Submitted:
        """Record a request, then submit it to Vidgo (unless cached or joined).

        ``policy`` is the server's: its per-member limits are checked as the job is recorded
        (raising :class:`storage.records.LimitReached`, with nothing recorded), and the job
        keeps its result channel and DM choice. ``None`` means no limits.
        """
        now = self._clock()
        new = self._new_job(request, new_job_id(), now, **_policy_fields(policy))
        admitted = await self.store.admit(
            new,
            now,
            submit_lease_until=now + self.config.work_lease,
            owner=self.instance.id,
            limits=policy.admission_limits() if policy is not None else None,
        )
        job = admitted.job
        # Label this request's log lines with the job (each interaction runs in its own task).
        set_job_context(job.id, job.vidgo_task_id)
        log.info(
            "job %s admitted (%s) model=%s source=%s",
            job.id,
            admitted.admission.value,
            job.model,
            job.source_kind.value,
        )
        if admitted.admission is Admission.NEW:
            await self._work(job)
            job = await self.store.get(job.id) or job
        elif admitted.admission is Admission.CACHED:
            self._scheduler.notify_due(job.due_at)
        return Submitted(job, admitted.admission)

    def _new_job(self, request: JobRequest, job_id: str, now: float, **placement: Any) -> NewJob:
        """The record of a request; ``placement``: where and how its result is sent."""
        return NewJob(
            id=job_id,
            kind=request.kind,
            source_kind=request.source_kind,
            source_key=request.source_key,
            model=request.model,
            requester_id=request.requester_id,
            channel_id=request.channel_id,
            guild_id=request.guild_id,
            source_task_id=request.source_task_id,
            source_audio_id=request.source_audio_id,
            source_url=request.source_url,
            options=dict(request.options),
            callback_key=job_id,
            deadline_at=now + self.config.job_timeout,
            track=dict(request.track) if request.track is not None else None,
            status_message_id=request.status_message_id,
            reply_to_message_id=request.reply_to_message_id,
            **placement,
        )

    async def attach_status_message(self, job_id: str, message_id: int) -> JobRecord:
        """Remember the public status message of a job (edited as it moves)."""
        return await self.store.update(job_id, self._clock(), status_message_id=message_id)

    async def get_job(self, job_id: str) -> JobRecord | None:
        """One job by id."""
        return await self.store.get(job_id)

    async def list_jobs(
        self,
        *,
        guild_id: int | None = None,
        requester_id: int | None = None,
        states: Collection[JobState] | None = None,
        limit: int = 50,
        oldest_first: bool = False,
    ) -> list[JobRecord]:
        """Jobs filtered by server, requester and state; newest first unless asked."""
        return await self.store.list_jobs(
            guild_id=guild_id,
            requester_id=requester_id,
            states=states,
            limit=limit,
            oldest_first=oldest_first,
        )

    async def posted_result(self, request: JobRequest) -> JobRecord | None:
        """The job whose result for this request was already posted in its server, if any.

        A request for something already in the channel is answered with a pointer to that
        message instead of a second public post (and costs nothing).
        """
        return await self.store.latest_posted(request.source_key, request.guild_id)

    async def poll_now(self, job_id: str) -> JobRecord | None:
        """Ask Vidgo about a job now (Refresh, ``/jobs retry``), or deliver a failed delivery.

        A job a worker holds right now is left to that worker, and a job still waiting to be
        submitted keeps its retry backoff (which may be Vidgo's own ``Retry-After``).
        """
        job = await self.store.get(job_id)
        if job is None:
            return None
        now = self._clock()
        if job.state is JobState.UNDELIVERABLE:
            job = await self.store.expedite(job.id, now, delivery_attempts=0)
        elif job.state in (JobState.SUBMITTED, JobState.RUNNING) or job.state.awaits_delivery:
            job = await self.store.expedite(job.id, now)
        else:
            return job
        self._scheduler.notify_due(job.due_at)
        return job

    # --- callbacks ------------------------------------------------------------------------

    def callback_url(self, token: str) -> str | None:
        """Where Vidgo should POST for the job with this token."""
        if self.config.public_url is None:
            return None
        return f"{self.config.public_url}{CALLBACK_PATH}{token}"

    async def callback_token_of(self, job: JobRecord) -> str:
        """The job's callback token (for tests and diagnostics; never logged)."""
        return callback_token(await self._secret(), job.callback_key or job.id)

    async def on_callback(self, token: str, task_hint: str | None = None) -> CallbackOutcome:
        """Vidgo (or someone) POSTed to a callback URL: re-read that job's task soon.

        ``task_hint`` is the task id the body names (untrusted): kept for a job that never
        learned its task id, whose worker checks it before adopting it.
        """
        now = self._clock()
        if "." in token:
            key = self._verified.get(token)
            if key is None:
                key = callback_key_of(await self._secret(), token)
                if key is None:
                    return CallbackOutcome.UNKNOWN  # not made by this bot: no database work
                self._remember_verified(token, key)
            noted = await self.store.note_callback_brief(
                now,
                callback_key=key,
                task_hint=task_hint,
                min_poll_gap=self.config.callback_min_poll_gap,
            )
        else:
            noted = await self.store.note_callback_brief(
                now,
                token_hash=hash_token(token),
                task_hint=task_hint,
                min_poll_gap=self.config.callback_min_poll_gap,
            )
        if noted is None:
            return CallbackOutcome.UNKNOWN
        job_id, state, due_at, task_id = noted
        if log.isEnabledFor(logging.DEBUG):  # the hot path skips the context otherwise
            with job_context(job_id, task_id):
                log.debug("job %s: callback received (%s)", job_id, state.value)
        self._last_callback_at = now
        if not state.is_active:
            return CallbackOutcome.IGNORED
        self._scheduler.notify_due(due_at)
        return CallbackOutcome.ACCEPTED

    def _remember_verified(self, token: str, key: str) -> None:
        """Keep a token whose HMAC checked out, so its repeats skip the HMAC.

        Only tokens made with this bot's secret get here; the memory is bounded and starts
        over when full (Vidgo sends few callbacks per job, so old entries are rarely needed).
        """
        if len(self._verified) >= VERIFIED_TOKENS_KEPT:
            self._verified.clear()
        self._verified[token] = key

    @property
    def callbacks_healthy(self) -> bool:
        """A callback with a valid token arrived recently, so callbacks reach us."""
        return (
            self.config.callbacks_enabled
            and self._last_callback_at is not None
            and self._clock() - self._last_callback_at < self.config.callback_trust_window
        )

    # --- the worker -----------------------------------------------------------------------

    async def _work(self, job: JobRecord) -> None:
        """Do whatever a leased job is due for; a fault never escapes and never loops."""
        with self._holding(job.id):
            try:
                await self._dispatch(job)
            except LeaseLost as lost:
                log.info("job %s: another worker took it over (%s); leaving it", job.id, lost)
            except Exception as exc:
                log.exception("job %s: unexpected error while working on it", job.id)
                await self._note_fault(job, exc)

    async def _dispatch(self, job: JobRecord) -> None:
        if job.state is JobState.ACCEPTED:
            await self._submit_to_vidgo(job)
        elif job.state.is_active and job.is_follower:
            await self._check_leader(job)
        elif job.state.is_active:
            await self._poll(job)
        elif job.state.awaits_delivery or job.state is JobState.UNDELIVERABLE:
            prepared = await self._prepare(job)
            if prepared is not None:
                await self._deliver(prepared)
        else:
            await self.store.update(job.id, self._clock(), lease=job.lease_id, due_at=None)

    async def _note_fault(self, job: JobRecord, exc: Exception) -> None:
        """Count an unexpected error as an attempt; past ``max_faults`` end the job."""
        now = self._clock()
        reason = f"internal error ({type(exc).__name__})"
        try:
            fresh = await self.store.get(job.id)
            if fresh is None or not fresh.leased or fresh.lease_id != job.lease_id:
                return
            faults = fresh.faults + 1
            if faults < self.config.max_faults:
                delay = min(
                    self.config.fault_backoff_max,
                    self.config.fault_backoff_base * 2.0 ** (faults - 1),
                ) * random.uniform(0.5, 1.0)
                updated = await self.store.update(
                    fresh.id,
                    now,
                    lease=fresh.lease_id,
                    faults=faults,
                    due_at=now + delay,
                    last_error=reason,
                )
                self._scheduler.notify_due(updated.due_at)
                return
            log.error("job %s: giving up after %d unexpected errors", fresh.id, faults)
            if fresh.state.is_active:
                fresh = await self.store.update(fresh.id, now, lease=fresh.lease_id, faults=faults)
                await self._finish(
                    fresh,
                    JobState.FAILED,
                    last_error=INTERNAL_MESSAGE,
                    error_kind=ErrorKind.INTERNAL,
                )
            elif fresh.state.awaits_delivery:
                await self.store.transition(
                    fresh.id,
                    JobState.UNDELIVERABLE,
                    now,
                    lease=fresh.lease_id,
                    faults=faults,
                    due_at=None,
                    last_error=reason,
                )
            else:
                await self.store.update(
                    fresh.id, now, lease=fresh.lease_id, faults=faults, due_at=None
                )
        except LeaseLost:
            return
        except Exception:
            log.exception("job %s: could not record the error; its lease will run out", job.id)

    async def _submit_to_vidgo(self, job: JobRecord) -> None:
        """Submit a job that is ``accepted`` (this worker holds its lease)."""
        try:
            kind = self._kind(job)
        except KindNotEnabled as exc:
            await self._finish(
                job, JobState.FAILED, last_error=str(exc), error_kind=ErrorKind.NOT_ENABLED
            )
            return
        if job.task_hint is not None:
            checked = await self._check_task_hint(job)
            if checked is None:
                return
            job = checked
        now = self._clock()
        unconfirmed = job.unconfirmed_submit_at is not None
        if unconfirmed and not kind.resend_is_safe(job):
            await self._await_confirmation(job, now)
            return
        callback_url, key_change = await self._callback_for(job)
        attempts = job.attempts + 1
        # Recorded before sending: if this process dies during the call, the job still knows
        # that Vidgo may have the task.
        job = await self.store.update(
            job.id,
            now,
            lease=job.lease_id,
            attempts=attempts,
            unconfirmed_submit_at=job.unconfirmed_submit_at or now,
            **key_change,
        )
        try:
            receipt = await kind.submit(job, callback_url)
        except VidgoDuplicateError as exc:
            if unconfirmed:
                log.info("job %s: 409 after an unconfirmed submit: waiting for Vidgo", job.id)
                await self._await_confirmation(job, now)
            else:
                await self._fail_duplicate(job, exc)
            return
        except Unsubmittable as exc:
            await self._finish(
                job, JobState.FAILED, last_error=exc.message, error_kind=exc.error_kind
            )
            return
        except TryLater as exc:
            await self._try_later(job, exc, now, unconfirmed=unconfirmed)
            return
        except (VidgoAuthError, VidgoInvalidRequest, VidgoNotFound) as exc:
            error_kind = (
                ErrorKind.AUTH
                if isinstance(exc, VidgoAuthError)
                else ErrorKind.NOT_FOUND
                if isinstance(exc, VidgoNotFound)
                else ErrorKind.INVALID
            )
            if error_kind is ErrorKind.AUTH:
                log.error(
                    "job %s: Vidgo refused the API key (%s); check VIDGO_API_KEY", job.id, exc
                )
            await self._finish(job, JobState.FAILED, last_error=exc.message, error_kind=error_kind)
            return
        except VidgoError as exc:
            maybe = isinstance(exc, VidgoTransientError) and exc.maybe_processed
            await self._submit_failed(job, exc, now, maybe=maybe, unconfirmed=unconfirmed)
            return
        except Exception:
            # Not a Vidgo failure: our own code stopped before the request (the client turns
            # every failure of the exchange itself into a VidgoError), so nothing was sent.
            # It counts as a fault (see _work).
            if not unconfirmed:
                await self.store.update(job.id, now, lease=job.lease_id, unconfirmed_submit_at=None)
            raise
        await self._submitted(job, receipt, now)

    async def _submitted(self, job: JobRecord, receipt: SubmitReceipt, now: float) -> None:
        """Vidgo took the submit: record its task, then wait for it (or deliver at once)."""
        try:
            job = await self.store.transition(
                job.id,
                JobState.SUBMITTED,
                now,
                expect={JobState.ACCEPTED},
                lease=job.lease_id,
                vidgo_task_id=receipt.task_id,
                last_error=None,
                unconfirmed_submit_at=None,
                task_hint=None,
            )
        except InvalidTransition:
            # Cancelled meanwhile. If the job had an heir, it took the callback key and waits
            # for this task: tell it, so it adopts the task instead of paying for another.
            log.warning(
                "job %s: cancelled while its submit was in flight (Vidgo task %s)",
                job.id,
                receipt.task_id,
            )
            await self._hand_task_to_heir(job, receipt.task_id, now)
            return
        set_vidgo_task_id(receipt.task_id)
        log.info("job %s: submitted to Vidgo as %s", job.id, receipt.task_id)
        try:
            immediate = self._kind(job).result_at_submit(job, receipt)
        except UnusableResult as exc:
            await self._finish(
                job, JobState.FAILED, last_error=exc.message, error_kind=exc.error_kind
            )
            return
        except Exception as exc:
            await self._malformed(job, exc)
            return
        if immediate is not None:
            # The model answered at once: no task to wait for; deliver through the dispatcher.
            await self._store_result(job, receipt.task_id, immediate, deliver_now=False)
            return
        # Seen callbacks 0: one that arrived while the submit was in flight makes it due now.
        job = await self.store.reschedule(
            job.id,
            now,
            min(now + self._poll_delay(0), job.deadline_at),
            seen_callbacks=0,
            lease=job.lease_id,
            min_poll_gap=self.config.callback_min_poll_gap,
        )
        self._scheduler.notify_due(job.due_at)
        self._spawn(self._after_submit(job), f"stemcord-after-submit-{job.id}")

    async def _hand_task_to_heir(self, job: JobRecord, task_id: str, now: float) -> None:
        if job.callback_key is None:
            return
        heir = await self.store.note_callback(
            now, callback_key=job.callback_key, task_hint=task_id, min_poll_gap=0.0
        )
        if heir is not None and heir.id != job.id and heir.state.is_active:
            self._scheduler.notify_due(heir.due_at)

    async def _submit_failed(
        self, job: JobRecord, exc: VidgoError, now: float, *, maybe: bool, unconfirmed: bool
    ) -> None:
        """A submit got no usable answer: resend later, wait for Vidgo, or give up."""
        kind = self._kind(job)
        if maybe:
            log.warning("job %s: Vidgo may have taken the submit (%s)", job.id, exc)
        still_unconfirmed = maybe or unconfirmed
        if still_unconfirmed and not kind.resend_is_safe(job):
            await self._await_confirmation(job, now)
            return
        if job.attempts >= self.config.submit_max_attempts or now >= job.deadline_at:
            if still_unconfirmed:
                await self._finish_unconfirmed(job)
            else:
                await self._finish(
                    job,
                    JobState.FAILED,
                    last_error=f"Vidgo could not be reached: {exc.message}",
                    error_kind=ErrorKind.SUBMIT_GAVE_UP,
                )
            return
        delay = min(self.config.submit_backoff_max, 2.0**job.attempts) * random.uniform(0.5, 1.0)
        if isinstance(exc, VidgoRateLimited) and exc.retry_after:
            delay = max(delay, exc.retry_after)
        log.warning("job %s: submit failed (%s); retrying in %.1f s", job.id, exc, delay)
        # Nothing reached Vidgo this time: unless an earlier attempt might have, the job is
        # plainly unsubmitted again.
        changes: dict[str, Any] = {} if still_unconfirmed else {"unconfirmed_submit_at": None}
        await self._reschedule(job, now, now + delay, last_error=exc.message, **changes)

    async def _try_later(
        self, job: JobRecord, exc: TryLater, now: float, *, unconfirmed: bool
    ) -> None:
        """The kind sent nothing because something it needs is busy: submit again later.

        Not an attempt (the attempt recorded before the call is taken back), so a busy spell
        never uses up ``submit_max_attempts``; the job's deadline still ends the wait.
        """
        if now >= job.deadline_at:
            await self._expire(job)
            return
        log.info("job %s: %s; trying again in %.1f s", job.id, exc.message, exc.retry_after)
        # Nothing was sent this time: unless an earlier attempt might have reached its
        # destination, the job is plainly unsubmitted again.
        changes: dict[str, Any] = {} if unconfirmed else {"unconfirmed_submit_at": None}
        await self._reschedule(
            job,
            now,
            now + exc.retry_after,
            attempts=max(0, job.attempts - 1),
            last_error=exc.message,
            **changes,
        )

    async def _await_confirmation(self, job: JobRecord, now: float) -> None:
        """Vidgo may have the task: wait for its callback (which names it), or give up."""
        since = job.unconfirmed_submit_at if job.unconfirmed_submit_at is not None else now
        until = min(since + self.config.unconfirmed_grace, job.deadline_at)
        if self.config.callbacks_enabled and now < until:
            log.info(
                "job %s: waiting up to %.0f s for Vidgo to report the task back",
                job.id,
                until - now,
            )
            await self._reschedule(job, now, until)
            self._spawn(self._progress(job), f"stemcord-progress-{job.id}")
            return
        await self._finish_unconfirmed(job)

    async def _finish_unconfirmed(self, job: JobRecord) -> None:
        await self._finish(
            job, JobState.FAILED, last_error=UNCONFIRMED_MESSAGE, error_kind=ErrorKind.UNCONFIRMED
        )

    async def _check_task_hint(self, job: JobRecord) -> JobRecord | None:
        """A callback named a task for a job that never learned its task id: adopt it if it is
        truly the job's (read with our own key, checked against the job), else drop the hint.

        Returns the job to carry on with, or ``None`` when the job was taken care of.
        """
        hint = job.task_hint
        assert hint is not None  # noqa: S101 - only called with a hint
        now = self._clock()
        reason: str | None
        detail: TaskDetail | None = None
        try:
            detail = await self.vidgo.get_task(hint)
        except VidgoNotFound:
            reason = "Vidgo does not know it"
        except VidgoError as exc:
            # Cannot check now: keep the hint and look again soon.
            log.warning("job %s: could not read the task a callback named (%s)", job.id, exc)
            await self._reschedule(job, now, now + self._poll_delay(job.polls + 1), polled_at=now)
            return None
        else:
            since = (
                job.unconfirmed_submit_at
                if job.unconfirmed_submit_at is not None
                else job.created_at
            )
            reason = self._kind(job).contradicts(job, detail, since=since)
            if reason is None:
                owner = await self.store.get_by_vidgo_task(hint)
                if owner is not None and owner.id != job.id:
                    reason = f"it belongs to job {owner.id}"
        if reason is not None or detail is None:
            log.warning(
                "job %s: a callback named Vidgo task %.80r, which is not this job's (%s); ignored",
                job.id,
                hint,
                reason,
            )
            return await self.store.update(job.id, now, lease=job.lease_id, task_hint=None)
        job = await self.store.transition(
            job.id,
            JobState.SUBMITTED,
            now,
            expect={JobState.ACCEPTED},
            lease=job.lease_id,
            vidgo_task_id=hint,
            task_hint=None,
            unconfirmed_submit_at=None,
            polled_at=now,
        )
        set_vidgo_task_id(hint)
        log.info("job %s: adopted Vidgo task %s, named by its callback", job.id, hint)
        await self._act_on_detail(job, detail, now, polls=job.polls + 1)
        return None

    async def _callback_for(self, job: JobRecord) -> tuple[str | None, dict[str, Any]]:
        """The job's callback URL (``None`` without callbacks) and a key to record if new."""
        if not self.config.callbacks_enabled:
            return None, {}
        changes: dict[str, Any] = {}
        key = job.callback_key
        if key is None:  # recorded before callback keys existed
            key = job.id
            changes["callback_key"] = key
        return self.callback_url(callback_token(await self._secret(), key)), changes

    def _kind(self, job: JobRecord) -> JobKind:
        kind = self.kinds.get(job.kind)
        if kind is None:
            raise KindNotEnabled(f"jobs of kind {job.kind!r} are not enabled")
        return kind

    async def _after_submit(self, job: JobRecord) -> None:
        """Best-effort extras after a submit: the source track's title/cover, progress."""
        if job.source_kind is SourceKind.IDS and job.track is None and job.source_audio_id:
            try:
                assert job.source_task_id  # noqa: S101
                track = await self.vidgo.get_track(job.source_task_id, job.source_audio_id)
            except VidgoError as exc:
                log.info("job %s: no track details (%s)", job.id, exc)
            else:
                if track is not None:
                    job = await self.store.update(job.id, self._clock(), track=track_dict(track))
        await self._progress(job)

    async def _fail_duplicate(self, job: JobRecord, exc: VidgoDuplicateError) -> None:
        """Vidgo will not separate the track again: deliver what it made the first time."""
        cached = await self.store.cache_get(job.source_key)
        if cached is not None and cached.is_pointer and cached.vidgo_task_id is not None:
            # Retention kept only the task id of the track's one separation: read it again.
            if await self._read_again(job, cached.vidgo_task_id):
                return
        elif cached is not None:
            changed = await self.store.record_outcome(
                job.id,
                JobState.SUCCEEDED,
                self._clock(),
                result=cached.result,
                track=cached.track,
                lease=job.lease_id,
            )
            self._after_outcome(changed)
            return
        await self._finish(
            job, JobState.FAILED, last_error=exc.message, error_kind=ErrorKind.DUPLICATE
        )

    async def _read_again(self, job: JobRecord, task_id: str) -> bool:
        """Take the result of the track's earlier task ``task_id`` if Vidgo still has it.

        The earlier task must be the same separation of the same track (the kind's checks of
        a task named by a callback, with no time bound: it is older than this job by
        design) and finished. Returns ``False`` when it is not usable; the caller then fails
        the job as a duplicate.
        """
        try:
            detail = await self.vidgo.get_task(task_id)
        except VidgoError as exc:
            log.info("job %s: the earlier task %s could not be read (%s)", job.id, task_id, exc)
            return False
        why = self._kind(job).contradicts(job, detail, since=0.0)
        if why is not None or detail.status is not TaskStatus.FINISHED:
            log.warning(
                "job %s: the earlier task %s is not usable (%s)",
                job.id,
                task_id,
                why or f"it is {detail.status}",
            )
            return False
        log.info("job %s: the track was separated before; task %s read again", job.id, task_id)
        await self._succeed(job, detail)
        return True

    async def _poll(self, job: JobRecord) -> None:
        """Read the job's task from Vidgo and act on what it says."""
        assert job.vidgo_task_id  # noqa: S101 - submitted jobs have a task id
        now = self._clock()
        safety_poll_at = job.created_at + self.config.poll_max_interval
        if self.callbacks_healthy and job.callbacks == 0 and now < safety_poll_at:
            # Planned before callbacks were seen to work: no need to ask Vidgo yet.
            await self._reschedule(job, now, safety_poll_at)
            return
        polls = job.polls + 1
        try:
            detail = await self.vidgo.get_task(job.vidgo_task_id)
        except VidgoNotFound as exc:
            await self._finish(
                job, JobState.FAILED, last_error=exc.message, error_kind=ErrorKind.NOT_FOUND
            )
            return
        except VidgoMalformedResponse as exc:
            # Once may be a hiccup on the way; again and again means the task's data is odd.
            faults = job.faults + 1
            if faults >= self.config.max_faults:
                await self._malformed(job, exc)
                return
            log.warning("job %s: unreadable detail reply (%s)", job.id, exc)
            await self._reschedule(
                job,
                now,
                now + self._poll_delay(polls),
                polls=polls,
                polled_at=now,
                faults=faults,
                last_error=exc.message,
            )
            return
        except VidgoError as exc:
            if isinstance(exc, VidgoAuthError):
                log.error(
                    "job %s: Vidgo refused the API key while polling; check VIDGO_API_KEY", job.id
                )
            else:
                log.warning("job %s: poll failed (%s)", job.id, exc)
            if now >= job.deadline_at:
                await self._expire(job)
                return
            delay = self._poll_delay(polls)
            if isinstance(exc, VidgoRateLimited) and exc.retry_after:
                delay = max(delay, exc.retry_after)
            await self._reschedule(
                job, now, now + delay, polls=polls, polled_at=now, last_error=exc.message
            )
            return
        await self._act_on_detail(job, detail, now, polls=polls)

    async def _act_on_detail(
        self, job: JobRecord, detail: TaskDetail, now: float, *, polls: int
    ) -> None:
        """What Vidgo's own reading of the task means for the job."""
        if detail.status is TaskStatus.FINISHED:
            await self._succeed(job, detail)
        elif detail.status is TaskStatus.FAILED:
            await self._finish(
                job,
                JobState.FAILED,
                last_error=detail.error_message or "Vidgo reported a failure without a reason",
                error_kind=ErrorKind.VIDGO_FAILED,
            )
        elif now >= job.deadline_at:
            await self._expire(job)
        else:
            if detail.status is TaskStatus.RUNNING and job.state is JobState.SUBMITTED:
                job = await self.store.transition(job.id, JobState.RUNNING, now, lease=job.lease_id)
            await self._reschedule(
                job, now, now + self._poll_delay(polls), polls=polls, polled_at=now
            )
            self._spawn(self._progress(job), f"stemcord-progress-{job.id}")

    def _poll_delay(self, polls: int) -> float:
        """Wait before the next poll, given how many polls the job has had.

        ``poll_interval`` before the first, then x1.5 each time with +-15 % jitter, up to the
        cap. While callbacks are seen to arrive, polls are only the safety net and wait at
        least ``poll_max_interval``.
        """
        cap = (
            self.config.poll_max_interval_with_callbacks
            if self.config.callbacks_enabled
            else self.config.poll_max_interval
        )
        delay = min(cap, self.config.poll_interval * 1.5**polls)
        if polls > 0:
            delay *= random.uniform(0.85, 1.15)
        if self.callbacks_healthy:
            # Callbacks are arriving: a poll is only the safety net, so keep it rare.
            delay = max(delay, self.config.poll_max_interval)
        return delay

    async def _reschedule(self, job: JobRecord, now: float, due_at: float, **changes: Any) -> None:
        """Release the worker's lease with the next due time (a callback meanwhile wins)."""
        updated = await self.store.reschedule(
            job.id,
            now,
            min(due_at, job.deadline_at),
            seen_callbacks=job.callbacks,
            lease=job.lease_id,
            min_poll_gap=self.config.callback_min_poll_gap,
            **changes,
        )
        self._scheduler.notify_due(updated.due_at)

    async def _succeed(self, job: JobRecord, detail: TaskDetail) -> None:
        try:
            kind = self._kind(job)
            if kind.PARSE_IN_THREAD:
                result = await asyncio.to_thread(kind.result_of, job, detail)
            else:
                result = kind.result_of(job, detail)
        except UnusableResult as exc:
            await self._finish(
                job, JobState.FAILED, last_error=exc.message, error_kind=exc.error_kind
            )
            return
        except KindNotEnabled as exc:
            await self._finish(
                job, JobState.FAILED, last_error=str(exc), error_kind=ErrorKind.NOT_ENABLED
            )
            return
        except Exception as exc:
            await self._malformed(job, exc)
            return
        await self._store_result(job, detail.task_id, result)

    async def _malformed(self, job: JobRecord, exc: Exception) -> None:
        """Vidgo's result could not be read: the job ends now instead of retrying forever."""
        log.warning("job %s: Vidgo's result could not be read (%r)", job.id, exc)
        await self._finish(
            job,
            JobState.FAILED,
            last_error=f"Vidgo's answer could not be read ({type(exc).__name__})",
            error_kind=ErrorKind.MALFORMED,
        )

    async def _store_result(
        self,
        job: JobRecord,
        vidgo_task_id: str,
        result: dict[str, Any],
        *,
        deliver_now: bool = True,
    ) -> None:
        """Record a success for the job and its followers (and cache it), then deliver."""
        now = self._clock()
        cache = CachedResult(job.source_key, job.model, vidgo_task_id, result, job.track, now)
        changed = await self.store.record_outcome(
            job.id,
            JobState.SUCCEEDED,
            now,
            result=result,
            track=job.track,
            cache=cache,
            lease=job.lease_id,
            lease_until=now + self.config.work_lease if deliver_now else None,
            owner=self.instance.id if deliver_now else None,
        )
        if not deliver_now:
            self._after_outcome(changed)
            return
        if not changed:
            return
        # The jobs stay leased to this worker: deliver them now rather than through another
        # round trip of the dispatcher (a crash just hands them to the next process). The
        # post-success step runs once, for the job itself; its followers share what it did.
        first, *followers = changed
        ready: list[JobRecord] = []
        with self._holding(first.id):
            try:
                prepared = await self._prepare(first)
                if prepared is not None:
                    ready.append(prepared)
                    for other in followers:
                        with self._holding(other.id):
                            ready.append(await self._share_prepared(prepared, other))
                else:
                    await self._followers_wait(first, followers)
            except LeaseLost as lost:
                log.info("job %s: another worker took it over (%s)", first.id, lost)
                return
        await asyncio.gather(*(self._deliver_held(other) for other in ready))

    async def _deliver_held(self, job: JobRecord) -> None:
        with self._holding(job.id):
            try:
                prepared = await self._prepare(job)
                if prepared is not None:
                    await self._deliver(prepared)
            except LeaseLost as lost:
                log.info("job %s: another worker took its delivery over (%s)", job.id, lost)

    # --- the post-success step --------------------------------------------------------------

    async def _prepare(self, job: JobRecord) -> JobRecord | None:
        """Run the kind's post-success step if the job owes one; the job to deliver.

        ``None``: the step failed and was rescheduled (the job is delivered later).
        """
        if (
            job.state is not JobState.SUCCEEDED
            or job.outcome is not JobState.SUCCEEDED
            or job.prepared_at is not None
        ):
            return job
        kind = self.kinds.get(job.kind)
        if kind is None or not kind.needs_prepare(job):
            return job
        if job.leader_id is not None:
            # A follower shares its leader's step once that is done (after a crash, or
            # after the leader's step failed once and was retried).
            leader = await self.store.get(job.leader_id)
            if leader is not None and leader.prepared_at is not None:
                return await self._share_prepared(leader, job)
        progress: dict[str, Any] = dict(job.result or {})

        async def save(changes: Mapping[str, Any]) -> None:
            nonlocal progress
            progress = {**progress, **changes}
            await self.store.update(job.id, self._clock(), lease=job.lease_id, result=progress)

        # The status message says the result is being made ready, not that it was posted.
        self._spawn(self._progress(job), f"stemcord-progress-{job.id}")
        try:
            prepared = await kind.prepare(job, save)
        except LeaseLost:
            raise
        except Exception as exc:
            faults = job.faults + 1
            reason = f"post-success step failed ({type(exc).__name__})"
            if faults < self.config.max_faults:
                log.warning("job %s: %s; retrying", job.id, reason, exc_info=True)
                now = self._clock()
                delay = min(
                    self.config.fault_backoff_max,
                    self.config.fault_backoff_base * 2.0 ** (faults - 1),
                ) * random.uniform(0.5, 1.0)
                updated = await self.store.update(
                    job.id,
                    now,
                    lease=job.lease_id,
                    faults=faults,
                    due_at=now + delay,
                    last_error=reason,
                )
                self._scheduler.notify_due(updated.due_at)
                return None
            log.error("job %s: %s %d times; delivering without it", job.id, reason, faults)
            prepared = Prepared(kind.prepare_gave_up(replace(job, result=progress), reason))
            job = await self.store.update(job.id, self._clock(), lease=job.lease_id, faults=faults)
        result = {**progress, **prepared.changes}
        job = await self.store.update(
            job.id, self._clock(), lease=job.lease_id, result=result, prepared_at=self._clock()
        )
        await self._share_with_cache(job, cacheable=prepared.cacheable)
        return job

    async def _followers_wait(self, leader: JobRecord, followers: list[JobRecord]) -> None:
        """The leader's step is to be retried: its followers come back just after it."""
        if not followers:
            return
        now = self._clock()
        fresh = await self.store.get(leader.id)
        due = (fresh.due_at if fresh is not None and fresh.due_at is not None else now) + 1.0
        for other in followers:
            updated = await self.store.update(other.id, now, lease=other.lease_id, due_at=due)
            self._scheduler.notify_due(updated.due_at)

    async def _share_prepared(self, prepared: JobRecord, follower: JobRecord) -> JobRecord:
        """A follower gets what its leader's post-success step made (it never runs its own)."""
        if prepared.prepared_at is None or follower.prepared_at is not None:
            return follower
        return await self.store.update(
            follower.id,
            self._clock(),
            lease=follower.lease_id,
            result=prepared.result,
            prepared_at=prepared.prepared_at,
        )

    async def _share_with_cache(self, job: JobRecord, *, cacheable: bool) -> None:
        """The cached copy of the result gets the step's changes, or goes if it is unusable."""
        task = (job.result or {}).get("vidgo_task_id") or job.vidgo_task_id
        task = task if isinstance(task, str) else None
        try:
            if cacheable:
                await self.store.cache_update_result(job.source_key, task, job.result or {})
            elif await self.store.cache_forget(job.source_key, task):
                log.info("job %s: its cached result can no longer be delivered; forgotten", job.id)
        except Exception:
            # The job's own result is what gets delivered; the cache only helps later requests.
            log.warning("job %s: could not update the cached result", job.id, exc_info=True)

    async def _expire(self, job: JobRecord) -> None:
        await self._finish(
            job,
            JobState.EXPIRED,
            last_error="Vidgo did not finish in time",
            error_kind=ErrorKind.EXPIRED,
        )

    async def _finish(
        self, job: JobRecord, target: JobState, *, last_error: str, error_kind: str
    ) -> None:
        log.info("job %s: %s (%s: %s)", job.id, target.value, error_kind, last_error)
        changed = await self.store.record_outcome(
            job.id,
            target,
            self._clock(),
            last_error=last_error[:1000],
            error_kind=str(error_kind),
            track=job.track,
            lease=job.lease_id,
        )
        self._after_outcome(changed)

    def _after_outcome(self, changed: list[JobRecord]) -> None:
        """Wake the dispatcher for the deliveries now due (the job and its followers)."""
        for other in changed:
            self._scheduler.notify_due(other.due_at)

    async def _check_leader(self, job: JobRecord) -> None:
        """A follower became due (only after a crash): copy its leader's outcome if known."""
        leader = await self.store.get(job.leader_id) if job.leader_id else None
        now = self._clock()
        if leader is None or leader.state is JobState.CANCELLED:
            await self.store.update(job.id, now, lease=job.lease_id, due_at=None)
            return
        if leader.outcome is not None and not leader.state.is_active:
            await self.store.record_outcome(
                job.id,
                leader.outcome,
                now,
                result=leader.result,
                track=leader.track,
                last_error=leader.last_error,
                error_kind=leader.error_kind,
                lease=job.lease_id,
            )
            self._scheduler.wake()
        else:
            await self.store.update(job.id, now, lease=job.lease_id, due_at=None)

    # --- delivery -------------------------------------------------------------------------

    async def _deliver(self, job: JobRecord) -> None:
        now = self._clock()
        attempts = job.delivery_attempts + 1
        # Recorded before posting: after a crash, the next attempt knows a post may exist.
        # ``job`` (given to the delivery) still carries the previous attempt's time.
        await self.store.update(job.id, now, lease=job.lease_id, delivery_started_at=now)
        try:
            message_id = await self.delivery.deliver(job)
        except DeliveryError as exc:
            reason = exc.reason
            permanent = exc.permanent
        except Exception as exc:  # a bug in the delivery layer must not lose the job
            log.exception("job %s: delivery raised unexpectedly", job.id)
            reason, permanent = f"{type(exc).__name__}", False
        else:
            # Before the job is recorded as delivered: a crash in between delivers it again
            # (its post is found, not repeated) and comes back here.
            await self._start_follow_ups(job, message_id)
            await self.store.transition(
                job.id,
                JobState.DELIVERED,
                self._clock(),
                lease=job.lease_id,
                result_message_id=message_id,
                delivery_attempts=attempts,
                due_at=None,
            )
            log.info("job %s: delivered (message %s)", job.id, message_id)
            if self.observer is not None and job.outcome is not None:
                started = job.finished_at if job.finished_at is not None else job.updated_at
                self.observer.delivered(job.outcome.value, self._clock() - started)
            return
        if permanent or attempts >= self.config.delivery_max_attempts:
            log.error("job %s: undeliverable after %d attempt(s): %s", job.id, attempts, reason)
            if job.state is JobState.UNDELIVERABLE:
                await self.store.update(
                    job.id,
                    now,
                    lease=job.lease_id,
                    due_at=None,
                    delivery_attempts=attempts,
                    last_error=reason,
                )
            else:
                await self.store.transition(
                    job.id,
                    JobState.UNDELIVERABLE,
                    now,
                    lease=job.lease_id,
                    due_at=None,
                    delivery_attempts=attempts,
                    last_error=reason,
                )
            return
        delay = min(
            self.config.delivery_backoff_max,
            self.config.delivery_backoff_base * 2 ** (attempts - 1),
        ) * random.uniform(0.5, 1.0)
        log.warning("job %s: delivery failed (%s); retrying in %.1f s", job.id, reason, delay)
        updated = await self.store.update(
            job.id,
            now,
            lease=job.lease_id,
            due_at=now + delay,
            delivery_attempts=attempts,
            last_error=reason,
        )
        self._scheduler.notify_due(updated.due_at)

    async def _start_follow_ups(self, job: JobRecord, message_id: int | None) -> None:
        """Record the jobs a posted success asked for (``/separate key:``), each once.

        Each kind is asked (:meth:`bot.kinds.JobKind.follow_up`). A follow-up gets an id
        derived from its parent's (:func:`follow_up_id`), so a retried delivery finds it
        recorded and starts nothing more. It is part of the request that already passed the
        server's limits, so none are checked again; it is sent where the parent's result was.
        A new one is worked on in the background, never inside this delivery.
        """
        if job.outcome is not JobState.SUCCEEDED:
            return
        for kind in self.kinds.values():
            request = kind.follow_up(job, message_id)
            if request is None:
                continue
            follow_id = follow_up_id(job.id, kind.NAME)
            if await self.store.get(follow_id) is not None:
                continue
            now = self._clock()
            new = self._new_job(
                request,
                follow_id,
                now,
                result_channel_id=job.result_channel_id,
                dm_on_completion=job.dm_on_completion,
            )
            admitted = await self.store.admit(
                new,
                now,
                submit_lease_until=now + self.config.work_lease,
                owner=self.instance.id,
            )
            log.info(
                "job %s: started follow-up %s (%s, %s)",
                job.id,
                admitted.job.id,
                request.kind,
                admitted.admission.value,
            )
            if admitted.admission is Admission.NEW:
                self._spawn(self._work(admitted.job), f"stemcord-follow-up-{admitted.job.id}")
            elif admitted.admission is Admission.CACHED:
                self._scheduler.notify_due(admitted.job.due_at)

    async def _progress(self, job: JobRecord) -> None:
        try:
            await self.delivery.show_progress(job)
        except Exception:
            log.warning("job %s: could not update the status message", job.id, exc_info=True)

    async def cancel(self, job_id: str) -> JobRecord | None:
        """Stop tracking a job (Vidgo has no cancel endpoint); a late result is not posted."""
        try:
            job = await self.store.cancel(job_id, self._clock())
        except InvalidTransition:
            return await self.store.get(job_id)
        log.info("job %s: cancelled", job.id)
        self._scheduler.wake()  # an heir may have become due
        # Whoever cancelled (a button, a command), the status message shows it and loses
        # its buttons.
        self._spawn(self._progress(job), f"stemcord-progress-{job.id}")
        return job

    # --- introspection for tests and metrics -----------------------------------------------

    def describe(self) -> Mapping[str, Any]:
        """A few live numbers."""
        return {"workers": self._scheduler.busy, "background": len(self._background)}
