"""Progress of unfinished jobs: queue position and ETA from recent durations."""

from __future__ import annotations

from unittest import mock

import pytest

from bot.progress import Progress, ProgressTracker
from storage.base import JobStore
from storage.jobstate import JobState
from tests.helpers import job

CREATED = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = CREATED + 30.0
        self.mono = 0.0


def tracker(durations: list[float], **kw: float) -> tuple[ProgressTracker, mock.Mock, Clock]:
    store = mock.Mock(spec_set=JobStore)
    store.queue_position = mock.AsyncMock(return_value=(2, 5))
    store.recent_durations = mock.AsyncMock(return_value=durations)
    clock = Clock()
    return (
        ProgressTracker(store, clock=lambda: clock.now, monotonic=lambda: clock.mono, **kw),
        store,
        clock,
    )


async def test_progress_is_the_position_and_the_median_minus_the_wait() -> None:
    progress_tracker, store, _ = tracker([100.0, 40.0, 70.0, 500.0, 60.0])
    waiting = job(state=JobState.RUNNING, outcome=None, created_at=CREATED)
    progress = await progress_tracker.progress_of(waiting)
    assert progress == Progress(position=2, unfinished=5, typical_seconds=70.0, elapsed=30.0)
    assert progress.remaining_seconds == 40.0
    store.queue_position.assert_awaited_once_with(9, waiting.id)
    store.recent_durations.assert_awaited_once_with("separate-vocals", 50)


async def test_too_few_finished_jobs_give_no_estimate() -> None:
    progress_tracker, _, _ = tracker([100.0, 40.0])
    progress = await progress_tracker.progress_of(job(state=JobState.SUBMITTED, outcome=None))
    assert progress is not None and progress.typical_seconds is None
    assert progress.remaining_seconds is None


async def test_an_overdue_job_has_zero_remaining() -> None:
    assert Progress(1, 1, typical_seconds=20.0, elapsed=90.0).remaining_seconds == 0.0


async def test_medians_are_cached_for_their_ttl() -> None:
    progress_tracker, store, clock = tracker([10.0, 20.0, 30.0], median_ttl=60.0)
    assert await progress_tracker.typical_duration("stem-split") == 20.0
    store.recent_durations.return_value = [50.0, 60.0, 70.0]
    clock.mono = 59.0
    assert await progress_tracker.typical_duration("stem-split") == 20.0
    assert store.recent_durations.await_count == 1
    clock.mono = 61.0
    assert await progress_tracker.typical_duration("stem-split") == 60.0
    assert store.recent_durations.await_count == 2


@pytest.mark.parametrize(
    "state", [JobState.SUCCEEDED, JobState.DELIVERED, JobState.CANCELLED, JobState.FAILED]
)
async def test_jobs_past_vidgo_have_no_progress_and_cost_no_query(state: JobState) -> None:
    progress_tracker, store, _ = tracker([1.0, 2.0, 3.0])
    assert await progress_tracker.progress_of(job(state=state)) is None
    store.queue_position.assert_not_awaited()
    store.recent_durations.assert_not_awaited()


async def test_a_job_outside_a_server_has_no_position() -> None:
    progress_tracker, store, _ = tracker([1.0, 2.0, 3.0])
    progress = await progress_tracker.progress_of(
        job(state=JobState.ACCEPTED, outcome=None, guild_id=None)
    )
    assert progress is not None and progress.position is None and progress.typical_seconds == 2.0
    store.queue_position.assert_not_awaited()
