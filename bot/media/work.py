"""Audio work for kept results, run in the bounded audio pool and waiting its turn there.

:class:`bot.audio.AudioPool` refuses a job at once (``PoolBusy``) when ``workers`` run and
``queue_limit`` wait: right for a member pressing a button, who should hear "busy" rather than
wait minutes. The media stage and the deliveries are not members: their work must happen,
later if need be. :class:`AudioQueue` gives them that: jobs beyond the pool's bound wait here,
in arrival order, and enter the pool as room frees up (other users of the same pool, such as a
button, may take a place first; a job refused then tries again shortly).

The functions run in the pool (:func:`mix_into`, :func:`fit_into`) are top-level and take paths,
so they can be sent to a worker process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ParamSpec, Protocol, TypeVar

from bot.audio import FitResult, MixReport, PoolBusy, fit_to_limit, mix_backing_track

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

# How long a job refused by a full pool waits before it asks again (doubling up to the cap).
RETRY_FIRST_SECONDS = 0.2
RETRY_MAX_SECONDS = 5.0


class Pool(Protocol):
    """The part of :class:`bot.audio.AudioPool` the queue uses."""

    workers: int
    queue_limit: int

    async def run(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R: ...


class AudioQueue:
    """Runs jobs in ``pool``, waiting (never failing) while the pool is full."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        # At most as many jobs of ours in the pool as it takes; the rest wait here, in order.
        self._room = asyncio.Semaphore(pool.workers + pool.queue_limit)
        self.waiting = 0

    async def run(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """``fn(*args, **kwargs)`` in the pool once there is room; its result or error."""
        self.waiting += 1
        try:
            await self._room.acquire()
        finally:
            self.waiting -= 1
        try:
            delay = RETRY_FIRST_SECONDS
            while True:
                try:
                    return await self.pool.run(fn, *args, **kwargs)
                except PoolBusy:
                    # Someone else (a button) filled the pool meanwhile: wait, then ask again.
                    log.debug("audio pool full; %s waits %.1f s", fn.__name__, delay)
                    await asyncio.sleep(delay)
                    delay = min(RETRY_MAX_SECONDS, delay * 2)
        finally:
            self._room.release()


def mix_into(stems: Sequence[Path], out: Path) -> MixReport:
    """The backing track of ``stems`` at ``out`` (in a worker; see ``mix_backing_track``)."""
    return mix_backing_track(list(stems), out)


def fit_into(src: Path, out: Path, limit_bytes: int) -> FitResult | None:
    """``src`` re-encoded to fit ``limit_bytes`` at ``out`` (in a worker; see ``fit_to_limit``)."""
    return fit_to_limit(src, out, limit_bytes=limit_bytes)
