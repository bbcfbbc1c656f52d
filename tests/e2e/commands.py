"""Helpers for end-to-end tests of the moderation and settings commands."""

from __future__ import annotations

import time
from typing import Any

from bot.policy import GuildPolicy, save_policy
from storage.sqlite import SqliteJobStore
from tests.e2e.conftest import World
from tests.fakes.discord_models import (
    MANAGE_GUILD,
    MANAGE_MESSAGES,
    MEMBER_PERMISSIONS,
    FakeInteraction,
    FakeMessage,
)

MEMBER = str(MEMBER_PERMISSIONS)
MODERATOR = str(MEMBER_PERMISSIONS | MANAGE_MESSAGES)
MANAGER = str(MEMBER_PERMISSIONS | MANAGE_GUILD)


async def slash(
    world: World,
    name: str,
    *,
    user_id: int | None = None,
    permissions: str = MEMBER,
    channel_id: int | None = None,
    guild_id: int | None = None,
    **options: Any,
) -> FakeInteraction:
    """Someone runs ``/name`` (a path such as ``"jobs status"``) with these options.

    ``permissions`` beyond a plain member's are held server-wide, through a role, as a real
    moderator or manager holds them (Stemcord ignores rights granted by one channel alone).
    """
    grant_server_wide(world, user_id or world.member.id, permissions, guild_id)
    return await world.discord.invoke_slash(
        guild_id=guild_id or world.guild.id,
        channel_id=channel_id or world.guild.channel_id,
        user_id=user_id or world.member.id,
        name=name,
        options=[{"name": k, "value": v} for k, v in options.items()],
        permissions=permissions,
    )


def grant_server_wide(
    world: World, user_id: int, permissions: str, guild_id: int | None = None
) -> None:
    """Give the member a role carrying ``permissions`` beyond a plain member's (once)."""
    extra = int(permissions) & ~MEMBER_PERMISSIONS
    if not extra:
        return
    guild = world.discord.guilds[guild_id or world.guild.id]
    name = f"rights-{extra}"
    role_id = next((rid for rid, (n, _) in guild.roles.items() if n == name), None)
    if role_id is None:
        role_id = world.discord.add_role(guild.id, name, permissions=extra)
    world.discord.give_role(guild.id, user_id, role_id)


async def answer(world: World, interaction: FakeInteraction) -> FakeMessage:
    """The message the member finally sees: the first response, or the followup."""

    def shown() -> FakeMessage | None:
        if interaction.followups:
            return interaction.followups[-1]
        message = interaction.original_message
        if message is not None and not message.deleted and not message.loading:
            return message
        return None

    await world.discord.wait_until(lambda: shown() is not None)
    found = shown()
    assert found is not None
    return found


def text(message: FakeMessage) -> str:
    """Content and embeds of a message as one string (for assertions)."""
    return f"{message.content} {message.embeds}"


async def set_policy(world: World, policy: GuildPolicy) -> None:
    """Store the guild's policy directly (before the app starts), as /karaoke would."""
    store = SqliteJobStore(world.db_path)
    await store.open()
    try:
        await save_policy(store, world.guild.id, policy, time.time())
    finally:
        await store.close()
