"""Lyrics jobs through the real engine, the fake Vidgo over HTTP and SQLite."""

from __future__ import annotations

import asyncio

import pytest

from bot.jobs import Submitted
from bot.lyrics import LYRICS, NO_VOCALS, Lyrics, LyricsKind, lyrics_request
from storage.jobstate import JobState
from storage.records import Admission
from tests.bot.conftest import MakeHarness
from tests.bot.engine_harness import Harness
from tests.fakes.vidgo import (
    GENERATION_AUDIO_IDS,
    GENERATION_TASK_ID,
    INSTRUMENTAL_AUDIO_ID,
    INSTRUMENTAL_TASK_ID,
    FakeVidgo,
)


def enable(h: Harness) -> None:
    assert h.engine is not None and h.client is not None
    h.engine.kinds[LYRICS] = LyricsKind(h.client)


async def ask(
    h: Harness,
    *,
    task_id: str = GENERATION_TASK_ID,
    audio_id: str = GENERATION_AUDIO_IDS[0],
    requester: int = 1,
    reply_to: int | None = 7001,
) -> Submitted:
    assert h.engine is not None
    return await h.engine.submit(
        lyrics_request(
            task_id=task_id,
            audio_id=audio_id,
            requester_id=requester,
            channel_id=500,
            guild_id=400,
            track={"title": "Harbour Lights", "duration": 184.32},
            reply_to_message_id=reply_to,
        )
    )


def lyrics_tasks(vidgo: FakeVidgo) -> list[str]:
    return [t.task_id for t in vidgo.tasks.values() if t.model == "get-timestamped-lyrics"]


async def test_a_lyrics_job_is_tracked_and_delivered_by_callback(
    h: Harness, vidgo: FakeVidgo
) -> None:
    enable(h)
    job = (await ask(h)).job
    assert job.kind == LYRICS and job.model == "get-timestamped-lyrics"
    assert job.reply_to_message_id == 7001
    assert vidgo.tasks[job.vidgo_task_id or ""].callback_url is not None
    await vidgo.finish(job.vidgo_task_id or "")
    done = await h.wait_state(job.id, JobState.DELIVERED)
    assert done.outcome is JobState.SUCCEEDED
    assert done.result is not None
    lyrics = Lyrics.from_stored(done.result)
    assert lyrics.lines[1].text == "Lights on the water"
    assert done.result["interpolated"] == 2
    assert len(h.delivery.for_job(job.id)) == 1


@pytest.mark.parametrize("shape", ["detail_string", "detail_string_alt", "detail_object"])
async def test_every_detail_shape_is_read_by_polling(
    make_harness: MakeHarness, vidgo: FakeVidgo, shape: str
) -> None:
    h = await make_harness(callbacks=False)
    enable(h)
    vidgo.lyrics_shape = shape
    job = (await ask(h)).job
    await vidgo.finish(job.vidgo_task_id or "", callback=False)
    done = await h.wait_state(job.id, JobState.DELIVERED)
    assert done.outcome is JobState.SUCCEEDED
    assert done.result is not None and done.result["words"] == 13


async def test_a_result_in_the_submit_reply_is_delivered_without_a_poll(
    h: Harness, vidgo: FakeVidgo
) -> None:
    enable(h)
    vidgo.lyrics_shape = "submit"
    job = (await ask(h)).job
    done = await h.wait_state(job.id, JobState.DELIVERED)
    assert done.outcome is JobState.SUCCEEDED and done.polls == 0
    assert vidgo.detail_count == 0


@pytest.mark.parametrize("shape", ["detail_string", "submit"])
async def test_an_instrumental_fails_with_no_vocals(
    h: Harness, vidgo: FakeVidgo, shape: str
) -> None:
    enable(h)
    vidgo.lyrics_shape = shape
    job = (await ask(h, task_id=INSTRUMENTAL_TASK_ID, audio_id=INSTRUMENTAL_AUDIO_ID)).job
    if shape != "submit":
        await vidgo.finish(job.vidgo_task_id or "")
    done = await h.wait_state(job.id, JobState.DELIVERED)
    assert done.outcome is JobState.FAILED
    assert done.error_kind == NO_VOCALS
    assert done.last_error is not None and "no vocals" in done.last_error
    assert done.result is None


async def test_a_second_press_of_the_same_button_records_nothing(
    h: Harness, vidgo: FakeVidgo
) -> None:
    # Both would reply to the same result message: the second is dropped, not joined.
    first = await ask(h, requester=1)
    second = await ask(h, requester=2)
    assert (first.admission, second.admission) == (Admission.NEW, Admission.DROPPED)
    assert second.job.id == first.job.id
    assert h.store is not None
    assert [j.id for j in await h.store.list_jobs()] == [first.job.id]
    await vidgo.finish(first.job.vidgo_task_id or "")
    await h.wait_state(first.job.id, JobState.DELIVERED)
    assert len(h.delivery.delivered) == 1


async def test_duplicate_requests_cost_one_vidgo_call(h: Harness, vidgo: FakeVidgo) -> None:
    enable(h)
    first, second = await asyncio.gather(
        ask(h, requester=1, reply_to=7001), ask(h, requester=2, reply_to=7002)
    )
    admissions = {first.admission, second.admission}
    assert admissions == {Admission.NEW, Admission.JOINED}
    leader = first if first.admission is Admission.NEW else second
    await vidgo.finish(leader.job.vidgo_task_id or "")
    await h.wait_state(first.job.id, JobState.DELIVERED)
    await h.wait_state(second.job.id, JobState.DELIVERED)
    later = await ask(h, requester=3)
    assert later.admission is Admission.CACHED
    await h.wait_state(later.job.id, JobState.DELIVERED)
    assert len(lyrics_tasks(vidgo)) == 1
    assert vidgo.submit_count == 1


async def test_a_pending_lyrics_job_survives_a_restart(h: Harness, vidgo: FakeVidgo) -> None:
    enable(h)
    job = (await ask(h)).job
    await h.stop()
    await vidgo.finish(job.vidgo_task_id or "")  # the callback finds nobody
    await h.start()
    enable(h)
    assert h.engine is not None
    await h.engine.poll_now(job.id)
    done = await h.wait_state(job.id, JobState.DELIVERED)
    assert done.outcome is JobState.SUCCEEDED
    assert len(h.delivery.for_job(job.id)) == 1


async def test_lyrics_and_separations_of_one_track_do_not_share_results(
    h: Harness, vidgo: FakeVidgo
) -> None:
    enable(h)
    separation = (await h.separate_ids(0)).job
    lyrics = (await ask(h)).job
    assert separation.source_key != lyrics.source_key
    assert lyrics.vidgo_task_id != separation.vidgo_task_id
