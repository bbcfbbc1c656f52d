"""Access checks: resolved permissions, the moderator role, managers, and server scoping."""

from __future__ import annotations

from unittest import mock

import discord

from bot.policy import GuildPolicy
from cogs.access import is_moderator, is_server_manager, job_visible_in, may_control
from tests.cogs.test_render import job


def member(
    *,
    perms: discord.Permissions | None = None,
    roles: tuple[int, ...] = (),
    user_id: int = 1,
    in_channel: discord.Permissions | None = None,
) -> mock.Mock:
    """A member with server-wide ``perms``; ``in_channel`` is what the interaction resolved
    for the channel of the press (server-wide plus that channel's overwrites)."""
    m = mock.Mock(spec_set=discord.Member)
    m.id = user_id
    m.guild_permissions = perms or discord.Permissions.none()
    m.resolved_permissions = in_channel or m.guild_permissions
    m.roles = [mock.Mock(spec_set=discord.Role, id=r) for r in roles]
    return m


def test_manage_messages_server_wide_makes_a_moderator() -> None:
    assert is_moderator(member(perms=discord.Permissions(manage_messages=True)), GuildPolicy())
    assert is_moderator(member(perms=discord.Permissions(administrator=True)), GuildPolicy())
    assert not is_moderator(member(perms=discord.Permissions(send_messages=True)), GuildPolicy())


def test_one_channels_overwrite_does_not_make_a_moderator_or_manager() -> None:
    # Manage Messages (or Manage Server) granted only by the overwrites of the channel where
    # the button was pressed: not a moderator of the server's jobs, not a manager.
    local = member(
        perms=discord.Permissions(send_messages=True),
        in_channel=discord.Permissions(manage_messages=True, manage_guild=True),
    )
    assert not is_moderator(local, GuildPolicy())
    assert not is_server_manager(local)


def test_a_member_of_a_server_not_in_the_cache_gets_no_rights() -> None:
    class Uncached(discord.Member):
        # What discord.py builds when the server is not cached: its guild is a bare Object.
        @property
        def guild_permissions(self) -> discord.Permissions:
            raise AttributeError("'Object' object has no attribute 'owner_id'")

    m = Uncached.__new__(Uncached)
    assert not is_moderator(m, GuildPolicy())


def test_the_configured_moderator_role_makes_a_moderator() -> None:
    policy = GuildPolicy(moderator_role_id=77)
    assert is_moderator(member(perms=discord.Permissions.none(), roles=(5, 77)), policy)
    assert not is_moderator(member(perms=discord.Permissions.none(), roles=(5,)), policy)


def test_users_outside_a_server_are_never_moderators_or_managers() -> None:
    user = mock.Mock(spec_set=discord.User, id=1)
    assert not is_moderator(user, GuildPolicy(moderator_role_id=1))
    assert not is_server_manager(user)


def test_manage_server_makes_a_manager() -> None:
    assert is_server_manager(member(perms=discord.Permissions(manage_guild=True)))
    assert not is_server_manager(member(perms=discord.Permissions(manage_messages=True)))


def test_requester_or_moderator_may_control_a_job() -> None:
    record = job()  # requester 42
    assert may_control(member(user_id=42, perms=discord.Permissions.none()), record, GuildPolicy())
    assert not may_control(
        member(user_id=5, perms=discord.Permissions.none()), record, GuildPolicy()
    )
    moderator = member(user_id=5, perms=discord.Permissions(manage_messages=True))
    assert may_control(moderator, record, GuildPolicy())


def test_a_job_is_visible_only_in_its_own_server() -> None:
    record = job()  # guild 9
    assert job_visible_in(record, 9)
    assert not job_visible_in(record, 10)
    assert not job_visible_in(record, None)
    assert not job_visible_in(None, 9)
