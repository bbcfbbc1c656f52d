"""The post-success step: run once per job, under its lease, between success and delivery."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from bot.kinds import JobKind, Prepared, SaveProgress
from bot.vidgo.client import VidgoClient
from storage.jobstate import JobState
from storage.records import Admission, JobRecord
from tests.bot.conftest import MakeHarness
from tests.bot.engine_harness import EchoKind, Harness, echo_request
from tests.fakes.vidgo import FakeVidgo


class StepKind(EchoKind):
    """An echo job whose step adds ``{"made": n}`` (n = how many steps ran in all)."""

    def __init__(self, client: VidgoClient, *, failures: int = 0, cacheable: bool = True):
        super().__init__(client)
        self.calls: list[dict[str, Any]] = []
        self.failures = failures
        self.cacheable = cacheable
        self.block: asyncio.Event | None = None
        self.saved = asyncio.Event()

    def needs_prepare(self, job: JobRecord) -> bool:
        return "echo" in (job.result or {})

    async def prepare(self, job: JobRecord, save: SaveProgress) -> Prepared:
        self.calls.append(dict(job.result or {}))
        if self.failures:
            self.failures -= 1
            raise RuntimeError("the disk is on fire")
        await save({"half": True})
        self.saved.set()
        if self.block is not None:
            await self.block.wait()
        return Prepared({"made": len(self.calls)}, cacheable=self.cacheable)

    def prepare_gave_up(self, job: JobRecord, reason: str) -> Mapping[str, Any]:
        return {"made": None, "why": reason}


async def step_harness(make: MakeHarness, kind: StepKind) -> Harness:
    def kinds(client: VidgoClient) -> list[JobKind]:
        kind.client = client
        return [kind]

    return await make(extra_kinds=kinds)


async def test_the_step_runs_once_and_its_changes_are_delivered(
    make_harness: MakeHarness, vidgo: FakeVidgo
) -> None:
    kind = StepKind(None)  # type: ignore[arg-type]
    h = await step_harness(make_harness, kind)
    assert h.engine is not None
    # The first delivery attempt fails: the job comes back to the dispatcher, still owing a
    # delivery, but its step is done and is not run again.
    h.delivery.fail_next = 1
    job = (await h.engine.submit(echo_request())).job
    await vidgo.finish(job.vidgo_task_id or "")
    done = await h.wait_state(job.id, JobState.DELIVERED)
    assert h.delivery.attempts == 2
    [delivered] = h.delivery.for_job(job.id)
    assert delivered.result == {"echo": 1, "task": job.vidgo_task_id, "half": True, "made": 1}
    assert delivered.prepared_at is not None
    assert done.result == delivered.result
    assert len(kind.calls) == 1


async def test_an_undeliverable_result_is_retried_without_running_the_step_again(
    make_harness: MakeHarness, vidgo: FakeVidgo
) -> None:
    kind = StepKind(None)  # type: ignore[arg-type]
    h = await step_harness(make_harness, kind)
    assert h.engine is not None
    h.delivery.fail_next, h.delivery.permanent = 1, True
    job = (await h.engine.submit(echo_request())).job
    await vidgo.finish(job.vidgo_task_id or "")
    await h.wait_state(job.id, JobState.UNDELIVERABLE)
    await h.engine.poll_now(job.id)
    await h.wait_state(job.id, JobState.DELIVERED)
    assert len(kind.calls) == 1


async def test_a_step_cut_short_by_a_stop_resumes_from_its_saved_progress(
    make_harness: MakeHarness, vidgo: FakeVidgo
) -> None:
    kind = StepKind(None)  # type: ignore[arg-type]
    kind.block = asyncio.Event()
    h = await step_harness(make_harness, kind)
    assert h.engine is not None
    job = (await h.engine.submit(echo_request())).job
    await vidgo.finish(job.vidgo_task_id or "")
    await asyncio.wait_for(kind.saved.wait(), 5)
    await h.stop()  # the step never finished: the job is handed over, still owing it
    stopped = await (await h.backend.open_store()).get(job.id)
    assert stopped is not None
    assert stopped.state is JobState.SUCCEEDED and stopped.prepared_at is None
    assert stopped.result is not None and stopped.result["half"] is True
    assert h.delivery.for_job(job.id) == []

    kind.block = None
    await h.start()
    await h.wait_state(job.id, JobState.DELIVERED)
    # The second run saw what the first one saved; the result went out once.
    assert kind.calls[1]["half"] is True
    [delivered] = h.delivery.for_job(job.id)
    assert delivered.result is not None and delivered.result["made"] == 2


async def test_a_failing_step_is_retried_then_the_result_goes_out_without_it(
    make_harness: MakeHarness, vidgo: FakeVidgo
) -> None:
    kind = StepKind(None, failures=99)  # type: ignore[arg-type]
    h = await step_harness(make_harness, kind)
    assert h.engine is not None
    job = (await h.engine.submit(echo_request())).job
    await vidgo.finish(job.vidgo_task_id or "")
    await h.wait_state(job.id, JobState.DELIVERED)
    assert len(kind.calls) == h.config.max_faults
    [delivered] = h.delivery.for_job(job.id)
    assert delivered.result is not None
    assert delivered.result["made"] is None
    assert "RuntimeError" in delivered.result["why"]


async def test_a_step_that_fails_once_succeeds_on_the_retry(
    make_harness: MakeHarness, vidgo: FakeVidgo
) -> None:
    kind = StepKind(None, failures=1)  # type: ignore[arg-type]
    h = await step_harness(make_harness, kind)
    assert h.engine is not None
    job = (await h.engine.submit(echo_request())).job
    await vidgo.finish(job.vidgo_task_id or "")
    await h.wait_state(job.id, JobState.DELIVERED)
    [delivered] = h.delivery.for_job(job.id)
    assert delivered.result is not None and delivered.result["made"] == 2


async def test_followers_share_the_leaders_step_and_the_cache_gets_it(
    make_harness: MakeHarness, vidgo: FakeVidgo
) -> None:
    kind = StepKind(None)  # type: ignore[arg-type]
    h = await step_harness(make_harness, kind)
    assert h.engine is not None and h.store is not None
    first = await h.engine.submit(echo_request())
    second = await h.engine.submit(echo_request())
    assert second.admission is Admission.JOINED
    await vidgo.finish(first.job.vidgo_task_id or "")
    await h.wait_state(second.job.id, JobState.DELIVERED)
    await h.wait_state(first.job.id, JobState.DELIVERED)
    assert len(kind.calls) == 1
    for job_id in (first.job.id, second.job.id):
        [delivered] = h.delivery.for_job(job_id)
        assert delivered.result is not None and delivered.result["made"] == 1
    cached = await h.store.cache_get(echo_request().source_key)
    assert cached is not None and cached.result["made"] == 1

    # A cache hit owes its own step (its files may have gone since), which sees the entry.
    third = await h.engine.submit(echo_request())
    assert third.admission is Admission.CACHED
    await h.wait_state(third.job.id, JobState.DELIVERED)
    assert kind.calls[-1]["made"] == 1
    assert len(kind.calls) == 2


async def test_a_result_the_step_finds_undeliverable_is_dropped_from_the_cache(
    make_harness: MakeHarness, vidgo: FakeVidgo
) -> None:
    kind = StepKind(None, cacheable=False)  # type: ignore[arg-type]
    h = await step_harness(make_harness, kind)
    assert h.engine is not None and h.store is not None
    job = (await h.engine.submit(echo_request())).job
    await vidgo.finish(job.vidgo_task_id or "")
    await h.wait_state(job.id, JobState.DELIVERED)
    assert await h.store.cache_get(echo_request().source_key) is None


async def test_kinds_without_a_step_are_delivered_as_before(h: Harness, vidgo: FakeVidgo) -> None:
    assert h.client is not None and h.engine is not None
    h.engine.kinds["echo"] = EchoKind(h.client)
    job = (await h.engine.submit(echo_request())).job
    await vidgo.finish(job.vidgo_task_id or "")
    done = await h.wait_state(job.id, JobState.DELIVERED)
    assert done.prepared_at is None
    assert done.result == {"echo": 1, "task": job.vidgo_task_id}


async def test_followers_wait_for_a_leaders_retried_step_and_share_it(
    make_harness: MakeHarness, vidgo: FakeVidgo
) -> None:
    kind = StepKind(None, failures=1)  # type: ignore[arg-type]
    h = await step_harness(make_harness, kind)
    assert h.engine is not None
    first = await h.engine.submit(echo_request())
    second = await h.engine.submit(echo_request())
    assert second.admission is Admission.JOINED
    await vidgo.finish(first.job.vidgo_task_id or "")
    await h.wait_state(first.job.id, JobState.DELIVERED)
    await h.wait_state(second.job.id, JobState.DELIVERED)
    # One failed run and one good one, for both jobs together.
    assert len(kind.calls) == 2
    for job_id in (first.job.id, second.job.id):
        [delivered] = h.delivery.for_job(job_id)
        assert delivered.result is not None and delivered.result["made"] == 2
