"""Stemcord in the members' languages, end to end: ``python -m bot sync`` registers the command
tree with its localizations on the fake Discord, and a member whose client speaks Japanese
runs a command by its Japanese names and gets the tree's error sentence in Japanese."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from cogs.i18n import CATALOG_FOR_LOCALE, Translations, TreeContext
from tests.e2e.conftest import World
from tests.e2e.processes import bot_env
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_models import FLAG_EPHEMERAL
from tests.fakes.vidgo import FakeVidgo

UNREADABLE_OPTION = "One of the options could not be read; check it and try again."


def localized(payloads: list[dict[str, Any]], name: str) -> dict[str, str]:
    [found] = [p for p in payloads if p["name"] == name]
    return dict(found.get("name_localizations") or {})


async def test_sync_registers_the_command_tree_in_every_catalog_language(tmp_path: Path) -> None:
    translations = Translations.load()
    async with FakeDiscord() as discord, FakeVidgo() as vidgo:
        guild = discord.add_guild()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "sync",
            "--guild",
            str(guild.id),
            cwd=tmp_path,
            env=bot_env(discord, vidgo, tmp_path / "db.sqlite3"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()[-2000:]
        synced = discord.synced_commands[guild.id]
        assert discord.rule_violations == []
    # The fake kept what discord.py sent: Japanese names for every command.
    for command in ("separate", "lyrics", "jobs", "karaoke"):
        japanese = translations.tree_text("ja", TreeContext.COMMAND_NAME, command)
        assert japanese is not None and japanese != command
        assert localized(synced, command)["ja"] == japanese
    menu = translations.tree_text("ja", TreeContext.MENU_NAME, "Separate vocals")
    assert localized(synced, "Separate vocals")["ja"] == menu
    # Exactly the catalogs' locales: English is the default, the others fall back to it.
    assert set(localized(synced, "separate")) == set(CATALOG_FOR_LOCALE)
    [separate] = [p for p in synced if p["name"] == "separate"]
    [stems] = [o for o in separate["options"] if o["name"] == "stems"]
    assert stems["name_localizations"]["ja"] == translations.tree_text(
        "ja", TreeContext.OPTION_NAME, "stems"
    )
    every_stem = next(c for c in stems["choices"] if c["name"] == "every stem")
    assert every_stem["name_localizations"]["ko"] == translations.tree_text(
        "ko", TreeContext.CHOICE, "every stem"
    )
    assert separate["description_localizations"]["pt-BR"] == translations.tree_text(
        "pt-BR", TreeContext.DESCRIPTION, "Split a song into karaoke stems"
    )
    assert "synced" in out.decode()


async def test_a_member_gets_the_commands_error_in_their_own_language(world: World) -> None:
    await world.start()
    translations = Translations.load()

    async def unreadable_option(locale: str) -> str:
        # The member types the names their client shows, and a stems value no longer offered
        # (as an outdated client would send after the choices changed).
        command = translations.tree_text(locale, TreeContext.COMMAND_NAME, "separate")
        option = translations.tree_text(locale, TreeContext.OPTION_NAME, "stems")
        interaction = await world.discord.invoke_slash(
            guild_id=world.guild.id,
            channel_id=world.guild.channel_id,
            user_id=world.member.id,
            name=command or "separate",
            options=[{"name": option or "stems", "value": "karaoke-please"}],
            locale=locale,
            guild_locale="en-US",
        )
        await world.discord.wait_until(lambda: bool(interaction.responses))
        [response] = interaction.responses
        assert response.data is not None
        assert response.data["flags"] & FLAG_EPHEMERAL
        assert interaction.payload["data"]["name"] == "separate"
        return str(response.data["content"])

    japanese = await unreadable_option("ja")
    assert japanese == translations.text("ja", UNREADABLE_OPTION)
    assert japanese != UNREADABLE_OPTION
    assert await unreadable_option("ko") == translations.text("ko", UNREADABLE_OPTION)
    # A client in a language without a catalog reads English.
    assert await unreadable_option("fr") == UNREADABLE_OPTION
    assert world.vidgo.tasks == {}
    assert world.discord.rule_violations == []
