"""The fake Discord's roles (guild and member), resolved channel and role options, subcommand
paths and autocomplete."""

from __future__ import annotations

import asyncio
from typing import Any

import discord
import pytest
from discord.ext import commands

from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_models import MANAGE_MESSAGES, MEMBER_PERMISSIONS

TOKEN = "test-discord-token"


class RoleBot(commands.Bot):
    def __init__(self, seen: list[Any]) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),
            guild_ready_timeout=0.05,
            help_command=None,
        )
        self.seen = seen

    async def setup_hook(self) -> None:
        @self.tree.command(name="pick", description="Takes a role and a channel")
        async def pick(
            interaction: discord.Interaction, role: discord.Role, channel: discord.TextChannel
        ) -> None:
            member = interaction.user
            assert isinstance(member, discord.Member)
            self.seen.append(
                (
                    role.id,
                    role.name,
                    channel.id,
                    [r.id for r in member.roles if not r.is_default()],
                    member.resolved_permissions,
                )
            )
            await interaction.response.send_message("ok", ephemeral=True)


async def test_roles_reach_the_cache_and_interactions_carry_member_roles() -> None:
    async with FakeDiscord() as fake:
        guild = fake.add_guild()
        second_channel = fake.add_channel(guild.id)
        user = fake.add_user(name="mod")
        early_role = fake.add_role(guild.id, "singers")
        seen: list[Any] = []
        bot = RoleBot(seen)
        with fake.redirect_discord_py():
            task = asyncio.create_task(bot.start(TOKEN))
            try:
                await fake.wait_until_ready(5)
                await asyncio.wait_for(bot.wait_until_ready(), 5)
                await bot.tree.sync()
                late_role = fake.add_role(guild.id, "mods", MANAGE_MESSAGES)
                cached = bot.get_guild(guild.id)
                assert cached is not None
                assert cached.get_role(early_role) is not None
                await fake.wait_until(lambda: cached.get_role(late_role) is not None)
                fake.give_role(guild.id, user.id, late_role)
                await fake.invoke_slash(
                    guild_id=guild.id,
                    channel_id=guild.channel_id,
                    user_id=user.id,
                    name="pick",
                    options=[
                        {"name": "role", "value": early_role},
                        {"name": "channel", "value": second_channel},
                    ],
                    permissions=str(MEMBER_PERMISSIONS | MANAGE_MESSAGES),
                )
                await fake.wait_until(lambda: bool(seen))
            finally:
                await bot.close()
                await task
        [(role_id, name, channel_id, member_roles, perms)] = seen
        assert (role_id, name, channel_id) == (early_role, "singers", second_channel)
        assert member_roles == [late_role]
        assert perms is not None and perms.manage_messages
        assert fake.rule_violations == []


async def test_unknown_role_option_is_refused() -> None:
    async with FakeDiscord() as fake:
        guild = fake.add_guild()
        with pytest.raises(ValueError, match="no role"):
            fake.give_role(guild.id, 1, 12345)


async def test_subcommand_paths_are_nested_like_discord_nests_them() -> None:
    async with FakeDiscord() as fake:
        guild = fake.add_guild()
        user = fake.add_user()
        seen: list[int] = []
        bot = RoleBot([])
        group = discord.app_commands.Group(name="outer", description="o")
        inner = discord.app_commands.Group(name="inner", description="i", parent=group)

        @inner.command(name="leaf", description="l")
        async def leaf(interaction: discord.Interaction, count: int) -> None:
            seen.append(count)
            await interaction.response.send_message("ok", ephemeral=True)

        bot.tree.add_command(group)
        with fake.redirect_discord_py():
            task = asyncio.create_task(bot.start(TOKEN))
            try:
                await fake.wait_until_ready(5)
                await asyncio.wait_for(bot.wait_until_ready(), 5)
                await bot.tree.sync()
                await fake.invoke_slash(
                    guild_id=guild.id,
                    channel_id=guild.channel_id,
                    user_id=user.id,
                    name="outer inner leaf",
                    options=[{"name": "count", "value": 3}],
                )
                await fake.wait_until(lambda: bool(seen))
                with pytest.raises(ValueError, match="no subcommand"):
                    await fake.invoke_slash(
                        guild_id=guild.id,
                        channel_id=guild.channel_id,
                        user_id=user.id,
                        name="outer nothing",
                    )
            finally:
                await bot.close()
                await task
        assert seen == [3]
        assert fake.rule_violations == []


async def test_autocomplete_is_answered_with_choices_and_bad_choices_are_refused() -> None:
    async with FakeDiscord() as fake:
        guild = fake.add_guild()
        user = fake.add_user()
        bot = RoleBot([])
        many = {"on": False}

        async def complete(
            interaction: discord.Interaction, current: str
        ) -> list[discord.app_commands.Choice[str]]:
            count = 30 if many["on"] else 2
            return [
                discord.app_commands.Choice(name=f"{current}-{i}", value=str(i))
                for i in range(count)
            ]

        @bot.tree.command(name="find", description="f")
        @discord.app_commands.autocomplete(item=complete)
        async def find(interaction: discord.Interaction, item: str) -> None:
            await interaction.response.send_message(item, ephemeral=True)

        with fake.redirect_discord_py():
            task = asyncio.create_task(bot.start(TOKEN))
            try:
                await fake.wait_until_ready(5)
                await asyncio.wait_for(bot.wait_until_ready(), 5)
                await bot.tree.sync()
                asked = await fake.invoke_autocomplete(
                    guild_id=guild.id,
                    channel_id=guild.channel_id,
                    user_id=user.id,
                    name="find",
                    focused="item",
                    typed="ab",
                )
                await fake.wait_until(lambda: asked.choices is not None)
                assert asked.choices == [
                    {"name": "ab-0", "value": "0"},
                    {"name": "ab-1", "value": "1"},
                ]
                assert asked.response_type == 8
                many["on"] = True
                # discord.py sends all 30; Discord refuses more than 25, and so does the fake.
                over = await fake.invoke_autocomplete(
                    guild_id=guild.id,
                    channel_id=guild.channel_id,
                    user_id=user.id,
                    name="find",
                    focused="item",
                )
                await fake.wait_until(lambda: bool(over.responses))
            finally:
                await bot.close()
                await task
        assert over.choices is None
        assert any("choices" in v for v in fake.rule_violations)
