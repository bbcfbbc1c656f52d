"""Where an unfinished job stands: its place in the server's queue and an ETA.

The ETA is the median time from request to result of the model's most recent jobs (the last
:data:`ETA_SAMPLES` that ran a Vidgo task and succeeded) minus the time the job has already
waited. Vidgo runs tasks in parallel, so the position is shown for information and does not
stretch the estimate. With fewer than :data:`ETA_MIN_SAMPLES` finished jobs there is no
estimate yet.

Status messages are edited often, so the medians are kept in memory for
:data:`MEDIAN_TTL` seconds: a status edit then costs one indexed query (the position), and
:class:`StatusEdits` coalesces the edits themselves: one per job per interval, the latest
state wins, the end is never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from storage.base import JobStore
from storage.records import JobRecord

log = logging.getLogger(__name__)

ETA_SAMPLES = 50
ETA_MIN_SAMPLES = 3
MEDIAN_TTL = 60.0
# One job's status message is edited at most once per this many seconds (StatusEdits).
STATUS_EDIT_INTERVAL = 2.0
# How many ended jobs StatusEdits remembers, so a late progress edit cannot revive one.
ENDED_JOBS_KEPT = 10_000


@dataclass(frozen=True, slots=True)
class Progress:
    """An unfinished job's place in its server's queue and how long it should still take."""

    position: int | None  # 1 = the server's oldest unfinished job; None outside a server
    unfinished: int | None  # the server's unfinished jobs, this one included
    typical_seconds: float | None  # median duration of recent jobs of the model
    elapsed: float  # seconds since the request

    @property
    def remaining_seconds(self) -> float | None:
        """Seconds still expected (0 = overdue: any moment now); ``None`` = no estimate yet."""
        if self.typical_seconds is None:
            return None
        return max(0.0, self.typical_seconds - self.elapsed)


class ProgressTracker:
    """Computes :class:`Progress` for status messages from the store."""

    def __init__(
        self,
        store: JobStore,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        samples: int = ETA_SAMPLES,
        min_samples: int = ETA_MIN_SAMPLES,
        median_ttl: float = MEDIAN_TTL,
    ) -> None:
        self.store = store
        self._clock = clock
        self._monotonic = monotonic
        self.samples = samples
        self.min_samples = min_samples
        self.median_ttl = median_ttl
        self._medians: dict[str, tuple[float | None, float]] = {}

    async def progress_of(self, job: JobRecord) -> Progress | None:
        """The job's progress, or ``None`` once it is no longer waiting on Vidgo."""
        if not job.state.is_active:
            return None
        position: tuple[int, int] | None = None
        if job.guild_id is not None:
            position = await self.store.queue_position(job.guild_id, job.id)
        return Progress(
            position=position[0] if position else None,
            unfinished=position[1] if position else None,
            typical_seconds=await self.typical_duration(job.model),
            elapsed=max(0.0, self._clock() - job.created_at),
        )

    async def typical_duration(self, model: str) -> float | None:
        """Median seconds from request to result of the model's recent jobs (cached)."""
        now = self._monotonic()
        cached = self._medians.get(model)
        if cached is not None and now - cached[1] < self.median_ttl:
            return cached[0]
        durations = await self.store.recent_durations(model, self.samples)
        median = statistics.median(durations) if len(durations) >= self.min_samples else None
        self._medians[model] = (median, now)
        return median


class StatusEdits:
    """Edits of each job's status message: at most one per ``interval``, the latest state wins.

    A job's first edit goes out at once. Whatever is asked for while an edit is running, or
    within ``interval`` of the last one, waits; when the interval is over only the newest
    state asked for is shown (by ``updated_at``: an older record that comes in late never
    replaces a newer one). A status message shows a job's end once: after an ended job
    (``not state.is_active``) was asked for, a record of a job still waiting is ignored, so
    a late progress edit can never put the buttons back on a finished job. The end itself
    is never coalesced away: it is shown after at most ``interval``, and :meth:`settle`
    shows whatever is still waiting at once (at shutdown).

    Discord limits edits per channel (about five per five seconds); one edit per job per
    interval keeps a job's status message from spending that budget on states nobody saw.
    """

    def __init__(
        self,
        edit: Callable[[JobRecord], Awaitable[None]],
        *,
        interval: float = STATUS_EDIT_INTERVAL,
        monotonic: Callable[[], float] = time.monotonic,
        ended_kept: int = ENDED_JOBS_KEPT,
    ) -> None:
        self._edit = edit
        self.interval = interval
        self._monotonic = monotonic
        self._ended_kept = ended_kept
        self._waiting: dict[str, JobRecord] = {}  # the newest state not shown yet, per job
        self._shown_at: dict[str, float] = {}  # when each job's last edit began
        self._workers: dict[str, asyncio.Task[None]] = {}
        # Jobs whose end was asked for (and when that record was written), oldest first.
        self._ended: dict[str, float] = {}
        self._hurry = asyncio.Event()

    @property
    def waiting(self) -> int:
        """Jobs with a state not shown yet."""
        return len(self._waiting)

    async def show(self, job: JobRecord, *, wait: bool = True) -> None:
        """Ask for the job's status message to show ``job``.

        With ``wait``, an edit that may go out now is made before returning; otherwise (and
        whenever the edit has to wait for the interval) it is made in the background.
        """
        if not self._newest(job):
            return
        self._waiting[job.id] = job
        if not job.state.is_active:
            self._ended.pop(job.id, None)
            self._ended[job.id] = job.updated_at
            if len(self._ended) > self._ended_kept:
                for old in list(self._ended)[: len(self._ended) // 2]:
                    del self._ended[old]
        if job.id in self._workers:
            return  # the job's worker shows it when its interval is over
        if wait and self._due_in(job.id) <= 0:
            await self._edit_waiting(job.id)
            if job.id not in self._waiting or job.id in self._workers:
                return  # nothing new meanwhile, or a worker took the news
        worker = asyncio.create_task(self._work(job.id), name=f"stemcord-status-{job.id}")
        self._workers[job.id] = worker

    def _newest(self, job: JobRecord) -> bool:
        """``job`` is news: not older than what waits, and not a waiting state after the end."""
        ended_at = self._ended.get(job.id)
        if ended_at is not None and (job.state.is_active or job.updated_at < ended_at):
            return False
        waiting = self._waiting.get(job.id)
        return waiting is None or job.updated_at >= waiting.updated_at

    def _due_in(self, job_id: str) -> float:
        last = self._shown_at.get(job_id)
        return 0.0 if last is None else last + self.interval - self._monotonic()

    async def _edit_waiting(self, job_id: str) -> None:
        job = self._waiting.pop(job_id)
        self._shown_at[job_id] = self._monotonic()
        try:
            await self._edit(job)
        except Exception:  # the status message is a courtesy; the edit function logs why
            log.warning("job %s: status message not updated", job_id, exc_info=True)
        if not job.state.is_active and job_id not in self._waiting:
            self._shown_at.pop(job_id, None)  # nothing more will be shown for it

    async def _work(self, job_id: str) -> None:
        try:
            while job_id in self._waiting:
                delay = self._due_in(job_id)
                if delay > 0 and not self._hurry.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._hurry.wait(), timeout=delay)
                await self._edit_waiting(job_id)
        finally:
            self._workers.pop(job_id, None)

    async def settle(self, grace: float = 10.0) -> None:
        """Show every waiting state now, without waiting for intervals (for shutdown)."""
        self._hurry.set()
        try:
            workers = set(self._workers.values())
            if workers:
                await asyncio.wait(workers, timeout=grace)
        finally:
            self._hurry.clear()
