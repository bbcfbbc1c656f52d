"""A separation's media stage in the engine: kept files in the result, once per job.

The real engine, the fake Vidgo over HTTP (real MP3 stems), a real media store and audio pool.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.audio import AudioPool
from bot.kinds import JobKind
from bot.media import MediaStore, StemFetcher, default_allowed_hosts
from bot.media.keeper import BACKING_NAME, MediaKeeper
from bot.media.work import AudioQueue
from bot.separation import (
    GAVE_UP,
    LINKS_LIFETIME_SECONDS,
    UPLOAD_LINKS_LIFETIME_SECONDS,
    SeparationKind,
    links_alive,
)
from bot.sources import StemChoice
from bot.vidgo.client import VidgoClient
from storage.jobstate import JobState
from storage.records import Admission
from tests.bot.conftest import MakeHarness
from tests.bot.engine_harness import Harness
from tests.fakes.vidgo import FakeVidgo
from tests.helpers import NOW, job


@pytest.fixture
async def pool() -> AsyncIterator[AudioPool]:
    async with AudioPool(workers=1, queue_limit=1, timeout=60) as started:
        yield started


@pytest.fixture
async def media(tmp_path: Path) -> AsyncIterator[MediaStore]:
    store = await MediaStore.open(tmp_path / "media")
    yield store
    store.close()


class Keeping:
    """What a harness with a media stage is made of (one keeper per engine start)."""

    def __init__(
        self,
        media: MediaStore,
        pool: AudioPool,
        session: aiohttp.ClientSession,
        vidgo: FakeVidgo,
        *,
        keep_backing_vocals: bool = True,
        clock: object = None,
    ) -> None:
        self.media = media
        self.queue = AudioQueue(pool)
        self.session = session
        self.vidgo = vidgo
        self.keep_backing_vocals = keep_backing_vocals
        self.keepers: list[MediaKeeper] = []
        self.asked: list[int | None] = []
        self.clock = clock

    async def backing_vocals(self, guild_id: int | None) -> bool:
        self.asked.append(guild_id)
        return self.keep_backing_vocals

    def kinds(self, client: VidgoClient) -> list[JobKind]:
        fetcher = StemFetcher(
            self.session,
            allowed_hosts=default_allowed_hosts(self.vidgo.base_url),
            max_bytes=10 * 1024 * 1024,
        )
        keeper = MediaKeeper(self.media, fetcher, self.queue, retry_seconds=0.01)
        self.keepers.append(keeper)
        extra = {"clock": self.clock} if self.clock is not None else {}
        return [
            SeparationKind(
                client,
                keeper=keeper,
                backing_vocals=self.backing_vocals,
                **extra,  # type: ignore[arg-type]
            )
        ]

    @property
    def downloads(self) -> int:
        return sum(k.downloads for k in self.keepers)

    @property
    def mixes(self) -> int:
        return sum(k.mixes for k in self.keepers)


async def keeping_harness(make: MakeHarness, keeping: Keeping) -> Harness:
    return await make(extra_kinds=keeping.kinds)


async def test_a_separation_is_delivered_with_its_kept_files_and_backing_track(
    make_harness: MakeHarness,
    vidgo: FakeVidgo,
    media: MediaStore,
    pool: AudioPool,
    session: aiohttp.ClientSession,
) -> None:
    keeping = Keeping(media, pool, session, vidgo)
    h = await keeping_harness(make_harness, keeping)
    submitted = await h.separate_ids(stems=StemChoice.ALL)
    task = submitted.job.vidgo_task_id or ""
    await vidgo.finish(task)
    done = await h.wait_state(submitted.job.id, JobState.DELIVERED, timeout=20)
    [delivered] = h.delivery.for_job(done.id)
    assert delivered.result is not None
    entry = delivered.result["media"]
    assert set(entry) == {"key", "files", "backing", "error"}
    assert entry["key"] == task and entry["backing"] == BACKING_NAME and entry["error"] is None
    assert set(entry["files"]) == {*delivered.result["stems"], "instrumental"}
    for name in entry["files"].values():
        assert media.exists(task, name)
    assert keeping.mixes == 1
    # The server's backing-vocals choice was asked for a stem-split (once, for this guild).
    assert keeping.asked == [400]
    assert delivered.result["links_until"] > time.time() + LINKS_LIFETIME_SECONDS - 60


async def test_a_cache_hit_reuses_the_kept_files_without_downloading_again(
    make_harness: MakeHarness,
    vidgo: FakeVidgo,
    media: MediaStore,
    pool: AudioPool,
    session: aiohttp.ClientSession,
) -> None:
    keeping = Keeping(media, pool, session, vidgo)
    h = await keeping_harness(make_harness, keeping)
    first = await h.separate_link("https://example.org/song.mp3")
    await vidgo.finish(first.job.vidgo_task_id or "")
    await h.wait_state(first.job.id, JobState.DELIVERED, timeout=20)
    downloads, mixes = keeping.downloads, keeping.mixes
    assert (downloads, mixes) == (6, 1)

    again = await h.separate_link("https://example.org/song.mp3", requester=2)
    assert again.admission is Admission.CACHED
    await h.wait_state(again.job.id, JobState.DELIVERED, timeout=20)
    [delivered] = h.delivery.for_job(again.job.id)
    assert delivered.result is not None
    assert delivered.result["media"]["backing"] == BACKING_NAME
    assert (keeping.downloads, keeping.mixes) == (downloads, mixes)


async def test_a_cache_hit_whose_files_are_gone_everywhere_is_told_and_forgotten(
    make_harness: MakeHarness,
    vidgo: FakeVidgo,
    media: MediaStore,
    pool: AudioPool,
    session: aiohttp.ClientSession,
) -> None:
    now = [NOW]
    keeping = Keeping(media, pool, session, vidgo, clock=lambda: now[0])
    h = await keeping_harness(make_harness, keeping)
    first = await h.separate_link("https://example.org/song.mp3")
    await vidgo.finish(first.job.vidgo_task_id or "")
    await h.wait_state(first.job.id, JobState.DELIVERED, timeout=20)
    key = (await h.job(first.job.id)).result["media"]["key"]  # type: ignore[index]
    # Days later: retention deleted the copies and Vidgo's links are past their lifetime.
    await media.delete(key)
    now[0] = NOW + UPLOAD_LINKS_LIFETIME_SECONDS + 1

    again = await h.separate_link("https://example.org/song.mp3", requester=2)
    assert again.admission is Admission.CACHED
    await h.wait_state(again.job.id, JobState.DELIVERED, timeout=20)
    [delivered] = h.delivery.for_job(again.job.id)
    assert delivered.result is not None
    assert delivered.result["media"]["files"] == {}
    assert "links have expired" in delivered.result["media"]["error"]
    # The cache no longer answers with it: the next request is a fresh separation.
    assert h.store is not None
    assert await h.store.cache_get(first.job.source_key) is None
    third = await h.separate_link("https://example.org/song.mp3", requester=3)
    assert third.admission is Admission.NEW


async def test_a_failed_download_still_delivers_the_links_with_a_sentence(
    make_harness: MakeHarness,
    vidgo: FakeVidgo,
    media: MediaStore,
    pool: AudioPool,
    session: aiohttp.ClientSession,
) -> None:
    keeping = Keeping(media, pool, session, vidgo)
    h = await keeping_harness(make_harness, keeping)
    vidgo.stem_host = "localhost"
    submitted = await h.separate_ids()
    await vidgo.finish(submitted.job.vidgo_task_id or "")
    await h.wait_state(submitted.job.id, JobState.DELIVERED, timeout=20)
    [delivered] = h.delivery.for_job(submitted.job.id)
    assert delivered.result is not None
    assert set(delivered.result["stems"]) == {"vocals", "instrumental"}
    assert delivered.result["media"]["files"] == {}
    assert "host this bot does not download from (localhost)" in delivered.result["media"]["error"]
    assert keeping.asked == []  # not a stem-split: the server's choice does not matter


# -- the kind's own rules ----------------------------------------------------------------------


def test_vidgo_links_are_assumed_to_live_a_day_and_three_for_uploads() -> None:
    from bot.vidgo.results import TaskDetail, TaskStatus
    from storage.records import SourceKind

    kind = SeparationKind(None, clock=lambda: NOW)  # type: ignore[arg-type]
    detail = TaskDetail(
        task_id="t",
        status=TaskStatus.FINISHED,
        stems={"vocals": "https://s/v.mp3"},
        tracks=(),
        error_message=None,
        created_time=None,
    )
    song = kind.result_of(job(source_kind=SourceKind.IDS), detail)
    upload = kind.result_of(job(source_kind=SourceKind.ATTACHMENT), detail)
    assert song["links_until"] == NOW + LINKS_LIFETIME_SECONDS
    assert upload["links_until"] == NOW + UPLOAD_LINKS_LIFETIME_SECONDS
    assert links_alive(song, NOW + LINKS_LIFETIME_SECONDS - 1)
    assert not links_alive(song, NOW + LINKS_LIFETIME_SECONDS)
    assert links_alive({"stems": {}}, NOW)  # stored before the lifetime was recorded


def test_only_a_kind_with_a_keeper_owes_the_media_stage(media: MediaStore) -> None:
    bare = SeparationKind(None)  # type: ignore[arg-type]
    keeper = MediaKeeper(media, None, None)  # type: ignore[arg-type]
    keeping = SeparationKind(None, keeper=keeper)  # type: ignore[arg-type]
    assert not bare.needs_prepare(job())
    assert keeping.needs_prepare(job())
    assert not keeping.needs_prepare(job(result={"stems": {}}))


def test_giving_up_keeps_what_was_kept_and_says_so(media: MediaStore) -> None:
    kind = SeparationKind(None)  # type: ignore[arg-type]
    progress = {
        "stems": {"vocals": "https://s/v.mp3"},
        "vidgo_task_id": "task-1",
        "media": {
            "key": "task-1",
            "files": {"vocals": "vocals.mp3"},
            "backing": None,
            "error": None,
        },
    }
    changes = kind.prepare_gave_up(job(result=progress), "post-success step failed (OSError)")
    assert changes == {
        "media": {
            "key": "task-1",
            "files": {"vocals": "vocals.mp3"},
            "backing": None,
            "error": GAVE_UP,
        }
    }
