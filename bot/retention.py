"""Retention: keep the database from growing forever.

At start-up and then every ``RETENTION_INTERVAL_HOURS`` (default 6 h):

1. jobs in a final state (delivered, undeliverable, cancelled) that ended more than
   ``RETENTION_JOBS_DAYS`` ago (default 30) are deleted — never a leader that a remaining job
   still follows (:meth:`JobStore.prune_finished`); unfinished jobs are never touched;
2. cached results older than ``RETENTION_CACHE_DAYS`` (default 90) are deleted — the next
   request for such a song asks Vidgo again;
3. the write-ahead log is checkpointed (``PRAGMA wal_checkpoint(TRUNCATE)``), so the
   ``-wal`` file does not keep the space of deleted rows;
4. kept media (a result's stems and backing track, ``MEDIA_DIR``) whose newest file is older
   than ``MEDIA_RETENTION_DAYS`` (default 7) is deleted, whole results at a time
   (:meth:`bot.media.MediaStore.prune`; safe while other processes use the same folder).

A value of 0 days keeps that kind of row (or file) forever. Freed pages are reused by SQLite;
the file is not shrunk (``VACUUM`` would lock the database; see docs/operations.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from bot.media.store import MediaStore
from storage.base import JobStore

log = logging.getLogger(__name__)

DAY = 86400.0
HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How long rows are kept (0 = forever) and how often retention runs."""

    jobs_days: float = 30.0
    cache_days: float = 90.0
    interval_hours: float = 6.0
    media_days: float = 7.0


@dataclass(frozen=True, slots=True)
class PruneReport:
    """What one retention run did (``media``: kept results deleted, with ``media_bytes``)."""

    jobs: int
    cache: int
    checkpointed: bool
    media: int = 0
    media_bytes: int = 0


class PruneObserver(Protocol):
    """Told how many rows a run removed (``bot.metrics.StemcordMetrics`` implements it)."""

    def retention_pruned(self, what: str, count: int) -> None:
        """``what`` is ``jobs``, ``cache`` or ``media``."""


async def prune_once(
    store: JobStore, policy: RetentionPolicy, now: float, *, media: MediaStore | None = None
) -> PruneReport:
    """Apply the policy once at time ``now`` (to ``media`` too, when given)."""
    jobs = await store.prune_finished(now - policy.jobs_days * DAY) if policy.jobs_days else 0
    cache = await store.prune_cache(now - policy.cache_days * DAY) if policy.cache_days else 0
    checkpointed = await store.checkpoint()
    kept, freed = 0, 0
    if media is not None and policy.media_days:
        pruned = await media.prune(policy.media_days, now=datetime.fromtimestamp(now, UTC))
        kept, freed = len(pruned.removed), pruned.bytes_freed
    return PruneReport(
        jobs=jobs, cache=cache, checkpointed=checkpointed, media=kept, media_bytes=freed
    )


class RetentionTask:
    """Runs :func:`prune_once` at start and then every ``policy.interval_hours``."""

    def __init__(
        self,
        store: JobStore,
        policy: RetentionPolicy,
        *,
        observer: PruneObserver | None = None,
        clock: Callable[[], float] = time.time,
        media: MediaStore | None = None,
    ) -> None:
        self._store = store
        self._media = media
        self._policy = policy
        self._observer = observer
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self.runs = 0
        self.last_report: PruneReport | None = None

    def start(self) -> None:
        """Start the periodic task (the first run happens right away)."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="stemcord-retention")

    async def stop(self) -> None:
        """Cancel the task (a run in progress is abandoned; its batches are committed)."""
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run_once(self) -> PruneReport | None:
        """One run; failures are logged, never raised (the bot keeps running)."""
        try:
            report = await prune_once(self._store, self._policy, self._clock(), media=self._media)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("retention run failed; trying again at the next interval")
            return None
        self.runs += 1
        self.last_report = report
        if self._observer is not None:
            self._observer.retention_pruned("jobs", report.jobs)
            self._observer.retention_pruned("cache", report.cache)
            if self._media is not None:
                self._observer.retention_pruned("media", report.media)
        log.info(
            "retention: deleted %d finished job(s), %d cached result(s) and the kept files of "
            "%d result(s) (%.1f MB)%s",
            report.jobs,
            report.cache,
            report.media,
            report.media_bytes / 1_048_576,
            "" if report.checkpointed else "; WAL checkpoint incomplete (readers busy)",
        )
        return report

    async def _loop(self) -> None:
        while True:
            await self.run_once()
            await asyncio.sleep(self._policy.interval_hours * HOUR)
