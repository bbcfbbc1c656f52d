"""Helpers for end-to-end tests of the moderation and settings commands."""

from __future__ import annotations

import time
from typing import Any

from bot.policy import GuildPolicy, save_policy
from storage.jobstate import JobState
from storage.records import JobRecord
from storage.sqlite import SqliteJobStore
from tests.e2e.conftest import World
from tests.fakes.discord_models import (
    MANAGE_GUILD,
    MANAGE_MESSAGES,
    MEMBER_PERMISSIONS,
    FakeInteraction,
    FakeMessage,
)
from tests.fakes.vidgo import GENERATION_AUDIO_IDS, GENERATION_TASK_ID

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


# --- separations and the Lyrics button -------------------------------------------------------


def lyrics_button(message: FakeMessage) -> str | None:
    for row in message.components:
        for component in row.get("components", []):
            if str(component.get("custom_id", "")).startswith("stemcord:lyrics:"):
                return str(component["custom_id"])
    return None


async def separated(
    world: World, task_id: str = GENERATION_TASK_ID, audio_id: str = GENERATION_AUDIO_IDS[0]
) -> tuple[JobRecord, FakeMessage]:
    """Run /separate on a Vidgo song and wait for its result message."""
    await world.separate(task_id=task_id, audio_id=audio_id)
    job = await world.job_for_task_wait()
    await world.vidgo.finish(job.vidgo_task_id or "")
    done = await world.wait_job(job.id, JobState.DELIVERED)
    [message] = world.outcome_messages(job.id)
    return done, message


async def press(world: World, message: FakeMessage, user_id: int | None = None) -> FakeInteraction:
    custom_id = lyrics_button(message)
    assert custom_id is not None
    return await world.discord.invoke_component(
        guild_id=world.guild.id,
        channel_id=world.guild.channel_id,
        user_id=user_id or world.member.id,
        message_id=message.id,
        custom_id=custom_id,
    )


async def answered(world: World, interaction: FakeInteraction) -> str:
    """The private answer to a press or command, once it is there."""

    def done() -> bool:
        original = interaction.original_message
        return original is not None and not original.loading and bool(original.content)

    await world.discord.wait_until(done)
    assert interaction.ephemeral
    assert interaction.original_message is not None
    return interaction.original_message.content


def lyrics_replies(world: World, to: FakeMessage) -> list[FakeMessage]:
    return [
        m
        for m in world.discord.channel_messages(to.channel_id)
        if m.reference_id == to.id and not m.deleted and (m.nonce or "").startswith("stemcord-")
    ]


def lyrics_tasks(world: World) -> list[str]:
    return [t.task_id for t in world.vidgo.tasks.values() if t.model == "get-timestamped-lyrics"]
