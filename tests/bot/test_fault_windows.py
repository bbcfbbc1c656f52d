"""The engine's fault windows: no second paid task, no lost song, no endless loop.

Each test drives the real engine against the fake Vidgo over HTTP and a SQLite file, and
checks what Vidgo was actually asked (tasks created, submits sent, detail reads) as well as
the job's end.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import aiohttp
import pytest

from bot.engine import callback_token
from bot.instances import dead_instances, machine_name
from bot.jobs import ErrorKind
from bot.kinds import JobKind
from bot.vidgo.results import SubmitReceipt, TaskDetail, TaskStatus
from storage.base import LeaseLost
from storage.jobstate import JobState
from storage.records import InstanceInfo, JobRecord
from tests.bot.conftest import MakeHarness
from tests.bot.engine_harness import FAST, EchoKind, Harness, echo_request, with_kind
from tests.fakes.vidgo import FakeVidgo

SUBMIT = "/api/generate/submit"
LINK = "https://cdn.example.org/songs/demo.mp3"
# What makes a submit's answer get lost after Vidgo created the task.
LOSSES = ("timeout", "502", "504", "reset", "garbage")


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.01)


def callback_path(task_url: str) -> str:
    return task_url.split("/vidgo/callback/", 1)[1]


# --- lost submit answers ------------------------------------------------------------------------


@pytest.mark.parametrize("loss", LOSSES)
async def test_lost_answer_for_a_vidgo_song_costs_one_task_and_delivers_it(
    make_harness: MakeHarness, vidgo: FakeVidgo, loss: str
) -> None:
    h = await make_harness(client_timeout=0.3)
    vidgo.lose_answer_next(1, loss, delay=0.6, path_prefix=SUBMIT)
    job = (await h.separate_ids()).job
    assert job.state is JobState.ACCEPTED
    assert job.unconfirmed_submit_at is not None
    [task] = await vidgo.wait_for_task(1)
    # Resent with the same token: Vidgo's once-per-track rule answers 409, so the engine
    # keeps waiting for the callback instead of declaring the track already separated.
    await wait_for(lambda: vidgo.submit_count == 2)
    waiting = await h.job(job.id)
    assert waiting.state is JobState.ACCEPTED
    assert len(vidgo.tasks) == 1
    await vidgo.finish(task.task_id)
    done = await h.wait_state(job.id, JobState.DELIVERED, timeout=10)
    assert done.outcome is JobState.SUCCEEDED
    assert done.vidgo_task_id == task.task_id
    assert done.unconfirmed_submit_at is None
    assert vidgo.paid_tasks == 1
    assert len(h.delivery.for_job(job.id)) == 1


@pytest.mark.parametrize("loss", LOSSES)
async def test_lost_answer_for_an_upload_is_never_resent_and_the_callback_is_adopted(
    make_harness: MakeHarness, vidgo: FakeVidgo, loss: str
) -> None:
    h = await make_harness(client_timeout=0.3)
    vidgo.lose_answer_next(1, loss, delay=0.6, path_prefix=SUBMIT)
    job = (await h.separate_link(LINK)).job
    [task] = await vidgo.wait_for_task(1)
    await asyncio.sleep(0.3)  # several backoffs' worth: nothing may be resent meanwhile
    assert vidgo.submit_count == 1
    await vidgo.finish(task.task_id)
    done = await h.wait_state(job.id, JobState.DELIVERED, timeout=10)
    assert done.outcome is JobState.SUCCEEDED
    assert done.vidgo_task_id == task.task_id
    assert vidgo.submit_count == 1
    assert vidgo.paid_tasks == 1


async def test_every_submit_of_a_job_carries_the_same_callback_url(
    make_harness: MakeHarness, vidgo: FakeVidgo
) -> None:
    h = await make_harness()
    # Two refusals Vidgo certainly did not act on, then the task: the client retries the
    # first two itself, and the engine sends its own retry after the client gives up.
    vidgo.fail_next(4, 503, path_prefix=SUBMIT)
    job = (await h.separate_ids()).job
    await wait_for(lambda: len(vidgo.tasks) == 1)
    [task] = vidgo.tasks.values()
    assert h.engine is not None
    stored = await h.job(job.id)
    token = await h.engine.callback_token_of(stored)
    assert task.callback_url == f"{h.public_url}/vidgo/callback/{token}"
    assert vidgo.submit_count == 5
    # Certainly-not-processed failures leave nothing unconfirmed.
    done = await h.wait_state(job.id, JobState.SUBMITTED, JobState.RUNNING)
    assert done.unconfirmed_submit_at is None


async def test_without_callbacks_a_lost_answer_for_a_vidgo_song_fails_explicitly(
    make_harness: MakeHarness, vidgo: FakeVidgo
) -> None:
    h = await make_harness(callbacks=False, client_timeout=0.3)
    vidgo.lose_answer_next(1, "504", path_prefix=SUBMIT)
    job = (await h.separate_ids()).job
    done = await h.wait_state(job.id, JobState.DELIVERED, timeout=10)
    assert done.outcome is JobState.FAILED
    assert done.error_kind == ErrorKind.UNCONFIRMED
    assert done.last_error is not None and "could not be confirmed" in done.last_error
    # The resend met the once-per-track rule: never a second task for the track.
    assert vidgo.submit_count == 2
    assert len(vidgo.tasks) == 1


async def test_without_callbacks_a_lost_answer_for_an_upload_is_not_resent(
    make_harness: MakeHarness, vidgo: FakeVidgo
) -> None:
    h = await make_harness(callbacks=False, client_timeout=0.3)
    vidgo.lose_answer_next(1, "reset", path_prefix=SUBMIT)
    job = (await h.separate_link(LINK)).job
    done = await h.wait_state(job.id, JobState.DELIVERED, timeout=10)
    assert done.error_kind == ErrorKind.UNCONFIRMED
    assert vidgo.submit_count == 1


async def test_an_unconfirmed_submit_fails_explicitly_when_no_callback_comes_in_time(
    make_harness: MakeHarness, vidgo: FakeVidgo
) -> None:
    h = await make_harness(config=replace(FAST, unconfirmed_grace=0.5), client_timeout=0.3)
    vidgo.send_callbacks = False
    vidgo.lose_answer_next(1, "502", path_prefix=SUBMIT)
    job = (await h.separate_link(LINK)).job
    waiting = await h.job(job.id)
    assert waiting.state is JobState.ACCEPTED
    done = await h.wait_state(job.id, JobState.DELIVERED, timeout=10)
    assert done.outcome is JobState.FAILED
    assert done.error_kind == ErrorKind.UNCONFIRMED
    assert vidgo.submit_count == 1


async def test_a_process_killed_mid_submit_leaves_the_submit_unconfirmed(
    make_harness: MakeHarness, vidgo: FakeVidgo
) -> None:
    # The submit is recorded before it is sent; a crash during the call (simulated by
    # stopping the engine while Vidgo holds the answer) must not lead to a blind resend.
    h = await make_harness(config=replace(FAST, unconfirmed_grace=30.0))
    vidgo.slow_next(1, 3.0, path_prefix=SUBMIT)
    submitting = asyncio.create_task(h.separate_link(LINK))
    [task] = await vidgo.wait_for_task(1)
    assert h.engine is not None
    submitting.cancel()
    await asyncio.gather(submitting, return_exceptions=True)
    await h.stop()
    await h.start()
    await vidgo.finish(task.task_id)
    assert h.store is not None
    [job] = await h.store.list_jobs()
    done = await h.wait_state(job.id, JobState.DELIVERED, timeout=10)
    assert done.outcome is JobState.SUCCEEDED
    assert done.vidgo_task_id == task.task_id
    assert vidgo.submit_count == 1


# --- callbacks as evidence ----------------------------------------------------------------------


async def test_a_callback_naming_another_task_is_checked_and_not_adopted(
    make_harness: MakeHarness, vidgo: FakeVidgo, session: aiohttp.ClientSession
) -> None:
    h = await make_harness(client_timeout=0.3)
    vidgo.echo_input = True
    # Another job's finished task exists at Vidgo.
    other = (await h.separate_ids(1)).job
    await vidgo.finish(other.vidgo_task_id or "")
    await h.wait_state(other.id, JobState.DELIVERED)
    vidgo.lose_answer_next(1, "504", path_prefix=SUBMIT)
    job = (await h.separate_link(LINK)).job
    [_, task] = await vidgo.wait_for_task(2)
    stored = await h.job(job.id)
    assert h.engine is not None
    token = await h.engine.callback_token_of(stored)
    # A body naming the other job's task reaches this job's own URL.
    body = {"code": 200, "data": {"task_id": other.vidgo_task_id, "status": "finished"}}
    async with session.post(f"{h.public_url}/vidgo/callback/{token}", json=body) as resp:
        assert resp.status == 200
    await wait_for(lambda: vidgo.tasks[other.vidgo_task_id or ""].detail_calls >= 2)
    await asyncio.sleep(0.1)
    still = await h.job(job.id)
    assert still.state is JobState.ACCEPTED
    assert still.vidgo_task_id is None
    assert still.task_hint is None
    # The real callback then adopts the real task.
    await vidgo.finish(task.task_id)
    done = await h.wait_state(job.id, JobState.DELIVERED, timeout=10)
    assert done.vidgo_task_id == task.task_id


async def test_a_task_whose_echoed_input_differs_is_not_adopted(h: Harness) -> None:
    assert h.engine is not None
    kind = h.engine.kinds["separation"]
    job = (await h.separate_link(LINK)).job
    detail = TaskDetail(
        task_id="t",
        status=TaskStatus.RUNNING,
        stems={},
        tracks=(),
        error_message=None,
        created_time=None,
        model="upload-and-separate-vocals",
        input={"audio_url": "https://elsewhere.example/other.mp3"},
    )
    assert kind.contradicts(job, detail, since=job.created_at) is not None
    same = replace(detail, input={"audio_url": LINK})
    assert kind.contradicts(job, same, since=job.created_at) is None
    other_model = replace(same, model="stem-split")
    assert kind.contradicts(job, other_model, since=job.created_at) is not None


async def test_a_forged_token_is_refused_without_touching_the_database(
    h: Harness, vidgo: FakeVidgo, session: aiohttp.ClientSession
) -> None:
    job = (await h.separate_link(LINK)).job  # no track details are fetched for a link
    before = await h.job(job.id)
    forged = callback_token(b"not the server's secret" * 2, job.callback_key or job.id)
    async with session.post(f"{h.public_url}/vidgo/callback/{forged}", json={}) as resp:
        assert resp.status == 404
    assert await h.job(job.id) == before
    assert h.engine is not None
    assert not h.engine.callbacks_healthy


async def test_callbacks_for_unknown_jobs_never_mark_callbacks_healthy(
    h: Harness, session: aiohttp.ClientSession
) -> None:
    # A stream of well-formed tokens of jobs that do not exist (made with the real secret,
    # or random old-style ones) must not slow polling down to the safety-net pace.
    assert h.engine is not None and h.store is not None
    secret = await h.store.secret("callback-token")
    for token in (callback_token(secret, "nosuchjob1"), "A" * 22, "b" * 40):
        async with session.post(f"{h.public_url}/vidgo/callback/{token}", json={}) as resp:
            assert resp.status == 404
    assert not h.engine.callbacks_healthy


async def test_a_flood_of_callbacks_costs_at_most_one_detail_read_per_gap(
    make_harness: MakeHarness, vidgo: FakeVidgo, session: aiohttp.ClientSession
) -> None:
    gap = 0.5
    h = await make_harness(config=replace(FAST, callback_min_poll_gap=gap, poll_interval=30.0))
    job = (await h.separate_ids()).job
    task = vidgo.tasks[job.vidgo_task_id or ""]
    assert task.callback_url is not None
    body = {"code": 200, "data": {"task_id": task.task_id, "status": "running"}}
    loop = asyncio.get_running_loop()
    began = loop.time()
    for _ in range(60):
        async with session.post(task.callback_url, json=body) as resp:
            assert resp.status == 200
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)
    elapsed = loop.time() - began
    assert 1 <= task.detail_calls <= 1 + int(elapsed / gap) + 1
    assert task.detail_calls < 60 / 4


# --- leases -------------------------------------------------------------------------------------


async def second_engine(h: Harness, **options: Any) -> Harness:
    other = Harness(vidgo=h.vidgo, backend=h.backend, session=h.session, callbacks=False, **options)
    await other.start()
    return other


async def keep_waking(other: Harness) -> None:
    """Make the other engine look for due work all the time, as if another process kept
    telling it that something became due."""
    while True:
        assert other.engine is not None
        other.engine._scheduler.wake()
        await asyncio.sleep(0.05)


async def test_a_second_engine_on_the_same_database_leaves_held_work_alone(
    make_harness: MakeHarness, vidgo: FakeVidgo
) -> None:
    h = await make_harness()
    vidgo.slow_next(1, 1.5, path_prefix=SUBMIT)
    submitting = asyncio.create_task(h.separate_link(LINK))
    await vidgo.wait_for_task(1)
    other = await second_engine(h)
    waking = asyncio.create_task(keep_waking(other))
    try:
        await asyncio.sleep(0.5)
        assert vidgo.submit_count == 1
        submitted = await submitting
        assert submitted.job.state is JobState.SUBMITTED
    finally:
        waking.cancel()
        await other.close()


async def test_a_submit_slower_than_the_lease_is_not_sent_twice(
    make_harness: MakeHarness, vidgo: FakeVidgo
) -> None:
    short = replace(FAST, work_lease=0.4, instance_heartbeat=0.05, instance_timeout=5.0)
    h = await make_harness(config=short, client_timeout=5.0)
    other = await second_engine(h, config=short, client_timeout=5.0)
    waking = asyncio.create_task(keep_waking(other))
    try:
        vidgo.slow_next(1, 1.5, path_prefix=SUBMIT)
        job = (await h.separate_link(LINK)).job
        # The submit took almost four leases; renewals kept the other engine away.
        assert job.state is JobState.SUBMITTED
        assert vidgo.submit_count == 1
        await vidgo.finish(job.vidgo_task_id or "")
        done = await h.wait_state(job.id, JobState.DELIVERED)
        assert done.outcome is JobState.SUCCEEDED
        await asyncio.sleep(0.3)
        delivered = h.delivery.for_job(job.id) + other.delivery.for_job(job.id)
        assert len(delivered) == 1
    finally:
        waking.cancel()
        await other.close()


async def test_a_worker_that_lost_its_lease_cannot_write(h: Harness) -> None:
    assert h.store is not None
    job = (await h.separate_ids()).job
    # Only the two workers below may touch the row: the harness's own engine would otherwise
    # race them (on PostgreSQL its claim holds the row and SKIP LOCKED skips it).
    engine, h.engine = h.engine, None
    assert engine is not None
    await engine.stop(grace=1.0)
    now = job.created_at + 1000  # its lease has long run out
    await h.store.update(job.id, now, due_at=now)
    [first] = await h.store.claim_due(now, now + 1, limit=1, owner="a")
    [second] = await h.store.claim_due(now + 2, now + 60, limit=1, owner="b")
    assert second.lease_id == first.lease_id + 1
    with pytest.raises(LeaseLost):
        await h.store.update(job.id, now + 3, lease=first.lease_id, polls=99)
    with pytest.raises(LeaseLost):
        await h.store.transition(job.id, JobState.FAILED, now + 3, lease=first.lease_id)
    with pytest.raises(LeaseLost):
        await h.store.record_outcome(
            job.id, JobState.FAILED, now + 3, last_error="x", lease=first.lease_id
        )
    assert (await h.job(job.id)).polls != 99
    # The holder's writes land.
    await h.store.update(job.id, now + 3, lease=second.lease_id, polls=7)
    assert (await h.job(job.id)).polls == 7


def dead_pid() -> int:
    """The id of a process that has exited (and been reaped) on this machine."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


