"""The job engine: from a validated request to exactly one delivered message.

The engine owns the life of every job (see :mod:`storage.jobstate` for the state machine):

1. :meth:`JobEngine.submit` records the job first (answering from the results cache or
   joining an identical job in flight when it can), then submits it to Vidgo.
2. One :class:`~bot.scheduler.DueScheduler` wakes for whatever is due next: a submit to retry,
   a poll, a delivery. Polls start after ``poll_interval`` and grow x1.5 with jitter up to a
   cap (higher when callbacks are on, since polling is then only the safety net).
3. A callback (:meth:`JobEngine.on_callback`) is only a hint: it makes the job due now, and
   the worker re-reads the task from Vidgo's detail endpoint before changing anything.
4. When the outcome is known it is recorded for the job and every follower in one
   transaction, then delivered through :class:`~bot.delivery.Delivery` with a stable nonce.

A job whose submit was in flight when the process died is still ``accepted`` with a lease;
at start-up leases are released and such jobs are submitted again (``docs/decisions.md``).
The engine never imports Discord.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from bot.delivery import Delivery, DeliveryError
from bot.kinds import (
    SEPARATION,
    JobKind,
    SeparationApi,
    SeparationKind,
    UnusableResult,
)
from bot.logs import job_context, set_job_context, set_vidgo_task_id
from bot.observe import DeliveryObserver
from bot.policy import GuildPolicy
from bot.scheduler import DueScheduler
from bot.sources import Plan, Source
from bot.vidgo.errors import (
    VidgoAuthError,
    VidgoDuplicateError,
    VidgoError,
    VidgoInvalidRequest,
    VidgoNotFound,
    VidgoRateLimited,
    VidgoTransientError,
)
from bot.vidgo.results import SubmitReceipt, TaskDetail, TaskStatus, TrackInfo
from storage.base import JobStore
from storage.jobstate import InvalidTransition, JobState
from storage.records import Admission, CachedResult, JobRecord, NewJob, SourceKind

log = logging.getLogger(__name__)

_ID_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
JOB_ID_LENGTH = 10
CALLBACK_PATH = "/vidgo/callback/"


class ErrorKind(StrEnum):
    """Why a job failed; the Discord layer maps each to one sentence."""

    AUTH = "auth"  # Vidgo refused our key
    DUPLICATE = "duplicate"  # Vidgo's once-per-track rule
    INVALID = "invalid"  # Vidgo refused the input
    NOT_FOUND = "not_found"  # the source or the task is unknown to Vidgo
    VIDGO_FAILED = "vidgo_failed"  # the task failed at Vidgo (error_message shown)
    NO_STEMS = "no_stems"  # finished without a usable stem URL (bot.kinds.NO_STEMS)
    EXPIRED = "expired"  # no answer before JOB_TIMEOUT_SECONDS
    SUBMIT_GAVE_UP = "submit_gave_up"  # Vidgo stayed unreachable for every submit attempt


class VidgoApi(SeparationApi, Protocol):
    """The part of :class:`bot.vidgo.client.VidgoClient` the engine uses.

    Task reads, plus the separation submits: separations are always enabled.
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
    max_parallel: int = 32
    claim_batch: int = 64

    @property
    def callbacks_enabled(self) -> bool:
        """Callbacks are requested only with a public URL."""
        return self.public_url is not None


@dataclass(frozen=True, slots=True)
class JobRequest:
    """A validated request of any kind (see :mod:`bot.kinds`), ready to be recorded.

    Requests with the same ``source_key`` are identical: the later one joins the earlier one
    while it runs, or is answered from the results cache once it succeeded. Every kind starts
    its keys with its model's name (as separations do), so keys of two kinds never clash.
    """

    kind: str
    model: str
    source_kind: SourceKind
    source_key: str
    requester_id: int
    channel_id: int
    guild_id: int | None = None
    source_task_id: str | None = None
    source_audio_id: str | None = None
    source_url: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    track: Mapping[str, Any] | None = None
    status_message_id: int | None = None
    reply_to_message_id: int | None = None


@dataclass(frozen=True, slots=True)
class SeparationRequest:
    """A validated ``/separate`` request."""

    source: Source
    plan: Plan
    requester_id: int
    channel_id: int
    guild_id: int | None = None
    status_message_id: int | None = None

    def as_job_request(self) -> JobRequest:
        """The generic request the engine records."""
        return JobRequest(
            kind=SEPARATION,
            model=self.plan.model.value,
            source_kind=self.source.kind,
            source_key=self.plan.source_key,
            requester_id=self.requester_id,
            channel_id=self.channel_id,
            guild_id=self.guild_id,
            source_task_id=self.source.task_id,
            source_audio_id=self.source.audio_id,
            source_url=self.source.url,
            options=dict(self.plan.options),
            status_message_id=self.status_message_id,
        )


