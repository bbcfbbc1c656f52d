"""A bounded pool of worker processes for CPU-heavy audio work, awaited from asyncio.

Decoding, mixing, pitch shifting and encoding take seconds of CPU each; run on the bot's
event loop they would freeze it (heartbeats, interactions, callbacks). :class:`AudioPool`
runs them in worker processes instead:

* ``await pool.run(fn, *args, **kwargs)`` sends a picklable top-level function and its
  arguments to a free worker and returns its result (or raises its exception);
* at most ``workers`` jobs run and ``queue_limit`` wait; one more raises :class:`PoolBusy`
  at once, so a burst of requests gets a clear "busy" answer instead of a growing backlog;
* a job running longer than its timeout gets its worker killed and raises
  :class:`JobTimedOut`; a worker that dies (crash, out-of-memory kill) fails its job with
  :class:`WorkerCrashed`. Either way a fresh worker takes the dead one's place;
* cancelling the awaiting task withdraws a queued job, or kills the worker of a running one;
* :meth:`AudioPool.close` refuses new work, fails queued jobs, lets running ones finish for
  a grace period and then stops every worker.

Workers are started with ``forkserver`` (never ``fork``: the bot's process has threads and an
event loop, which a forked child would inherit half-copied), preloaded with this package so a
replacement starts in milliseconds, and run at a lower CPU priority than the bot so the event
loop stays responsive while both cores are busy encoding. The parent only does small pipe
reads on the loop; results are reports, not audio.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import multiprocessing
import os
import pickle
import signal
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext, SpawnContext
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import Any, ParamSpec, Self, TypeVar

from bot.audio.errors import (
    JobFailed,
    JobTimedOut,
    PoolBusy,
    PoolClosed,
    UnpicklableJob,
    WorkerCrashed,
)

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_TIMEOUT_S = 600.0
DEFAULT_NICENESS = 5
_PRELOAD = ["bot.audio"]
_FAILED_STARTS_BEFORE_GIVING_UP = 3
_RESPAWN_BASE_DELAY_S = 0.5
_RESPAWN_MAX_DELAY_S = 30.0


@dataclass(eq=False)
class _Job:
    id: int
    payload: bytes
    timeout: float | None
    future: asyncio.Future[Any]


@dataclass(eq=False)
class _Worker:
    process: BaseProcess
    conn: Connection
    job: _Job | None = None
    timer: asyncio.TimerHandle | None = None
    stopping: bool = False
    """Killed or told to exit by the pool: its death is expected."""
    jobs_done: int = 0
    readers: list[int] = field(default_factory=list)


class AudioPool:
    """Run audio functions in ``workers`` processes with at most ``queue_limit`` waiting.

    ``timeout`` (seconds, ``None`` for none) limits each job's run time once it started in
    a worker; time spent waiting in the queue does not count. ``start_method`` is
    ``forkserver`` (default) or ``spawn``. Use ``async with AudioPool(...) as pool`` or call
    :meth:`start` and :meth:`close`.
    """

    def __init__(
        self,
        *,
        workers: int = 2,
        queue_limit: int = 4,
        timeout: float | None = DEFAULT_TIMEOUT_S,
        start_method: str = "forkserver",
        niceness: int = DEFAULT_NICENESS,
    ) -> None:
        if workers < 1 or queue_limit < 0:
            raise ValueError("an audio pool needs at least one worker and a queue limit >= 0")
        if start_method not in ("forkserver", "spawn"):
            raise ValueError("start_method must be 'forkserver' or 'spawn' (never 'fork')")
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive or None")
        self.workers = workers
        self.queue_limit = queue_limit
        self.timeout = timeout
        self.niceness = niceness
        self._context: ForkServerContext | SpawnContext
        if start_method == "forkserver":
            self._context = multiprocessing.get_context("forkserver")
            # Takes effect when the process's fork server starts (the first pool to start).
            self._context.set_forkserver_preload(_PRELOAD)
        else:
            self._context = multiprocessing.get_context("spawn")
        self._live: list[_Worker] = []
        self._idle: collections.deque[_Worker] = collections.deque()
        self._queue: collections.deque[_Job] = collections.deque()
        self._ids = itertools.count(1)
        self._started = False
        self._closed = False
        self._closing = asyncio.Event()
        self._failed_starts = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def running(self) -> int:
        """Jobs running in a worker now."""
        return sum(1 for worker in self._live if worker.job is not None)

    @property
    def queued(self) -> int:
        """Jobs accepted and waiting for a worker."""
        return len(self._queue)

    async def start(self) -> None:
        """Start the workers (in a thread: the first start launches the fork server)."""
        if self._closed:
            raise PoolClosed("the audio pool was closed")
        if self._started:
            return
        self._started = True
        self._loop = asyncio.get_running_loop()
        workers = await asyncio.gather(
            *(asyncio.to_thread(self._spawn) for _ in range(self.workers))
        )
        for worker in workers:
            self._adopt(worker)

    async def run(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """``fn(*args, **kwargs)`` in a worker, with the pool's timeout.

        Raises :class:`PoolBusy` at once when the queue is full, :class:`PoolClosed` after
        :meth:`close`, :class:`JobTimedOut`, :class:`WorkerCrashed`, or whatever ``fn``
        raised (its worker traceback attached as a note).
        """
        return await self.run_with_timeout(self.timeout, fn, *args, **kwargs)

    async def run_with_timeout(
        self, run_seconds: float | None, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Like :meth:`run` with this job's own time limit (seconds, or ``None`` for none)."""
        if self._closed:
            raise PoolClosed("the audio pool is closed")
        if not self._started:
            await self.start()
        if self.running + len(self._queue) >= self.workers + self.queue_limit:
            raise PoolBusy(f"audio pool busy: {self.running} running, {len(self._queue)} waiting")
        # Pickled here so an argument that cannot cross to a worker fails in the caller.
        try:
            payload = pickle.dumps((fn, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise UnpicklableJob(
                f"cannot send {fn!r} and its arguments to a worker: {exc}"
            ) from exc
        loop = asyncio.get_running_loop()
        job = _Job(next(self._ids), payload, run_seconds, loop.create_future())
        self._queue.append(job)
        self._dispatch()
        try:
            result: R = await job.future
        except asyncio.CancelledError:
            self._abandon(job)
            raise
        return result

    async def close(self, *, grace: float = 5.0) -> None:
        """Stop accepting work, fail queued jobs, give running ones ``grace`` seconds, stop
        the workers. Safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        while self._queue:
            job = self._queue.popleft()
            if not job.future.done():
                job.future.set_exception(PoolClosed("the audio pool closed before the job ran"))
        running = [w.job.future for w in self._live if w.job is not None]
        if running:
            await asyncio.wait(running, timeout=grace)
        # Replacements being started are adopted (and told to stop) before reaping.
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for worker in list(self._live):
            if worker.job is not None and not worker.job.future.done():
                worker.job.future.set_exception(PoolClosed("the audio pool closed mid-job"))
            self._stop(worker, kill=worker.job is not None)
            for fd in list(worker.readers):
                self._forget_reader(worker, fd)
        for worker in self._live:
            await asyncio.to_thread(self._reap, worker, grace)
            worker.conn.close()
            worker.process.close()
        self._live.clear()
        self._idle.clear()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # -- workers ----------------------------------------------------------------------

    def _spawn(self) -> _Worker:
        """Start one worker process (blocking; called from a thread)."""
        parent_end, child_end = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=_worker_main,
            args=(child_end, self.niceness),
            name="stemcord-audio",
            daemon=True,
        )
        process.start()
        # Only the child keeps its end: the parent sees end-of-file when the child dies.
        child_end.close()
        return _Worker(process=process, conn=parent_end)

    def _adopt(self, worker: _Worker) -> None:
        """Watch a started worker and give it work."""
        loop = self._require_loop()
        self._live.append(worker)
        if self._closed:
            self._stop(worker, kill=False)
            return
        loop.add_reader(worker.conn.fileno(), self._on_message, worker)
        loop.add_reader(worker.process.sentinel, self._on_exit, worker)
        worker.readers = [worker.conn.fileno(), worker.process.sentinel]
        self._idle.append(worker)
        self._dispatch()

    def _dispatch(self) -> None:
        """Hand queued jobs to idle workers."""
        loop = self._require_loop()
        while self._queue and self._idle:
            job = self._queue.popleft()
            if job.future.done():  # cancelled while waiting
                continue
            worker = self._idle.popleft()
            worker.job = job
            try:
                worker.conn.send_bytes(job.id.to_bytes(8, "big") + job.payload)
            except OSError:
                # The worker died between jobs; its exit handler replaces it. Requeue.
                worker.job = None
                self._queue.appendleft(job)
                continue
            if job.timeout is not None:
                worker.timer = loop.call_later(job.timeout, self._on_timeout, worker, job)

    def _on_message(self, worker: _Worker) -> None:
        """A worker answered (or its pipe closed)."""
        try:
            data = worker.conn.recv_bytes()
        except (EOFError, OSError):
            # The process is dying; its sentinel reports the exit code.
            self._forget_reader(worker, worker.conn.fileno())
            return
        job = worker.job
        job_id = int.from_bytes(data[:8], "big")
        if job is None or job.id != job_id:
            return  # an answer for a job given up on; nothing waits for it
        worker.job = None
        worker.jobs_done += 1
        self._failed_starts = 0
        self._cancel_timer(worker)
        if not job.future.done():
            try:
                ok, value = pickle.loads(data[8:])  # noqa: S301 - our own worker's reply
            except Exception as exc:
                job.future.set_exception(JobFailed(f"unreadable reply from worker: {exc!r}"))
            else:
                if ok:
                    job.future.set_result(value)
                else:
                    job.future.set_exception(value)
        if self._closed:
            self._stop(worker, kill=False)
        else:
            self._idle.append(worker)
            self._dispatch()

    def _on_exit(self, worker: _Worker) -> None:
        """A worker process ended: fail its job unless that was our doing, replace it."""
        for fd in list(worker.readers):
            self._forget_reader(worker, fd)
        # The sentinel is readable once the exit status is known: this does not wait.
        worker.process.join(5.0)
        self._cancel_timer(worker)
        job, worker.job = worker.job, None
        if job is not None and not job.future.done():
            job.future.set_exception(WorkerCrashed(worker.process.exitcode))
        with contextlib.suppress(ValueError):
            self._idle.remove(worker)
        if worker in self._live:
            self._live.remove(worker)
        worker.conn.close()
        exitcode = worker.process.exitcode
        with contextlib.suppress(ValueError):
            worker.process.close()
        if self._closed:
            return
        if job is None and not worker.stopping and not worker.jobs_done:
            # Died before doing anything: a broken start (an import error, no memory).
            self._failed_starts += 1
            if self._failed_starts >= _FAILED_STARTS_BEFORE_GIVING_UP and not self._live:
                # No worker can start: fail the waiting jobs instead of letting them hang.
                while self._queue:
                    waiting = self._queue.popleft()
                    if not waiting.future.done():
                        waiting.future.set_exception(WorkerCrashed(exitcode))
        delay = (
            min(_RESPAWN_MAX_DELAY_S, _RESPAWN_BASE_DELAY_S * 2 ** (self._failed_starts - 1))
            if self._failed_starts
            else 0.0
        )
        self._replace(delay)

    def _on_timeout(self, worker: _Worker, job: _Job) -> None:
        if worker.job is not job or job.future.done():
            return
        job.future.set_exception(JobTimedOut(job.timeout or 0.0))
        worker.job = None
        self._stop(worker, kill=True)

    def _abandon(self, job: _Job) -> None:
        """The caller stopped waiting: drop the job, killing its worker if it started."""
        with contextlib.suppress(ValueError):
            self._queue.remove(job)
        for worker in self._live:
            if worker.job is job:
                worker.job = None
                self._stop(worker, kill=True)

    def _stop(self, worker: _Worker, *, kill: bool) -> None:
        """Make ``worker`` exit: now (SIGKILL) or after its current message (a None job)."""
        self._cancel_timer(worker)
        with contextlib.suppress(ValueError):
            self._idle.remove(worker)
        worker.stopping = True
        if kill:
            with contextlib.suppress(ValueError, OSError):
                worker.process.kill()
        else:
            with contextlib.suppress(OSError, ValueError):
                worker.conn.send_bytes(b"")

    def _replace(self, delay: float) -> None:
        """Start a worker in place of one that died (after ``delay`` seconds when workers keep
        dying at start), without blocking the loop."""
        loop = self._require_loop()

        async def spawn() -> None:
            if delay:
                # Cut short by close(), which waits for these tasks.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), delay)
            if self._closed:
                return
            self._adopt(await asyncio.to_thread(self._spawn))

        task = loop.create_task(spawn())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _reap(self, worker: _Worker, grace: float) -> None:
        """Wait for a stopping worker to exit, killing it after ``grace`` (in a thread)."""
        worker.process.join(grace)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()

    def _forget_reader(self, worker: _Worker, fd: int) -> None:
        if fd in worker.readers:
            worker.readers.remove(fd)
            self._require_loop().remove_reader(fd)

    def _cancel_timer(self, worker: _Worker) -> None:
        if worker.timer is not None:
            worker.timer.cancel()
            worker.timer = None

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the audio pool is not started")
        return self._loop


def _worker_main(conn: Connection, niceness: int) -> None:
    """A worker's life: run each job received on ``conn`` and send back its outcome.

    A job message is an 8-byte id and the pickled ``(fn, args, kwargs)``; an empty message
    (or the parent's end closing) means exit.
    """
    # Ctrl-C reaches the whole process group; stopping workers is the parent's decision.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if niceness:
        os.nice(niceness)
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):
            return
        if not message:
            return
        job_id = message[:8]
        try:
            fn, args, kwargs = pickle.loads(message[8:])  # noqa: S301 - sent by our parent
            reply: tuple[bool, Any] = (True, fn(*args, **kwargs))
        except Exception as exc:
            exc.add_note("in the audio worker:\n" + "".join(traceback.format_exception(exc)))
            reply = (False, exc)
        try:
            data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            what = "result" if reply[0] else f"error {reply[1]!r}"
            data = pickle.dumps((False, JobFailed(f"the job's {what} cannot be sent: {exc!r}")))
        conn.send_bytes(job_id + data)
