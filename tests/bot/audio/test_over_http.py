"""The whole path over a real socket: stems served over HTTP on 127.0.0.1, downloaded, mixed
in a worker process, then checked by analysis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bot.audio import AudioPool, fit_to_limit, mix_backing_track, render_key, select_backing_stems
from tests.fakes.audio import (
    STEM_SOUNDS,
    UPLOAD_STEMS,
    decode,
    dominant_frequency,
    magnitude_db,
    write_stems,
)


@pytest.fixture
async def stem_server(tmp_path: Path) -> AsyncIterator[str]:
    """An HTTP server on a free 127.0.0.1 port serving six real MP3 stems."""
    write_stems(tmp_path / "served", UPLOAD_STEMS, seconds=3.0)
    app = web.Application()
    app.router.add_static("/stems/", tmp_path / "served")
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/stems/"
    finally:
        await runner.cleanup()


async def test_downloaded_stems_become_a_karaoke_track_in_the_pool(
    stem_server: str, tmp_path: Path
) -> None:
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    stems: dict[str, Path] = {}
    async with aiohttp.ClientSession() as session:
        for name in UPLOAD_STEMS:
            async with session.get(f"{stem_server}{name}.mp3") as response:
                response.raise_for_status()
                stems[name] = downloads / f"{name}.mp3"
                stems[name].write_bytes(await response.read())
    chosen = select_backing_stems(stems, keep_backing_vocals=True)
    assert chosen is not None
    async with AudioPool(workers=2, queue_limit=2) as pool:
        mix = await pool.run(mix_backing_track, chosen, tmp_path / "instrumental.mp3")
        key = await pool.run(
            render_key, tmp_path / "instrumental.mp3", tmp_path / "key.mp3", semitones=3
        )
        fitted = await pool.run(
            fit_to_limit, tmp_path / "key.mp3", tmp_path / "fit.mp3", limit_bytes=key.bytes * 3 // 4
        )
    assert mix.frames == key.frames == 3 * 44_100
    assert fitted is not None
    assert fitted.bytes <= key.bytes * 3 // 4
    assert fitted.bitrate_kbps == 128
    samples, rate = decode(tmp_path / "fit.mp3")
    # The bass (110 Hz) now sounds three semitones up, and the vocal is nowhere.
    assert dominant_frequency(samples, rate, low=60, high=160) == pytest.approx(
        110 * 2 ** (3 / 12), rel=0.01
    )
    vocal = decode(stems["vocals"])[0]
    assert magnitude_db(samples, rate, 440.0 * 2 ** (3 / 12)) < (
        magnitude_db(vocal, rate, STEM_SOUNDS["vocals"].frequency) - 40
    )
