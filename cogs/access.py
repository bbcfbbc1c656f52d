"""Who may do what with a job, enforced in code.

``default_permissions`` on a command is only a default that server admins can change (and is
ignored on subcommands), so every moderator action checks again here.
"""

from __future__ import annotations

import discord

from bot.policy import GuildPolicy
from storage.records import JobRecord


def _permissions(member: discord.Member) -> discord.Permissions:
    """The member's server-wide permissions (roles, ownership, Administrator).

    Not the permissions an interaction carries: those include the overwrites of the one
    channel where the button was pressed, and a channel where someone may manage messages
    must not make them a moderator of every job in the server. Without the server in the
    cache nothing can be known, so nothing is granted.
    """
    try:
        return member.guild_permissions
    except AttributeError:
        return discord.Permissions.none()


def is_moderator(member: discord.Member | discord.User, policy: GuildPolicy) -> bool:
    """Manage Messages server-wide, or the server's configured moderator role."""
    if not isinstance(member, discord.Member):
        return False
    perms = _permissions(member)
    if perms.manage_messages or perms.administrator:
        return True
    role_id = policy.moderator_role_id
    return role_id is not None and any(role.id == role_id for role in member.roles)


def is_server_manager(member: discord.Member | discord.User) -> bool:
    """Manage Server (or Administrator): may change ``/karaoke`` settings and see credits."""
    if not isinstance(member, discord.Member):
        return False
    perms = _permissions(member)
    return perms.manage_guild or perms.administrator


def may_control(member: discord.Member | discord.User, job: JobRecord, policy: GuildPolicy) -> bool:
    """The requester, or a moderator of the job's server, may cancel or refresh a job."""
    return member.id == job.requester_id or is_moderator(member, policy)


def job_visible_to(job: JobRecord | None, guild_id: int | None, user_id: int) -> bool:
    """Whether a job exists for someone asking from ``guild_id`` (``None``: a DM).

    In a server: only that server's jobs (ids never leak across servers). In a DM: only the
    member's own jobs, whose results the bot sent there (the job's server's rules still
    apply to what they may do with it).
    """
    if job is None:
        return False
    if guild_id is not None:
        return job.guild_id == guild_id
    return job.requester_id == user_id
