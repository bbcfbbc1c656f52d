"""The composition root: builds Stemcord from its settings and runs it.

This is the one module of ``bot/`` that knows Discord exists: it creates the discord.py client,
hands the engine the Discord implementation of its delivery interface, and loads the cogs by
extension name. The engine, the Vidgo client and the store know nothing
of Discord.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from dataclasses import dataclass
from typing import cast

import aiohttp
import discord
import yarl
from discord.ext import commands

from bot.admin import AdminRoutes, AdminServer
from bot.balance import BalanceCache
from bot.doctor import command_drift, describe_network_error, sync_command
from bot.engine import EngineConfig, JobEngine
from bot.lyrics import LYRICS, LyricsKind
from bot.metrics import CONTENT_TYPE, StemcordMetrics
from bot.midi import MIDI, MidiKind
from bot.progress import ProgressTracker
from bot.retention import RetentionPolicy, RetentionTask
from bot.settings import Settings
from bot.vidgo.client import VidgoClient
from bot.webhook import CallbackServer
from cogs.buttons import DYNAMIC_ITEMS, MidiButton, RefreshLimiter
from cogs.delivery import DiscordDelivery, ResultItem
from cogs.lyrics import LyricsButton
from storage.sqlite import SqliteJobStore

log = logging.getLogger(__name__)

EXTENSIONS = ("cogs.separate", "cogs.separate_message", "cogs.karaoke", "cogs.jobs", "cogs.lyrics")


def apply_discord_urls(settings: Settings) -> None:
    """Point discord.py at the configured REST base and gateway (proxies, local fakes)."""
    discord.http.Route.BASE = settings.DISCORD_API_BASE
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.DISCORD_GATEWAY_URL)


def engine_config(settings: Settings) -> EngineConfig:
    """Engine timing and limits from the settings."""
    return EngineConfig(
        public_url=settings.PUBLIC_URL,
        poll_interval=settings.POLL_INTERVAL_SECONDS,
        poll_max_interval=settings.POLL_MAX_INTERVAL_SECONDS,
        poll_max_interval_with_callbacks=settings.POLL_MAX_INTERVAL_WITH_CALLBACKS_SECONDS,
        job_timeout=settings.JOB_TIMEOUT_SECONDS,
        unconfirmed_grace=settings.SUBMIT_CONFIRM_GRACE_SECONDS,
        delivery_max_attempts=settings.DELIVERY_MAX_ATTEMPTS,
    )


def bot_intents() -> discord.Intents:
    """Only guild events: Stemcord works through slash commands and never reads messages.

    Leaving out the message intents also spares the bot from parsing a gateway event for
    every message it posts itself.
    """
    intents = discord.Intents.none()
    intents.guilds = True
    return intents


class StemcordBot(commands.Bot):
    """discord.py client with Stemcord's defaults: no privileged intents, no mass pings."""

    def __init__(self, settings: Settings, *, run_engine: bool = True) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=bot_intents(),
            allowed_mentions=discord.AllowedMentions.none(),
            help_command=None,
        )
        self.settings = settings
        self.run_engine = run_engine
        self.engine: JobEngine | None = None
        # Set by the app: the Discord implementation of the engine's delivery interface.
        self.delivery: DiscordDelivery | None = None
        # Set by the app: Vidgo's credit balance, fetched on demand and cached.
        self.balance: BalanceCache | None = None
        self.refresh_limiter = RefreshLimiter()

    async def setup_hook(self) -> None:
        """Load the cogs, sync to the development guild if configured, start the engine."""
        for name in EXTENSIONS:
            await self.load_extension(name)
        # Buttons carry their job id, so those on messages from before a restart work too.
        self.add_dynamic_items(*DYNAMIC_ITEMS)
        if self.run_engine and self.settings.DEV_GUILD_ID is not None:
            guild = discord.Object(id=self.settings.DEV_GUILD_ID)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("synced %d command(s) to guild %s", len(synced), guild.id)
        if self.run_engine and self.engine is not None:
            await self.engine.start()


@dataclass
class RunningApp:
    """Handles of a running app (for tests)."""

    bot: StemcordBot
    engine: JobEngine
    store: SqliteJobStore
    server: CallbackServer | None
    metrics: StemcordMetrics | None = None
    admin: AdminServer | None = None
    retention: RetentionTask | None = None


def discord_connected(bot: commands.Bot) -> bool:
    """The gateway session is up: READY was received and the websocket is open."""
    return bot.is_ready() and not bot.is_closed() and bot.ws is not None and bot.ws.open


def admin_routes(
    store: SqliteJobStore, bot: commands.Bot, metrics: StemcordMetrics, engine: JobEngine
) -> AdminRoutes:
    """Health and metrics handlers.

    Ready = the database takes a committed write, the engine's dispatcher runs, and Discord
    is connected.
    """

    async def database_ok() -> bool:
        await store.check_writable(time.time())
        return True

    async def dispatcher_ok() -> bool:
        return engine.dispatcher_running

    async def discord_ok() -> bool:
        return discord_connected(bot)

    async def scrape() -> bytes:
        return await metrics.scrape(store)

    return AdminRoutes(
        checks={"database": database_ok, "dispatcher": dispatcher_ok, "discord": discord_ok},
        metrics=scrape,
        metrics_content_type=CONTENT_TYPE,
    )


