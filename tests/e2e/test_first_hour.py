"""The first hour of a new operator: what the bot says when it is ready, what it does not say,
and what it refuses before it starts."""

from __future__ import annotations

import asyncio
import logging
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.doctor import sync_command
from cogs.client import StemcordBot
from tests.e2e.conftest import World
from tests.e2e.processes import BotProcess, bot_env, eventually, free_port
from tests.fakes.discord import FakeDiscord
from tests.fakes.vidgo import FakeVidgo


def ready_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name == "cogs.client" and r.getMessage().startswith("ready")
    ]


async def wait_for_ready_line(caplog: pytest.LogCaptureFixture) -> logging.LogRecord:
    await eventually(lambda: bool(ready_lines(caplog)))
    [record] = ready_lines(caplog)
    return record


async def test_ready_is_logged_once_with_the_servers_and_synced_commands(
    world: World, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="cogs.client")

    async def no_pause(self: StemcordBot, shard_id: int | None, *, initial: bool = False) -> None:
        return None  # discord.py waits 5 s before identifying again

    monkeypatch.setattr(StemcordBot, "before_identify_hook", no_pause)
    app = await world.start()
    record = await wait_for_ready_line(caplog)
    commands = app.bot.tree.get_commands(guild=world.guild)
    assert record.levelno == logging.INFO
    assert record.getMessage() == (
        f"ready: logged in as Stemcord (id {world.discord.bot_user_id}) in 1 server; "
        f"its {len(commands)} slash commands are synced in guild {world.guild.id}"
    )
    # A new gateway session sends READY again; the announcement is not repeated.
    again = asyncio.Event()

    async def ready_again() -> None:
        again.set()  # runs after the app's own on_ready, which was registered first

    app.bot.add_listener(ready_again, "on_ready")
    await world.discord.drop_gateway(resumable=False)
    await asyncio.wait_for(again.wait(), 20)
    assert world.discord.identify_count == 2
    await asyncio.sleep(0)
    assert len(ready_lines(caplog)) == 1


async def start_without_dev_guild(world: World) -> Any:
    """The app without DEV_GUILD_ID (so nothing is synced at start), until Discord is ready."""
    world.overrides = {"DEV_GUILD_ID": None}
    world._stop = asyncio.Event()
    from bot.app import RunningApp, run_app

    started: asyncio.Future[RunningApp] = asyncio.get_running_loop().create_future()
    world._task = asyncio.create_task(run_app(world.settings(), stop=world._stop, started=started))
    app = await asyncio.wait_for(started, 20)
    await asyncio.wait_for(app.bot.wait_until_ready(), 20)
    return app


async def test_commands_never_registered_globally_get_the_exact_sync_command(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cogs.client")
    await start_without_dev_guild(world)
    record = await wait_for_ready_line(caplog)
    assert record.getMessage().endswith(
        "; no slash commands are registered globally, so members see them only in servers "
        f"synced with `{sync_command()} --guild <id>`; to register them in every server run "
        f"`{sync_command()}` (they take up to an hour to appear)"
    )
    assert world.discord.synced_commands == {}  # asked, never synced


async def test_outdated_global_commands_are_a_warning_naming_the_difference(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cogs.client")
    # What an older version registered: /separate said something else, /oldcmd is gone.
    app_id = str(world.discord.application_id)
    world.discord.synced_commands[None] = [
        {"id": str(900 + i), "application_id": app_id, "version": "1", "type": 1, **fields}
        for i, fields in enumerate(
            [
                {"name": "separate", "description": "an older description", "options": []},
                {"name": "oldcmd", "description": "removed since", "options": []},
            ]
        )
    ]
    app = await start_without_dev_guild(world)
    record = await wait_for_ready_line(caplog)
    names = sorted(
        f"/{c.name}" if c.to_dict(app.bot.tree).get("type", 1) == 1 else f"'{c.name}' (menu)"
        for c in app.bot.tree.get_commands()
        if c.name != "separate"
    )
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "; the slash commands are not synced globally (missing " in message
    assert "; changed /separate; no longer defined /oldcmd): run `" in message
    assert message.endswith(f"`{sync_command()}`")
    for name in names:
        assert name in message
    assert [c["name"] for c in world.discord.synced_commands[None]] == ["separate", "oldcmd"]


@pytest.fixture
async def fakes() -> Any:
    async with FakeDiscord() as discord, FakeVidgo() as vidgo:
        discord.add_guild()
        yield discord, vidgo


async def test_the_bot_process_starts_without_voice_warnings_and_says_it_is_ready(
    tmp_path: Path, fakes: tuple[FakeDiscord, FakeVidgo]
) -> None:
    discord, vidgo = fakes
    env = bot_env(discord, vidgo, tmp_path / "stemcord.sqlite3")
    async with BotProcess(env, tmp_path) as bot:
        await bot.wait_ready()
        await eventually(lambda: "ready: logged in as" in bot.err_text())
        assert await bot.stop() == 0, bot.err_text()
    err = bot.err_text()
    assert "voice will NOT be supported" not in err
    assert "PyNaCl" not in err and "davey" not in err
    assert err.count("ready: logged in as Stemcord") == 1
    # No DEV_GUILD_ID and nothing synced yet: the line gives the command for this install.
    assert f"run `{shlex.quote(sys.executable)} -m bot sync`" in err


async def test_a_database_that_cannot_be_written_is_refused_at_start(
    tmp_path: Path, fakes: tuple[FakeDiscord, FakeVidgo]
) -> None:
    discord, vidgo = fakes
    db = tmp_path / "stemcord.sqlite3"
    migrate = BotProcess(bot_env(discord, vidgo, db), tmp_path, "migrate")
    await migrate.start()
    assert await migrate.wait() == 0, migrate.err_text()
    db.chmod(0o444)  # restored by someone else, say, and not given back to the bot's user
    bot = BotProcess(bot_env(discord, vidgo, db), tmp_path, unprivileged=True)
    await bot.start()
    assert await bot.wait() == 2
    assert bot.err_text().splitlines() == [
        f"stemcord: cannot use the database {db} (OperationalError: attempt to write a "
        "readonly database); check that this user may write the file and its folder, and "
        "that the disk has room"
    ]
    assert not any(r.path == "/users/@me" for r in discord.requests)  # Discord never asked


async def test_a_gateway_that_cannot_be_reached_at_start_is_one_line_and_status_3(
    tmp_path: Path, fakes: tuple[FakeDiscord, FakeVidgo]
) -> None:
    discord, vidgo = fakes
    # The REST login works; the gateway address has nothing listening.
    port = free_port()
    env = bot_env(
        discord, vidgo, tmp_path / "stemcord.sqlite3", DISCORD_GATEWAY_URL=f"ws://127.0.0.1:{port}/"
    )
    async with BotProcess(env, tmp_path) as bot:
        assert await bot.wait() == 3
    err = bot.err_text()
    assert "Traceback" not in err
    # One attempt, no retry loop: the operator's line says why.
    assert err.splitlines()[-1] == (
        f"stemcord: cannot open Discord's gateway at ws://127.0.0.1:{port}/: connection refused "
        f"by 127.0.0.1:{port} (nothing listens there); check DISCORD_GATEWAY_URL and that this "
        "host can open outbound wss connections"
    )
