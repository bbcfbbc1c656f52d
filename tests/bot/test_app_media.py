"""The composition root's media: one signing key for every process, one shared folder."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from bot.app import Media, open_media
from bot.media import MediaSigner
from bot.settings import Settings, load_settings
from tests.conftest import StoreBackend


def settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "DISCORD_TOKEN": "token",
        "VIDGO_API_KEY": "key",
        "VIDGO_BASE_URL": "http://127.0.0.1:9",
        "MEDIA_DIR": str(tmp_path / "media"),
        "MEDIA_MIN_FREE_MB": 0,
    }
    values.update(overrides)
    return load_settings(_env_file=None, **values)


async def test_two_processes_on_one_database_sign_alike_and_share_the_folder(
    backend: StoreBackend, tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    first_store, second_store = await backend.open_store(), await backend.open_store()
    first: Media = await open_media(settings(tmp_path), first_store, session)
    second: Media = await open_media(settings(tmp_path), second_store, session)
    try:
        # The key comes from the database's secret table: a link made by one process is
        # honoured by the other.
        assert first.signer.sign("k", "vocals.mp3", 10) == second.signer.sign("k", "vocals.mp3", 10)
        await first.store.put_bytes("k", "vocals.mp3", b"v")
        assert second.store.exists("k", "vocals.mp3")
        assert first.keeper.fetcher.allowed_hosts == {"storage.vidgo.ai", "127.0.0.1"}
        assert first.pool.workers == 2 and first.pool.queue_limit == 8
    finally:
        await first.close()
        await second.close()


async def test_a_configured_secret_wins_over_the_databases(
    backend: StoreBackend, tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    store = await backend.open_store()
    configured = await open_media(settings(tmp_path, MEDIA_LINK_SECRET="s" * 32), store, session)
    generated = await open_media(settings(tmp_path), store, session)
    try:
        expected = MediaSigner(b"s" * 32).sign("k", "vocals.mp3", 10)
        assert configured.signer.sign("k", "vocals.mp3", 10) == expected
        assert generated.signer.sign("k", "vocals.mp3", 10) != expected
    finally:
        await configured.close()
        await generated.close()
