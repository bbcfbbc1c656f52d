"""``/karaoke settings backing_vocals``: whether a mixed backing track keeps the harmonies."""

from __future__ import annotations

from unittest import mock

import discord

from bot.policy import GuildPolicy, Policies, load_policy
from cogs.i18n import Translations
from cogs.karaoke import KaraokeCog, policy_embed
from storage.base import JobStore
from tests.helpers import interaction, member

GUILD = 9
MANAGER = discord.Permissions(manage_guild=True)
T = Translations.load()


def answer(inter: mock.Mock) -> tuple[str, discord.Embed]:
    [call] = inter.response.send_message.await_args_list
    assert call.kwargs["ephemeral"] is True
    return str(call.args[0]), call.kwargs["embed"]


async def test_a_manager_turns_the_backing_vocals_off_and_on(store: JobStore) -> None:
    cog = KaraokeCog(Policies(store), T)
    assert (await load_policy(store, GUILD)).keep_backing_vocals is True  # the default
    off = interaction(guild_id=GUILD, user=member(perms=MANAGER))
    await cog.backing_vocals.callback(cog, off, keep=False)
    text, embed = answer(off)
    assert "leave the backing vocals out" in text
    assert (await load_policy(store, GUILD)).keep_backing_vocals is False
    fields = {f.name: f.value for f in embed.fields}
    assert fields["Backing vocals in backing tracks"] == "left out"
    on = interaction(guild_id=GUILD, user=member(perms=MANAGER))
    await cog.backing_vocals.callback(cog, on, keep=True)
    assert (await load_policy(store, GUILD)).keep_backing_vocals is True


async def test_only_managers_may_change_it(store: JobStore) -> None:
    cog = KaraokeCog(Policies(store), T)
    plain = interaction(guild_id=GUILD, user=member())
    await cog.backing_vocals.callback(cog, plain, keep=False)
    assert "Manage Server" in str(plain.response.send_message.await_args.args[0])
    assert (await load_policy(store, GUILD)).keep_backing_vocals is True


def test_the_stored_choice_is_read_back_and_odd_values_ignored() -> None:
    assert GuildPolicy.from_stored({"keep_backing_vocals": False}).keep_backing_vocals is False
    assert GuildPolicy.from_stored({"keep_backing_vocals": "no"}).keep_backing_vocals is True
    stored = GuildPolicy(keep_backing_vocals=False).to_stored()
    assert GuildPolicy.from_stored(stored) == GuildPolicy(keep_backing_vocals=False)
    shown = {f.name: f.value for f in policy_embed(T, None, GuildPolicy()).fields}
    assert shown["Backing vocals in backing tracks"] == "kept"
