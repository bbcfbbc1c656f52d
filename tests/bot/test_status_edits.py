"""Coalesced status edits (bot.progress.StatusEdits): one per job per interval, the newest
state wins, the end is never lost.

Time is a hand-moved clock; the coalescer's waits are real but bounded by a tiny interval,
and each test waits for the edits themselves (never for a duration) before it asserts.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from bot.progress import StatusEdits
from storage.jobstate import JobState
from storage.records import JobRecord
from tests.helpers import job, wait_for

RUNNING = {"state": JobState.RUNNING, "outcome": None}


class Recorder:
    """An edit function that records what each edit showed."""

    def __init__(self) -> None:
        self.shown: list[tuple[str, JobState, float]] = []
        self.gate: asyncio.Event | None = None

    async def edit(self, shown: JobRecord) -> None:
        if self.gate is not None:
            await self.gate.wait()
        self.shown.append((shown.id, shown.state, shown.updated_at))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def at(updated_at: float, **changes: object) -> JobRecord:
    return replace(job(**{**RUNNING, **changes}), updated_at=updated_at)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_the_first_edit_of_a_job_goes_out_at_once(recorder: Recorder, clock: Clock) -> None:
    edits = StatusEdits(recorder.edit, interval=60.0, monotonic=clock)
    await edits.show(at(1.0))
    assert recorder.shown == [("abcdefghjk", JobState.RUNNING, 1.0)]


async def test_a_burst_of_status_changes_produces_one_edit_with_the_last_state(
    recorder: Recorder, clock: Clock
) -> None:
    edits = StatusEdits(recorder.edit, interval=0.05, monotonic=clock)
    await edits.show(at(1.0))
    for i in range(2, 12):  # all within the interval of the first edit
        await edits.show(at(float(i), polls=i))
    assert len(recorder.shown) == 1 and edits.waiting == 1
    clock.now += 0.05  # the interval is over
    await edits.settle()
    assert recorder.shown == [
        ("abcdefghjk", JobState.RUNNING, 1.0),
        ("abcdefghjk", JobState.RUNNING, 11.0),
    ]


async def test_edits_of_one_job_are_an_interval_apart(recorder: Recorder, clock: Clock) -> None:
    edits = StatusEdits(recorder.edit, interval=0.05, monotonic=clock)
    await edits.show(at(1.0))
    await edits.show(at(2.0))  # too soon: waits for the interval
    await asyncio.sleep(0)
    assert len(recorder.shown) == 1
    clock.now += 0.05
    await wait_for(lambda: len(recorder.shown) == 2, timeout=5)
    assert [shown[2] for shown in recorder.shown] == [1.0, 2.0]


async def test_an_older_record_arriving_late_never_replaces_a_newer_one(
    recorder: Recorder, clock: Clock
) -> None:
    edits = StatusEdits(recorder.edit, interval=0.05, monotonic=clock)
    await edits.show(at(1.0))
    await edits.show(at(5.0, polls=5))
    await edits.show(at(3.0, polls=3))  # read before the one above, shown after it
    clock.now += 0.05
    await edits.settle()
    assert [shown[2] for shown in recorder.shown] == [1.0, 5.0]


async def test_the_final_edit_is_never_coalesced_away(recorder: Recorder, clock: Clock) -> None:
    edits = StatusEdits(recorder.edit, interval=3600.0, monotonic=clock)
    await edits.show(at(1.0))
    done = at(2.0, state=JobState.SUCCEEDED, outcome=JobState.SUCCEEDED)
    await edits.show(done, wait=False)
    # A progress edit read before the end, arriving after it, must not replace it ...
    await edits.show(at(1.5, polls=2))
    # ... nor one read later (a worker that had not heard of the end yet).
    await edits.show(at(9.0, polls=3))
    await edits.settle()  # shutdown comes long before the hour is over
    assert recorder.shown[-1] == ("abcdefghjk", JobState.SUCCEEDED, 2.0)
    assert len(recorder.shown) == 2


async def test_a_waiting_state_after_the_end_was_shown_is_ignored(
    recorder: Recorder, clock: Clock
) -> None:
    edits = StatusEdits(recorder.edit, interval=0.01, monotonic=clock)
    await edits.show(at(2.0, state=JobState.CANCELLED, outcome=JobState.CANCELLED))
    clock.now += 1
    await edits.show(at(3.0))  # buttons back on a cancelled job: never
    await edits.settle()
    assert recorder.shown == [("abcdefghjk", JobState.CANCELLED, 2.0)]


async def test_news_during_a_running_edit_is_shown_after_it(
    recorder: Recorder, clock: Clock
) -> None:
    edits = StatusEdits(recorder.edit, interval=0.01, monotonic=clock)
    recorder.gate = asyncio.Event()
    first = asyncio.create_task(edits.show(at(1.0)))
    await asyncio.sleep(0)  # the first edit is on its way (held at the gate)
    await edits.show(at(2.0, state=JobState.FAILED, outcome=JobState.FAILED))
    recorder.gate.set()
    await first
    clock.now += 0.01
    await edits.settle()
    assert [shown[1] for shown in recorder.shown] == [JobState.RUNNING, JobState.FAILED]


async def test_jobs_are_coalesced_separately(recorder: Recorder, clock: Clock) -> None:
    edits = StatusEdits(recorder.edit, interval=3600.0, monotonic=clock)
    await edits.show(at(1.0, id="aaaaaaaaaa"))
    await edits.show(at(1.0, id="bbbbbbbbbb"))
    assert {shown[0] for shown in recorder.shown} == {"aaaaaaaaaa", "bbbbbbbbbb"}


async def test_a_failing_edit_does_not_stop_the_next_one(clock: Clock) -> None:
    shown: list[float] = []

    async def flaky(record: JobRecord) -> None:
        shown.append(record.updated_at)
        if len(shown) == 1:
            raise RuntimeError("Discord said 500")

    edits = StatusEdits(flaky, interval=0.01, monotonic=clock)
    await edits.show(at(1.0))
    await edits.show(at(2.0, state=JobState.SUCCEEDED, outcome=JobState.SUCCEEDED))
    clock.now += 0.01
    await edits.settle()
    assert shown == [1.0, 2.0]


async def test_the_memory_of_ended_jobs_is_bounded(recorder: Recorder, clock: Clock) -> None:
    edits = StatusEdits(recorder.edit, interval=0.0, monotonic=clock, ended_kept=10)
    for i in range(25):
        ended = at(1.0, id=f"job{i:07d}", state=JobState.FAILED, outcome=JobState.FAILED)
        await edits.show(ended)
    assert len(edits._ended) <= 10
    assert len(recorder.shown) == 25