def retention_policy(settings: Settings) -> RetentionPolicy:
    """Retention from the settings."""
    return RetentionPolicy(
        jobs_days=settings.RETENTION_JOBS_DAYS,
        cache_days=settings.RETENTION_CACHE_DAYS,
        interval_hours=settings.RETENTION_INTERVAL_HOURS,
    )


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


async def run_app(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    started: asyncio.Future[RunningApp] | None = None,
    login_timeout: float = LOGIN_TIMEOUT_SECONDS,
) -> None:
    """Run Stemcord until ``stop`` is set (or SIGINT/SIGTERM), then shut down cleanly.

    Logging in to Discord must finish within ``login_timeout`` seconds, or the run ends with
    the ``TimeoutError``.
    """
    apply_discord_urls(settings)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)

    store = SqliteJobStore(settings.database_path)
    await store.open()
    server: CallbackServer | None = None
    admin: AdminServer | None = None
    retention: RetentionTask | None = None
    try:
        async with aiohttp.ClientSession() as session:
            vidgo = VidgoClient(
                session,
                settings.VIDGO_BASE_URL,
                settings.VIDGO_API_KEY.get_secret_value(),
                timeout=settings.VIDGO_TIMEOUT_SECONDS,
                max_retries=settings.VIDGO_MAX_RETRIES,
                rate_per_second=settings.VIDGO_RATE_PER_SECOND,
                max_concurrency=settings.VIDGO_MAX_CONCURRENCY,
            )
            metrics = StemcordMetrics(vidgo_calls=lambda: vidgo.calls)
            bot = StemcordBot(settings)
            # Lyrics for every separation of a Vidgo song; MIDI only when switched on.
            result_items: list[ResultItem] = [LyricsButton.offer]
            if settings.ENABLE_MIDI:
                result_items.append(MidiButton.offer)
            delivery = DiscordDelivery(
                bot, progress=ProgressTracker(store), result_items=result_items
            )
            # The MIDI kind is always known, so jobs started before ENABLE_MIDI was turned
            # off still finish; without the setting no button offers new ones.
            engine = JobEngine(
                store,
                vidgo,
                delivery,
                engine_config(settings),
                kinds={MIDI: MidiKind(vidgo), LYRICS: LyricsKind(vidgo)},
                observer=metrics,
            )
            bot.engine = engine
            bot.delivery = delivery
            routes = admin_routes(store, bot, metrics, engine)
            if settings.ADMIN_ENABLED:
                admin = AdminServer(routes, host=settings.ADMIN_HOST, port=settings.ADMIN_PORT)
                await admin.start()
            bot.balance = BalanceCache(vidgo.balance)
            if settings.PUBLIC_URL is not None:
                server = CallbackServer(
                    engine,
                    host=settings.WEBHOOK_HOST,
                    port=settings.WEBHOOK_PORT,
                    max_body=settings.CALLBACK_MAX_BYTES,
                    observer=metrics,
                )
                if settings.METRICS_ON_WEBHOOK:
                    routes.install(server.app)
                await server.start()
            retention = RetentionTask(store, retention_policy(settings), observer=metrics)
            retention.start()
            announced = False

            async def on_ready() -> None:
                nonlocal announced
                if not announced:  # READY comes again after every new gateway session
                    announced = True
                    await announce_ready(bot, settings.DEV_GUILD_ID)

            bot.add_listener(on_ready, "on_ready")

            async def start_discord() -> None:
                async with asyncio.timeout(login_timeout):
                    await bot.login(settings.DISCORD_TOKEN.get_secret_value())
                try:
                    await bot.connect()
                except AttributeError as exc:
                    # discord.py cannot retry a first session that never opened: its retry
                    # reads the missing websocket. The error it was handling is the real one.
                    cause = exc.__context__
                    # Typed as always set; it is None until a first session opens.
                    websocket = cast("discord.gateway.DiscordWebSocket | None", bot.ws)
                    if websocket is None and cause is not None:
                        raise GatewayUnreachable(settings.DISCORD_GATEWAY_URL, cause) from cause
                    raise

            bot_task = asyncio.create_task(start_discord(), name="stemcord-discord")
            if started is not None and not started.done():
                started.set_result(
                    RunningApp(bot, engine, store, server, metrics, admin, retention)
                )
            stop_task = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait({bot_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
            log.info("shutting down")
            # Stop accepting, let in-flight work finish, then close Discord and HTTP.
            if server is not None:
                await server.stop()
                server = None
            await retention.stop()
            await engine.stop(grace=10.0)
            await bot.close()
            stop_task.cancel()
            if bot_task in done:
                bot_task.result()  # a login failure surfaces here
            else:
                with contextlib.suppress(asyncio.CancelledError):
                    await bot_task
    finally:
        if server is not None:
            await server.stop()
        if retention is not None:
            await retention.stop()
        if admin is not None:
            await admin.stop()
        await store.close()
        for sig in installed:
            loop.remove_signal_handler(sig)


async def sync_commands(settings: Settings, guild_id: int | None) -> int:
    """Log in, sync slash commands globally (or to one guild), log out; return the count."""
    apply_discord_urls(settings)
    bot = StemcordBot(settings, run_engine=False)
    try:
        await bot.login(settings.DISCORD_TOKEN.get_secret_value())
        if guild_id is not None:
            guild = discord.Object(id=guild_id)
            bot.tree.copy_global_to(guild=guild)
            synced = await bot.tree.sync(guild=guild)
        else:
            synced = await bot.tree.sync()
        return len(synced)
    finally:
        await bot.close()
