"""Access checks: resolved permissions, the moderator role, managers, and server scoping."""

from __future__ import annotations

from unittest import mock

import discord

from bot.policy import GuildPolicy
from cogs.access import is_moderator, is_server_manager, job_visible_to, may_control
from tests.helpers import job, member


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


def test_a_job_is_visible_only_in_its_own_server_or_to_its_requester_in_dms() -> None:
    record = job()  # guild 9, requester 42
    assert job_visible_to(record, 9, 1)
    assert not job_visible_to(record, 10, 42)  # another server, even for the requester
    assert job_visible_to(record, None, 42)  # the requester's DMs (a result sent there)
    assert not job_visible_to(record, None, 1)  # someone else's DMs
    assert not job_visible_to(None, 9, 42)
