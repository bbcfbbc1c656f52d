"""The whole path over real sockets: a finished task on the fake Vidgo -> its stems downloaded
into the store -> served back to a member's player by signed link."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from bot.listener import Listener
from bot.media import (
    HostNotAllowed,
    MediaRoutes,
    MediaSigner,
    MediaStore,
    StemFetcher,
    default_allowed_hosts,
    load_or_create_secret,
)
from bot.vidgo.client import VidgoClient
from bot.vidgo.results import Model
from tests.fakes.audio import stem_mp3
from tests.fakes.vidgo import GENERATION_AUDIO_IDS, GENERATION_TASK_ID, FakeVidgo


async def test_vidgo_stems_are_kept_and_served_back_by_signed_link(
    vidgo: FakeVidgo, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    client = VidgoClient(
        session, vidgo.base_url, vidgo.api_key, timeout=2.0, max_retries=0, rate_per_second=1e3
    )
    receipt = await client.submit_separation(
        Model.SEPARATE_VOCALS,
        task_id=GENERATION_TASK_ID,
        audio_id=GENERATION_AUDIO_IDS[0],
        callback_url=None,
    )
    await vidgo.finish(receipt.task_id, callback=False)
    detail = await client.get_task(receipt.task_id)
    assert set(detail.stems) == {"vocals", "instrumental"}

    # No host setting: the default list takes the fake's 127.0.0.1 from VIDGO_BASE_URL.
    fetcher = StemFetcher(
        session, allowed_hosts=default_allowed_hosts(vidgo.base_url), max_bytes=1024 * 1024
    )
    store = await MediaStore.open(tmp_path / "media")
    signer = MediaSigner(load_or_create_secret(tmp_path / "media-link.key"))
    app = aiohttp.web.Application()
    MediaRoutes(store, signer).install(app)
    listener = Listener(app, host="127.0.0.1", port=0, name="public listener")
    await listener.start()
    try:
        for stem, url in detail.stems.items():
            result = await fetcher.fetch(url, store.target(receipt.task_id, f"{stem}.mp3"))
            assert result.audio_format == "mp3"

        expires_at = datetime.now(UTC) + timedelta(hours=24)
        for stem in detail.stems:
            link = signer.url_for(
                listener.base_url, receipt.task_id, f"{stem}.mp3", expires_at=expires_at
            )
            async with session.get(link) as response:
                assert response.status == 200
                assert response.headers["Content-Type"] == "audio/mpeg"
                assert await response.read() == stem_mp3(stem)
            async with session.get(link, headers={"Range": "bytes=0-2"}) as response:
                assert response.status == 206
                assert await response.read() == stem_mp3(stem)[:3]
    finally:
        await listener.stop()
        store.close()


async def test_default_list_does_not_reach_past_vidgo(
    vidgo: FakeVidgo, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    fetcher = StemFetcher(
        session, allowed_hosts=default_allowed_hosts(vidgo.base_url), max_bytes=1024
    )
    with pytest.raises(HostNotAllowed) as caught:
        await fetcher.fetch_to_path("https://cdn.example.org/song.mp3", tmp_path / "x.mp3")
    assert caught.value.host == "cdn.example.org"
    assert not (tmp_path / "x.mp3").exists()
