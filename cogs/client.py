"""Stemcord's discord.py client: intents, mention defaults, and one error answer for commands.

The client holds no services. The composition root (:mod:`bot.app`) builds every collaborator
and gives the client one ``setup`` coroutine, run from discord.py's ``setup_hook`` once the
client exists: it adds the cogs (each constructed with what it needs), the restart-proof
buttons, and starts whatever runs beside Discord.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from typing import cast

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from bot.doctor import command_drift, describe_network_error, sync_command
from bot.policy import ServerAllowList
from cogs.buttons import ButtonRouter
from cogs.i18n import N_, LocaleLike, Translations, member_locale
from cogs.servers import ServerCheckedTree

log = logging.getLogger(__name__)

SOMETHING_WENT_WRONG = N_("Something went wrong on Stemcord's side; please try again in a minute.")
# Spoken when a client has no catalogs to offer (a StemcordBot always carries its own).
_SOURCE_TEXT = Translations.source_only()


def bot_intents() -> discord.Intents:
    """Only guild events: Stemcord works through slash commands and never reads messages.

    Leaving out the message intents also spares the bot from parsing a gateway event for
    every message it posts itself.
    """
    intents = discord.Intents.none()
    intents.guilds = True
    return intents


def error_sentence(
    error: app_commands.AppCommandError,
    locale: LocaleLike = None,
    translations: Translations = _SOURCE_TEXT,
) -> str:
    """The private sentence a member gets when a command could not run, in ``locale``."""
    t = translations
    if isinstance(error, app_commands.NoPrivateMessage):
        return t.text(locale, "This command works in servers only.")
    if isinstance(error, app_commands.CommandOnCooldown):
        # Rounded up: "try again in 0 seconds" would be answered with another refusal.
        seconds = max(1, math.ceil(error.retry_after))
        return t.plural(
            locale,
            "Slow down a little — try again in {count} second.",
            "Slow down a little — try again in {count} seconds.",
            seconds,
        )
    if isinstance(error, app_commands.MissingPermissions | app_commands.CheckFailure):
        return t.text(locale, "You may not use this command here.")
    if isinstance(error, app_commands.TransformerError):
        return t.text(locale, "One of the options could not be read; check it and try again.")
    return t.text(locale, SOMETHING_WENT_WRONG)


async def answer_command_error(
    interaction: discord.Interaction, error: app_commands.AppCommandError
) -> None:
    """The command tree's one error handler: log a fault, tell the member privately, in the
    member's own language."""
    if not isinstance(error, app_commands.CheckFailure | app_commands.TransformerError):
        command = interaction.command.qualified_name if interaction.command else "?"
        log.error("command /%s failed", command, exc_info=error)
    client = interaction.client
    translations = client.translations if isinstance(client, StemcordBot) else _SOURCE_TEXT
    sentence = error_sentence(error, member_locale(interaction), translations)
    try:
        if interaction.response.is_done():
            await interaction.followup.send(sentence, ephemeral=True)
        else:
            await interaction.response.send_message(sentence, ephemeral=True)
    except discord.HTTPException as exc:
        log.info("could not tell the member about a failed command (%s)", exc.status)


class StemcordBot(commands.Bot):
    """discord.py client with Stemcord's defaults: no privileged intents, no mass pings."""

    def __init__(
        self,
        *,
        setup: Callable[[StemcordBot], Awaitable[None]],
        router: ButtonRouter,
        translations: Translations = _SOURCE_TEXT,
        allowed_servers: ServerAllowList | None = None,
    ) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=bot_intents(),
            allowed_mentions=discord.AllowedMentions.none(),
            help_command=None,
            # Refuses commands from servers the operator does not allow (cogs.servers).
            tree_cls=ServerCheckedTree,
        )
        self._setup = setup
        # Where presses of the restart-proof job buttons go (cogs.buttons).
        self.router = router
        # The catalogs the tree's error handler answers with (cogs.i18n).
        self.translations = translations
        # The servers the bot may work in (ALLOWED_GUILD_IDS); read by its command tree.
        self.allowed_servers = allowed_servers or ServerAllowList()
        self.tree.error(answer_command_error)

    async def setup_hook(self) -> None:
        """Add the cogs and buttons the composition root built (and start what it runs)."""
        await self._setup(self)


