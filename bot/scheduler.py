"""One dispatcher task that sleeps until the next due job.

The store keeps each job's next due time (``due_at``). The dispatcher claims the due jobs
(leasing them so nobody else picks them up), hands each to a worker, then sleeps exactly until
the earliest ``due_at`` left — or until :meth:`DueScheduler.notify_due` says an earlier one
was stored, by this process or (through the store's ``listen_for_due``) by another one.
Nothing scans the table on a fixed tick, so 100,000 waiting jobs cost one indexed
``MIN(due_at)`` query per wake-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable

from bot.logs import set_job_context
from storage.base import JobStore
from storage.records import JobRecord

log = logging.getLogger(__name__)

# A sleep is never longer than this, so a wall-clock jump cannot stall the dispatcher forever.
MAX_SLEEP = 3600.0


class DueScheduler:
    """Claims due jobs from the store and runs ``handler`` on each, at most ``max_parallel``."""

    def __init__(
        self,
        store: JobStore,
        handler: Callable[[JobRecord], Awaitable[None]],
        *,
        clock: Callable[[], float],
        lease: float = 120.0,
        batch: int = 64,
        max_parallel: int = 32,
        owner: str,
    ) -> None:
        self._store = store
        self._owner = owner
        self._handler = handler
        self._clock = clock
        self._lease = lease
        self._batch = batch
        self._max_parallel = max_parallel
        self._wake = asyncio.Event()
        self._workers: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._planned = math.inf  # when the dispatcher means to look again

    def start(self) -> None:
        """Start the dispatcher task."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="stemcord-scheduler")

    def wake(self) -> None:
        """Look at the store again now."""
        self._wake.set()

    def notify_due(self, due_at: float | None) -> None:
        """A job became due at ``due_at``: wake the dispatcher if that is sooner than planned."""
        if due_at is not None and due_at < self._planned:
            self._wake.set()

    @property
    def busy(self) -> int:
        """Workers running now."""
        return len(self._workers)

    @property
    def running(self) -> bool:
        """The dispatcher task was started, not stopped, and has not died."""
        return self._task is not None and not self._task.done()

    async def stop(self, *, grace: float = 10.0) -> None:
        """Stop claiming, give running workers ``grace`` seconds, then cancel the rest."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._workers:
            _, pending = await asyncio.wait(set(self._workers), timeout=grace)
            for worker in pending:
                worker.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._cycle()
            except asyncio.CancelledError:
                raise
            except Exception:
                # A database hiccup (locked, I/O) must not kill the dispatcher: back off a bit.
                log.exception("scheduler cycle failed; retrying in 1 s")
                await asyncio.sleep(1.0)

    async def _cycle(self) -> None:
        self._wake.clear()
        self._planned = math.inf  # while claiming, any new due time wakes the next cycle
        free = self._max_parallel - len(self._workers)
        if free <= 0:
            # Wait for a worker to finish (or a wake-up) before claiming more.
            waiter = asyncio.create_task(self._wake.wait())
            try:
                await asyncio.wait({waiter, *self._workers}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
            return
        now = self._clock()
        claimed = await self._store.claim_due(
            now, now + self._lease, min(free, self._batch), owner=self._owner
        )
        for job in claimed:
            worker = asyncio.create_task(self._work(job), name=f"stemcord-job-{job.id}")
            self._workers.add(worker)
            worker.add_done_callback(self._workers.discard)
        if len(claimed) == min(free, self._batch):
            return  # more may be due right now
        next_due = await self._store.next_due_at()
        delay = MAX_SLEEP if next_due is None else min(MAX_SLEEP, next_due - self._clock())
        if delay <= 0:
            return
        self._planned = self._clock() + delay
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=delay)

    async def _work(self, job: JobRecord) -> None:
        # Every log line written while working on the job carries its ids (bot/logs.py).
        set_job_context(job.id, job.vidgo_task_id)
        try:
            await self._handler(job)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The handler counts its own faults; this only guards the dispatcher itself.
            log.exception("job %s: unexpected error while working on it", job.id)
