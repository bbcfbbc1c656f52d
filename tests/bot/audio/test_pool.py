"""The audio process pool: real worker processes, bounded queue, typed failures."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bot.audio import (
    AudioPool,
    JobFailed,
    JobTimedOut,
    MixReport,
    PoolBusy,
    PoolClosed,
    UnpicklableJob,
    WorkerCrashed,
    mix_backing_track,
)
from bot.audio import pool as pool_module
from tests.bot.audio import pool_jobs
from tests.fakes.audio import UPLOAD_STEMS, write_stems


@pytest.fixture
async def pool() -> AsyncIterator[AudioPool]:
    async with AudioPool(workers=2, queue_limit=2, timeout=30) as started:
        yield started


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def poll_until(done: Callable[[], bool]) -> None:
    """Block until ``done()`` (run in a thread: the pool's events need the loop)."""
    while not done():
        time.sleep(0.01)


def read_when_there(path: Path) -> str:
    poll_until(path.exists)
    return path.read_text()


async def wait_for_file(path: Path) -> str:
    return await asyncio.to_thread(read_when_there, path)


async def wait_until_gone(pid: int) -> None:
    await asyncio.to_thread(poll_until, lambda: not alive(pid))


async def test_the_pool_runs_work_in_another_process(pool: AudioPool) -> None:
    worker_pid = await pool.run(pool_jobs.pid)
    assert worker_pid != os.getpid()
    assert await pool.run(pool_jobs.add, 2, 3, scale=4) == 20


async def test_workers_run_at_a_lower_priority_than_the_bot(pool: AudioPool) -> None:
    own = os.getpriority(os.PRIO_PROCESS, 0)
    assert await pool.run(pool_jobs.niceness) == min(19, own + pool.niceness)


async def test_a_mix_runs_in_the_pool_and_returns_its_report(
    pool: AudioPool, tmp_path: Path
) -> None:
    stems = write_stems(tmp_path, ("bass", "piano"), seconds=1.0)
    report = await pool.run(mix_backing_track, list(stems.values()), tmp_path / "mix.mp3")
    assert isinstance(report, MixReport)
    assert report.frames == 44_100
    assert (tmp_path / "mix.mp3").stat().st_size == report.bytes


async def test_a_submit_beyond_the_queue_limit_is_refused_at_once(tmp_path: Path) -> None:
    flag = tmp_path / "go"
    async with AudioPool(workers=1, queue_limit=1, timeout=30) as pool:
        running = asyncio.create_task(pool.run(pool_jobs.wait_for, flag, None, "first"))
        queued = asyncio.create_task(pool.run(pool_jobs.wait_for, flag, None, "second"))
        await asyncio.sleep(0)
        assert (pool.running, pool.queued) == (1, 1)
        with pytest.raises(PoolBusy):
            await pool.run(pool_jobs.pid)
        assert not running.done()
        assert not queued.done()
        flag.touch()
        assert await asyncio.gather(running, queued) == ["first", "second"]
        # With the queue drained, work is accepted again.
        assert await pool.run(pool_jobs.add, 1, 1) == 2


async def test_a_crashed_worker_is_a_typed_error_and_is_replaced(pool: AudioPool) -> None:
    with pytest.raises(WorkerCrashed) as exited:
        await pool.run(pool_jobs.exit_hard, 7)
    assert exited.value.exitcode == 7
    with pytest.raises(WorkerCrashed) as killed:
        await pool.run(pool_jobs.kill_self)
    assert killed.value.exitcode == -9
    # Both slots work again.
    results = await asyncio.gather(
        pool.run(pool_jobs.wait_for, Path("/"), None, "a"), pool.run(pool_jobs.add, 1, 2)
    )
    assert results == ["a", 3]


async def test_a_job_over_its_time_limit_is_stopped_with_its_worker(
    pool: AudioPool, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    with pytest.raises(JobTimedOut) as timed_out:
        await pool.run_with_timeout(0.5, pool_jobs.wait_for, tmp_path / "never", pid_file)
    assert timed_out.value.seconds == 0.5
    stuck = int(pid_file.read_text())
    await wait_until_gone(stuck)  # killed at the timeout; the exit may take a moment
    assert await pool.run(pool_jobs.add, 2, 2) == 4


async def test_the_pool_timeout_applies_to_every_job(tmp_path: Path) -> None:
    async with AudioPool(workers=1, queue_limit=0, timeout=0.3) as pool:
        with pytest.raises(JobTimedOut):
            await pool.run(pool_jobs.wait_for, tmp_path / "never")


async def test_an_error_in_a_job_comes_back_as_itself(pool: AudioPool) -> None:
    with pytest.raises(ValueError, match="bad input") as raised:
        await pool.run(pool_jobs.raise_value_error, "bad input")
    assert any("in the audio worker" in note for note in raised.value.__notes__)


async def test_what_cannot_cross_processes_is_a_typed_error(pool: AudioPool) -> None:
    with pytest.raises(JobFailed, match="result"):
        await pool.run(pool_jobs.return_unpicklable)
    with pytest.raises(JobFailed, match="Unpicklable"):
        await pool.run(pool_jobs.raise_unpicklable)
    # An argument that cannot be sent fails in the caller, before the pool takes the job.
    with pytest.raises(UnpicklableJob):
        await pool.run(pool_jobs.add, lambda: 1, 2)  # type: ignore[arg-type]
    assert pool.running == 0
    assert pool.queued == 0
    assert await pool.run(pool_jobs.add, 1, 2) == 3


async def test_cancelling_the_caller_stops_the_running_job(pool: AudioPool, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    task = asyncio.create_task(pool.run(pool_jobs.wait_for, tmp_path / "never", pid_file))
    worker_pid = int(await wait_for_file(pid_file))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_until_gone(worker_pid)
    assert pool.running == 0


async def test_cancelling_a_queued_job_withdraws_it(tmp_path: Path) -> None:
    flag = tmp_path / "go"
    async with AudioPool(workers=1, queue_limit=2, timeout=30) as pool:
        running = asyncio.create_task(pool.run(pool_jobs.wait_for, flag, None, "first"))
        queued = asyncio.create_task(pool.run(pool_jobs.wait_for, flag, None, "withdrawn"))
        await asyncio.sleep(0)
        assert pool.queued == 1
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        assert pool.queued == 0
        flag.touch()
        assert await running == "first"


async def test_close_fails_waiting_jobs_and_refuses_new_ones(tmp_path: Path) -> None:
    pool = AudioPool(workers=1, queue_limit=2, timeout=30)
    await pool.start()
    pid_file = tmp_path / "pid"
    running = asyncio.create_task(pool.run(pool_jobs.wait_for, tmp_path / "never", pid_file))
    queued = asyncio.create_task(pool.run(pool_jobs.add, 1, 1))
    worker_pid = int(await wait_for_file(pid_file))
    await pool.close(grace=0.2)
    for task in (running, queued):
        with pytest.raises(PoolClosed):
            await task
    with pytest.raises(PoolClosed):
        await pool.run(pool_jobs.pid)
    assert not alive(worker_pid)


async def test_close_lets_a_running_job_finish_within_the_grace(tmp_path: Path) -> None:
    flag = tmp_path / "go"
    pool = AudioPool(workers=1, queue_limit=0, timeout=30)
    await pool.start()
    task = asyncio.create_task(pool.run(pool_jobs.wait_for, flag, None, "finished"))
    await asyncio.sleep(0.05)
    closing = asyncio.create_task(pool.close(grace=30))
    await asyncio.sleep(0.05)
    flag.touch()
    await closing
    assert await task == "finished"


async def test_workers_that_die_at_start_fail_waiting_jobs_instead_of_hanging(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pool_module, "_RESPAWN_BASE_DELAY_S", 0.01)
    pool = AudioPool(workers=1, queue_limit=1, timeout=30)
    await pool.start()
    try:
        # From now on every replacement worker dies before taking work.
        monkeypatch.setattr(pool_module, "_worker_main", pool_jobs.broken_worker)
        with pytest.raises(WorkerCrashed):
            await pool.run(pool_jobs.exit_hard, 1)
        with pytest.raises(WorkerCrashed) as never_ran:
            await pool.run(pool_jobs.pid)
        assert never_ran.value.exitcode == 70
    finally:
        await pool.close(grace=1)


async def test_the_spawn_start_method_works_too() -> None:
    async with AudioPool(workers=1, queue_limit=0, start_method="spawn") as pool:
        assert await pool.run(pool_jobs.pid) != os.getpid()


def test_fork_is_refused() -> None:
    with pytest.raises(ValueError, match="fork"):
        AudioPool(start_method="fork")


async def test_the_event_loop_keeps_ticking_while_two_mixes_run(tmp_path: Path) -> None:
    songs = [write_stems(tmp_path / f"song{i}", UPLOAD_STEMS[1:], seconds=10.0) for i in range(2)]
    async with AudioPool(workers=2, queue_limit=0) as pool:
        gaps: list[float] = []
        stop = asyncio.Event()

        async def ticker() -> None:
            last = time.perf_counter()
            while not stop.is_set():
                await asyncio.sleep(0.01)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        ticking = asyncio.create_task(ticker())
        reports = await asyncio.gather(
            *(
                pool.run(mix_backing_track, list(song.values()), tmp_path / f"mix{i}.mp3")
                for i, song in enumerate(songs)
            )
        )
        stop.set()
        await ticking
    assert [report.frames for report in reports] == [441_000, 441_000]
    assert len(gaps) > 10  # the mixes took long enough for the ticker to say something
    assert max(gaps) < 0.5