async def test_work_of_a_process_that_died_is_taken_over_at_start_well_within_the_lease(
    make_harness: MakeHarness, vidgo: FakeVidgo
) -> None:
    # A day-long lease and heartbeat timeout: only the dead process id can free the job.
    slow = replace(FAST, work_lease=86_400.0, instance_timeout=86_400.0)
    h = await make_harness(config=slow)
    job = (await h.separate_link(LINK)).job
    await h.stop()
    await h.start()
    assert h.store is not None and h.engine is not None
    await h.engine.stop()  # only the store is used while the dead process is staged
    now = job.created_at
    gone = InstanceInfo("gone-process", dead_pid(), machine_name(), now, now + 10**6)
    await h.store.register_instance(gone)
    await h.store.update(job.id, now, due_at=0.0)
    [held] = await h.store.claim_due(now, now + 10**9, limit=1, owner=gone.id)
    assert held.lease_owner == gone.id
    await vidgo.finish(job.vidgo_task_id or "", callback=False)
    await h.stop()
    await h.start()
    done = await h.wait_state(job.id, JobState.DELIVERED, timeout=3)
    assert done.outcome is JobState.SUCCEEDED
    assert gone.id not in {i.id for i in await h.store.list_instances()}


async def test_a_live_process_is_never_judged_gone_by_its_process_id(h: Harness) -> None:
    assert h.store is not None and h.engine is not None
    me = h.engine.instance
    instances = await h.store.list_instances()
    assert me.id in {i.id for i in instances}
    assert dead_instances(instances, replace(me, id="someone-else")) == []


