"""The job engine against the fake Vidgo over real HTTP, with a real SQLite file."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import aiohttp

from bot.jobs import ErrorKind
from bot.vidgo.results import Model
from storage.jobstate import JobState
from storage.records import Admission
from tests.bot.conftest import MakeHarness
from tests.bot.engine_harness import FAST, GENERATION_AUDIO_IDS, GENERATION_TASK_ID, Harness
from tests.fakes.vidgo import FakeVidgo


async def test_happy_path_by_callback(h: Harness, vidgo: FakeVidgo) -> None:
    # Polling is slow here, so only the callback can make this fast.
    h.config = replace(FAST, poll_interval=30.0)
    await h.stop()
    await h.start()
    submitted = await h.separate_ids()
    job = submitted.job
    assert submitted.admission is Admission.NEW
    assert job.state is JobState.SUBMITTED
    task = vidgo.tasks[job.vidgo_task_id or ""]
    assert task.model == "separate-vocals"
    assert task.callback_url is not None
    assert task.callback_url.startswith(h.public_url + "/vidgo/callback/")
    # The token is derived from the job's callback key and the server's secret: the row
    # keeps only the key, and the MAC half of the token appears nowhere in it.
    token = task.callback_url.rsplit("/", 1)[1]
    stored = await h.job(job.id)
    key, mac = token.split(".")
    assert stored.callback_key == key == job.id
    assert mac not in str(stored)
    assert token == await h.engine.callback_token_of(stored)

    await vidgo.finish(task.task_id)
    await h.delivery.wait_for(lambda d: len(d) == 1)
    done = await h.wait_state(job.id, JobState.DELIVERED)
    assert done.outcome is JobState.SUCCEEDED
    assert done.result is not None
    stems = done.result["stems"]
    assert set(stems) == {"vocals", "instrumental"}
    assert all(url.startswith(vidgo.base_url) for url in stems.values())
    assert done.result_message_id == 9001
    assert done.callbacks >= 1


async def test_happy_path_by_polling_only(polling: Harness, vidgo: FakeVidgo) -> None:
    job = (await polling.separate_ids()).job
    task = vidgo.tasks[job.vidgo_task_id or ""]
    assert task.callback_url is None
    vidgo.set_running(task.task_id)
    await polling.wait_state(job.id, JobState.RUNNING)
    await vidgo.finish(task.task_id)
    done = await polling.wait_state(job.id, JobState.DELIVERED)
    assert done.outcome is JobState.SUCCEEDED
    assert len(polling.delivery.for_job(job.id)) == 1
    assert done.polls >= 1  # the poll that saw "running" is counted


async def test_stem_split_returns_every_stem(h: Harness, vidgo: FakeVidgo) -> None:
    from bot.sources import StemChoice

    job = (await h.separate_ids(stems=StemChoice.ALL)).job
    assert vidgo.tasks[job.vidgo_task_id or ""].model == "stem-split"
    await vidgo.finish(job.vidgo_task_id or "")
    done = await h.wait_state(job.id, JobState.DELIVERED)
    assert done.result is not None
    assert {"vocals", "drums", "bass", "piano"} <= set(done.result["stems"])


async def test_upload_link_goes_to_the_upload_model(h: Harness, vidgo: FakeVidgo) -> None:
    job = (await h.separate_link("https://cdn.example.org/songs/demo.mp3")).job
    task = vidgo.tasks[job.vidgo_task_id or ""]
    assert task.model == "upload-and-separate-vocals"
    assert task.input["audio_url"] == "https://cdn.example.org/songs/demo.mp3"
    await vidgo.finish(task.task_id)
    done = await h.wait_state(job.id, JobState.DELIVERED)
    assert done.result is not None
    assert {"vocals", "drums", "bass", "other"} <= set(done.result["stems"])


async def test_duplicate_callbacks_deliver_once(h: Harness, vidgo: FakeVidgo) -> None:
    vidgo.duplicate_callbacks = 3
    job = (await h.separate_ids()).job
    await vidgo.finish(job.vidgo_task_id or "")
    await h.wait_state(job.id, JobState.DELIVERED)
    await asyncio.sleep(0.3)  # let the extra callbacks land
    assert len(h.delivery.for_job(job.id)) == 1
    assert h.delivery.attempts == 1


async def test_unknown_token_gets_404_and_writes_nothing(
    h: Harness, session: aiohttp.ClientSession
) -> None:
    job = (await h.separate_ids()).job
    url = f"{h.public_url}/vidgo/callback/AAAAAAAAAAAAAAAAAAAAAA"
    async with session.post(
        url, json={"code": 200, "data": {"task_id": job.vidgo_task_id}}
    ) as resp:
        assert resp.status == 404
    assert h.store is not None
    assert sum(j.callbacks for j in await h.store.list_jobs()) == 0


async def test_tampered_callback_never_reaches_delivery(h: Harness, vidgo: FakeVidgo) -> None:
    vidgo.tamper_callbacks = True
    job = (await h.separate_ids()).job
    await vidgo.finish(job.vidgo_task_id or "")
    done = await h.wait_state(job.id, JobState.DELIVERED)
    assert done.result is not None
    for url in done.result["stems"].values():
        assert url.startswith(vidgo.base_url)
        assert "evil" not in url and "javascript" not in url


async def test_forged_body_with_valid_token_does_not_finish_a_running_job(
    h: Harness, vidgo: FakeVidgo, session: aiohttp.ClientSession
) -> None:
    job = (await h.separate_ids()).job
    task = vidgo.tasks[job.vidgo_task_id or ""]
    forged = {
        "code": 200,
        "data": {
            "task_id": task.task_id,
            "status": "finished",
            "files": [{"separate_vocals": '{"vocal_url": "https://evil.example/x.mp3"}'}],
        },
    }
    assert task.callback_url is not None
    async with session.post(task.callback_url, json=forged) as resp:
        assert resp.status == 200
    await asyncio.sleep(0.3)
    assert (await h.job(job.id)).state in {JobState.SUBMITTED, JobState.RUNNING}
    assert h.delivery.delivered == []


async def test_restart_resumes_pending_jobs(h: Harness, vidgo: FakeVidgo) -> None:
    vidgo.send_callbacks = False
    first = (await h.separate_ids(0)).job
    second = (await h.separate_link("https://cdn.example.org/a.mp3")).job
    await h.stop()
    # While the bot is down both tasks finish; nobody is listening.
    await vidgo.finish(first.vidgo_task_id or "")
    await vidgo.finish(second.vidgo_task_id or "")
    await h.start()
    await h.wait_state(first.id, JobState.DELIVERED)
    await h.wait_state(second.id, JobState.DELIVERED)
    assert len(h.delivery.for_job(first.id)) == 1
    assert len(h.delivery.for_job(second.id)) == 1


async def test_job_accepted_but_never_submitted_is_submitted_after_restart(
    h: Harness, vidgo: FakeVidgo
) -> None:
    # Vidgo stays down for the whole first run, so the job is recorded but never submitted.
    vidgo.fail_next(100, 503, path_prefix="/api/generate/submit")
    job = (await h.separate_ids()).job
    assert job.state is JobState.ACCEPTED
    assert job.vidgo_task_id is None
    await h.stop()
    vidgo.fail_next(0)
    await h.start()
    submitted = await h.wait_state(job.id, JobState.SUBMITTED, JobState.RUNNING)
    assert submitted.vidgo_task_id in vidgo.tasks
    await vidgo.finish(submitted.vidgo_task_id or "")
    await h.wait_state(job.id, JobState.DELIVERED)
    assert len(h.delivery.for_job(job.id)) == 1


async def test_deadline_expiry(make_harness: MakeHarness, vidgo: FakeVidgo) -> None:
    harness = await make_harness(config=replace(FAST, job_timeout=0.4))
    job = (await harness.separate_ids()).job
    done = await harness.wait_state(job.id, JobState.DELIVERED)
    assert done.outcome is JobState.EXPIRED
    assert done.error_kind == ErrorKind.EXPIRED
    # A late finish changes nothing and posts nothing more.
    await vidgo.finish(job.vidgo_task_id or "")
    await asyncio.sleep(0.3)
    assert len(harness.delivery.for_job(job.id)) == 1
    assert (await harness.job(job.id)).outcome is JobState.EXPIRED


async def test_second_separation_of_a_track_is_served_from_the_cache(
    h: Harness, vidgo: FakeVidgo
) -> None:
    first = (await h.separate_ids()).job
    await vidgo.finish(first.vidgo_task_id or "")
    await h.wait_state(first.id, JobState.DELIVERED)
    submits_before = len(vidgo.tasks)
    again = await h.separate_ids(requester=2)
    assert again.admission is Admission.CACHED
    done = await h.wait_state(again.job.id, JobState.DELIVERED)
    assert len(vidgo.tasks) == submits_before  # no Vidgo call
    assert done.result == (await h.job(first.id)).result


async def test_conflict_from_vidgo_is_already_separated(h: Harness, vidgo: FakeVidgo) -> None:
    # Someone separated this track outside Stemcord: Vidgo answers 409 and we have no cache.
    assert h.client is not None
    outside = await h.client.submit_separation(
        Model.SEPARATE_VOCALS,
        task_id=GENERATION_TASK_ID,
        audio_id=GENERATION_AUDIO_IDS[0],
        callback_url=None,
    )
    await vidgo.finish(outside.task_id, callback=False)
    job = (await h.separate_ids()).job
    assert job.outcome is JobState.FAILED
    assert job.error_kind == ErrorKind.DUPLICATE
    await h.wait_state(job.id, JobState.DELIVERED)


async def test_retention_keeps_a_pointer_that_a_conflict_reads_again(
    h: Harness, vidgo: FakeVidgo
) -> None:
    # The track's one separation was ours; retention dropped its links but kept the task id.
    first = (await h.separate_ids()).job
    await vidgo.finish(first.vidgo_task_id or "")
    delivered = await h.wait_state(first.id, JobState.DELIVERED)
    assert h.store is not None
    assert await h.store.prune_cache(float("inf")) == 1
    pointer = await h.store.cache_get(first.source_key)
    assert pointer is not None and pointer.is_pointer
    assert pointer.vidgo_task_id == first.vidgo_task_id
    reads = vidgo.tasks[first.vidgo_task_id or ""].detail_calls
    again = (await h.separate_ids(requester=2)).job
    # Admission found nothing to post, Vidgo refused a second separation (no new task), and
    # the earlier task was read again instead of failing the job.
    assert again.outcome is JobState.SUCCEEDED
    assert len(vidgo.tasks) == 1
    assert vidgo.tasks[first.vidgo_task_id or ""].detail_calls == reads + 1
    assert again.result is not None and delivered.result is not None
    assert again.result["stems"] == delivered.result["stems"]
    assert again.result["vidgo_task_id"] == first.vidgo_task_id
    await h.wait_state(again.id, JobState.DELIVERED)
    cached = await h.store.cache_get(first.source_key)
    assert cached is not None and not cached.is_pointer  # the cache has the result again


async def test_a_pointer_to_a_task_of_another_track_is_not_taken(
    h: Harness, vidgo: FakeVidgo
) -> None:
    vidgo.echo_input = True
    first = (await h.separate_ids()).job
    await vidgo.finish(first.vidgo_task_id or "")
    await h.wait_state(first.id, JobState.DELIVERED)
    other = (await h.separate_ids(1, requester=3)).job
    await vidgo.finish(other.vidgo_task_id or "")
    await h.wait_state(other.id, JobState.DELIVERED)
    assert h.store is not None
    await h.store.prune_cache(float("inf"))
    # A pointer that names the other track's task (a mix-up) must not deliver that track.
    mixed = await h.store.cache_get(other.source_key)
    assert mixed is not None
    await h.store.cache_put(replace(mixed, source_key=first.source_key))
    again = (await h.separate_ids(requester=2)).job
    assert again.outcome is JobState.FAILED
    assert again.error_kind == ErrorKind.DUPLICATE


async def test_conflict_with_a_cached_result_delivers_it(h: Harness, vidgo: FakeVidgo) -> None:
    first = (await h.separate_ids()).job
    await vidgo.finish(first.vidgo_task_id or "")
    await h.wait_state(first.id, JobState.DELIVERED)
    assert h.store is not None and h.client is not None
    cached = await h.store.cache_get(first.source_key)
    assert cached is not None
    await h.store.prune_cache(float("inf"))  # the cache forgets every result
    store, client = h.store, h.client
    real_submit = client.submit_separation

    async def submit_after_cache_reappears(*args: object, **kwargs: object) -> object:
        # Admission missed the cache; by the time Vidgo answers 409 the result is there.
        await store.cache_put(cached)
        return await real_submit(*args, **kwargs)  # type: ignore[arg-type]

    client.submit_separation = submit_after_cache_reappears  # type: ignore[method-assign]
    again = (await h.separate_ids(requester=2)).job
    assert again.outcome is JobState.SUCCEEDED
    assert again.result == cached.result
    await h.wait_state(again.id, JobState.DELIVERED)


async def test_bad_key_fails_the_job_with_auth(make_harness: MakeHarness, vidgo: FakeVidgo) -> None:
    harness = await make_harness(api_key="wrong-key")
    job = (await harness.separate_ids()).job
    assert job.outcome is JobState.FAILED
    assert job.error_kind == ErrorKind.AUTH
    await harness.wait_state(job.id, JobState.DELIVERED)
    assert vidgo.tasks == {}


async def test_server_errors_then_success(h: Harness, vidgo: FakeVidgo) -> None:
    vidgo.fail_next(2, 503, path_prefix="/api/generate/detail")
    job = (await h.separate_ids()).job
    await vidgo.finish(job.vidgo_task_id or "")
    done = await h.wait_state(job.id, JobState.DELIVERED)
    assert done.outcome is JobState.SUCCEEDED


async def test_submit_retried_after_vidgo_outage(h: Harness, vidgo: FakeVidgo) -> None:
    vidgo.fail_next(3, 503, path_prefix="/api/generate/submit")
    job = (await h.separate_ids()).job
    assert job.state is JobState.ACCEPTED
    submitted = await h.wait_state(job.id, JobState.SUBMITTED, JobState.RUNNING)
    assert submitted.attempts >= 2
    await vidgo.finish(submitted.vidgo_task_id or "")
    await h.wait_state(job.id, JobState.DELIVERED)


async def test_vidgo_failure_is_delivered_with_its_message(h: Harness, vidgo: FakeVidgo) -> None:
    job = (await h.separate_ids()).job
    await vidgo.fail(job.vidgo_task_id or "", "The audio violates our content policy.")
    done = await h.wait_state(job.id, JobState.DELIVERED)
    assert done.outcome is JobState.FAILED
    assert done.error_kind == ErrorKind.VIDGO_FAILED
    assert done.last_error == "The audio violates our content policy."
    assert len(h.delivery.for_job(job.id)) == 1


async def test_identical_requests_in_flight_are_coalesced(h: Harness, vidgo: FakeVidgo) -> None:
    results = await asyncio.gather(*(h.separate_ids(requester=r) for r in range(1, 5)))
    admissions = sorted(r.admission for r in results)
    assert admissions.count(Admission.NEW) == 1
    assert admissions.count(Admission.JOINED) == 3
    assert len(vidgo.tasks) == 1
    [task_id] = list(vidgo.tasks)
    await vidgo.finish(task_id)
    await h.delivery.wait_for(lambda d: len(d) == 4)
    assert sorted(j.requester_id for j in h.delivery.delivered) == [1, 2, 3, 4]
    for r in results:
        done = await h.wait_state(r.job.id, JobState.DELIVERED)
        assert done.outcome is JobState.SUCCEEDED


async def test_delivery_failure_then_retry(h: Harness, vidgo: FakeVidgo) -> None:
    h.delivery.fail_next = 2
    job = (await h.separate_ids()).job
    await vidgo.finish(job.vidgo_task_id or "")
    done = await h.wait_state(job.id, JobState.DELIVERED)
    assert done.delivery_attempts == 3
    assert h.delivery.attempts == 3
    assert len(h.delivery.for_job(job.id)) == 1


async def test_delivery_gives_up_as_undeliverable(h: Harness, vidgo: FakeVidgo) -> None:
    h.delivery.fail_next = 100
    job = (await h.separate_ids()).job
    await vidgo.finish(job.vidgo_task_id or "")
    done = await h.wait_state(job.id, JobState.UNDELIVERABLE)
    assert done.delivery_attempts == FAST.delivery_max_attempts
    assert done.last_error == "channel unavailable"
    # A moderator's retry delivers it.
    h.delivery.fail_next = 0
    assert h.engine is not None
    await h.engine.poll_now(job.id)
    await h.wait_state(job.id, JobState.DELIVERED)


async def test_permanent_delivery_failure_stops_at_once(h: Harness, vidgo: FakeVidgo) -> None:
    h.delivery.fail_next = 1
    h.delivery.permanent = True
    job = (await h.separate_ids()).job
    await vidgo.finish(job.vidgo_task_id or "")
    done = await h.wait_state(job.id, JobState.UNDELIVERABLE)
    assert done.delivery_attempts == 1


async def test_cancelled_job_posts_nothing(h: Harness, vidgo: FakeVidgo) -> None:
    job = (await h.separate_ids()).job
    assert h.engine is not None
    cancelled = await h.engine.cancel(job.id)
    assert cancelled is not None and cancelled.state is JobState.CANCELLED
    await vidgo.finish(job.vidgo_task_id or "")
    await asyncio.sleep(0.3)
    assert h.delivery.delivered == []
    assert (await h.job(job.id)).state is JobState.CANCELLED
    # The status message was told, so it can show the end (and drop its buttons).
    assert h.delivery.progress[-1] == (job.id, JobState.CANCELLED)


async def test_polls_become_a_rare_safety_net_once_callbacks_arrive(
    h: Harness, vidgo: FakeVidgo
) -> None:
    first = (await h.separate_ids(0)).job
    await vidgo.finish(first.vidgo_task_id or "")
    await h.wait_state(first.id, JobState.DELIVERED)
    assert h.engine is not None and h.engine.callbacks_healthy
    # This job's callback is lost: it must still finish, through the safety poll that now
    # waits poll_max_interval (0.2 s here) instead of poll_interval (0.05 s).
    vidgo.send_callbacks = False
    second = (await h.separate_ids(1)).job
    await vidgo.finish(second.vidgo_task_id or "")
    await asyncio.sleep(0.1)
    assert vidgo.tasks[second.vidgo_task_id or ""].detail_calls == 0
    done = await h.wait_state(second.id, JobState.DELIVERED)
    assert done.outcome is JobState.SUCCEEDED
    assert vidgo.tasks[second.vidgo_task_id or ""].detail_calls == 1


async def test_cancelling_the_first_requester_still_serves_the_others(
    h: Harness, vidgo: FakeVidgo
) -> None:
    first = (await h.separate_ids(requester=1)).job
    second = await h.separate_ids(requester=2)
    assert second.admission is Admission.JOINED
    assert h.engine is not None
    await h.engine.cancel(first.id)
    await vidgo.finish(first.vidgo_task_id or "")
    done = await h.wait_state(second.job.id, JobState.DELIVERED)
    assert done.outcome is JobState.SUCCEEDED
    assert [j.requester_id for j in h.delivery.delivered] == [2]
    assert (await h.job(first.id)).state is JobState.CANCELLED


async def test_poll_now_leaves_a_job_a_worker_holds_to_that_worker(polling: Harness) -> None:
    assert polling.engine is not None and polling.store is not None
    job = (await polling.separate_ids()).job
    assert job.state is JobState.SUBMITTED
    # A worker holds the job (claimed as the dispatcher would, at a time it will not reach
    # during the test, so the real dispatcher stays out of it).
    later = job.updated_at + 50
    await polling.store.update(job.id, later, due_at=later)
    [held] = await polling.store.claim_due(later, later + 500, limit=1, owner="other")
    refreshed = await polling.engine.poll_now(held.id)
    assert refreshed is not None and refreshed.due_at == later + 500
    assert await polling.store.claim_due(later + 1, later + 600, limit=5, owner="other") == []


async def test_poll_now_keeps_the_backoff_of_a_submit_retry(
    polling: Harness, vidgo: FakeVidgo
) -> None:
    assert polling.engine is not None
    vidgo.fail_next(1, 429, retry_after=30, path_prefix="/api/generate/submit")
    job = (await polling.separate_ids()).job
    assert job.state is JobState.ACCEPTED and job.due_at is not None
    refreshed = await polling.engine.poll_now(job.id)
    # Vidgo asked for 30 s: a member's Refresh does not make Stemcord ask again sooner.
    assert refreshed is not None and refreshed.due_at == job.due_at
