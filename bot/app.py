"""The composition root: builds Stemcord from its settings and runs it.

:func:`build` is the one place every collaborator is made and handed to the one that needs it:
the store, the Vidgo client, the job kinds (once per side: the engine's
:class:`bot.kinds.JobKind` list and Discord's :class:`cogs.views.KindViews`), the engine, the
Discord client with its cogs and restart-proof buttons. :func:`run_app` opens what must be
open, starts the listeners and Discord, and shuts everything down in order; :func:`sync_commands`
builds the same command tree and registers it with Discord.

This module, the CLI and ``__main__`` are the only ones that may import every layer
(composition root -> ``cogs`` -> the rest of ``bot`` -> ``storage``; see
``docs/architecture.md``; import-linter checks it in CI).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from dataclasses import dataclass

import aiohttp
import discord
import yarl

from bot.admin import AdminRoutes, AdminServer
from bot.balance import BalanceCache
from bot.engine import EngineConfig, JobEngine
from bot.kinds import JobKind
from bot.lyrics import LyricsKind
from bot.metrics import CONTENT_TYPE, StemcordMetrics
from bot.midi import MidiKind
from bot.policy import Policies
from bot.progress import ProgressTracker
from bot.retention import RetentionPolicy, RetentionTask
from bot.separation import SEPARATION, SeparationKind
from bot.settings import Settings
from bot.vidgo.client import VidgoClient
from bot.webhook import CallbackServer
from cogs.buttons import (
    ButtonRouter,
    CancelButton,
    JobButton,
    JobControls,
    RefreshButton,
    RefreshLimiter,
    StatusControls,
)
from cogs.client import (
    LOGIN_TIMEOUT_SECONDS,
    StemcordBot,
    announce_ready,
    discord_connected,
    start_discord,
)
from cogs.delivery import DiscordDelivery
from cogs.desk import JobDesk
from cogs.jobs import JobsCog
from cogs.karaoke import KaraokeCog
from cogs.lyrics import LyricsCog, LyricsView
from cogs.midi import MidiView
from cogs.separate import SeparateCog, SeparationView
from cogs.separate_message import SeparateMessageCog
from cogs.views import KindView, KindViews, PressServices
from storage.base import JobStore
from storage.factory import store_for_url

log = logging.getLogger(__name__)


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


def retention_policy(settings: Settings) -> RetentionPolicy:
    """Retention from the settings."""
    return RetentionPolicy(
        jobs_days=settings.RETENTION_JOBS_DAYS,
        cache_days=settings.RETENTION_CACHE_DAYS,
        interval_hours=settings.RETENTION_INTERVAL_HOURS,
    )


def job_kinds(vidgo: VidgoClient) -> list[JobKind]:
    """Every kind of job the engine runs. A new kind adds one line here …

    MIDI is always known, so jobs started before ``ENABLE_MIDI`` was turned off still finish;
    without the setting no button offers new ones.
    """
    return [SeparationKind(vidgo), LyricsKind(vidgo), MidiKind(vidgo)]


def kind_views(settings: Settings) -> list[KindView]:
    """… and one line here: how each kind is shown in Discord."""
    return [
        SeparationView(),
        LyricsView(enhanced_lrc=settings.LYRICS_ENHANCED_LRC),
        MidiView(enabled=settings.ENABLE_MIDI),
    ]


@dataclass
class Stemcord:
    """Everything :func:`build` made; nothing runs until :func:`run_app` starts it."""

    bot: StemcordBot
    engine: JobEngine
    store: JobStore
    vidgo: VidgoClient
    metrics: StemcordMetrics
    delivery: DiscordDelivery


def build(
    settings: Settings,
    store: JobStore,
    session: aiohttp.ClientSession,
    *,
    run_engine: bool = True,
) -> Stemcord:
    """Make every collaborator and wire them together (see the module docstring).

    ``run_engine=False`` builds the same client and commands without starting the engine or
    syncing to the development guild (``sync`` only needs the command tree).
    """
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
    policies = Policies(store)
    views = KindViews(kind_views(settings), fallback=SEPARATION)

    async def setup(client: StemcordBot) -> None:
        # Runs in discord.py's setup_hook, after everything below was built.
        for cog in cogs:
            await client.add_cog(cog)
        # Buttons carry their job id, so those on messages from before a restart work too.
        client.add_dynamic_items(*buttons)
        if not run_engine:
            return
        if settings.DEV_GUILD_ID is not None:
            guild = discord.Object(id=settings.DEV_GUILD_ID)
            client.tree.copy_global_to(guild=guild)
            synced = await client.tree.sync(guild=guild)
            log.info("synced %d command(s) to guild %s", len(synced), guild.id)
        await engine.start()

    router = ButtonRouter()
    bot = StemcordBot(setup=setup, router=router)
    delivery = DiscordDelivery(bot, views, ProgressTracker(store))
    engine = JobEngine(
        store,
        vidgo,
        delivery,
        engine_config(settings),
        kinds=job_kinds(vidgo),
        observer=metrics,
    )
    desk = JobDesk(engine, delivery, views)
    controls = JobControls(engine, policies)
    status = StatusControls(controls, delivery.status_message, RefreshLimiter())
    upload_mb = settings.MAX_UPLOAD_MB
    cogs = [
        SeparateCog(desk, policies, max_upload_mb=upload_mb),
        SeparateMessageCog(desk, policies, bot.tree, max_upload_mb=upload_mb),
        KaraokeCog(policies),
        JobsCog(engine, policies, BalanceCache(vidgo.balance), views),
        LyricsCog(desk, policies, enhanced_lrc=settings.LYRICS_ENHANCED_LRC),
    ]
    services = PressServices(engine=engine, policies=policies, desk=desk, controls=controls)
    for action, handler in {**status.routes(), **views.routes(services)}.items():
        router.route(action, handler)
    buttons: list[type[JobButton]] = [RefreshButton, CancelButton, *views.buttons()]
    return Stemcord(
        bot=bot, engine=engine, store=store, vidgo=vidgo, metrics=metrics, delivery=delivery
    )


@dataclass
class RunningApp:
    """Handles of a running app (for tests)."""

    bot: StemcordBot
    engine: JobEngine
    store: JobStore
    server: CallbackServer | None
    delivery: DiscordDelivery
    metrics: StemcordMetrics | None = None
    admin: AdminServer | None = None
    retention: RetentionTask | None = None


def admin_routes(app: Stemcord) -> AdminRoutes:
    """Health and metrics handlers.

    Ready = the database takes a committed write, the engine's dispatcher runs, and Discord
    is connected.
    """

    async def database_ok() -> bool:
        await app.store.check_writable(time.time())
        return True

    async def dispatcher_ok() -> bool:
        return app.engine.dispatcher_running

    async def discord_ok() -> bool:
        return discord_connected(app.bot)

    async def scrape() -> bytes:
        return await app.metrics.scrape(app.store)

    return AdminRoutes(
        checks={"database": database_ok, "dispatcher": dispatcher_ok, "discord": discord_ok},
        metrics=scrape,
        metrics_content_type=CONTENT_TYPE,
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

    store = store_for_url(settings.DATABASE_URL)
    await store.open()
    server: CallbackServer | None = None
    admin: AdminServer | None = None
    retention: RetentionTask | None = None
    try:
        async with aiohttp.ClientSession() as session:
            app = build(settings, store, session)
            bot, engine, metrics = app.bot, app.engine, app.metrics
            routes = admin_routes(app)
            if settings.ADMIN_ENABLED:
                admin = AdminServer(routes, host=settings.ADMIN_HOST, port=settings.ADMIN_PORT)
                await admin.start()
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
            bot_task = asyncio.create_task(
                start_discord(
                    bot,
                    settings.DISCORD_TOKEN.get_secret_value(),
                    gateway_url=settings.DISCORD_GATEWAY_URL,
                    login_timeout=login_timeout,
                ),
                name="stemcord-discord",
            )
            if started is not None and not started.done():
                started.set_result(
                    RunningApp(bot, engine, store, server, app.delivery, metrics, admin, retention)
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
            await app.delivery.settle(grace=5.0)  # status edits still waiting their turn
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
    """Log in, sync slash commands globally (or to one guild), log out; return the count.

    The same :func:`build` makes the command tree; the store is never opened.
    """
    apply_discord_urls(settings)
    async with aiohttp.ClientSession() as session:
        bot = build(settings, store_for_url(settings.DATABASE_URL), session, run_engine=False).bot
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