# --- odd data and faults ------------------------------------------------------------------------


class ExplodingKind(EchoKind):
    """A kind with a bug in its result parsing or its submit."""

    def __init__(self, *args: Any, explode_in: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.explode_in = explode_in
        self.submits = 0

    async def submit(self, job: JobRecord, callback_url: str | None) -> SubmitReceipt:
        self.submits += 1
        if self.explode_in == "submit":
            raise RuntimeError("a bug before anything was sent")
        return await super().submit(job, callback_url)

    def result_of(self, job: JobRecord, detail: TaskDetail) -> dict[str, Any]:
        if self.explode_in == "result":
            return {"n": int("²")}
        return super().result_of(job, detail)


async def test_a_result_that_cannot_be_read_fails_the_job_as_malformed(
    h: Harness, vidgo: FakeVidgo
) -> None:
    assert h.client is not None
    await with_kind(h, ExplodingKind(h.client, explode_in="result"))
    job = (await h.engine.submit(echo_request())).job  # type: ignore[union-attr]
    await vidgo.finish(job.vidgo_task_id or "")
    done = await h.wait_state(job.id, JobState.DELIVERED)
    assert done.outcome is JobState.FAILED
    assert done.error_kind == ErrorKind.MALFORMED


async def test_deeply_nested_stems_end_the_job_instead_of_looping(
    h: Harness, vidgo: FakeVidgo
) -> None:
    job = (await h.separate_ids()).job
    task = vidgo.tasks[job.vidgo_task_id or ""]
    task.raw_files = [{"separate_vocals": "[" * 50_000 + "]" * 50_000}]
    await vidgo.finish(task.task_id)
    done = await h.wait_state(job.id, JobState.DELIVERED)
    assert done.outcome is JobState.FAILED
    assert done.error_kind in (ErrorKind.NO_STEMS, ErrorKind.MALFORMED)


async def test_a_detail_reply_nested_too_deep_to_parse_fails_the_job_as_malformed(
    h: Harness, vidgo: FakeVidgo
) -> None:
    job = (await h.separate_ids()).job
    task = vidgo.tasks[job.vidgo_task_id or ""]
    task.raw_files = "[" * 100_000 + "]" * 100_000
    await vidgo.finish(task.task_id)
    done = await h.wait_state(job.id, JobState.DELIVERED)
    assert done.outcome is JobState.FAILED
    assert done.error_kind == ErrorKind.MALFORMED
    # Read a bounded number of times (max_faults), never until the deadline.
    assert task.detail_calls <= FAST.max_faults * 3  # the client retries each read twice


async def test_a_worker_that_keeps_failing_ends_the_job_after_max_faults(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(config=replace(FAST, max_faults=3))
    assert h.client is not None and h.engine is not None
    kind = ExplodingKind(h.client, explode_in="submit")
    await with_kind(h, kind)
    job = (await h.engine.submit(echo_request())).job
    done = await h.wait_state(job.id, JobState.DELIVERED, timeout=5)
    assert done.outcome is JobState.FAILED
    assert done.error_kind == ErrorKind.INTERNAL
    assert done.faults == 3
    assert kind.submits == 3


def test_every_kind_is_cautious_by_default() -> None:
    class Bare(JobKind):
        async def submit(self, job: JobRecord, callback_url: str | None) -> SubmitReceipt:
            raise NotImplementedError

        def result_of(self, job: JobRecord, detail: TaskDetail) -> dict[str, Any]:
            raise NotImplementedError

    job_stub: Any = None
    assert Bare().resend_is_safe(job_stub) is False
