"""Only the servers the operator allows (``ALLOWED_GUILD_IDS``).

Every server the bot is in spends the operator's one Vidgo balance, so with a list set:

* a server not on it is left as soon as the bot learns of it: when it is added there
  (``on_guild_join``) and, at start or after an outage, for every server it is already in
  (``on_guild_available``). Before leaving it posts one short notice to the server's system
  channel if it may post there (nothing otherwise), and logs one line per server;
* an interaction from such a server (a member quick enough to use a command before the bot
  left) is answered privately with :data:`NOT_AVAILABLE_HERE` and starts nothing: slash
  commands, menus and autocomplete through :class:`ServerCheckedTree`, job buttons through
  :meth:`ServerGuardCog.guard_button`.

The private refusal is in the member's language; the notice, posted without an interaction,
in the server's preferred locale (:func:`cogs.i18n.guild_locale`). The log lines are for the
operator and stay English.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol, runtime_checkable

import discord
from discord import app_commands
from discord.ext import commands

from bot.policy import ServerAllowList
from cogs.buttons import ButtonHandler
from cogs.gate import translations_for
from cogs.i18n import N_, Translations, guild_locale, member_locale

log = logging.getLogger(__name__)

NOT_AVAILABLE_HERE = N_(
    "Stemcord is not available in this server: its operator runs it only for other servers, "
    "so it is leaving. Nothing was started."
)
LEAVING_NOTICE = N_(
    "Hello! This Stemcord bot is run privately for a few servers, and this server is not one "
    "of them, so it is leaving now. If you expected it here, ask whoever runs it to add this "
    "server to its list."
)


@runtime_checkable
class GuardedClient(Protocol):
    """A client that knows which servers it may work in (:class:`cogs.client.StemcordBot`)."""

    @property
    def allowed_servers(self) -> ServerAllowList:
        """The operator's list."""
        ...


async def refuse_outside(
    interaction: discord.Interaction, allowed: ServerAllowList, t: Translations | None = None
) -> bool:
    """Answer an interaction from a server not on the list privately (in the member's
    language); ``True`` if refused.

    Autocomplete gets no choices (it cannot carry a sentence). A failure to answer is logged,
    never raised: the point is that nothing else runs.
    """
    if allowed.allows(interaction.guild_id):
        return False
    log.info(
        "refused an interaction from server %s: it is not in ALLOWED_GUILD_IDS",
        interaction.guild_id,
    )
    refusal = translations_for(interaction, t).text(member_locale(interaction), NOT_AVAILABLE_HERE)
    try:
        if interaction.type is discord.InteractionType.autocomplete:
            await interaction.response.autocomplete([])
        elif interaction.response.is_done():
            await interaction.followup.send(refusal, ephemeral=True)
        else:
            await interaction.response.send_message(refusal, ephemeral=True)
    except discord.HTTPException as exc:
        log.info("could not answer the refused interaction (%s)", exc.status)
    return True


class ServerCheckedTree(app_commands.CommandTree[Any]):
    """The command tree, refusing every command, menu and autocomplete from a server that is
    not on the operator's list before anything else runs."""

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        """``False`` (and a private refusal) for an interaction from a server not allowed."""
        client = self.client
        if not isinstance(client, GuardedClient):
            return True
        return not await refuse_outside(interaction, client.allowed_servers)


def may_post_notice(channel: discord.TextChannel | None) -> bool:
    """The bot may post plain text in the server's system channel, as far as it knows."""
    if channel is None:
        return False
    # Typed as always there; it is missing until the bot's own member is cached.
    me: discord.Member | None = channel.guild.me
    if me is None:
        return False
    perms = channel.permissions_for(me)
    return perms.view_channel and perms.send_messages


class ServerGuardCog(commands.Cog):
    """Leaves the servers that are not on the operator's list (see the module docstring)."""

    def __init__(self, allowed: ServerAllowList, translations: Translations) -> None:
        self.allowed = allowed
        self.t = translations
        # Servers being left now: an outage can announce a server again while we leave it.
        self._leaving: set[int] = set()

    @commands.Cog.listener()
    async def on_guild_join(self, guild: discord.Guild) -> None:
        """Added to a server: leave it at once if it is not allowed."""
        await self.leave_if_outside(guild, when="was added to")

    @commands.Cog.listener()
    async def on_guild_available(self, guild: discord.Guild) -> None:
        """A server the bot is already in (at start, or back after an outage)."""
        await self.leave_if_outside(guild, when="is in")

    async def leave_if_outside(self, guild: discord.Guild, *, when: str) -> bool:
        """Post the notice if allowed to, leave, and log one line; ``True`` if it left."""
        if self.allowed.allows(guild.id) or guild.id in self._leaving:
            return False
        self._leaving.add(guild.id)
        try:
            noticed = False
            channel = guild.system_channel
            if may_post_notice(channel):
                assert channel is not None  # noqa: S101 - may_post_notice checked it
                try:
                    await channel.send(self.t.text(guild_locale(guild), LEAVING_NOTICE))
                    noticed = True
                except discord.HTTPException as exc:
                    log.debug("could not post the leaving notice in %s (%s)", guild.id, exc.status)
            try:
                await guild.leave()
            except discord.HTTPException as exc:
                log.warning(
                    "the bot %s server %s (%s), which is not in ALLOWED_GUILD_IDS, and could "
                    "not leave it (HTTP %s); remove it from that server by hand",
                    when,
                    guild.id,
                    guild.name,
                    exc.status,
                )
                return False
            log.warning(
                "left server %s (%s): it is not in ALLOWED_GUILD_IDS (the bot %s it; %s)",
                guild.id,
                guild.name,
                when,
                "a notice was posted in its system channel" if noticed else "no notice posted",
            )
            return True
        finally:
            self._leaving.discard(guild.id)

    def guard_button(self, handler: ButtonHandler) -> ButtonHandler:
        """``handler``, run only for presses from an allowed server (others are refused)."""
        allowed = self.allowed
        t = self.t

        async def guarded(interaction: discord.Interaction, job_id: str) -> None:
            if await refuse_outside(interaction, allowed, t):
                return
            await handler(interaction, job_id)

        return guarded
