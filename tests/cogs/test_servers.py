"""Allowed servers: what is refused, what is left, and what is said (mocks; the real client
against the fake Discord is in tests/e2e/test_operator_guards.py)."""

from __future__ import annotations

from unittest import mock

import discord

from bot.policy import ServerAllowList
from cogs.i18n import Translations
from cogs.servers import (
    LEAVING_NOTICE,
    NOT_AVAILABLE_HERE,
    ServerGuardCog,
    refuse_outside,
)
from tests.helpers import interaction, private_answer

ALLOWED = ServerAllowList(frozenset({9}))
T = Translations.load()


def test_an_empty_list_allows_every_server_and_a_list_only_its_own() -> None:
    assert ServerAllowList().allows(123) and not ServerAllowList().restricted
    assert ALLOWED.allows(9) and not ALLOWED.allows(10)
    assert ALLOWED.allows(None)  # a DM is no server
    assert ALLOWED.outside([9, 10, 11, 9]) == [10, 11]


async def test_an_interaction_from_an_allowed_server_is_let_through_unanswered() -> None:
    inter = interaction(guild_id=9)
    assert await refuse_outside(inter, ALLOWED) is False
    inter.response.send_message.assert_not_awaited()


async def test_an_interaction_from_elsewhere_is_refused_privately() -> None:
    inter = interaction(guild_id=10)
    inter.type = discord.InteractionType.application_command
    assert await refuse_outside(inter, ALLOWED) is True
    assert private_answer(inter) == NOT_AVAILABLE_HERE


async def test_autocomplete_from_elsewhere_gets_no_choices() -> None:
    inter = interaction(guild_id=10)
    inter.type = discord.InteractionType.autocomplete
    inter.response.autocomplete = mock.AsyncMock()
    assert await refuse_outside(inter, ALLOWED) is True
    inter.response.autocomplete.assert_awaited_once_with([])


async def test_a_button_press_from_elsewhere_never_reaches_its_handler() -> None:
    handler = mock.AsyncMock()
    guarded = ServerGuardCog(ALLOWED, T).guard_button(handler)
    outside = interaction(guild_id=10)
    outside.type = discord.InteractionType.component
    await guarded(outside, "abcdefghjk")
    handler.assert_not_awaited()
    assert private_answer(outside) == NOT_AVAILABLE_HERE
    inside = interaction(guild_id=9)
    await guarded(inside, "abcdefghjk")
    handler.assert_awaited_once_with(inside, "abcdefghjk")


def guild(guild_id: int, *, may_post: bool, system_channel: bool = True) -> mock.Mock:
    found = mock.Mock(spec_set=discord.Guild)
    found.id = guild_id
    found.name = f"Server {guild_id}"
    found.leave = mock.AsyncMock()
    if not system_channel:
        found.system_channel = None
        return found
    channel = mock.Mock(spec_set=discord.TextChannel)
    channel.guild = found
    channel.permissions_for.return_value = discord.Permissions(
        view_channel=True, send_messages=may_post
    )
    channel.send = mock.AsyncMock()
    found.system_channel = channel
    found.me = mock.Mock(spec_set=discord.Member)
    return found


async def test_a_server_elsewhere_gets_the_notice_then_is_left() -> None:
    cog = ServerGuardCog(ALLOWED, T)
    elsewhere = guild(10, may_post=True)
    await cog.on_guild_join(elsewhere)
    elsewhere.system_channel.send.assert_awaited_once_with(LEAVING_NOTICE)
    elsewhere.leave.assert_awaited_once()


async def test_no_notice_where_the_bot_may_not_post_but_it_still_leaves() -> None:
    cog = ServerGuardCog(ALLOWED, T)
    mute = guild(11, may_post=False)
    await cog.on_guild_available(mute)
    mute.system_channel.send.assert_not_awaited()
    mute.leave.assert_awaited_once()
    silent = guild(12, may_post=True, system_channel=False)
    await cog.on_guild_available(silent)
    silent.leave.assert_awaited_once()


async def test_allowed_servers_and_an_empty_list_are_never_left() -> None:
    home = guild(9, may_post=True)
    await ServerGuardCog(ALLOWED, T).on_guild_available(home)
    other = guild(10, may_post=True)
    await ServerGuardCog(ServerAllowList(), T).on_guild_join(other)
    home.leave.assert_not_awaited()
    other.leave.assert_not_awaited()
    home.system_channel.send.assert_not_awaited()
