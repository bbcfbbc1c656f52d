"""Job kinds plug into the engine: submit and result parsing per kind, tracking shared."""

from __future__ import annotations

from typing import Any

from bot.vidgo.results import TaskDetail
from storage.jobstate import JobState
from storage.records import Admission, JobRecord
from tests.bot.engine_harness import EchoKind, Harness, echo_request, with_kind
from tests.fakes.vidgo import FakeVidgo


async def test_a_kind_parses_its_own_finished_task(h: Harness, vidgo: FakeVidgo) -> None:
    assert h.client is not None
    await with_kind(h, EchoKind(h.client))
    assert h.engine is not None
    job = (await h.engine.submit(echo_request())).job
    assert job.kind == "echo"
    await vidgo.finish(job.vidgo_task_id or "")
    done = await h.wait_state(job.id, JobState.DELIVERED)
    assert done.result == {"echo": 1, "task": job.vidgo_task_id}


async def test_a_result_in_the_submit_reply_is_delivered_without_waiting(
    h: Harness, vidgo: FakeVidgo
) -> None:
    assert h.client is not None and h.engine is not None
    await with_kind(h, EchoKind(h.client, at_submit=True))
    job = (await h.engine.submit(echo_request())).job
    done = await h.wait_state(job.id, JobState.DELIVERED)
    assert done.result == {"echo": "at once", "status": "not_started"}
    assert done.polls == 0
    assert len(h.delivery.for_job(job.id)) == 1


async def test_an_unusable_result_fails_with_the_kinds_reason(h: Harness, vidgo: FakeVidgo) -> None:
    assert h.client is not None and h.engine is not None
    await with_kind(h, EchoKind(h.client, usable=False))
    job = (await h.engine.submit(echo_request())).job
    await vidgo.finish(job.vidgo_task_id or "")
    done = await h.wait_state(job.id, JobState.DELIVERED)
    assert done.outcome is JobState.FAILED
    assert done.error_kind == "no_echo"
    assert done.last_error == "nothing to echo"


async def test_identical_requests_of_a_kind_share_one_vidgo_task(
    h: Harness, vidgo: FakeVidgo
) -> None:
    assert h.client is not None and h.engine is not None
    await with_kind(h, EchoKind(h.client))
    first = await h.engine.submit(echo_request())
    second = await h.engine.submit(echo_request())
    assert second.admission is Admission.JOINED
    await vidgo.finish(first.job.vidgo_task_id or "")
    await h.wait_state(second.job.id, JobState.DELIVERED)
    third = await h.engine.submit(echo_request())
    assert third.admission is Admission.CACHED
    assert len(vidgo.tasks) == 1


async def test_a_job_of_a_kind_that_is_not_enabled_fails_clearly(h: Harness) -> None:
    assert h.engine is not None
    job = (await h.engine.submit(echo_request())).job
    done = await h.wait_state(job.id, JobState.DELIVERED)
    assert done.outcome is JobState.FAILED
    assert done.last_error is not None and "not enabled" in done.last_error


def test_the_separation_kinds_error_is_the_engines_no_stems() -> None:
    from bot.jobs import ErrorKind
    from bot.separation import NO_STEMS

    assert ErrorKind(NO_STEMS) is ErrorKind.NO_STEMS


async def test_a_finished_task_of_a_kind_no_longer_enabled_fails_clearly(
    h: Harness, vidgo: FakeVidgo
) -> None:
    assert h.client is not None and h.engine is not None
    await with_kind(h, EchoKind(h.client))
    job = (await h.engine.submit(echo_request())).job
    # The kind goes away (a build without it) while Vidgo works on the task.
    del h.engine.kinds["echo"]
    await vidgo.finish(job.vidgo_task_id or "")
    done = await h.wait_state(job.id, JobState.DELIVERED)
    assert done.outcome is JobState.FAILED
    assert done.last_error is not None and "not enabled" in done.last_error


async def test_a_heavy_kind_parses_off_the_event_loop(h: Harness, vidgo: FakeVidgo) -> None:
    import threading

    assert h.client is not None and h.engine is not None
    seen: list[bool] = []

    class HeavyKind(EchoKind):
        PARSE_IN_THREAD = True

        def result_of(self, job: JobRecord, detail: TaskDetail) -> dict[str, Any]:
            seen.append(threading.current_thread() is threading.main_thread())
            return super().result_of(job, detail)

    await with_kind(h, HeavyKind(h.client))
    job = (await h.engine.submit(echo_request())).job
    await vidgo.finish(job.vidgo_task_id or "")
    done = await h.wait_state(job.id, JobState.DELIVERED)
    assert done.result == {"echo": 1, "task": job.vidgo_task_id}
    assert seen == [False]
