"""One bot per database, with real ``python -m bot run`` processes against the fakes."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.instance_lock import lock_path
from tests.e2e.processes import BotProcess, bot_env
from tests.fakes.discord import FakeDiscord
from tests.fakes.vidgo import FakeVidgo

SINCE = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeDiscord, FakeVidgo]]:
    async with FakeDiscord() as discord, FakeVidgo() as vidgo:
        discord.add_guild()
        yield discord, vidgo


def logins(discord: FakeDiscord) -> int:
    return sum(1 for r in discord.requests if r.path == "/users/@me")


async def test_a_second_bot_on_the_same_database_exits_at_once_naming_the_first(
    tmp_path: Path, fakes: tuple[FakeDiscord, FakeVidgo]
) -> None:
    discord, vidgo = fakes
    db = tmp_path / "stemcord.sqlite3"
    async with BotProcess(bot_env(discord, vidgo, db), tmp_path) as first:
        await first.wait_ready()
        before = logins(discord)
        assert before >= 1  # the first one logged in
        # Its own admin port, so only the database is shared.
        second = await BotProcess(bot_env(discord, vidgo, db), tmp_path).start()
        assert await second.wait() == 4
        lines = second.err_text().splitlines()
        assert len(lines) == 1, lines  # nothing else was logged: it stopped before starting
        pattern = (
            rf"stemcord: another Stemcord instance holds the database {re.escape(str(db))} "
            rf"\(pid {first.pid} on host {re.escape(socket.gethostname())}, `run` since "
            rf"{SINCE}\); stop it first, or give this one its own DATABASE_URL"
        )
        assert re.fullmatch(pattern, lines[0]), lines[0]
        assert logins(discord) == before  # it never reached Discord
        assert (await first.readyz())[0] == 200  # the first one is untouched
        assert await first.stop() == 0, first.err_text()
    assert lock_path(db).read_text() == ""  # released on a clean exit


async def test_a_lock_left_by_a_killed_bot_does_not_block_the_next_start(
    tmp_path: Path, fakes: tuple[FakeDiscord, FakeVidgo]
) -> None:
    discord, vidgo = fakes
    db = tmp_path / "stemcord.sqlite3"
    async with BotProcess(bot_env(discord, vidgo, db), tmp_path) as first:
        await first.wait_ready()
        await first.kill()  # SIGKILL: no clean-up, the sidecar keeps its record
    assert json.loads(lock_path(db).read_text())["pid"] == first.pid
    async with BotProcess(bot_env(discord, vidgo, db), tmp_path) as second:
        await second.wait_ready()
        assert json.loads(lock_path(db).read_text())["pid"] == second.pid
        assert await second.stop() == 0, second.err_text()