def discord_connected(bot: commands.Bot) -> bool:
    """The gateway session is up: READY was received and the websocket is open."""
    return bot.is_ready() and not bot.is_closed() and bot.ws is not None and bot.ws.open


# aiohttp would wait five minutes for a login that never gets an answer.
LOGIN_TIMEOUT_SECONDS = 30.0


class GatewayUnreachable(Exception):
    """The first gateway session could not be opened (the REST login had worked)."""

    def __init__(self, url: str, cause: BaseException) -> None:
        super().__init__(f"cannot open Discord's gateway at {url}")
        self.url = url
        self.cause = cause


async def announce_ready(bot: commands.Bot, dev_guild_id: int | None) -> None:
    """Log once, when Discord says the bot is ready: who, in how many servers, and whether
    the slash commands Discord has are this version's (one REST call, never a sync).

    Globally, or in ``DEV_GUILD_ID`` when set (the commands are synced there at start). When
    they differ, the line says how and gives the exact command that fixes it.
    """
    user = bot.user
    servers = len(bot.guilds)
    head = (
        f"ready: logged in as {user} (id {user.id if user else '?'}) "
        f"in {servers} server{'' if servers == 1 else 's'}"
    )
    scope = discord.Object(id=dev_guild_id) if dev_guild_id is not None else None
    where = f"in guild {dev_guild_id}" if dev_guild_id is not None else "globally"
    fix = sync_command(dev_guild_id)
    try:
        remote = [command.to_dict() for command in await bot.tree.fetch_commands(guild=scope)]
    except Exception as exc:  # a best-effort comparison must never stop the bot
        if isinstance(exc, discord.HTTPException):
            reason = f"HTTP {exc.status}"
        elif isinstance(exc, (aiohttp.ClientError, OSError)):
            reason = describe_network_error(exc)
        else:
            reason = f"an unexpected answer: {type(exc).__name__}"
        log.warning(
            "%s; could not compare the slash commands with Discord's (%s): if they do not "
            "appear, run `%s`",
            head,
            reason,
            fix,
        )
        return
    local = [command.to_dict(bot.tree) for command in bot.tree.get_commands(guild=scope)]
    drift = command_drift(local, remote)
    if drift.in_sync:
        log.info("%s; its %d slash commands are synced %s", head, len(local), where)
    elif not remote and dev_guild_id is None:
        # Perhaps synced server by server (`sync --guild`): one call cannot see that.
        log.info(
            "%s; no slash commands are registered globally, so members see them only in "
            "servers synced with `%s --guild <id>`; to register them in every server run "
            "`%s` (they take up to an hour to appear)",
            head,
            fix,
            fix,
        )
    else:
        log.warning(
            "%s; the slash commands are not synced %s (%s): run `%s`",
            head,
            where,
            drift.describe(),
            fix,
        )


async def start_discord(
    bot: commands.Bot, token: str, *, gateway_url: str, login_timeout: float
) -> None:
    """Log in (within ``login_timeout`` seconds) and stay connected until closed.

    A first gateway session that cannot be opened raises :class:`GatewayUnreachable`.
    """
    async with asyncio.timeout(login_timeout):
        await bot.login(token)
    try:
        await bot.connect()
    except AttributeError as exc:
        # discord.py cannot retry a first session that never opened: its retry reads the
        # missing websocket. The error it was handling is the real one.
        cause = exc.__context__
        # Typed as always set; it is None until a first session opens.
        websocket = cast("discord.gateway.DiscordWebSocket | None", bot.ws)
        if websocket is None and cause is not None:
            raise GatewayUnreachable(gateway_url, cause) from cause
        raise
