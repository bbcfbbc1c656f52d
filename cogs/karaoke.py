"""``/karaoke settings``: a server's Stemcord policy, changed by members with Manage Server.

Every change is stored at once and applies to the next request (a job keeps the result
channel and DM choice it was started with). ``default_permissions`` on the group hides the
commands from other members by default; the code checks Manage Server again, since server
admins can change who sees a command. Every answer is private, in the language of the member
who asked (``interaction.locale``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.policy import GuildPolicy, Policies
from cogs.access import is_server_manager
from cogs.i18n import N_, LocaleLike, Translations, member_locale
from cogs.mentions import channel_mention, role_mention
from cogs.render import COLOR_WORKING, FIELD_VALUE_MAX

MAX_UNFINISHED_LIMIT = 100
DAILY_QUOTA_LIMIT = 10_000
SERVER_DAILY_CAP_LIMIT = 100_000
COOLDOWN_LIMIT = 86_400
NOT_A_MANAGER = N_("Only members with **Manage Server** can change Stemcord's settings.")
MINUTE = 60


def _jobs(t: Translations, locale: LocaleLike, count: int) -> str:
    if count == 0:
        return t.text(locale, "unlimited")
    return t.plural(locale, "{count} job", "{count} jobs", count)


def _daily(t: Translations, locale: LocaleLike, count: int) -> str:
    if count == 0:
        return t.text(locale, "unlimited")
    return t.plural(
        locale, "{count} job (resets 00:00 UTC)", "{count} jobs (resets 00:00 UTC)", count
    )


def _seconds(t: Translations, locale: LocaleLike, seconds: int) -> str:
    if seconds == 0:
        return t.text(locale, "none")
    if seconds < MINUTE:
        return t.plural(locale, "{count} second", "{count} seconds", seconds)
    # The exact setting, then how long that is in words ("about 10 minutes").
    return t.plural(
        locale,
        "{count} second ({duration})",
        "{count} seconds ({duration})",
        seconds,
        duration=t.duration(locale, seconds),
    )


def policy_embed(t: Translations, locale: LocaleLike, policy: GuildPolicy) -> discord.Embed:
    """Every setting of a server, with what it means in words, in the language of ``locale``."""
    embed = discord.Embed(title=t.text(locale, "Stemcord settings"), colour=COLOR_WORKING)
    channels = ", ".join(f"<#{cid}>" for cid in policy.allowed_channel_ids)
    if len(channels) > FIELD_VALUE_MAX:
        channels = channels[: FIELD_VALUE_MAX - 1].rsplit(",", 1)[0] + "…"
    embed.add_field(
        name=t.text(locale, "Allowed channels"),
        value=channels or t.text(locale, "everywhere"),
        inline=False,
    )
    embed.add_field(
        name=t.text(locale, "Result channel"),
        value=f"<#{policy.result_channel_id}>"
        if policy.result_channel_id
        else t.text(locale, "where the command ran"),
        inline=False,
    )
    embed.add_field(
        name=t.text(locale, "Required role"),
        value=f"<@&{policy.required_role_id}>"
        if policy.required_role_id
        else t.text(locale, "none (everyone)"),
        inline=True,
    )
    embed.add_field(
        name=t.text(locale, "Moderator role"),
        value=f"<@&{policy.moderator_role_id}>"
        if policy.moderator_role_id
        else t.text(locale, "none (Manage Messages only)"),
        inline=True,
    )
    embed.add_field(
        name=t.text(locale, "Unfinished jobs per member"),
        value=_jobs(t, locale, policy.max_unfinished),
        inline=True,
    )
    embed.add_field(
        name=t.text(locale, "Daily quota per member"),
        value=_daily(t, locale, policy.daily_quota),
        inline=True,
    )
    embed.add_field(
        name=t.text(locale, "Cooldown"),
        value=_seconds(t, locale, policy.cooldown_seconds),
        inline=True,
    )
    embed.add_field(
        name=t.text(locale, "Daily cap for the server"),
        value=_daily(t, locale, policy.server_daily_cap),
        inline=True,
    )
    embed.add_field(
        name=t.text(locale, "DM on completion"),
        # TRANSLATORS: the state of the setting "DM on completion".
        value=t.text(locale, "on") if policy.dm_on_completion else t.text(locale, "off"),
        inline=True,
    )
    embed.add_field(
        name=t.text(locale, "Backing vocals in backing tracks"),
        # TRANSLATORS: whether backing tracks keep the backing vocals (harmonies).
        value=t.text(locale, "kept") if policy.keep_backing_vocals else t.text(locale, "left out"),
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

    def __init__(self, policies: Policies, translations: Translations) -> None:
        self.policies = policies
        self.t = translations

    async def _policy(self, guild_id: int) -> GuildPolicy:
        return await self.policies.get(guild_id)

    async def _show(self, interaction: discord.Interaction) -> None:
        """Reply with every setting (ephemeral)."""
        locale = member_locale(interaction)
        if not is_server_manager(interaction.user) or interaction.guild_id is None:
            await interaction.response.send_message(
                self.t.text(locale, NOT_A_MANAGER), ephemeral=True
            )
            return
        policy = await self._policy(interaction.guild_id)
        embed = policy_embed(self.t, locale, policy)
        await interaction.response.send_message(embed=embed, ephemeral=True)

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
        locale = member_locale(interaction)
        if not is_server_manager(interaction.user) or guild_id is None:
            await interaction.response.send_message(
                self.t.text(locale, NOT_A_MANAGER), ephemeral=True
            )
            return
        said: list[str] = []

        def apply(current: GuildPolicy) -> GuildPolicy:
            done, changed = edit(current)
            said.append(done)
            return changed

        # Read-modify-write as one step (Policies.update), so no concurrent change is lost.
        policy = await self.policies.update(guild_id, apply)
        done = said[-1]
        embed = policy_embed(self.t, locale, policy)
        await interaction.response.send_message(done, embed=embed, ephemeral=True)

    async def _change_channels(
        self, interaction: discord.Interaction, channel_id: int | None, *, allow: bool
    ) -> None:
        """Add a channel to (or take it from) the allowed list; ``None`` clears the list."""
        t, locale = self.t, member_locale(interaction)
        channel = channel_mention(channel_id) if channel_id is not None else ""

        def edit(policy: GuildPolicy) -> tuple[str, GuildPolicy]:
            current = policy.allowed_channel_ids
            if channel_id is None:
                allowed: tuple[int, ...] = ()
                done = t.text(locale, "Stemcord may now be used in every channel.")
            elif allow:
                allowed = current if channel_id in current else (*current, channel_id)
                done = t.text(
                    locale,
                    "{channel} is allowed. Stemcord runs only in the allowed channels.",
                    channel=channel,
                )
            else:
                allowed = tuple(c for c in current if c != channel_id)
                done = (
                    t.text(locale, "{channel} is no longer allowed.", channel=channel)
                    if allowed
                    else t.text(
                        locale,
                        "{channel} removed; no channel is listed, so Stemcord runs everywhere.",
                        channel=channel,
                    )
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
        t, locale = self.t, member_locale(interaction)
        if channel is None:
            done = t.text(locale, "Results now go to the channel where the command ran.")
        elif can_post_in(channel):
            done = t.text(
                locale,
                "Results now go to {channel}; status messages stay where the command ran.",
                channel=channel_mention(channel.id),
            )
        else:
            done = t.text(
                locale,
                "Results now go to {channel}; status messages stay where the command ran. I "
                "cannot post there yet: give me **Send Messages** and **Embed Links** in that "
                "channel (until then results go where the command ran).",
                channel=channel_mention(channel.id),
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
        t, locale = self.t, member_locale(interaction)
        done = (
            t.text(
                locale,
                "Members now need {role} to use /separate (moderators always may).",
                role=role_mention(role.id),
            )
            if role is not None
            else t.text(locale, "Every member may use /separate.")
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
        t, locale = self.t, member_locale(interaction)
        done = (
            t.text(
                locale,
                "{role} and members with Manage Messages are now moderators.",
                role=role_mention(role.id),
            )
            if role is not None
            else t.text(locale, "Members with Manage Messages are the moderators.")
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
        t, locale = self.t, member_locale(interaction)
        if count == 0:
            done = t.text(locale, "Each member may now have unlimited jobs at once.")
        else:
            done = t.plural(
                locale,
                "Each member may now have {count} unfinished job at once.",
                "Each member may now have {count} unfinished jobs at once.",
                count,
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
        t, locale = self.t, member_locale(interaction)
        if count == 0:
            done = t.text(locale, "Daily quota per member: unlimited.")
        else:
            done = t.plural(
                locale,
                "Daily quota per member: {count} job.",
                "Daily quota per member: {count} jobs.",
                count,
            )
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
        t, locale = self.t, member_locale(interaction)
        if count == 0:
            done = t.text(locale, "Daily cap for the whole server: unlimited.")
        else:
            done = t.plural(
                locale,
                "Daily cap for the whole server: {count} job.",
                "Daily cap for the whole server: {count} jobs.",
                count,
            )
        await self._change(interaction, done, server_daily_cap=count)

    @settings.command(
        name="cooldown", description="Seconds a member waits between two requests (0 = none)"
    )
    @app_commands.describe(seconds="Seconds between two requests of one member; 0 = none")
    async def cooldown(
        self, interaction: discord.Interaction, seconds: app_commands.Range[int, 0, COOLDOWN_LIMIT]
    ) -> None:
        """``/karaoke settings cooldown``."""
        t, locale = self.t, member_locale(interaction)
        if seconds == 0:
            done = t.text(locale, "Cooldown between requests: none.")
        else:
            done = t.text(
                locale,
                "Cooldown between requests: {cooldown}.",
                cooldown=_seconds(t, locale, seconds),
            )
        await self._change(interaction, done, cooldown_seconds=seconds)

    @settings.command(
        name="dm_on_completion", description="Also send each result to its requester by DM"
    )
    @app_commands.describe(enabled="On: the requester also gets the result by DM")
    async def dm_on_completion(self, interaction: discord.Interaction, enabled: bool) -> None:
        """``/karaoke settings dm_on_completion``."""
        t, locale = self.t, member_locale(interaction)
        done = (
            t.text(locale, "Requesters now also get their result by DM.")
            if enabled
            else t.text(locale, "No more DM copies.")
        )
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
        t, locale = self.t, member_locale(interaction)
        done = (
            t.text(locale, "Backing tracks mixed from every stem now keep the backing vocals.")
            if keep
            else t.text(
                locale, "Backing tracks mixed from every stem now leave the backing vocals out."
            )
        )
        await self._change(interaction, done, keep_backing_vocals=keep)
