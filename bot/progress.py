"""Where an unfinished job stands: its place in the server's queue and an ETA.

The ETA is the median time from request to result of the model's most recent jobs (the last
:data:`ETA_SAMPLES` that ran a Vidgo task and succeeded) minus the time the job has already
waited. Vidgo runs tasks in parallel, so the position is shown for information and does not
stretch the estimate. With fewer than :data:`ETA_MIN_SAMPLES` finished jobs there is no
estimate yet.

Status messages are edited often, so the medians are kept in memory for
:data:`MEDIAN_TTL` seconds: a status edit then costs one indexed query (the position).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from storage.base import JobStore
from storage.records import JobRecord

ETA_SAMPLES = 50
ETA_MIN_SAMPLES = 3
MEDIAN_TTL = 60.0


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
