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
from typing import Any

import aiohttp
import discord
import yarl

from bot.admin import AdminRoutes, AdminServer
from bot.audio import AudioPool
from bot.balance import Balance, BalanceCache
from bot.credits import CreditsWatch
from bot.engine import EngineConfig, JobEngine
from bot.keys import KeyRenderKind, KeyRenders
from bot.kinds import JobKind
from bot.lyrics import LyricsKind
from bot.media import MediaRoutes, MediaSigner, MediaStore, StemFetcher
from bot.media.keeper import MediaKeeper
from bot.media.links import MediaLinks, UploadFitter
from bot.media.work import AudioQueue
from bot.metrics import CONTENT_TYPE, StemcordMetrics
from bot.midi import MidiKind
from bot.policy import Policies, ServerAllowList
from bot.progress import ProgressTracker
from bot.retention import RetentionPolicy, RetentionTask
from bot.separation import SEPARATION, SeparationKind
from bot.settings import Settings
from bot.vidgo.client import VidgoClient
from bot.webhook import CallbackServer
from cogs.buttons import (
    ButtonRouter,
    CancelButton,
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
from cogs.i18n import CommandTranslator, Translations
from cogs.jobs import JobsCog
from cogs.karaoke import KaraokeCog
from cogs.keys import KeyView
from cogs.lyrics import LyricsCog, LyricsView
from cogs.midi import MidiView
from cogs.owner import BotOwner
from cogs.separate import SeparateCog, SeparationView
from cogs.separate_message import SeparateMessageCog
from cogs.servers import ServerGuardCog
from cogs.views import JobItem, KindView, KindViews, PressServices
from storage.base import JobStore
from storage.factory import store_for_url

log = logging.getLogger(__name__)


def apply_discord_urls(settings: Settings) -> None:
    """Point discord.py at the configured REST base and gateway (proxies, local fakes)."""
    discord.http.Route.BASE = settings.DISCORD_API_BASE
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.DISCORD_GATEWAY_URL)


def store_options(settings: Settings) -> dict[str, str]:
    """Options for the store ``DATABASE_URL`` names.

    On PostgreSQL each process's connections carry its shards in their application name
    (``stemcord-shards-0-1``), so ``pg_stat_activity`` tells the processes apart.
    """
    if settings.database_backend != "postgresql":
        return {}
    ids = settings.shard_ids
    name = "stemcord" if ids is None else "stemcord-shards-" + "-".join(str(i) for i in ids)
    return {"application_name": name}


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
        media_days=settings.MEDIA_RETENTION_DAYS,
    )


# The name of the database-kept secret that media links are signed with (MEDIA_LINK_SECRET
# unset): every process sharing the database signs and checks with the same key.
MEDIA_LINK_SECRET_NAME = "media-link"  # noqa: S105 - the name of a secret, not one


@dataclass
class Media:
    """The kept files and the audio work on them (docs/media.md): one per process."""

    store: MediaStore
    pool: AudioPool
    signer: MediaSigner
    keeper: MediaKeeper
    links: MediaLinks
    fitter: UploadFitter

    async def close(self) -> None:
        """Stop the audio workers, then end the store's session."""
        await self.pool.close(grace=5.0)
        self.store.close()


async def open_media(settings: Settings, store: JobStore, session: aiohttp.ClientSession) -> Media:
    """Open the media store and make what keeps, mixes, fits and links its files.

    The audio pool's workers start with the first piece of work, not here.
    """
    media_store = await MediaStore.open(
        settings.media_dir, min_free_bytes=int(settings.MEDIA_MIN_FREE_MB * 1_048_576)
    )
    try:
        secret = settings.media_link_secret or await store.secret(MEDIA_LINK_SECRET_NAME)
    except BaseException:
        media_store.close()
        raise
    pool = audio_pool(settings)
    queue = AudioQueue(pool)
    fetcher = StemFetcher(
        session,
        allowed_hosts=settings.media_allowed_hosts,
        max_bytes=int(settings.MEDIA_MAX_STEM_MB * 1_048_576),
        total_timeout=settings.MEDIA_FETCH_TIMEOUT_SECONDS,
    )
    signer = MediaSigner(secret)
    links = MediaLinks(
        signer,
        media_store,
        public_url=settings.PUBLIC_URL,
        ttl_hours=settings.MEDIA_LINK_TTL_HOURS,
        retention_days=settings.MEDIA_RETENTION_DAYS,
    )
    return Media(
        store=media_store,
        pool=pool,
        signer=signer,
        keeper=MediaKeeper(media_store, fetcher, queue),
        links=links,
        fitter=UploadFitter(media_store, queue),
    )


