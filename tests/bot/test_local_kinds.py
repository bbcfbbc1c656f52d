"""The engine's two hooks for local work: a submit that waits for a busy resource
(``TryLater``) and a job that starts another once its result is posted (``follow_up``).

Real engine, real store (every backend), a recording delivery; the kinds are the tests' own.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from bot.engine import JOB_ID_LENGTH, EngineConfig, JobEngine, follow_up_id, new_job_id
from bot.jobs import JobRequest
from bot.kinds import JobKind, TryLater, UnusableResult
from bot.policy import GuildPolicy
from bot.vidgo.results import SubmitReceipt, TaskDetail, TaskStatus
from cogs.buttons import JOB_ID_PATTERN
from storage.base import JobStore
from storage.jobstate import JobState
from storage.records import Admission, JobRecord, SourceKind
from tests.bot.engine_harness import FAST, RecordingDelivery
from tests.keys_helpers import NoVidgo

CONFIG = replace(FAST, job_timeout=30.0, submit_max_attempts=2)


class Local(JobKind):
    """Work done at submit; busy for the first ``busy`` submits."""

    NAME = "local"

    def __init__(self, *, busy: int = 0) -> None:
        self.busy = busy
        self.submits = 0

    async def submit(self, job: JobRecord, callback_url: str | None) -> SubmitReceipt:
        self.submits += 1
        if self.busy > 0:
            self.busy -= 1
            raise TryLater("the workers are busy", retry_after=0.02)
        return SubmitReceipt(f"local-{job.id}", TaskStatus.FINISHED, None, data={})

    def result_of(self, job: JobRecord, detail: TaskDetail) -> dict[str, Any]:
        raise UnusableResult("local", "nothing to read")

    def result_at_submit(self, job: JobRecord, receipt: SubmitReceipt) -> dict[str, Any] | None:
        return {"made": job.options.get("what", "it")}

    def resend_is_safe(self, job: JobRecord) -> bool:
        return True


class After(Local):
    """Started by a posted ``local`` job whose options say ``then``."""

    NAME = "after"

    def follow_up(self, job: JobRecord, result_message_id: int | None) -> JobRequest | None:
        if job.kind != Local.NAME or not job.options.get("then"):
            return None
        return request("after", key=f"after:{job.options['then']}", reply_to=result_message_id)


def request(kind: str = "local", *, key: str = "local:a", **changes: Any) -> JobRequest:
    options = changes.pop("options", {})
    reply_to = changes.pop("reply_to", None)
    return JobRequest(
        kind=kind,
        model=kind,
        source_kind=SourceKind.URL,
        source_key=key,
        requester_id=7,
        channel_id=70,
        guild_id=700,
        source_url="https://example.org/a.mp3",
        options=options,
        reply_to_message_id=reply_to,
        **changes,
    )


class FlakyStore:
    """A store whose first ``DELIVERED`` write of a job of kind ``fail_kind`` fails, as if the
    process had died right after the post (everything else goes to the real store)."""

    def __init__(self, store: JobStore) -> None:
        self._store = store
        self.fail_kind: str | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def transition(self, job_id: str, target: JobState, now: float, **kw: Any) -> JobRecord:
        if target is JobState.DELIVERED and self.fail_kind is not None:
            job = await self._store.get(job_id)
            if job is not None and job.kind == self.fail_kind:
                self.fail_kind = None
                raise RuntimeError("the process died here")
        return await self._store.transition(job_id, target, now, **kw)


class Rig:
    def __init__(self, store: JobStore, *kinds: JobKind, config: EngineConfig = CONFIG) -> None:
        self.store = FlakyStore(store)
        self.delivery = RecordingDelivery()
        self.engine = JobEngine(
            self.store,  # type: ignore[arg-type]
            NoVidgo(),
            self.delivery,
            config,
            kinds=list(kinds),
        )

    async def job(self, job_id: str) -> JobRecord:
        found = await self.store.get(job_id)
        assert found is not None
        return found

    async def state(self, job_id: str, *states: JobState) -> JobRecord:
        """The job once it exists and is in one of ``states``."""
        async with asyncio.timeout(5):
            while True:
                job = await self.store.get(job_id)
                if job is not None and job.state in states:
                    return job
                await asyncio.sleep(0.01)

    async def jobs(self, kind: str) -> list[JobRecord]:
        return [j for j in await self.store.list_jobs(limit=100) if j.kind == kind]


@pytest.fixture
async def rigs(store: JobStore) -> AsyncIterator[list[Rig]]:
    made: list[Rig] = []
    yield made
    for rig in made:
        await rig.engine.stop(grace=1.0)


async def started(rigs: list[Rig], store: JobStore, *kinds: JobKind, **kw: Any) -> Rig:
    rig = Rig(store, *kinds, **kw)
    rigs.append(rig)
    await rig.engine.start()
    return rig


# --- TryLater ----------------------------------------------------------------------------------


async def test_a_busy_submit_waits_and_is_tried_again_without_spending_an_attempt(
    store: JobStore, rigs: list[Rig]
) -> None:
    kind = Local(busy=3)  # more busy answers than submit_max_attempts (2) allows attempts
    rig = await started(rigs, store, kind)
    submitted = await rig.engine.submit(request())
    assert submitted.admission is Admission.NEW
    waiting = await rig.job(submitted.job.id)
    assert waiting.state is JobState.ACCEPTED
    assert waiting.last_error == "the workers are busy"
    assert waiting.unconfirmed_submit_at is None  # nothing was sent anywhere
    done = await rig.state(submitted.job.id, JobState.DELIVERED)
    assert kind.submits == 4
    assert done.attempts == 1  # only the submit that went through counts
    assert done.result == {"made": "it"}
    assert [j.id for j in rig.delivery.delivered] == [done.id]


async def test_a_job_still_busy_at_its_deadline_expires(store: JobStore, rigs: list[Rig]) -> None:
    rig = await started(rigs, store, Local(busy=10_000), config=replace(CONFIG, job_timeout=0.3))
    submitted = await rig.engine.submit(request())
    ended = await rig.state(submitted.job.id, JobState.DELIVERED)
    assert ended.outcome is JobState.EXPIRED
    assert ended.error_kind == "expired"


# --- follow-ups --------------------------------------------------------------------------------


async def test_a_posted_success_starts_its_follow_up_replying_to_the_post(
    store: JobStore, rigs: list[Rig]
) -> None:
    rig = await started(rigs, store, Local(), After())
    parent = (await rig.engine.submit(request(options={"then": "x"}))).job
    await rig.delivery.wait_for(lambda d: any(j.kind == "after" for j in d))
    posted = await rig.state(parent.id, JobState.DELIVERED)
    [child] = await rig.jobs("after")
    assert child.id == follow_up_id(parent.id, "after")
    assert child.reply_to_message_id == posted.result_message_id
    assert child.requester_id == parent.requester_id
    assert (await rig.state(child.id, JobState.DELIVERED)).result == {"made": "it"}


async def test_a_follow_up_is_started_once_when_the_parents_delivery_is_retried(
    store: JobStore, rigs: list[Rig]
) -> None:
    rig = await started(rigs, store, Local(), After())
    # The parent's "delivered" write fails after its post and its follow-up were made: the
    # delivery runs again (Discord's nonce or the history lookup keeps the post single).
    rig.store.fail_kind = "local"
    parent = (await rig.engine.submit(request(options={"then": "x"}))).job
    await rig.state(parent.id, JobState.DELIVERED)
    assert len(rig.delivery.for_job(parent.id)) == 2
    child = await rig.state(follow_up_id(parent.id, "after"), JobState.DELIVERED)
    assert len(await rig.jobs("after")) == 1
    assert len(rig.delivery.for_job(child.id)) == 1


async def test_a_failed_job_starts_no_follow_up(store: JobStore, rigs: list[Rig]) -> None:
    class Failing(Local):
        def result_at_submit(self, job: JobRecord, receipt: SubmitReceipt) -> dict[str, Any] | None:
            raise UnusableResult("nothing", "nothing came of it")

    rig = await started(rigs, store, Failing(), After())
    parent = (await rig.engine.submit(request(options={"then": "x"}))).job
    ended = await rig.state(parent.id, JobState.DELIVERED)
    assert ended.outcome is JobState.FAILED
    await asyncio.sleep(0.1)
    assert await rig.jobs("after") == []


async def test_a_follow_up_is_sent_where_its_parents_result_went(
    store: JobStore, rigs: list[Rig]
) -> None:
    rig = await started(rigs, store, Local(), After())
    policy = GuildPolicy(result_channel_id=71, dm_on_completion=True)
    parent = (await rig.engine.submit(request(options={"then": "x"}), policy=policy)).job
    await rig.state(parent.id, JobState.DELIVERED)
    [child] = await rig.jobs("after")
    assert (child.channel_id, child.result_channel_id, child.dm_on_completion) == (70, 71, True)


async def test_a_follow_up_answered_from_the_cache_is_delivered(
    store: JobStore, rigs: list[Rig]
) -> None:
    after = After()
    rig = await started(rigs, store, Local(), after)
    first = (await rig.engine.submit(request(key="local:1", options={"then": "same"}))).job
    await rig.state(follow_up_id(first.id, "after"), JobState.DELIVERED)
    second = (await rig.engine.submit(request(key="local:2", options={"then": "same"}))).job
    child = await rig.state(follow_up_id(second.id, "after"), JobState.DELIVERED)
    assert child.result == {"made": "it"}
    assert after.submits == 1  # the second follow-up came from the cache


def test_follow_up_ids_are_stable_per_kind_and_never_a_random_ids_length() -> None:
    parent = new_job_id()
    assert follow_up_id(parent, "key") == follow_up_id(parent, "key")
    assert follow_up_id(parent, "key") != follow_up_id(parent, "midi")
    assert follow_up_id(parent, "key").startswith(parent)
    assert len(follow_up_id(parent, "key")) != JOB_ID_LENGTH
    # A button can carry it.
    assert re.fullmatch(JOB_ID_PATTERN, follow_up_id(parent, "key"))
