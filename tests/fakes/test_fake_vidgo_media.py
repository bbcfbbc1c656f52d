"""The fake Vidgo's stem files: real MP3s, and the download faults tests ask it for."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.fakes.audio import STEM_SOUNDS, decode, dominant_frequency, stem_mp3
from tests.fakes.vidgo import OFF_LIST_HOST, OVERSIZED_BYTES, FakeVidgo
from tests.helpers import wait_for


@pytest.fixture
async def vidgo() -> AsyncIterator[FakeVidgo]:
    async with FakeVidgo() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def finished_upload(vidgo: FakeVidgo, http: aiohttp.ClientSession) -> dict[str, str]:
    body = {
        "model": "upload-and-separate-vocals",
        "input": {"audio_url": "https://example.org/song.mp3"},
    }
    headers = {"Authorization": f"Bearer {vidgo.api_key}"}
    async with http.post(f"{vidgo.base_url}/api/generate/submit", json=body, headers=headers) as r:
        task_id = (await r.json())["data"]["task_id"]
    await vidgo.finish(task_id, callback=False)
    # The upload model's keys are the stem names themselves (docs/vidgo-api.md §4).
    return dict(vidgo.tasks[task_id].result)


async def test_each_stem_is_a_real_mp3_with_its_own_sound(
    vidgo: FakeVidgo, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    urls = await finished_upload(vidgo, http)
    async with http.get(urls["bass"]) as response:
        body = await response.read()
    assert body == stem_mp3("bass")
    path = tmp_path / "bass.mp3"
    path.write_bytes(body)
    samples, rate = decode(path)
    assert dominant_frequency(samples, rate) == pytest.approx(STEM_SOUNDS["bass"].frequency, 1)


async def test_a_redirect_off_the_list_points_at_another_host_name(
    vidgo: FakeVidgo, http: aiohttp.ClientSession
) -> None:
    urls = await finished_upload(vidgo, http)
    vidgo.media_fault_next(1, "redirect_off_list", stem="drums")
    async with http.get(urls["drums"], allow_redirects=False) as response:
        assert response.status == 302
        assert response.headers["Location"].startswith(f"http://{OFF_LIST_HOST}:")
    async with http.get(urls["drums"], allow_redirects=False) as response:
        assert response.status == 200  # the fault was for one download only


async def test_an_oversized_file_announces_its_size(
    vidgo: FakeVidgo, http: aiohttp.ClientSession
) -> None:
    urls = await finished_upload(vidgo, http)
    vidgo.media_fault_next(1, "oversized")
    async with http.get(urls["vocals"]) as response:
        assert response.content_length == OVERSIZED_BYTES


async def test_a_truncated_file_is_cut_off_mid_body(
    vidgo: FakeVidgo, http: aiohttp.ClientSession
) -> None:
    urls = await finished_upload(vidgo, http)
    vidgo.media_fault_next(1, "truncated")
    async with http.get(urls["vocals"]) as response:
        assert response.content_length == len(stem_mp3("vocals"))
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()


async def test_a_stalled_download_waits_for_the_release(
    vidgo: FakeVidgo, http: aiohttp.ClientSession
) -> None:
    urls = await finished_upload(vidgo, http)
    vidgo.media_fault_next(1, "stall", stem="piano")
    download = asyncio.create_task(http.get(urls["piano"]))
    await wait_for(lambda: bool(vidgo.stalled))
    assert vidgo.stalled == ["piano"] and not download.done()
    vidgo.release_stems()
    async with await download as response:
        assert await response.read() == stem_mp3("piano")


async def test_links_can_name_another_host(vidgo: FakeVidgo, http: aiohttp.ClientSession) -> None:
    vidgo.stem_host = "localhost"
    urls = await finished_upload(vidgo, http)
    assert all(url.startswith("http://localhost:") for url in urls.values())


async def test_media_faults_can_be_set_over_http(
    vidgo: FakeVidgo, http: aiohttp.ClientSession
) -> None:
    urls = await finished_upload(vidgo, http)
    control = f"{vidgo.base_url}/_control/faults"
    fault = {"media_fault_next": {"n": 1, "mode": "redirect_off_list"}}
    async with http.post(control, json=fault) as response:
        assert response.status == 200
    async with http.get(urls["other"], allow_redirects=False) as response:
        assert response.status == 302
    async with http.post(control, json={"release_stems": True}) as response:
        assert response.status == 200
