"""The media stage over real sockets: real MP3 stems from the fake Vidgo, a real audio pool.

The backing track is checked by analysis (each stem has its own tone or rhythm, see
``tests.fakes.audio``); failures of the download are the fake's own (redirect off the list,
oversized, cut off), and each must end in one plain sentence with whatever could be kept.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.audio import AudioPool
from bot.media import MediaStore, StemFetcher, default_allowed_hosts
from bot.media.keeper import BACKING_NAME, MediaEntry, MediaKeeper, media_key, stem_file_name
from bot.media.work import AudioQueue
from bot.vidgo.client import VidgoClient
from bot.vidgo.results import Model
from tests.fakes.audio import (
    FAKE_STEM_SECONDS,
    STEM_SOUNDS,
    UPLOAD_STEMS,
    decode,
    duration_s,
    magnitude_db,
    peak,
)
from tests.fakes.vidgo import GENERATION_AUDIO_IDS, GENERATION_TASK_ID, FakeVidgo


@pytest.fixture
async def pool() -> AsyncIterator[AudioPool]:
    async with AudioPool(workers=1, queue_limit=1, timeout=60) as started:
        yield started


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[MediaStore]:
    opened = await MediaStore.open(tmp_path / "media")
    yield opened
    opened.close()


def make_keeper(
    store: MediaStore,
    session: aiohttp.ClientSession,
    vidgo: FakeVidgo,
    pool: AudioPool,
    *,
    max_bytes: int = 10 * 1024 * 1024,
) -> MediaKeeper:
    fetcher = StemFetcher(
        session,
        allowed_hosts=default_allowed_hosts(vidgo.base_url),
        max_bytes=max_bytes,
        read_timeout=2.0,
        total_timeout=10.0,
    )
    return MediaKeeper(store, fetcher, AudioQueue(pool), retry_seconds=0.01)


async def finished(
    vidgo: FakeVidgo, session: aiohttp.ClientSession, model: str
) -> tuple[str, dict[str, str]]:
    """A finished separation of ``model`` on the fake: its task id and its stem links."""
    client = VidgoClient(
        session, vidgo.base_url, vidgo.api_key, timeout=2.0, max_retries=0, rate_per_second=1e3
    )
    if model == "upload":
        receipt = await client.submit_upload_separation(
            audio_url="https://cdn.discordapp.com/attachments/1/2/song.mp3",
            output_type="general",
        )
    else:
        receipt = await client.submit_separation(
            Model(model),
            task_id=GENERATION_TASK_ID,
            audio_id=GENERATION_AUDIO_IDS[0],
            callback_url=None,
        )
    await vidgo.finish(receipt.task_id, callback=False)
    detail = await client.get_task(receipt.task_id)
    return receipt.task_id, dict(detail.stems)


def level(path: Path, stem: str) -> float:
    samples, rate = decode(path)
    return magnitude_db(samples, rate, STEM_SOUNDS[stem].frequency)


# -- the backing track --------------------------------------------------------------------


async def test_an_upload_split_gets_a_backing_track_of_every_stem_but_the_vocals(
    store: MediaStore, session: aiohttp.ClientSession, vidgo: FakeVidgo, pool: AudioPool
) -> None:
    task, stems = await finished(vidgo, session, "upload")
    keeper = make_keeper(store, session, vidgo, pool)
    entry = await keeper.keep(media_key(task), stems)

    assert entry.error is None and entry.backing == BACKING_NAME
    assert entry.files == {**{s: f"{s}.mp3" for s in stems}, "instrumental": BACKING_NAME}
    backing = store.path_of(entry.key, BACKING_NAME)
    vocals = store.path_of(entry.key, "vocals.mp3")
    for stem in ("bass", "piano", "guitar", "other"):
        # Every accompaniment tone is there at (about) the level of its own stem.
        assert level(backing, stem) > level(store.path_of(entry.key, f"{stem}.mp3"), stem) - 3
    assert level(backing, "vocals") <= level(vocals, "vocals") - 40
    samples, _ = decode(backing)
    assert peak(samples) < 1.0  # no sample clips
    assert duration_s(backing) == pytest.approx(duration_s(vocals), abs=0.03)
    assert duration_s(backing) == pytest.approx(FAKE_STEM_SECONDS, abs=0.1)
    assert (keeper.downloads, keeper.mixes) == (len(UPLOAD_STEMS), 1)


async def test_vidgos_own_instrumental_is_the_backing_track_as_it_is(
    store: MediaStore, session: aiohttp.ClientSession, vidgo: FakeVidgo, pool: AudioPool
) -> None:
    task, stems = await finished(vidgo, session, "separate-vocals")
    keeper = make_keeper(store, session, vidgo, pool)
    entry = await keeper.keep(media_key(task), stems)
    assert entry == MediaEntry(
        task, {"vocals": "vocals.mp3", "instrumental": "instrumental.mp3"}, BACKING_NAME, None
    )
    assert keeper.mixes == 0
    assert store.path_of(task, BACKING_NAME).read_bytes()[:2] == b"\xff\xfb"


@pytest.mark.parametrize("keep_backing_vocals", [True, False])
async def test_a_stem_split_keeps_or_drops_the_backing_vocals_as_asked(
    store: MediaStore,
    session: aiohttp.ClientSession,
    vidgo: FakeVidgo,
    pool: AudioPool,
    keep_backing_vocals: bool,
) -> None:
    task, stems = await finished(vidgo, session, "stem-split")
    keeper = make_keeper(store, session, vidgo, pool)
    entry = await keeper.keep(media_key(task), stems, keep_backing_vocals=keep_backing_vocals)
    assert entry.backing == BACKING_NAME
    backing = store.path_of(entry.key, BACKING_NAME)
    harmony = level(store.path_of(entry.key, "backing_vocals.mp3"), "backing_vocals")
    if keep_backing_vocals:
        assert level(backing, "backing_vocals") > harmony - 12
    else:
        assert level(backing, "backing_vocals") < harmony - 40
    assert level(backing, "vocals") < level(store.path_of(entry.key, "vocals.mp3"), "vocals") - 40
    assert level(backing, "brass") > -40


# -- once, and resumable --------------------------------------------------------------------


async def test_a_resumed_stage_downloads_and_mixes_nothing_already_stored(
    store: MediaStore, session: aiohttp.ClientSession, vidgo: FakeVidgo, pool: AudioPool
) -> None:
    task, stems = await finished(vidgo, session, "upload")
    first = make_keeper(store, session, vidgo, pool)
    saved: list[MediaEntry] = []

    async def save(entry: MediaEntry) -> None:
        saved.append(entry)

    entry = await first.keep(media_key(task), stems, save=save)
    # Progress was saved after each file.
    assert [len(s.files) for s in saved] == list(range(1, len(UPLOAD_STEMS) + 1))
    downloads = vidgo.stem_downloads(task)
    # A second run (a restart, a cache hit) with what the first saved halfway through, and
    # the rest found in the store unrecorded (a crash between a rename and the save).
    second = make_keeper(store, session, vidgo, pool)
    again = await second.keep(media_key(task), stems, earlier=saved[2])
    assert again == entry
    assert (second.downloads, second.mixes) == (0, 0)
    assert vidgo.stem_downloads(task) == downloads


async def test_a_stage_interrupted_after_some_files_fetches_only_the_rest(
    store: MediaStore, session: aiohttp.ClientSession, vidgo: FakeVidgo, pool: AudioPool
) -> None:
    task, stems = await finished(vidgo, session, "upload")
    keeper = make_keeper(store, session, vidgo, pool)
    await keeper.keep(media_key(task), dict(list(stems.items())[:2]))
    assert vidgo.stem_downloads(task) == 2
    entry = await keeper.keep(media_key(task), stems)
    assert entry.backing == BACKING_NAME
    for stem in stems:
        assert vidgo.stem_downloads(task, stem) == 1, stem


# -- failures: one sentence, and whatever could be kept -------------------------------------


async def test_links_on_a_host_off_the_list_are_not_followed(
    store: MediaStore, session: aiohttp.ClientSession, vidgo: FakeVidgo, pool: AudioPool
) -> None:
    vidgo.stem_host = "localhost"  # the fake itself, under a name the bot does not allow
    task, stems = await finished(vidgo, session, "upload")
    entry = await make_keeper(store, session, vidgo, pool).keep(media_key(task), stems)
    assert entry.files == {} and entry.backing is None
    assert entry.error == (
        "Stemcord could not keep a copy of the stems: Vidgo's files are on a host this bot "
        "does not download from (localhost)."
    )
    assert vidgo.stem_downloads(task) == 0  # no connection was even made


async def test_a_redirect_off_the_list_is_refused(
    store: MediaStore, session: aiohttp.ClientSession, vidgo: FakeVidgo, pool: AudioPool
) -> None:
    task, stems = await finished(vidgo, session, "upload")
    vidgo.media_fault_next(1, "redirect_off_list", stem="drums")
    entry = await make_keeper(store, session, vidgo, pool).keep(media_key(task), stems)
    assert "drums" not in entry.files and "bass" in entry.files
    assert entry.backing is None  # a backing track without the drums would be wrong
    assert entry.error == (
        "Stemcord could not keep a copy of the stems: Vidgo's storage sent the download "
        "somewhere this bot does not download from."
    )
    assert not store.exists(entry.key, "drums.mp3")


async def test_an_oversized_stem_is_refused_before_its_body(
    store: MediaStore, session: aiohttp.ClientSession, vidgo: FakeVidgo, pool: AudioPool
) -> None:
    task, stems = await finished(vidgo, session, "separate-vocals")
    vidgo.media_fault_next(1, "oversized", stem="vocals")
    keeper = make_keeper(store, session, vidgo, pool, max_bytes=1024 * 1024)
    entry = await keeper.keep(media_key(task), stems)
    assert entry.files == {"instrumental": "instrumental.mp3"}
    assert entry.backing == BACKING_NAME  # Vidgo's instrumental still came
    assert entry.error == (
        "Stemcord could not keep a copy of the stems: a stem is larger than the 1 MB this bot "
        "keeps."
    )


async def test_a_download_cut_off_every_time_is_reported_and_leaves_no_file(
    store: MediaStore, session: aiohttp.ClientSession, vidgo: FakeVidgo, pool: AudioPool
) -> None:
    task, stems = await finished(vidgo, session, "separate-vocals")
    vidgo.media_fault_next(99, "truncated", stem="instrumental")
    entry = await make_keeper(store, session, vidgo, pool).keep(media_key(task), stems)
    assert entry.files == {"vocals": "vocals.mp3"} and entry.backing is None
    assert entry.error == (
        "Stemcord could not keep a copy of the stems: the download was cut off before the "
        "end, every time it was tried."
    )
    assert vidgo.stem_downloads(task, "instrumental") == 3
    assert not store.exists(task, "instrumental.mp3")


async def test_a_download_cut_off_once_is_tried_again(
    store: MediaStore, session: aiohttp.ClientSession, vidgo: FakeVidgo, pool: AudioPool
) -> None:
    task, stems = await finished(vidgo, session, "separate-vocals")
    vidgo.media_fault_next(1, "truncated", stem="instrumental")
    entry = await make_keeper(store, session, vidgo, pool).keep(media_key(task), stems)
    assert entry.error is None and entry.backing == BACKING_NAME
    assert vidgo.stem_downloads(task, "instrumental") == 2


async def test_expired_links_and_nothing_kept_say_so(
    store: MediaStore, session: aiohttp.ClientSession, vidgo: FakeVidgo, pool: AudioPool
) -> None:
    task, stems = await finished(vidgo, session, "upload")
    entry = await make_keeper(store, session, vidgo, pool).keep(
        media_key(task), stems, links_alive=False
    )
    assert entry.files == {} and entry.backing is None
    assert entry.error == "Stemcord could not keep a copy of the stems: Vidgo's links have expired."
    assert vidgo.stem_downloads(task) == 0


async def test_a_full_disk_stops_the_stage_with_a_sentence(
    tmp_path: Path, session: aiohttp.ClientSession, vidgo: FakeVidgo, pool: AudioPool
) -> None:
    task, stems = await finished(vidgo, session, "separate-vocals")
    with MediaStore.open_sync(
        tmp_path / "full", min_free_bytes=1024 * 1024, free_bytes=lambda _: 1024 * 1024
    ) as full:
        entry = await make_keeper(full, session, vidgo, pool).keep(media_key(task), stems)
    assert entry.files == {} and entry.backing is None
    assert entry.error == (
        "Stemcord could not keep a copy of the stems: the bot's disk is nearly full."
    )


# -- names ------------------------------------------------------------------------------------


def test_media_keys_are_vidgo_task_ids_or_a_digest_of_odd_ones() -> None:
    assert media_key("task-unified-1764061200-k3v9qz1a") == "task-unified-1764061200-k3v9qz1a"
    odd = media_key("8FDN1I7M.../x")
    assert odd == media_key("8FDN1I7M.../x") and odd.startswith("t") and len(odd) == 41


def test_stem_files_are_named_by_stem_and_link_extension() -> None:
    assert stem_file_name("backing_vocals", "https://s/x/bv.MP3?sig=1") == "backing_vocals.mp3"
    assert stem_file_name("vocals", "https://s/x/v.wav") == "vocals.wav"
    assert stem_file_name("vocals", "https://s/x/v") == "vocals.mp3"
    assert stem_file_name("vocals", "https://s/x/v.exe") == "vocals.mp3"


def test_a_stored_entry_with_odd_names_is_read_without_them() -> None:
    raw = {
        "key": "task-1",
        "files": {"vocals": "vocals.mp3", "evil": "../../etc/passwd", "n": 3},
        "backing": "../instrumental.mp3",
        "error": None,
    }
    assert MediaEntry.from_result(raw) == MediaEntry("task-1", {"vocals": "vocals.mp3"})
    assert MediaEntry.from_result({"key": "../x", "files": {}}) is None
    assert MediaEntry.from_result(None) is None