def job_kinds(
    vidgo: VidgoClient,
    keys: KeyRenders,
    *,
    media: Media | None = None,
    policies: Policies | None = None,
) -> list[JobKind]:
    """Every kind of job the engine runs. A new kind adds one line here …

    MIDI is always known, so jobs started before ``ENABLE_MIDI`` was turned off still finish;
    without the setting no button offers new ones. With ``media`` a separation keeps its
    files and makes its backing track before it is delivered.
    """
    separation: dict[str, Any] = {}
    if media is not None:
        separation["keeper"] = media.keeper
    if policies is not None:

        async def backing_vocals(guild_id: int | None) -> bool:
            return (await policies.get(guild_id)).keep_backing_vocals

        separation["backing_vocals"] = backing_vocals
    return [
        SeparationKind(vidgo, **separation),
        LyricsKind(vidgo),
        MidiKind(vidgo),
        KeyRenderKind(keys),
    ]


def kind_views(
    settings: Settings,
    keys: KeyRenders,
    *,
    translations: Translations,
    media: Media | None = None,
) -> list[KindView]:
    """… and one line here: how each kind is shown in Discord."""
    return [
        SeparationView(
            translations=translations,
            links=media.links if media is not None else None,
            fitter=media.fitter if media is not None else None,
        ),
        LyricsView(translations=translations, enhanced_lrc=settings.LYRICS_ENHANCED_LRC),
        MidiView(translations=translations, enabled=settings.ENABLE_MIDI),
        KeyView(keys, translations=translations),
    ]


def audio_pool(settings: Settings) -> AudioPool:
    """The audio workers (started on first use, so ``sync`` never starts them)."""
    return AudioPool(workers=settings.AUDIO_WORKERS, queue_limit=settings.AUDIO_QUEUE_LIMIT)


@dataclass
class Stemcord:
    """Everything :func:`build` made; nothing runs until :func:`run_app` starts it."""

    bot: StemcordBot
    engine: JobEngine
    store: JobStore
    vidgo: VidgoClient
    metrics: StemcordMetrics
    delivery: DiscordDelivery
    # Every catalog, compiled once; the cogs speak through it (docs/localisation.md).
    translations: Translations
    media: Media | None = None
    credits: CreditsWatch | None = None


class EngineObservers:
    """What the engine reports on a posted message goes to the metrics and the credit watch
    (a success was charged, so the balance is worth a look)."""

    def __init__(self, metrics: StemcordMetrics, credits: CreditsWatch) -> None:
        self.metrics = metrics
        self.credits = credits

    def delivered(self, outcome: str, latency: float) -> None:
        """See :class:`bot.observe.DeliveryObserver`."""
        self.metrics.delivered(outcome, latency)
        self.credits.delivered(outcome, latency)