@dataclass(frozen=True, slots=True)
class Submitted:
    """What :meth:`JobEngine.submit` did with a request."""

    job: JobRecord
    admission: Admission


class CallbackOutcome(StrEnum):
    """How a callback was taken."""

    UNKNOWN = "unknown"  # no job has that token: 404, nothing written
    ACCEPTED = "accepted"  # the job will be re-read from Vidgo now
    IGNORED = "ignored"  # the job is already past Vidgo (duplicate or late callback)


def new_job_id() -> str:
    """A short random id members can type (10 characters, no look-alike letters)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(JOB_ID_LENGTH))


def new_callback_token() -> str:
    """A fresh 128-bit secret for one job's callback URL."""
    return secrets.token_urlsafe(16)


def hash_token(token: str) -> str:
    """What is stored instead of the token."""
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
        kinds: Mapping[str, JobKind] | None = None,
        clock: Callable[[], float] = time.time,
        observer: DeliveryObserver | None = None,
    ) -> None:
        self.store = store
        self.observer = observer
        self.vidgo = vidgo
        self.delivery = delivery
        self.config = config
        # Separations always; other kinds (MIDI, lyrics) are added by the app.
        self.kinds: dict[str, JobKind] = {SEPARATION: SeparationKind(vidgo), **(kinds or {})}
        self._clock = clock
        self._scheduler = DueScheduler(
            store,
            self._work,
            clock=clock,
            lease=config.work_lease,
            batch=config.claim_batch,
            max_parallel=config.max_parallel,
        )
        self._background: set[asyncio.Task[Any]] = set()
        self._running = False
        self._last_callback_at: float | None = None

    # --- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Resume every unfinished job and start the dispatcher."""
        released = await self.store.release_leases(self._clock())
        if released:
            log.info("resuming %d job(s) that were in progress when the bot stopped", released)
        self._running = True
        self._scheduler.start()

    async def stop(self, *, grace: float = 10.0) -> None:
        """Stop taking work; let in-flight work finish for ``grace`` seconds."""
        self._running = False
        await self._scheduler.stop(grace=grace)
        if self._background:
            _, pending = await asyncio.wait(set(self._background), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- requests -------------------------------------------------------------------------

    async def submit(
        self, request: SeparationRequest | JobRequest, *, policy: GuildPolicy | None = None
    ) -> Submitted:
        """Record a request, then submit it to Vidgo (unless cached or joined).

        ``policy`` is the server's: its per-member limits are checked as the job is recorded
        (raising :class:`storage.records.LimitReached`, with nothing recorded), and the job
        keeps its result channel and DM choice. ``None`` means no limits.
        """
        if isinstance(request, SeparationRequest):
            request = request.as_job_request()
        now = self._clock()
        token = new_callback_token() if self.config.callbacks_enabled else None
        new = NewJob(
            id=new_job_id(),
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
            callback_token_hash=hash_token(token) if token else None,
            deadline_at=now + self.config.job_timeout,
            track=dict(request.track) if request.track is not None else None,
            status_message_id=request.status_message_id,
            reply_to_message_id=request.reply_to_message_id,
            **_policy_fields(policy),
        )
        admitted = await self.store.admit(
            new,
            now,
            submit_lease_until=now + self.config.work_lease,
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
            job = await self._submit_to_vidgo(job, token)
        elif admitted.admission is Admission.CACHED:
            self._scheduler.notify_due(job.due_at)
        return Submitted(job, admitted.admission)

    async def attach_status_message(self, job_id: str, message_id: int) -> JobRecord:
        """Remember the public status message of a job (edited as it moves)."""
        return await self.store.update(job_id, self._clock(), status_message_id=message_id)

    async def get_job(self, job_id: str) -> JobRecord | None:
        """One job by id."""
        return await self.store.get(job_id)

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

    async def on_callback(self, token: str) -> CallbackOutcome:
        """Vidgo (or someone) POSTed to a callback URL: re-read that job's task soon."""
        job = await self.store.note_callback(hash_token(token), self._clock())
        if job is None:
            return CallbackOutcome.UNKNOWN
        with job_context(job.id, job.vidgo_task_id):
            log.debug("job %s: callback received (%s)", job.id, job.state.value)
        self._last_callback_at = self._clock()
        if not job.state.is_active:
            return CallbackOutcome.IGNORED
        self._scheduler.notify_due(job.due_at)
        return CallbackOutcome.ACCEPTED

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
        """Do whatever a claimed (leased) job is due for."""
        if job.state is JobState.ACCEPTED:
            await self._submit_to_vidgo(job, None)
        elif job.state.is_active and job.is_follower:
            await self._check_leader(job)
        elif job.state.is_active:
            await self._poll(job)
        elif job.state.awaits_delivery or job.state is JobState.UNDELIVERABLE:
            await self._deliver(job)
        else:
            await self.store.update(job.id, self._clock(), due_at=None)

    async def _submit_to_vidgo(self, job: JobRecord, token: str | None) -> JobRecord:
        """Submit a job that is ``accepted``; the job is leased by the caller."""
        if token is None and self.config.callbacks_enabled:
            # A resubmit after a restart: the old token is unknown (only its hash is kept),
            # so the job gets a fresh one.
            token = new_callback_token()
        callback_url = self.callback_url(token) if token else None
        token_change: dict[str, Any] = {}
        if token and hash_token(token) != job.callback_token_hash:
            token_change["callback_token_hash"] = hash_token(token)
        now = self._clock()
        attempts = job.attempts + 1
        try:
            receipt = await self._send_submit(job, callback_url)
        except VidgoDuplicateError as exc:
            return await self._fail_duplicate(job, exc)
        except (VidgoAuthError, VidgoInvalidRequest, VidgoNotFound) as exc:
            kind = (
                ErrorKind.AUTH
                if isinstance(exc, VidgoAuthError)
                else ErrorKind.NOT_FOUND
                if isinstance(exc, VidgoNotFound)
                else ErrorKind.INVALID
            )
            if kind is ErrorKind.AUTH:
                log.error(
                    "job %s: Vidgo refused the API key (%s); check VIDGO_API_KEY", job.id, exc
                )
            return await self._finish(job, JobState.FAILED, last_error=exc.message, error_kind=kind)
        except (VidgoTransientError, VidgoRateLimited, VidgoError) as exc:
            if attempts >= self.config.submit_max_attempts or now >= job.deadline_at:
                return await self._finish(
                    job,
                    JobState.FAILED,
                    last_error=f"Vidgo could not be reached: {exc.message}",
                    error_kind=ErrorKind.SUBMIT_GAVE_UP,
                )
            delay = min(self.config.submit_backoff_max, 2.0**attempts) * random.uniform(0.5, 1.0)
            if isinstance(exc, VidgoRateLimited) and exc.retry_after:
                delay = max(delay, exc.retry_after)
            log.warning("job %s: submit failed (%s); retrying in %.1f s", job.id, exc, delay)
            updated = await self.store.update(
                job.id,
                now,
                due_at=now + delay,
                attempts=attempts,
                last_error=exc.message,
                **token_change,
            )
            self._scheduler.notify_due(updated.due_at)
            return updated
        first_poll = now + self._poll_delay(0)
        changes = {"attempts": attempts, "last_error": None, **token_change}
        try:
            job = await self._store_submitted(job, now, receipt, first_poll, changes)
        except InvalidTransition:
            log.warning(
                "job %s: cancelled while its submit was in flight; Vidgo task %s is left alone",
                job.id,
                receipt.task_id,
            )
            return await self.store.get(job.id) or job
        set_vidgo_task_id(receipt.task_id)
        log.info("job %s: submitted to Vidgo as %s", job.id, receipt.task_id)
        try:
            immediate = self._kind(job).result_at_submit(job, receipt)
        except UnusableResult as exc:
            return await self._finish(
                job, JobState.FAILED, last_error=exc.message, error_kind=exc.error_kind
            )
        if immediate is not None:
            # The model answered at once: no task to wait for; deliver through the dispatcher.
            await self._store_result(job, receipt.task_id, immediate, deliver_now=False)
            return await self.store.get(job.id) or job
        self._scheduler.notify_due(job.due_at)
        self._spawn(self._after_submit(job), f"stemcord-after-submit-{job.id}")
        return job

    async def _send_submit(self, job: JobRecord, callback_url: str | None) -> SubmitReceipt:
        return await self._kind(job).submit(job, callback_url)

    def _kind(self, job: JobRecord) -> JobKind:
        kind = self.kinds.get(job.kind)
        if kind is None:
            # A job of a kind this build does not run (e.g. a feature switched off later).
            raise VidgoInvalidRequest(f"jobs of kind {job.kind!r} are not enabled")
        return kind

    async def _store_submitted(
        self,
        job: JobRecord,
        now: float,
        receipt: SubmitReceipt,
        first_poll: float,
        changes: dict[str, Any],
    ) -> JobRecord:
        job = await self.store.transition(
            job.id,
            JobState.SUBMITTED,
            now,
            expect={JobState.ACCEPTED},
            vidgo_task_id=receipt.task_id,
            **changes,
        )
        # A callback may have arrived while the submit was in flight: honour it.
        return await self.store.reschedule(
            job.id, now, min(first_poll, job.deadline_at), seen_callbacks=0
        )

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

    async def _fail_duplicate(self, job: JobRecord, exc: VidgoDuplicateError) -> JobRecord:
        cached = await self.store.cache_get(job.source_key)
        if cached is not None:
            changed = await self.store.record_outcome(
                job.id, JobState.SUCCEEDED, self._clock(), result=cached.result, track=cached.track
            )
            return await self._after_outcome(job, changed)
        return await self._finish(
            job, JobState.FAILED, last_error=exc.message, error_kind=ErrorKind.DUPLICATE
        )

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
            await self._reschedule(job, now, now + delay, polls=polls, last_error=exc.message)
            return
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
                job = await self.store.transition(job.id, JobState.RUNNING, now)
            await self._reschedule(job, now, now + self._poll_delay(polls), polls=polls)
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
        updated = await self.store.reschedule(
            job.id, now, min(due_at, job.deadline_at), seen_callbacks=job.callbacks, **changes
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
        except VidgoInvalidRequest as exc:  # a kind this build does not run (see _kind)
            await self._finish(
                job, JobState.FAILED, last_error=exc.message, error_kind=ErrorKind.INVALID
            )
            return
        await self._store_result(job, detail.task_id, result)

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
            lease_until=now + self.config.work_lease if deliver_now else None,
        )
        if not deliver_now:
            await self._after_outcome(job, changed)
            return
        # The jobs stay leased to this worker: deliver them now rather than through another
        # round trip of the dispatcher (a crash just lets the lease run out).
        await asyncio.gather(*(self._deliver(other) for other in changed))

    async def _expire(self, job: JobRecord) -> None:
        await self._finish(
            job,
            JobState.EXPIRED,
            last_error="Vidgo did not finish in time",
            error_kind=ErrorKind.EXPIRED,
        )

    async def _finish(
        self, job: JobRecord, target: JobState, *, last_error: str, error_kind: str
    ) -> JobRecord:
        log.info("job %s: %s (%s: %s)", job.id, target.value, error_kind, last_error)
        changed = await self.store.record_outcome(
            job.id,
            target,
            self._clock(),
            last_error=last_error[:1000],
            error_kind=str(error_kind),
            track=job.track,
        )
        return await self._after_outcome(job, changed)

    async def _after_outcome(self, job: JobRecord, changed: list[JobRecord]) -> JobRecord:
        """Wake the dispatcher for the deliveries now due (the job and its followers)."""
        if not changed:
            return await self.store.get(job.id) or job
        for other in changed:
            self._scheduler.notify_due(other.due_at)
        return changed[0]

    async def _check_leader(self, job: JobRecord) -> None:
        """A follower became due (only after a crash): copy its leader's outcome if known."""
        leader = await self.store.get(job.leader_id) if job.leader_id else None
        now = self._clock()
        if leader is None or leader.state is JobState.CANCELLED:
            await self.store.update(job.id, now, due_at=None)
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
            )
            self._scheduler.wake()
        else:
            await self.store.update(job.id, now, due_at=None)

    # --- delivery -------------------------------------------------------------------------

    async def _deliver(self, job: JobRecord) -> None:
        now = self._clock()
        attempts = job.delivery_attempts + 1
        try:
            message_id = await self.delivery.deliver(job)
        except DeliveryError as exc:
            reason = exc.reason
            permanent = exc.permanent
        except Exception as exc:  # a bug in the delivery layer must not lose the job
            log.exception("job %s: delivery raised unexpectedly", job.id)
            reason, permanent = f"{type(exc).__name__}", False
        else:
            await self.store.transition(
                job.id,
                JobState.DELIVERED,
                self._clock(),
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
                    job.id, now, due_at=None, delivery_attempts=attempts, last_error=reason
                )
            else:
                await self.store.transition(
                    job.id,
                    JobState.UNDELIVERABLE,
                    now,
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
            job.id, now, due_at=now + delay, delivery_attempts=attempts, last_error=reason
        )
        self._scheduler.notify_due(updated.due_at)

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

    @property
    def dispatcher_running(self) -> bool:
        """Started, not stopped, and its dispatcher task alive (readiness asks this)."""
        return self._running and self._scheduler.running
