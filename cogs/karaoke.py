"""``/karaoke settings``: a server's Stemcord policy, changed by members with Manage Server.

Every change is stored at once and applies to the next request (a job keeps the result
channel and DM choice it was started with). ``default_permissions`` on the group hides the
commands from other members by default; the code checks Manage Server again, since server
admins can change who sees a command.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.policy import GuildPolicy, Policies
from cogs.access import is_server_manager
from cogs.render import COLOR_WORKING, FIELD_VALUE_MAX

MAX_UNFINISHED_LIMIT = 100
DAILY_QUOTA_LIMIT = 10_000
SERVER_DAILY_CAP_LIMIT = 100_000
COOLDOWN_LIMIT = 86_400
NOT_A_MANAGER = "Only members with **Manage Server** can change Stemcord's settings."


def _count(value: int, unit: str, zero: str) -> str:
    if value == 0:
        return zero
    return f"{value} {unit}{'' if value == 1 else 's'}"


def policy_embed(policy: GuildPolicy) -> discord.Embed:
    """Every setting of a server, with what it means in words."""
    embed = discord.Embed(title="Stemcord settings", colour=COLOR_WORKING)
    channels = ", ".join(f"<#{cid}>" for cid in policy.allowed_channel_ids)
    if len(channels) > FIELD_VALUE_MAX:
        channels = channels[: FIELD_VALUE_MAX - 1].rsplit(",", 1)[0] + "…"
    embed.add_field(name="Allowed channels", value=channels or "everywhere", inline=False)
    embed.add_field(
        name="Result channel",
        value=f"<#{policy.result_channel_id}>"
        if policy.result_channel_id
        else "where the command ran",
        inline=False,
    )
    embed.add_field(
        name="Required role",
        value=f"<@&{policy.required_role_id}>" if policy.required_role_id else "none (everyone)",
        inline=True,
    )
    embed.add_field(
        name="Moderator role",
        value=f"<@&{policy.moderator_role_id}>"
        if policy.moderator_role_id
        else "none (Manage Messages only)",
        inline=True,
    )
    embed.add_field(
        name="Unfinished jobs per member",
        value=_count(policy.max_unfinished, "job", "unlimited"),
        inline=True,
    )
    embed.add_field(
        name="Daily quota per member",
        value=_count(policy.daily_quota, "job", "unlimited") + " (resets 00:00 UTC)",
        inline=True,
    )
    embed.add_field(
        name="Cooldown", value=_count(policy.cooldown_seconds, "second", "none"), inline=True
    )
    embed.add_field(
        name="Daily cap for the server",
        value=_count(policy.server_daily_cap, "job", "unlimited") + " (resets 00:00 UTC)",
        inline=True,
    )
    embed.add_field(
        name="DM on completion", value="on" if policy.dm_on_completion else "off", inline=True
    )
    embed.add_field(
        name="Backing vocals in backing tracks",
        value="kept" if policy.keep_backing_vocals else "left out",
        inline=True,
    )
    return embed


def can_post_in(channel: discord.TextChannel) -> bool:
    """The bot may post a result (a message with an embed) in the channel, as far as known."""
    perms = channel.permissions_for(channel.guild.me)
    return perms.send_messages and perms.embed_links


class KaraokeCog(commands.Cog):
    """``/karaoke settings …``."""

    karaoke = app_commands.Group(
        name="karaoke",
        description="Stemcord's settings for this server",
        guild_only=True,
        default_permissions=discord.Permissions(manage_guild=True),
    )
    settings = app_commands.Group(
        name="settings", description="Show or change Stemcord's settings", parent=karaoke
    )

    def __init__(self, policies: Policies) -> None:
        self.policies = policies

    async def _policy(self, guild_id: int) -> GuildPolicy:
        return await self.policies.get(guild_id)

    async def _show(self, interaction: discord.Interaction) -> None:
        """Reply with every setting (ephemeral)."""
        if not is_server_manager(interaction.user) or interaction.guild_id is None:
            await interaction.response.send_message(NOT_A_MANAGER, ephemeral=True)
            return
        policy = await self._policy(interaction.guild_id)
        await interaction.response.send_message(embed=policy_embed(policy), ephemeral=True)

    async def _change(self, interaction: discord.Interaction, done: str, **changes: Any) -> None:
        """Store some settings and confirm with the whole policy (ephemeral)."""
        await self._update(interaction, lambda policy: (done, policy.with_changes(**changes)))

    async def _update(
        self,
        interaction: discord.Interaction,
        edit: Callable[[GuildPolicy], tuple[str, GuildPolicy]],
    ) -> None:
        """Read, edit and store the policy as one step; confirm with the whole policy."""
        guild_id = interaction.guild_id
        if not is_server_manager(interaction.user) or guild_id is None:
            await interaction.response.send_message(NOT_A_MANAGER, ephemeral=True)
            return
        said: list[str] = []

        def apply(current: GuildPolicy) -> GuildPolicy:
            done, changed = edit(current)
            said.append(done)
            return changed

        # Read-modify-write as one step (Policies.update), so no concurrent change is lost.
        policy = await self.policies.update(guild_id, apply)
        done = said[-1]
        await interaction.response.send_message(done, embed=policy_embed(policy), ephemeral=True)

    async def _change_channels(
        self, interaction: discord.Interaction, channel_id: int | None, *, allow: bool
    ) -> None:
        """Add a channel to (or take it from) the allowed list; ``None`` clears the list."""

        def edit(policy: GuildPolicy) -> tuple[str, GuildPolicy]:
            current = policy.allowed_channel_ids
            if channel_id is None:
                allowed: tuple[int, ...] = ()
                done = "Stemcord may now be used in every channel."
            elif allow:
                allowed = current if channel_id in current else (*current, channel_id)
                done = f"<#{channel_id}> is allowed. Stemcord runs only in the allowed channels."
            else:
                allowed = tuple(c for c in current if c != channel_id)
                done = (
                    f"<#{channel_id}> is no longer allowed."
                    if allowed
                    else f"<#{channel_id}> removed; no channel is listed, so Stemcord runs "
                    "everywhere."
                )
            return done, policy.with_changes(allowed_channel_ids=allowed)

        await self._update(interaction, edit)

    @settings.command(name="show", description="Show every Stemcord setting of this server")
    async def settings_show(self, interaction: discord.Interaction) -> None:
        """``/karaoke settings show``."""
        await self._show(interaction)

    @settings.command(
        name="allow_channel", description="Allow Stemcord in a channel (then only listed channels)"
    )
    @app_commands.describe(channel="A channel where members may use /separate")
    async def allow_channel(
        self, interaction: discord.Interaction, channel: discord.TextChannel
    ) -> None:
        """``/karaoke settings allow_channel``."""
        await self._change_channels(interaction, channel.id, allow=True)

    @settings.command(name="remove_channel", description="Take a channel off the allowed list")
    @app_commands.describe(channel="The channel to take off the list")
    async def remove_channel(
        self, interaction: discord.Interaction, channel: discord.TextChannel
    ) -> None:
        """``/karaoke settings remove_channel``."""
        await self._change_channels(interaction, channel.id, allow=False)

    @settings.command(name="all_channels", description="Allow Stemcord in every channel again")
    async def all_channels(self, interaction: discord.Interaction) -> None:
        """``/karaoke settings all_channels``."""
        await self._change_channels(interaction, None, allow=True)

    @settings.command(
        name="result_channel", description="Post results in this channel (leave empty: where asked)"
    )
    @app_commands.describe(channel="Where results go; leave empty to post where the command ran")
    async def result_channel(
        self, interaction: discord.Interaction, channel: discord.TextChannel | None = None
    ) -> None:
        """``/karaoke settings result_channel``."""
        done = (
            f"Results now go to <#{channel.id}>; status messages stay where the command ran."
            if channel is not None
            else "Results now go to the channel where the command ran."
        )
        if channel is not None and not can_post_in(channel):
            done += (
                " I cannot post there yet: give me **Send Messages** and **Embed Links** in "
                "that channel (until then results go where the command ran)."
            )
        await self._change(interaction, done, result_channel_id=channel.id if channel else None)

    @settings.command(
        name="required_role", description="Only members with this role may use /separate"
    )
    @app_commands.describe(role="The role needed; leave empty to let everyone use it")
    async def required_role(
        self, interaction: discord.Interaction, role: discord.Role | None = None
    ) -> None:
        """``/karaoke settings required_role``."""
        done = (
            f"Members now need <@&{role.id}> to use /separate (moderators always may)."
            if role is not None
            else "Every member may use /separate."
        )
        await self._change(
            interaction, done, required_role_id=role.id if role is not None else None
        )

    @settings.command(
        name="moderator_role", description="Members with this role moderate the queue"
    )
    @app_commands.describe(role="The moderator role; leave empty for Manage Messages only")
    async def moderator_role(
        self, interaction: discord.Interaction, role: discord.Role | None = None
    ) -> None:
        """``/karaoke settings moderator_role``."""
        done = (
            f"<@&{role.id}> and members with Manage Messages are now moderators."
            if role is not None
            else "Members with Manage Messages are the moderators."
        )
        await self._change(
            interaction, done, moderator_role_id=role.id if role is not None else None
        )

    @settings.command(
        name="max_unfinished",
        description="Unfinished jobs one member may have at once (0 = no cap)",
    )
    @app_commands.describe(count="Jobs at once per member; 0 = unlimited (default 2)")
    async def max_unfinished(
        self,
        interaction: discord.Interaction,
        count: app_commands.Range[int, 0, MAX_UNFINISHED_LIMIT],
    ) -> None:
        """``/karaoke settings max_unfinished``."""
        done = (
            f"Each member may now have {_count(count, 'unfinished job', 'unlimited jobs')} at once."
        )
        await self._change(interaction, done, max_unfinished=count)

    @settings.command(
        name="daily_quota", description="Jobs one member may start per day (0 = unlimited)"
    )
    @app_commands.describe(count="Jobs per member per UTC day; 0 = unlimited (default 10)")
    async def daily_quota(
        self, interaction: discord.Interaction, count: app_commands.Range[int, 0, DAILY_QUOTA_LIMIT]
    ) -> None:
        """``/karaoke settings daily_quota``."""
        done = f"Daily quota per member: {_count(count, 'job', 'unlimited')}."
        await self._change(interaction, done, daily_quota=count)

    @settings.command(
        name="server_daily_cap",
        description="Jobs the whole server may start per day (0 = unlimited)",
    )
    @app_commands.describe(count="Jobs per UTC day for every member together; 0 = unlimited")
    async def server_daily_cap(
        self,
        interaction: discord.Interaction,
        count: app_commands.Range[int, 0, SERVER_DAILY_CAP_LIMIT],
    ) -> None:
        """``/karaoke settings server_daily_cap``."""
        done = f"Daily cap for the whole server: {_count(count, 'job', 'unlimited')}."
        await self._change(interaction, done, server_daily_cap=count)

    @settings.command(
        name="cooldown", description="Seconds a member waits between two requests (0 = none)"
    )
    @app_commands.describe(seconds="Seconds between two requests of one member; 0 = none")
    async def cooldown(
        self, interaction: discord.Interaction, seconds: app_commands.Range[int, 0, COOLDOWN_LIMIT]
    ) -> None:
        """``/karaoke settings cooldown``."""
        done = f"Cooldown between requests: {_count(seconds, 'second', 'none')}."
        await self._change(interaction, done, cooldown_seconds=seconds)

    @settings.command(
        name="dm_on_completion", description="Also send each result to its requester by DM"
    )
    @app_commands.describe(enabled="On: the requester also gets the result by DM")
    async def dm_on_completion(self, interaction: discord.Interaction, enabled: bool) -> None:
        """``/karaoke settings dm_on_completion``."""
        done = "Requesters now also get their result by DM." if enabled else "No more DM copies."
        await self._change(interaction, done, dm_on_completion=enabled)

    @settings.command(
        name="backing_vocals",
        description="Keep the backing vocals in backing tracks mixed from every stem",
    )
    @app_commands.describe(
        keep="On: harmonies stay in the backing track (default); off: only instruments"
    )
    async def backing_vocals(self, interaction: discord.Interaction, keep: bool) -> None:
        """``/karaoke settings backing_vocals``."""
        done = (
            "Backing tracks mixed from every stem now keep the backing vocals."
            if keep
            else "Backing tracks mixed from every stem now leave the backing vocals out."
        )
        await self._change(interaction, done, keep_backing_vocals=keep)