def build(
    settings: Settings,
    store: JobStore,
    session: aiohttp.ClientSession,
    *,
    run_engine: bool = True,
    translations: Translations | None = None,
    media: Media | None = None,
) -> Stemcord:
    """Make every collaborator and wire them together (see the module docstring).

    ``run_engine=False`` builds the same client and commands without starting the engine or
    syncing to the development guild (``sync`` only needs the command tree).
    ``translations`` defaults to the shipped catalogs, read and compiled here, once. ``media``
    (:func:`open_media`) keeps the results' files; without it results carry Vidgo's links only.
    """
    catalogs = translations if translations is not None else Translations.load()
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
    allowed = ServerAllowList(settings.ALLOWED_GUILD_IDS)
    # One balance cache for /jobs balance and the credit watch: never two reads in a minute.
    balance = BalanceCache(vidgo.balance)
    # Key changes need the kept files; without the media store nothing is rendered or offered.
    keys = KeyRenders(
        media.store if media is not None else None,
        media.pool if media is not None else audio_pool(settings),
    )
    views = KindViews(
        kind_views(settings, keys, translations=catalogs, media=media), fallback=SEPARATION
    )

    async def setup(client: StemcordBot) -> None:
        # Runs in discord.py's setup_hook, after everything below was built.
        # Commands, options and choices reach Discord in every catalog's language.
        await client.tree.set_translator(CommandTranslator(catalogs))
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

    router = ButtonRouter(translations=catalogs)
    bot = StemcordBot(
        setup=setup,
        router=router,
        translations=catalogs,
        allowed_servers=allowed,
        shard_count=settings.SHARD_COUNT,
        shard_ids=settings.shard_ids,
    )
    owner = BotOwner(bot)

    def report_credits(read: Balance) -> None:
        metrics.vidgo_credits(read.credits, read.fetched_at)

    credits = CreditsWatch(
        balance,
        store,
        interval=settings.CREDITS_CHECK_MINUTES * 60,
        warn_below=settings.CREDITS_WARN_BELOW,
        warn=owner.tell,
        report=report_credits,
    )
    delivery = DiscordDelivery(
        bot,
        views,
        ProgressTracker(store),
        translations=catalogs,
        fitter=media.fitter if media is not None else None,
    )
    engine = JobEngine(
        store,
        vidgo,
        delivery,
        engine_config(settings),
        kinds=job_kinds(vidgo, keys, media=media, policies=policies),
        observer=EngineObservers(metrics, credits),
    )
    desk = JobDesk(engine, delivery, views, translations=catalogs)
    controls = JobControls(engine, policies, translations=catalogs)
    status = StatusControls(controls, delivery.status_message, RefreshLimiter())
    upload_mb = settings.MAX_UPLOAD_MB
    guard = ServerGuardCog(allowed, catalogs)
    cogs = [
        guard,
        SeparateCog(desk, policies, translations=catalogs, max_upload_mb=upload_mb),
        SeparateMessageCog(
            desk, policies, bot.tree, translations=catalogs, max_upload_mb=upload_mb
        ),
        KaraokeCog(policies, catalogs),
        JobsCog(engine, policies, balance, owner, catalogs),
        LyricsCog(desk, policies, translations=catalogs, enhanced_lrc=settings.LYRICS_ENHANCED_LRC),
    ]
    services = PressServices(engine=engine, policies=policies, desk=desk, controls=controls)
    for action, handler in {**status.routes(), **views.routes(services)}.items():
        # A press from a server the operator does not allow is refused before its handler.
        router.route(action, guard.guard_button(handler))
    buttons: list[type[JobItem]] = [RefreshButton, CancelButton, *views.buttons()]
    return Stemcord(
        bot=bot,
        engine=engine,
        store=store,
        vidgo=vidgo,
        metrics=metrics,
        delivery=delivery,
        translations=catalogs,
        media=media,
        credits=credits,
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
    media: Media | None = None
    credits: CreditsWatch | None = None


def admin_routes(app: Stemcord) -> AdminRoutes:
    """Health and metrics handlers.

    Ready = the database takes a committed write, the engine's dispatcher runs, and Discord
    is connected: every shard this process runs has a live session. ``shards`` beside the
    checks says which of them are connected.
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
        details={"shards": lambda: app.bot.shard_report().as_json()},
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

    store = store_for_url(settings.DATABASE_URL, **store_options(settings))
    await store.open()
    server: CallbackServer | None = None
    admin: AdminServer | None = None
    retention: RetentionTask | None = None
    media: Media | None = None
    credits: CreditsWatch | None = None
    try:
        async with aiohttp.ClientSession() as session:
            media = await open_media(settings, store, session)
            app = build(settings, store, session, media=media)
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
                # Signed links to kept files are served where members reach the bot.
                MediaRoutes(media.store, media.signer).install(server.app)
                await server.start()
            retention = RetentionTask(
                store, retention_policy(settings), observer=metrics, media=media.store
            )
            retention.start()
            credits = app.credits
            if credits is not None:
                credits.start()
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
                    RunningApp(
                        bot,
                        engine,
                        store,
                        server,
                        app.delivery,
                        metrics,
                        admin,
                        retention,
                        media=media,
                        credits=credits,
                    )
                )
            stop_task = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait({bot_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
            log.info("shutting down")
            # Stop accepting, let in-flight work finish, then close Discord and HTTP.
            if server is not None:
                await server.stop()
                server = None
            await retention.stop()
            if credits is not None:
                await credits.stop()
            await engine.stop(grace=10.0)
            await app.delivery.settle(grace=5.0)  # status edits still waiting their turn
            # After the engine: a render still running was given its grace there.
            await media.close()
            media = None
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
        if credits is not None:
            await credits.stop()
        if admin is not None:
            await admin.stop()
        if media is not None:
            await media.close()
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
