"""Readiness tells the truth: a database that cannot be written, or a dispatcher that stopped,
makes ``/readyz`` answer 503 naming the failing check; the rest of the time it is 200."""

from __future__ import annotations

import json
import resource
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.conftest import World
from tests.e2e.processes import BotProcess, bot_env
from tests.fakes.discord import FakeDiscord
from tests.fakes.vidgo import FakeVidgo


async def readyz(base: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session, session.get(base + "/readyz") as resp:
        return resp.status, json.loads(await resp.text())


async def test_a_healthy_app_is_ready(world: World) -> None:
    app = await world.start()
    assert app.admin is not None
    assert await readyz(app.admin.base_url) == (
        200,
        {
            "ok": True,
            "checks": {"database": "ok", "dispatcher": "ok", "discord": "ok"},
            "shards": {"count": 1, "connected": [0], "not_connected": []},
        },
    )


async def test_a_stopped_dispatcher_makes_readyz_fail(world: World) -> None:
    app = await world.start()
    assert app.admin is not None
    await app.engine.stop(grace=1)  # jobs would no longer be claimed, polled or delivered
    status, body = await readyz(app.admin.base_url)
    assert status == 503
    assert body == {
        "ok": False,
        "checks": {"database": "ok", "dispatcher": "fail", "discord": "ok"},
        "shards": {"count": 1, "connected": [0], "not_connected": []},
    }


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeDiscord, FakeVidgo]]:
    async with FakeDiscord() as discord, FakeVidgo() as vidgo:
        discord.add_guild()
        yield discord, vidgo


def database_files(db: Path) -> list[Path]:
    """The database and whichever of its write-ahead log and shared-memory files exist."""
    return [p for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()]


async def test_a_database_made_read_only_under_the_running_bot_makes_readyz_fail(
    tmp_path: Path, fakes: tuple[FakeDiscord, FakeVidgo]
) -> None:
    discord, vidgo = fakes
    db = tmp_path / "stemcord.sqlite3"
    env = bot_env(discord, vidgo, db)
    # Started without root's override of file modes, so chmod binds the bot as it would a
    # service user (the container's uid 10001, systemd's stemcord).
    async with BotProcess(env, tmp_path, unprivileged=True) as bot:
        await bot.wait_ready()
        modes = {p: p.stat().st_mode for p in database_files(db)}
        for path in modes:
            path.chmod(0o444)
        try:
            status, body = await bot.readyz()
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
        assert status == 503, body
        checks = body["checks"]
        assert checks["database"] == "fail: OperationalError (attempt to write a readonly database)"
        assert (checks["dispatcher"], checks["discord"]) == ("ok", "ok")
        assert (await bot.readyz())[0] == 200  # writable again: ready again
        assert await bot.stop() == 0, bot.err_text()


async def test_a_full_disk_makes_readyz_fail_until_there_is_room_again(
    tmp_path: Path, fakes: tuple[FakeDiscord, FakeVidgo]
) -> None:
    discord, vidgo = fakes
    env = bot_env(discord, vidgo, tmp_path / "stemcord.sqlite3")
    async with BotProcess(env, tmp_path) as bot:
        await bot.wait_ready()
        # The bot may now write no file past its first byte: to SQLite's log this is a full
        # disk (its stderr is a pipe, not a file, so logging goes on).
        soft, hard = resource.prlimit(bot.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(bot.pid, resource.RLIMIT_FSIZE, (1, hard))
        try:
            status, body = await bot.readyz()
        finally:
            resource.prlimit(bot.pid, resource.RLIMIT_FSIZE, (soft, hard))
        assert status == 503, body
        assert body["checks"] == {
            "database": "fail: OperationalError (disk I/O error)",
            "dispatcher": "ok",
            "discord": "ok",
        }
        assert (await bot.readyz())[0] == 200
        assert await bot.stop() == 0, bot.err_text()
