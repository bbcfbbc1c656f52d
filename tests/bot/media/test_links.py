"""Links to kept files (expiry capped by retention) and copies that fit an upload limit."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from bot.audio import AudioPool, probe
from bot.media import MediaSigner, MediaStore
from bot.media.links import DAY, HOUR, MediaLinks, UploadFitter
from bot.media.work import AudioQueue
from tests.fakes.audio import write_stem

KEY = "task-1"


@pytest.fixture
def media(tmp_path: Path) -> Iterator[MediaStore]:
    with MediaStore.open_sync(tmp_path / "media") as store:
        yield store


@pytest.fixture
async def pool() -> AsyncIterator[AudioPool]:
    async with AudioPool(workers=1, queue_limit=1, timeout=60) as started:
        yield started


def expires_of(url: str) -> int:
    return int(parse_qs(urlsplit(url).query)["expires"][0])


async def test_a_link_lives_its_ttl_but_never_past_its_files_retention(media: MediaStore) -> None:
    await media.put_bytes(KEY, "vocals.mp3", b"v")
    now = time.time()
    signer = MediaSigner(b"s" * 32)
    links = MediaLinks(
        signer,
        media,
        public_url="https://b.example",
        ttl_hours=24,
        retention_days=7,
        clock=lambda: now,
    )
    url = links.url_for(KEY, "vocals.mp3")
    assert url is not None and url.startswith("https://b.example/media/task-1/vocals.mp3?")
    assert expires_of(url) == int(now + 24 * HOUR)
    # The file was written 6.5 days ago: it goes in half a day, and so does its link.
    old = now - 6.5 * DAY
    os.utime(media.path_of(KEY, "vocals.mp3"), (old, old))
    url = links.url_for(KEY, "vocals.mp3")
    assert url is not None and expires_of(url) == int(old + 7 * DAY)
    # Due within the minute: no link at all rather than one that dies at once.
    gone = now - 7 * DAY + 30
    os.utime(media.path_of(KEY, "vocals.mp3"), (gone, gone))
    assert links.url_for(KEY, "vocals.mp3") is None


async def test_no_link_without_a_public_address_or_a_stored_file(media: MediaStore) -> None:
    await media.put_bytes(KEY, "vocals.mp3", b"v")
    signer = MediaSigner(b"s" * 32)
    private = MediaLinks(signer, media, public_url=None, ttl_hours=24, retention_days=7)
    assert not private.enabled and private.url_for(KEY, "vocals.mp3") is None
    public = MediaLinks(
        signer, media, public_url="https://b.example", ttl_hours=1, retention_days=0
    )
    assert public.url_for(KEY, "drums.mp3") is None
    assert public.url_for("../etc", "passwd.mp3") is None


async def test_a_file_that_fits_is_given_as_it_is(media: MediaStore, pool: AudioPool) -> None:
    await media.put_bytes(KEY, "vocals.mp3", b"v" * 100)
    fitter = UploadFitter(media, AudioQueue(pool))
    fitted = await fitter.fitting(KEY, "vocals.mp3", 100)
    assert fitted is not None and fitted.name == "vocals.mp3"
    assert await fitter.fitting(KEY, "missing.mp3", 100) is None


async def test_a_file_too_big_is_re_encoded_under_the_limit_once(
    media: MediaStore, pool: AudioPool, tmp_path: Path
) -> None:
    source = write_stem(tmp_path / "bass.mp3", "bass", seconds=8.0, bitrate_kbps=256)
    await media.put_file(KEY, "bass.mp3", source)
    size = source.stat().st_size
    limit = size * 6 // 10
    fitter = UploadFitter(media, AudioQueue(pool))
    fitted = await fitter.fitting(KEY, "bass.mp3", limit)
    assert fitted is not None
    assert fitted.name == f"bass_fit{limit // 1024}k.mp3" and fitted.size <= limit
    assert (probe(fitted.path).bitrate_kbps or 0) < 256
    # The copy is kept: the next delivery to a place with the same limit reuses it.
    inode = fitted.path.stat().st_ino
    again = await fitter.fitting(KEY, "bass.mp3", limit)
    assert again is not None and again.path.stat().st_ino == inode


async def test_a_file_that_cannot_fit_above_the_floor_is_not_given(
    media: MediaStore, pool: AudioPool, tmp_path: Path
) -> None:
    source = write_stem(tmp_path / "bass.mp3", "bass", seconds=8.0)
    await media.put_file(KEY, "bass.mp3", source)
    fitter = UploadFitter(media, AudioQueue(pool))
    # 8 s at the 96 kbps floor is ~96 KB: 40 KB cannot hold it.
    assert await fitter.fitting(KEY, "bass.mp3", 40 * 1024) is None
    assert [f.name for f in await media.list_files(KEY)] == ["bass.mp3"]
