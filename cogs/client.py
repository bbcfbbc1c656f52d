"""Stemcord's discord.py client: intents, mention defaults, and one error answer for commands.

The client holds no services. The composition root (:mod:`bot.app`) builds every collaborator
and gives the client one ``setup`` coroutine, run from discord.py's ``setup_hook`` once the
client exists: it adds the cogs (each constructed with what it needs), the restart-proof
buttons, and starts whatever runs beside Discord.

The client is discord.py's sharded one (``AutoShardedBot``). With no shard settings it runs
every shard Discord recommends in this one process; with ``SHARD_COUNT`` and ``SHARD_IDS``
(docs/scaling.md) it runs only its own shards, and other processes sharing the database run
the rest. Each shard's gateway session receives only its guilds' events, so a command is
answered by the process whose shard received it; everything the bot *sends* goes over REST,
which needs no shard, so any process can deliver any job. Direct messages reach shard 0 only:
nothing here waits for a DM to arrive.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import aiohttp
import discord
import yarl
from discord import app_commands
from discord.ext import commands
from discord.shard import Shard

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


# Discord lets one session per identify bucket (shard id modulo max_concurrency) IDENTIFY in
# each such window.
IDENTIFY_WINDOW_SECONDS = 5.0


class IdentifyPacer:
    """Spaces this process's IDENTIFYs the way Discord's gateway allows.

    Discord accepts ``max_concurrency`` IDENTIFYs every 5 s, one per bucket
    (``shard_id % max_concurrency``). discord.py waits 5 s before every IDENTIFY but the
    first, whatever the bucket; this waits only for what the bucket actually needs, so a
    process with several shards in different buckets starts them at once, and a shard that
    re-IDENTIFYs after an outage waits only if its bucket identified within the window.
    Other processes identify in their own buckets' turns; Discord answers an IDENTIFY over
    the limit with an invalid session, after which discord.py identifies again through here.
    """

    def __init__(
        self,
        max_concurrency: int = 1,
        *,
        window: float = IDENTIFY_WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.max_concurrency = max(1, max_concurrency)
        self._window = window
        self._clock = clock
        self._sleep = sleep
        self._last: dict[int, float] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    def bucket(self, shard_id: int) -> int:
        """The identify bucket of a shard."""
        return shard_id % self.max_concurrency

    async def wait_turn(self, shard_id: int) -> None:
        """Return when ``shard_id`` may IDENTIFY (sleeping if its bucket must wait)."""
        bucket = self.bucket(shard_id)
        lock = self._locks.setdefault(bucket, asyncio.Lock())
        async with lock:
            last = self._last.get(bucket)
            if last is not None:
                delay = last + self._window - self._clock()
                if delay > 0:
                    await self._sleep(delay)
            self._last[bucket] = self._clock()


@dataclass(frozen=True, slots=True)
class ShardReport:
    """Which of this process's shards have a live gateway session (readiness shows it)."""

    count: int | None
    connected: tuple[int, ...]
    not_connected: tuple[int, ...]

    @property
    def all_connected(self) -> bool:
        """Every shard this process runs is connected (and it runs at least one)."""
        return bool(self.connected) and not self.not_connected

    def as_json(self) -> dict[str, Any]:
        """The readiness body's ``shards`` object."""
        return {
            "count": self.count,
            "connected": list(self.connected),
            "not_connected": list(self.not_connected),
        }


