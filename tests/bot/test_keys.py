"""The key-render kind: real audio workers, a real media store, the engine on every backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot.engine import JobEngine, follow_up_id
from bot.keys import (
    KEY,
    NOT_KEPT,
    NOT_KEPT_MESSAGE,
    TOO_LONG,
    BackingTrack,
    KeyRenderKind,
    KeyRenders,
    backing_of,
    key_request,
    key_source_key,
    rendition_base,
)
from bot.kinds import JobKind, TryLater, Unsubmittable
from bot.media import MediaStore
from bot.policy import GuildPolicy
from bot.separation import separation_request
from bot.settings import SettingsError, load_settings
from bot.sources import StemChoice, plan_for, source_from_link
from bot.vidgo.results import SubmitReceipt, TaskDetail, TaskStatus
from storage.base import JobStore
from storage.jobstate import JobState
from storage.records import Admission, JobRecord, LimitReached
from tests.bot.audio import pool_jobs
from tests.bot.engine_harness import FAST, RecordingDelivery
from tests.fakes.audio import decode, dominant_frequency
from tests.keys_helpers import (
    BACKING,
    MEDIA_KEY,
    TONE_HZ,
    CountingPool,
    NoVidgo,
    keep_backing,
    kept_separation,
    media_entry,
    shifted,
)

CONFIG = replace(FAST, job_timeout=60.0)


@pytest.fixture
async def media(tmp_path: Path) -> AsyncIterator[MediaStore]:
    store = await MediaStore.open(tmp_path / "media")
    yield store
    store.close()


@pytest.fixture
async def pool() -> AsyncIterator[CountingPool]:
    async with CountingPool(workers=1, queue_limit=4, timeout=60) as started:
        yield started


@pytest.fixture
async def renders(media: MediaStore, pool: CountingPool, tmp_path: Path) -> KeyRenders:
    await keep_backing(media, tmp_path)
    return KeyRenders(media, pool)


def ask(
    separation: JobRecord | None = None,
    semitones: int = 2,
    *,
    requester: int = 42,
    reply_to: int | None = 5555,
    limit: int | None = 10 * 1024 * 1024,
) -> Any:
    return key_request(
        separation or kept_separation(),
        semitones,
        requester_id=requester,
        channel_id=7,
        guild_id=9,
        reply_to_message_id=reply_to,
        attachment_limit=limit,
    )


def recorded(request: Any, job_id: str = "keyjob0001") -> JobRecord:
    """The job the engine would record for ``request``."""
    return replace(
        kept_separation(),
        id=job_id,
        kind=request.kind,
        model=request.model,
        source_key=request.source_key,
        options=dict(request.options),
        state=JobState.ACCEPTED,
        outcome=None,
        result=None,
        reply_to_message_id=request.reply_to_message_id,
    )


# --- identity and names ------------------------------------------------------------------------


def test_a_key_change_is_identified_by_the_kept_track_and_the_semitones() -> None:
    request = ask(semitones=-3)
    assert request.source_key == key_source_key(MEDIA_KEY, -3) == f"key-render:{MEDIA_KEY}:-3"
    assert request.kind == KEY
    assert request.options["semitones"] == -3
    assert request.options["media_key"] == MEDIA_KEY
    # Who asked and where to are not part of it: another member's request is the same one.
    assert ask(semitones=-3, requester=99, reply_to=None).source_key == request.source_key
    assert ask(semitones=3).source_key != request.source_key


def test_renditions_sit_beside_the_backing_track_with_the_key_in_their_name() -> None:
    assert rendition_base("instrumental.mp3", 2) == "instrumental_key_plus2"
    assert rendition_base("instrumental.mp3", -6) == "instrumental_key_minus6"


@pytest.mark.parametrize("semitones", [0, 7, -7, True, 2.0])
def test_only_whole_semitones_from_minus_6_to_plus_6_but_0_are_asked_for(
    semitones: Any,
) -> None:
    with pytest.raises(ValueError, match="semitones"):
        ask(semitones=semitones)


@pytest.mark.parametrize(
    "result",
    [
        {"stems": {}},
        {"stems": {}, "media": media_entry(backing=None)},
        {"stems": {}, "media": {"key": "../etc", "backing": BACKING}},
        {"stems": {}, "media": {"key": MEDIA_KEY, "backing": "../../x.mp3"}},
    ],
    ids=["no-media", "no-backing", "bad-key", "bad-name"],
)
def test_a_result_without_a_usable_backing_track_names_none(result: dict[str, Any]) -> None:
    assert backing_of(kept_separation(result=result)) is None


def test_a_failed_separation_names_no_backing_track() -> None:
    assert backing_of(kept_separation(outcome=JobState.FAILED)) is None
    assert backing_of(kept_separation()) == BackingTrack(MEDIA_KEY, BACKING)


# --- the render ----------------------------------------------------------------------------------


async def test_two_semitones_up_moves_a_440_hz_backing_track_to_493_9_hz(
    renders: KeyRenders, pool: CountingPool
) -> None:
    kind = KeyRenderKind(renders)
    job = recorded(ask(semitones=2))
    receipt = await kind.submit(job, None)
    result = kind.result_at_submit(job, receipt)
    assert result is not None
    assert result["file"] == "instrumental_key_plus2.mp3"
    assert renders.store is not None
    samples, rate = decode(renders.store.path_of(MEDIA_KEY, result["file"]))
    assert dominant_frequency(samples, rate) == pytest.approx(shifted(TONE_HZ, 2), rel=0.01)
    assert dominant_frequency(samples, rate) == pytest.approx(493.88, rel=0.01)
    assert result["semitones"] == 2
    assert result["seconds"] == pytest.approx(3.0, abs=0.05)
    assert pool.count("render_key") == 1


async def test_three_semitones_down_moves_it_to_370_hz(renders: KeyRenders) -> None:
    stored = await renders.render(BackingTrack(MEDIA_KEY, BACKING), -3)
    samples, rate = decode(stored.path)
    assert dominant_frequency(samples, rate) == pytest.approx(shifted(TONE_HZ, -3), rel=0.01)


async def test_a_kept_render_is_reused_not_made_again(
    renders: KeyRenders, pool: CountingPool
) -> None:
    backing = BackingTrack(MEDIA_KEY, BACKING)
    first = await renders.render(backing, 2)
    again = await renders.render(backing, 2)
    assert again.path == first.path and again.modified == first.modified
    assert pool.count("render_key") == 1
    await renders.render(backing, 3)  # another key is another render
    assert pool.count("render_key") == 2


async def test_two_requests_for_the_same_key_at_once_make_one_render(
    renders: KeyRenders, pool: CountingPool
) -> None:
    backing = BackingTrack(MEDIA_KEY, BACKING)
    a, b = await asyncio.gather(renders.render(backing, 4), renders.render(backing, 4))
    assert a.path == b.path
    assert pool.count("render_key") == 1


async def test_the_render_is_fitted_to_the_upload_limit_of_the_request(
    renders: KeyRenders, pool: CountingPool
) -> None:
    kind = KeyRenderKind(renders)
    backing = BackingTrack(MEDIA_KEY, BACKING)
    full = await renders.render(backing, 2)
    limit = full.size * 3 // 4  # 192 kbps does not fit; 128 kbps does
    job = recorded(ask(semitones=2, limit=limit))
    await kind.submit(job, None)
    base = rendition_base(BACKING, 2)
    fitted = renders.attachment(MEDIA_KEY, base, limit)
    assert fitted is not None
    assert fitted.size <= limit < full.size
    assert fitted.name == f"{base}_128k.mp3"
    samples, rate = decode(fitted.path)
    assert dominant_frequency(samples, rate) == pytest.approx(shifted(TONE_HZ, 2), rel=0.01)
    # The render itself is still what a larger limit gets.
    assert renders.attachment(MEDIA_KEY, base, full.size) == renders.rendition(MEDIA_KEY, base)
    # A second request with the same limit finds the copy: no encode.
    await kind.submit(recorded(ask(semitones=2, limit=limit), "keyjob0002"), None)
    assert pool.count("fit_to_limit") == 1
    assert pool.count("render_key") == 1


async def test_a_limit_below_the_lowest_acceptable_bitrate_leaves_nothing_to_attach(
    renders: KeyRenders,
) -> None:
    await KeyRenderKind(renders).submit(recorded(ask(semitones=2, limit=2_000)), None)
    assert renders.attachment(MEDIA_KEY, rendition_base(BACKING, 2), 2_000) is None
    assert renders.rendition(MEDIA_KEY, rendition_base(BACKING, 2)) is not None


# --- not kept, busy ----------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["no-media", "no-backing", "pruned"])
async def test_a_source_whose_backing_track_is_not_kept_is_unsubmittable_in_plain_words(
    renders: KeyRenders, pool: CountingPool, how: str
) -> None:
    if how == "pruned":
        assert renders.store is not None
        await renders.store.delete(MEDIA_KEY)
        separation = kept_separation()
    else:
        result: dict[str, Any] = {"stems": {}}
        if how == "no-backing":
            result["media"] = media_entry(backing=None)
        separation = kept_separation(result=result)
    with pytest.raises(Unsubmittable) as refused:
        await KeyRenderKind(renders).submit(recorded(ask(separation)), None)
    assert refused.value.error_kind == NOT_KEPT
    assert refused.value.message == NOT_KEPT_MESSAGE
    assert "no longer kept; run /separate again" in NOT_KEPT_MESSAGE
    assert pool.calls == []


async def test_a_full_audio_queue_makes_the_render_wait_instead_of_failing(
    media: MediaStore, tmp_path: Path
) -> None:
    await keep_backing(media, tmp_path)
    async with CountingPool(workers=1, queue_limit=0, timeout=60) as busy:
        renders = KeyRenders(media, busy)
        flag = tmp_path / "go"
        blocker = asyncio.create_task(busy.run(pool_jobs.wait_for, flag))
        await asyncio.sleep(0.2)
        try:
            with pytest.raises(TryLater) as later:
                await KeyRenderKind(renders).submit(recorded(ask()), None)
            assert later.value.retry_after > 0
        finally:
            flag.touch()
            await blocker


async def test_a_render_past_the_workers_time_limit_fails_for_good_not_in_a_loop(
    media: MediaStore, tmp_path: Path
) -> None:
    await keep_backing(media, tmp_path, seconds=20.0)
    async with CountingPool(workers=1, queue_limit=1, timeout=0.05) as slow:
        with pytest.raises(Unsubmittable) as refused:
            await KeyRenderKind(KeyRenders(media, slow)).submit(recorded(ask()), None)
    assert refused.value.error_kind == TOO_LONG
    assert refused.value.message.endswith("longer than the 0.05 s allowed")


# --- through the engine --------------------------------------------------------------------------


class Engine:
    def __init__(self, store: JobStore, renders: KeyRenders) -> None:
        self.delivery = RecordingDelivery()
        self.engine = JobEngine(
            store, NoVidgo(), self.delivery, CONFIG, kinds=[KeyRenderKind(renders)]
        )
        self.store = store

    async def state(self, job_id: str, *states: JobState) -> JobRecord:
        async with asyncio.timeout(10):
            while True:
                found = await self.store.get(job_id)
                if found is not None and found.state in states:
                    return found
                await asyncio.sleep(0.01)


@pytest.fixture
async def engine(store: JobStore, renders: KeyRenders) -> AsyncIterator[Engine]:
    rig = Engine(store, renders)
    await rig.engine.start()
    yield rig
    await rig.engine.stop(grace=1.0)


async def test_one_render_per_result_and_key_whoever_asks_and_however_often(
    engine: Engine, pool: CountingPool
) -> None:
    first = await engine.engine.submit(ask(semitones=2, requester=1))
    assert first.admission is Admission.NEW
    assert (await engine.state(first.job.id, JobState.DELIVERED)).result is not None
    # Another member, replying elsewhere: answered from the cache, the stored file reused.
    other = await engine.engine.submit(ask(semitones=2, requester=2, reply_to=6666))
    assert other.admission is Admission.CACHED
    delivered = await engine.state(other.job.id, JobState.DELIVERED)
    assert delivered.result == (await engine.state(first.job.id, JobState.DELIVERED)).result
    # The same member again.
    again = await engine.engine.submit(ask(semitones=2, requester=1, reply_to=7777))
    assert again.admission is Admission.CACHED
    assert pool.count("render_key") == 1


async def test_a_key_change_counts_against_the_members_limits(
    engine: Engine, pool: CountingPool
) -> None:
    policy = GuildPolicy(daily_quota=1)
    await engine.engine.submit(ask(semitones=2, requester=1), policy=policy)
    with pytest.raises(LimitReached):
        await engine.engine.submit(ask(semitones=3, requester=1), policy=policy)
    # Someone else still may.
    await engine.engine.submit(ask(semitones=3, requester=2), policy=policy)
    assert pool.count("render_key") == 2


async def test_an_unkept_source_fails_with_the_plain_sentence_and_is_delivered(
    engine: Engine, pool: CountingPool
) -> None:
    unkept = kept_separation(result={"stems": {}})
    submitted = await engine.engine.submit(ask(unkept))
    ended = await engine.state(submitted.job.id, JobState.DELIVERED)
    assert ended.outcome is JobState.FAILED
    assert (ended.error_kind, ended.last_error) == (NOT_KEPT, NOT_KEPT_MESSAGE)
    assert pool.calls == []


# --- /separate key: ---------------------------------------------------------------------------


def test_a_separation_asking_for_a_key_follows_up_with_a_reply_to_its_post(
    renders: KeyRenders,
) -> None:
    kind = KeyRenderKind(renders)
    separation = kept_separation(options={"key": -2, "attachment_limit": 8_000_000})
    request = kind.follow_up(separation, 4242)
    assert request is not None
    assert request.kind == KEY
    assert request.source_key == key_source_key(MEDIA_KEY, -2)
    assert request.reply_to_message_id == 4242
    assert request.requester_id == separation.requester_id
    assert request.options["attachment_limit"] == 8_000_000
    assert kind.follow_up(kept_separation(), 4242) is None  # no key asked for
    failed = kept_separation(options={"key": -2}, outcome=JobState.FAILED)
    assert kind.follow_up(failed, 4242) is None


async def test_a_posted_separation_with_a_key_gets_its_backing_track_in_that_key_once(
    store: JobStore, renders: KeyRenders, pool: CountingPool
) -> None:
    class LocalSeparation(JobKind):
        """A separation whose result (with its kept backing track) comes at submit."""

        NAME = "separation"

        async def submit(self, job: JobRecord, callback_url: str | None) -> SubmitReceipt:
            return SubmitReceipt(f"sep-{job.id}", TaskStatus.FINISHED, None, data={})

        def result_of(self, job: JobRecord, detail: TaskDetail) -> dict[str, Any]:
            raise AssertionError("not polled")

        def result_at_submit(self, job: JobRecord, receipt: SubmitReceipt) -> dict[str, Any] | None:
            return {"stems": {}, "media": media_entry()}

    delivery = RecordingDelivery()
    engine = JobEngine(
        store, NoVidgo(), delivery, CONFIG, kinds=[LocalSeparation(), KeyRenderKind(renders)]
    )
    await engine.start()
    try:
        source = source_from_link("https://example.org/song.mp3")
        request = separation_request(
            source,
            plan_for(source, StemChoice.VOCALS),
            requester_id=42,
            channel_id=7,
            guild_id=9,
            key=2,
            attachment_limit=10 * 1024 * 1024,
        )
        separation = (await engine.submit(request)).job
        await delivery.wait_for(lambda d: any(j.kind == KEY for j in d), timeout=20)
        [key_job] = [j for j in delivery.delivered if j.kind == KEY]
        assert key_job.id == follow_up_id(separation.id, KEY)
        posted = await store.get(separation.id)
        assert posted is not None and posted.state is JobState.DELIVERED
        assert key_job.reply_to_message_id == posted.result_message_id
        assert key_job.result is not None and key_job.result["semitones"] == 2
        assert pool.count("render_key") == 1
    finally:
        await engine.stop(grace=1.0)


# --- the settings it needs -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"AUDIO_WORKERS": "0"}, "AUDIO_WORKERS"),
        ({"AUDIO_QUEUE_LIMIT": "-1"}, "AUDIO_QUEUE_LIMIT"),
    ],
)
def test_the_audio_and_media_settings_are_checked_at_start(
    values: dict[str, str], problem: str
) -> None:
    with pytest.raises(SettingsError, match=problem):
        load_settings(_env_file=None, DISCORD_TOKEN="t", VIDGO_API_KEY="k", **values)


def test_the_audio_and_media_settings_default_to_the_documented_values() -> None:
    settings = load_settings(_env_file=None, DISCORD_TOKEN="t", VIDGO_API_KEY="k")
    # MEDIA_DIR empty: a "media" folder beside the SQLite database (data/media by default).
    assert (settings.media_dir, settings.AUDIO_WORKERS, settings.AUDIO_QUEUE_LIMIT) == (
        Path("data/media"),
        2,
        8,
    )