class StemcordBot(commands.AutoShardedBot):
    """discord.py client with Stemcord's defaults: no privileged intents, no mass pings.

    ``shard_count`` ``None`` asks Discord how many shards to run (all of them here);
    ``shard_ids`` (with a count) are the shards this process runs.
    """

    def __init__(
        self,
        *,
        setup: Callable[[StemcordBot], Awaitable[None]],
        router: ButtonRouter,
        translations: Translations = _SOURCE_TEXT,
        allowed_servers: ServerAllowList | None = None,
        shard_count: int | None = None,
        shard_ids: Sequence[int] | None = None,
    ) -> None:
        sharding: dict[str, Any] = {"shard_count": shard_count}
        if shard_ids is not None:
            sharding["shard_ids"] = list(shard_ids)
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=bot_intents(),
            allowed_mentions=discord.AllowedMentions.none(),
            help_command=None,
            # Refuses commands from servers the operator does not allow (cogs.servers).
            tree_cls=ServerCheckedTree,
            **sharding,
        )
        self._setup = setup
        # Where presses of the restart-proof job buttons go (cogs.buttons).
        self.router = router
        # The catalogs the tree's error handler answers with (cogs.i18n).
        self.translations = translations
        # The servers the bot may work in (ALLOWED_GUILD_IDS); read by its command tree.
        self.allowed_servers = allowed_servers or ServerAllowList()
        self.tree.error(answer_command_error)
        self.identify_pacer = IdentifyPacer()
        # Shards whose session is up: READY (or RESUMED) seen and no disconnect since.
        self._sessions_up: set[int] = set()

    async def setup_hook(self) -> None:
        """Add the cogs and buttons the composition root built (and start what it runs)."""
        await self._setup(self)

    # --- shards ---------------------------------------------------------------------------

    @property
    def own_shard_ids(self) -> tuple[int, ...]:
        """The shards this process runs (known once the count is: after the login)."""
        if self.shard_ids is not None:
            return tuple(self.shard_ids)
        count = self.known_shard_count
        return () if count is None else tuple(range(count))

    @property
    def known_shard_count(self) -> int | None:
        """The number of shards in all, once known (configured, or after the login)."""
        # discord.py types it as always set; it is None until Discord was asked.
        return cast("int | None", self.shard_count)

    async def resolve_shards(self) -> None:
        """After the login: learn the shard count (if not set) and the identify concurrency.

        One ``GET /gateway/bot``. The count Discord recommends is used only when none was
        configured; the gateway URL it names is not: sessions open at ``DISCORD_GATEWAY_URL``
        (a gateway proxy, or the local fake), like the unsharded client did.
        """
        try:
            count, _url, limits = await self.http.get_bot_gateway()
        except discord.GatewayNotFound as exc:
            # The HTTP error behind it says what went wrong (a 401, a 5xx).
            if isinstance(exc.__cause__, discord.HTTPException):
                raise exc.__cause__ from None
            raise
        if self.known_shard_count is None:
            self.shard_count = count
        self.identify_pacer.max_concurrency = max(1, int(limits.get("max_concurrency", 1) or 1))

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """Wait for the shard's identify bucket (:class:`IdentifyPacer`)."""
        await self.identify_pacer.wait_turn(shard_id or 0)

    async def launch_shard(
        self, gateway: yarl.URL, shard_id: int, *, initial: bool = False
    ) -> None:
        """Open a shard's first session, once; a failure raises :class:`GatewayUnreachable`.

        discord.py would log a traceback and try again every 5 s forever, so a gateway that
        cannot be reached at start-up would never be reported. Once open, a session that
        drops is reconnected by discord.py as usual.
        """
        try:
            websocket = await asyncio.wait_for(
                discord.gateway.DiscordWebSocket.from_client(
                    self, initial=initial, gateway=gateway, shard_id=shard_id
                ),
                timeout=self.shard_connect_timeout,
            )
        except Exception as exc:
            if self.is_closed():
                return  # stopped while the session was opening: nothing is wrong
            raise GatewayUnreachable(str(gateway), exc) from exc
        # What discord.py's own launch_shard does with an open session: keep it and read it.
        # Its private names (discord.py 2.x); the e2e tests fail at once if they ever move.
        shards = cast("dict[int, Shard]", self._AutoShardedClient__shards)  # type: ignore[attr-defined]
        queue = cast("asyncio.PriorityQueue[Any]", self._AutoShardedClient__queue)  # type: ignore[attr-defined]
        shard = Shard(websocket, self, queue.put_nowait)
        shards[shard_id] = shard
        shard.launch()

    async def on_shard_ready(self, shard_id: int) -> None:
        """A shard's session is READY (its guilds are known)."""
        self._sessions_up.add(shard_id)

    async def on_shard_resumed(self, shard_id: int) -> None:
        """A shard's session resumed after a drop."""
        self._sessions_up.add(shard_id)

    async def on_shard_disconnect(self, shard_id: int) -> None:
        """A shard's session closed; discord.py reconnects it."""
        self._sessions_up.discard(shard_id)

    def shard_report(self) -> ShardReport:
        """Which of this process's shards are connected now."""
        connected: list[int] = []
        missing: list[int] = []
        for shard_id in self.own_shard_ids:
            info = self.get_shard(shard_id)
            up = shard_id in self._sessions_up and info is not None and not info.is_closed()
            (connected if up else missing).append(shard_id)
        return ShardReport(self.known_shard_count, tuple(connected), tuple(missing))


def discord_connected(bot: commands.Bot | commands.AutoShardedBot) -> bool:
    """The gateway session is up: READY was received and the websocket is open.

    For a sharded client: every shard this process runs is connected.
    """
    if isinstance(bot, StemcordBot):
        return bot.is_ready() and not bot.is_closed() and bot.shard_report().all_connected
    return bot.is_ready() and not bot.is_closed() and bot.ws is not None and bot.ws.open


# aiohttp would wait five minutes for a login that never gets an answer.
LOGIN_TIMEOUT_SECONDS = 30.0


class GatewayUnreachable(Exception):
    """The first gateway session could not be opened (the REST login had worked)."""

    def __init__(self, url: str, cause: BaseException) -> None:
        super().__init__(f"cannot open Discord's gateway at {url}")
        self.url = url
        self.cause = cause


async def announce_ready(
    bot: commands.Bot | commands.AutoShardedBot, dev_guild_id: int | None
) -> None:
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
    bot: commands.Bot | commands.AutoShardedBot,
    token: str,
    *,
    gateway_url: str,
    login_timeout: float,
) -> None:
    """Log in (within ``login_timeout`` seconds) and stay connected until closed.

    A first gateway session that cannot be opened raises :class:`GatewayUnreachable`.
    """
    async with asyncio.timeout(login_timeout):
        await bot.login(token)
        if isinstance(bot, StemcordBot):
            await bot.resolve_shards()
    if isinstance(bot, StemcordBot):
        own = bot.own_shard_ids
        log.info(
            "discord: this process runs shard%s %s of %s%s",
            "" if len(own) == 1 else "s",
            ", ".join(str(shard) for shard in own),
            bot.known_shard_count,
            "" if 0 in own else "; direct messages reach the process that runs shard 0",
        )
    try:
        await bot.connect()
    except AttributeError as exc:
        # The unsharded client cannot retry a first session that never opened: its retry
        # reads the missing websocket. The error it was handling is the real one.
        cause = exc.__context__
        # Typed as always set; it is None until a first session opens.
        websocket = cast("discord.gateway.DiscordWebSocket | None", bot.ws)
        if websocket is None and cause is not None:
            raise GatewayUnreachable(gateway_url, cause) from cause
        raise
