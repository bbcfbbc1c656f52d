"""``python -m bot <command>``: run the bot, check an installation, inspect jobs.

Commands (each has ``--help``):

* ``run`` (the default) — run the bot until SIGINT/SIGTERM; one process per SQLite database
  (:mod:`bot.instance_lock`), any number on one PostgreSQL database (each its own shards);
* ``check`` — a checklist of settings, database, Vidgo key, Discord token and PUBLIC_URL
  (:mod:`bot.doctor`), printed as it goes; exits 1 if anything failed;
* ``sync [--guild ID]`` — register the slash commands globally or in one guild;
* ``jobs list`` / ``jobs show ID`` — read jobs from the database, offline (only
  ``DATABASE_URL`` is needed, not the secrets);
* ``migrate`` — create the database if needed and apply pending migrations;
* ``export`` / ``import FILE`` — move every job, cached result, server policy and server
  secret to a portable file and into another (empty) database: SQLite to PostgreSQL and
  back (:mod:`storage.transfer`).

``DATABASE_URL`` names the database for every command (:mod:`storage.factory`): a SQLite
file or a PostgreSQL server.

A failure the operator can fix ends with one line on standard error, ``stemcord: ...``, and
an exit status (:data:`EXIT_STATUSES`, also in ``--help``); a traceback means a bug.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import os
import sys
import textwrap
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import discord

from bot.instance_lock import InstanceLock, InstanceLocked
from bot.listener import ListenerBindError
from bot.logs import Redactor, setup_logging
from bot.settings import (
    Settings,
    SettingsError,
    load_database_settings,
    load_settings,
    load_settings_or_exit,
)
from storage.base import JobStore
from storage.factory import database_password
from storage.jobstate import JobState
from storage.records import JobRecord

if TYPE_CHECKING:
    from bot.doctor import CheckResult
    from storage.transfer import TransferSummary

T = TypeVar("T")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_UNREACHABLE = 3
EXIT_DATABASE_BUSY = 4
EXIT_INTERRUPTED = 130
EXIT_STATUSES = (
    (EXIT_OK, "success"),
    (
        EXIT_FAILED,
        "a check failed, no such job, an import was refused (a non-empty target, a damaged "
        "or newer file), or Discord refused a sync (e.g. not in that server)",
    ),
    (
        EXIT_CONFIG,
        "invalid settings or usage, Discord rejected DISCORD_TOKEN, a listener port is taken, "
        "or the database cannot be opened or written",
    ),
    (EXIT_UNREACHABLE, "Discord could not be reached (refused, DNS, no answer, TLS, 5xx)"),
    (
        EXIT_DATABASE_BUSY,
        "another Stemcord instance holds the database (run on SQLite, export, import), or "
        "migrations are pending while bots run on it (migrate)",
    ),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C)"),
)
# Logging in (and a sync) waits this long for Discord before giving up with one line.
DISCORD_TIMEOUT_SECONDS = 30.0


def _epilog() -> str:
    lines = ["exit status:"]
    for code, meaning in EXIT_STATUSES:
        lines += textwrap.wrap(
            meaning, width=79, initial_indent=f"  {code:<4} ", subsequent_indent=" " * 7
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description="Stemcord: karaoke stems for Discord. Without a command, runs the bot.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return sub.add_parser(
            name, epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs
        )

    command(
        "run",
        help="run the bot (the default)",
        description="Run the bot until SIGINT or SIGTERM. Settings come from the environment "
        "and .env (see .env.example). Only one bot may run on a SQLite database: a second one "
        "exits at once, naming the first. On PostgreSQL several may run, each with its own "
        "SHARD_IDS.",
    )
    command(
        "check",
        help="check settings, database, Vidgo key, Discord token and PUBLIC_URL",
        description="Print a checklist as it runs (ok / FAIL with a fix for each failure) and "
        "exit 1 if any check failed. Opens the database and applies migrations (only reads "
        "it while a bot runs on it); calls Vidgo's balance and Discord's GET /users/@me, once "
        "each, waiting at most 15 s; with an https PUBLIC_URL, sends a probe callback through "
        "it.",
    )
    sync = command(
        "sync",
        help="register the slash commands with Discord (globally, or in one guild)",
        description="Global commands can take up to an hour to appear; a guild sync is instant. "
        "To find a server's id: Discord settings, Advanced, Developer Mode on; then "
        "right-click the server's icon, Copy Server ID.",
    )
    sync.add_argument("--guild", type=int, default=None, help="guild (server) id to sync to")

    jobs = command(
        "jobs",
        help="list or show jobs from the database (offline)",
        description="Read jobs from DATABASE_URL; the bot may be running or not.",
    )
    jobs_sub = jobs.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)
    listing = jobs_sub.add_parser(
        "list", help="list jobs, newest first", description="List jobs, newest first."
    )
    listing.add_argument(
        "--state",
        action="append",
        choices=[s.value for s in JobState],
        help="only jobs in this state (repeat for several)",
    )
    listing.add_argument("--guild", type=int, default=None, help="only jobs of this guild id")
    listing.add_argument("--user", type=int, default=None, help="only jobs of this member id")
    listing.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    show = jobs_sub.add_parser(
        "show",
        help="show one job in full",
        description="Show every field of one job: state, Vidgo task, errors, result.",
    )
    show.add_argument("job_id", metavar="ID", help="the job id (10 characters)")
    show.add_argument("--json", action="store_true", help="print the job as JSON")

    command(
        "migrate",
        help="create the database if needed and apply pending migrations",
        description="Apply pending schema migrations to DATABASE_URL (the bot also does this "
        "at every start). Works beside a running bot when nothing is pending; with migrations "
        "pending it refuses until the bots are stopped (or just restart them). On PostgreSQL "
        "an advisory lock keeps two migrations (or starting bots) from running at once.",
    )
    export = command(
        "export",
        help="write every job, cached result, policy and secret to a portable file",
        description="Write the database named by DATABASE_URL (SQLite or PostgreSQL) to a "
        "JSON-lines file for `import` (docs/scaling.md, Moving to PostgreSQL). Stop the bots "
        "first: jobs they finish after the export would be finished again from the new "
        "database. The file holds the server secret that signs callback URLs: keep it "
        "private (it is created readable by its owner only).",
    )
    export.add_argument(
        "--output",
        "-o",
        default="-",
        metavar="FILE",
        help="the file to create (it must not exist); - or nothing: standard output",
    )
    export.add_argument(
        "--while-running",
        action="store_true",
        help="export even while a bot runs on the database: a snapshot to inspect or keep, "
        "never to import for a move",
    )
    importing = command(
        "import",
        help="load an export file into an empty database",
        description="Load a file written by `export` into the database named by DATABASE_URL, "
        "which is created and migrated if needed and must hold no jobs, results, policies or "
        "secrets yet. All or nothing: a refused or failed import leaves it unchanged. A file "
        "from a newer version is refused.",
    )
    importing.add_argument("file", metavar="FILE", help="the export file (- for standard input)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command or "run"
    try:
        if command == "check":
            return _check()
        if command == "jobs":
            return asyncio.run(_jobs(args))
        if command == "migrate":
            return asyncio.run(_migrate())
        if command == "export":
            if args.output != "-" and os.path.lexists(args.output):
                # Said before the work; the final hard link would refuse it anyway.
                return _fail(f"cannot write {args.output}: File exists", EXIT_CONFIG)
            return asyncio.run(_export(args.output, while_running=args.while_running))
        if command == "import":
            return _import_file(args.file)
        settings = load_settings_or_exit()
        _setup_logging(settings)
        if command == "sync":
            return _sync(settings, args.guild)
        return _run(settings)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _setup_logging(settings: Settings, level: str | None = None) -> None:
    setup_logging(
        level or settings.LOG_LEVEL,
        settings.LOG_FORMAT,
        _secrets(settings),
    )


def _secrets(settings: Settings) -> list[str]:
    secrets = [settings.VIDGO_API_KEY.get_secret_value(), settings.DISCORD_TOKEN.get_secret_value()]
    password = database_password(settings.DATABASE_URL)
    return [*secrets, password] if password else secrets


def _fail(message: str, status: int) -> int:
    print(f"stemcord: {message}", file=sys.stderr)
    return status


def _discord_failure(exc: BaseException, settings: Settings) -> tuple[str, int] | None:
    """One line and an exit status for a failure to talk to Discord, or ``None``."""
    from bot.doctor import describe_network_error  # noqa: PLC0415

    api = settings.DISCORD_API_BASE
    from cogs.client import GatewayUnreachable  # noqa: PLC0415

    if isinstance(exc, GatewayUnreachable):
        reason = describe_network_error(exc.cause)
        return (
            f"{exc}: {reason}; check DISCORD_GATEWAY_URL and that this host can open outbound "
            "wss connections",
            EXIT_UNREACHABLE,
        )
    if isinstance(exc, discord.LoginFailure):
        return "Discord rejected DISCORD_TOKEN; copy the bot token again", EXIT_CONFIG
    if isinstance(exc, discord.PrivilegedIntentsRequired):
        return (
            "Discord refused the gateway session (privileged intents); Stemcord needs none: "
            "check that DISCORD_TOKEN is this bot's token",
            EXIT_CONFIG,
        )
    if isinstance(exc, discord.DiscordServerError):
        return (
            f"Discord at {api} answered HTTP {exc.status} (a Discord outage); try again later",
            EXIT_UNREACHABLE,
        )
    if isinstance(exc, discord.HTTPException):
        reason = exc.text or exc.response.reason or "refused"
        return f"Discord refused the request (HTTP {exc.status}: {reason})", EXIT_FAILED
    if isinstance(exc, OSError) or _is_client_error(exc):  # TimeoutError is an OSError
        reason = describe_network_error(exc, timeout=DISCORD_TIMEOUT_SECONDS)
        return (
            f"cannot reach Discord at {api}: {reason}; check DISCORD_API_BASE, DNS and that this "
            "host can make outbound https requests",
            EXIT_UNREACHABLE,
        )
    return None


def _is_client_error(exc: BaseException) -> bool:
    import aiohttp  # noqa: PLC0415

    return isinstance(exc, aiohttp.ClientError)


async def _within(awaitable: Awaitable[T], seconds: float) -> T:
    async with asyncio.timeout(seconds):
        return await awaitable


def _run(settings: Settings) -> int:
    # Imported late so that `--help` and settings errors do not pay for building the app.
    from bot.app import run_app  # noqa: PLC0415

    # Before anything touches the database or Discord: one process per SQLite database.
    # PostgreSQL is shared by design: its store fences every write by lease.
    lock = (
        InstanceLock(settings.database_path, "run") if _is_sqlite(settings.DATABASE_URL) else None
    )
    if lock is not None:
        try:
            lock.acquire()
        except InstanceLocked as exc:
            return _fail(
                f"{exc}; stop it first, or give this one its own DATABASE_URL",
                EXIT_DATABASE_BUSY,
            )
        except OSError as exc:
            return _fail(
                f"cannot create {lock.path}: {exc.strerror or exc}; point DATABASE_URL at a "
                "folder this user can write",
                EXIT_CONFIG,
            )
    try:
        problem = asyncio.run(_database_problem(settings.DATABASE_URL))
        if problem is not None:
            return _fail(problem, EXIT_CONFIG)
        try:
            asyncio.run(run_app(settings, login_timeout=DISCORD_TIMEOUT_SECONDS))
        except ListenerBindError as exc:
            taken = exc.errno == errno.EADDRINUSE
            return _fail(
                f"{exc.strerror}; "
                + ("another program uses that port: " if taken else "")
                + "change WEBHOOK_HOST/WEBHOOK_PORT or ADMIN_HOST/ADMIN_PORT (or set "
                "ADMIN_ENABLED=false)",
                EXIT_CONFIG,
            )
        except Exception as exc:
            failure = _discord_failure(exc, settings)
            if failure is None:
                raise
            return _fail(*failure)
    finally:
        if lock is not None:
            lock.release()
    return EXIT_OK


def _is_sqlite(url: str) -> bool:
    from storage.factory import backend_of  # noqa: PLC0415

    return backend_of(url) == "sqlite"


def _database_errors() -> tuple[type[BaseException], ...]:
    """What opening or using a database raises when the database (not the code) is at fault."""
    import sqlite3  # noqa: PLC0415

    import asyncpg  # noqa: PLC0415

    from storage.sqlite import OutdatedSchema  # noqa: PLC0415

    return (
        sqlite3.Error,
        OSError,  # refused, DNS, unreachable; TimeoutError is one
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        OutdatedSchema,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


async def _database_problem(url: str) -> str | None:
    """Why the bot could not use its database, in one line, or ``None``.

    Opening applies pending migrations (the bot does that at every start anyway); the probe
    write is the one readiness makes. A database that only reads would otherwise fail later,
    at the first job.
    """
    from storage.factory import display_url, store_for_url  # noqa: PLC0415

    store = store_for_url(url)
    try:
        await store.open()
        await store.check_writable(datetime.now(UTC).timestamp())
    except _database_errors() as exc:
        if _is_sqlite(url):
            return (
                f"cannot use the database {display_url(url)} ({_first_line(exc)}); check that "
                "this user may write the file and its folder, and that the disk has room"
            )
        return (
            f"cannot use the database {display_url(url)} ({_first_line(exc)}); check "
            "DATABASE_URL (host, port, user, password, database) and that the role may create "
            "tables in its schema"
        )
    finally:
        await store.close()
    return None


def _sync(settings: Settings, guild_id: int | None) -> int:
    from bot.app import sync_commands  # noqa: PLC0415

    try:
        count = asyncio.run(_within(sync_commands(settings, guild_id), DISCORD_TIMEOUT_SECONDS))
    except Exception as exc:
        failure = _guild_failure(exc, guild_id) or _discord_failure(exc, settings)
        if failure is None:
            raise
        return _fail(*failure)
    where = f"guild {guild_id}" if guild_id else "all servers (may take an hour)"
    print(f"synced {count} command(s) to {where}")
    return EXIT_OK


def _guild_failure(exc: BaseException, guild_id: int | None) -> tuple[str, int] | None:
    """What Discord's refusal of a guild sync means for the operator."""
    if guild_id is None:
        return None
    if isinstance(exc, discord.Forbidden):
        reason = exc.text or "Missing Access"
        return (
            f"Discord refused to register commands in server {guild_id} ({reason}); invite "
            "the bot to that server with the applications.commands scope (README, Setting "
            "up Discord)",
            EXIT_FAILED,
        )
    if isinstance(exc, discord.NotFound):
        reason = exc.text or "Unknown Guild"
        return (
            f"Discord knows no server {guild_id} ({reason}); copy the server id again "
            "(Developer Mode on, right-click the server, Copy Server ID)",
            EXIT_FAILED,
        )
    return None


class _ChecklistPrinter:
    """Prints the checklist as it runs.

    On a terminal a running check's line is replaced by its result; elsewhere (a pipe, a
    log file) both lines are kept, so the output still shows what was being waited for.
    """

    def __init__(self, out: TextIO, redact: Redactor) -> None:
        self._out = out
        self._redact = redact
        self._live = out.isatty()
        self._pending = False

    def header(self) -> None:
        self._write("Stemcord check\n")

    def started(self, name: str, action: str) -> None:
        from bot.doctor import format_started  # noqa: PLC0415

        line = format_started(name, action)
        self._write(line if self._live else line + "\n")
        self._pending = self._live

    def finished(self, result: CheckResult) -> None:
        from bot.doctor import format_result  # noqa: PLC0415

        if self._pending:
            self._write("\r\x1b[K")  # back to the start of the line, clear it
            self._pending = False
        self._write(format_result(result) + "\n")

    def summary(self, results: Sequence[CheckResult]) -> None:
        from bot.doctor import format_summary  # noqa: PLC0415

        self._write(format_summary(results) + "\n")

    def _write(self, text: str) -> None:
        self._out.write(self._redact(text))
        self._out.flush()


def _check() -> int:
    from bot.doctor import (  # noqa: PLC0415
        exit_status,
        format_checklist,
        run_checks,
        settings_failure,
    )

    try:
        settings = load_settings()
    except SettingsError as exc:
        results = [settings_failure(exc)]
        print(format_checklist(results))
        return exit_status(results)
    # The checklist is the output: library warnings (a retry, a slow call) would only
    # interleave with it. Errors still reach stderr, redacted like the bot's logs.
    _setup_logging(settings, level="ERROR")
    printer = _ChecklistPrinter(sys.stdout, Redactor(_secrets(settings)))
    printer.header()
    results = asyncio.run(run_checks(settings, progress=printer))
    printer.summary(results)
    return exit_status(results)


def _database_url() -> str:
    try:
        return load_database_settings().DATABASE_URL
    except SettingsError as exc:
        print(f"stemcord: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def _lock_refusal(lock: InstanceLock, exc: OSError) -> int:
    return _fail(
        f"cannot create {lock.path}: {exc.strerror or exc}; point DATABASE_URL at a folder "
        "this user can write",
        EXIT_CONFIG,
    )


def _sqlite_lock(url: str, command: str) -> InstanceLock | None:
    """The SQLite file's instance lock, taken (``None`` on PostgreSQL, which takes none).

    Raises :class:`InstanceLocked` while another process holds it, ``OSError`` when its
    sidecar cannot be made (:func:`_lock_file_refusal` says so).
    """
    from storage.factory import sqlite_path  # noqa: PLC0415

    if not _is_sqlite(url):
        return None
    lock = InstanceLock(sqlite_path(url), command)
    lock.acquire()
    return lock


def _lock_file_refusal(url: str, exc: OSError) -> int:
    from storage.factory import sqlite_path  # noqa: PLC0415

    return _lock_refusal(InstanceLock(sqlite_path(url), "refused"), exc)


async def _migrate() -> int:
    from storage.factory import sqlite_path  # noqa: PLC0415

    url = _database_url()
    if not _is_sqlite(url):
        return await _migrate_postgresql(url)
    from storage.migrate import schema_version  # noqa: PLC0415
    from storage.sqlite import SqliteJobStore  # noqa: PLC0415

    path = sqlite_path(url)
    lock = InstanceLock(path, "migrate")
    try:
        lock.acquire()
    except InstanceLocked as exc:
        return await _migrate_beside(path, exc)
    except OSError as exc:
        return _lock_refusal(lock, exc)
    try:
        store = SqliteJobStore(path)
        await store.open()
        try:
            version = await schema_version(store.conn)
            applied = store.applied_migrations
        finally:
            await store.close()
    finally:
        lock.release()
    _report_migration(str(path), applied, version)
    return EXIT_OK


def _report_migration(where: str, applied: Sequence[int], version: int) -> None:
    if applied:
        listed = ", ".join(f"V{v}" for v in applied)
        print(f"{where}: applied {listed}; schema version {version}")
    else:
        print(f"{where}: the schema is current (version {version}); nothing to apply")


def _instance_timeout() -> float:
    from bot.engine import EngineConfig  # noqa: PLC0415

    return EngineConfig().instance_timeout


async def _migrate_postgresql(url: str) -> int:
    """``migrate`` on PostgreSQL: refuse while live bots would be migrated under; otherwise
    migrate under the store's advisory lock (two migrations, or a migration and a starting
    bot, take turns: the second finds nothing left to apply)."""
    from storage.factory import display_url, postgresql_dsn  # noqa: PLC0415
    from storage.migrate import available_migrations  # noqa: PLC0415
    from storage.postgres import PostgresJobStore  # noqa: PLC0415

    shown = display_url(url)
    dsn, schema = postgresql_dsn(url)
    probe = PostgresJobStore(
        dsn, schema=schema, application_name="stemcord-migrate", min_pool_size=1, max_pool_size=2
    )
    try:
        await probe.open(migrate=False, require_current=False)
        have = await probe.schema_version()
        want = max(m.version for m in available_migrations("postgresql"))
        alive = (
            await probe.live_instances(
                datetime.now(UTC).timestamp(), stale_after=_instance_timeout()
            )
            if have < want
            else []
        )
    except _database_errors() as exc:
        return _fail(f"cannot use the database {shown} ({_first_line(exc)})", EXIT_CONFIG)
    finally:
        await probe.close()
    if alive:
        pending = ", ".join(f"V{v}" for v in range(have + 1, want + 1))
        listed = "; ".join(f"pid {i.pid} on host {i.host}" for i in alive)
        return _fail(
            f"not migrating {shown}: {pending} pending, and {len(alive)} Stemcord process(es) "
            f"work on it ({listed}). Migrating under running bots could break them; stop them "
            "and run migrate, or start them with this version (each migrates at start)",
            EXIT_DATABASE_BUSY,
        )
    store = PostgresJobStore(dsn, schema=schema, application_name="stemcord-migrate")
    try:
        await store.open()
        version = await store.schema_version()
    except _database_errors() as exc:
        return _fail(f"cannot migrate {shown} ({_first_line(exc)})", EXIT_CONFIG)
    finally:
        await store.close()
    _report_migration(shown, store.applied_migrations, version)
    return EXIT_OK


async def _migrate_beside(path: Path, locked: InstanceLocked) -> int:
    """``migrate`` while another process holds the database: read, never write."""
    from storage.migrate import available_migrations  # noqa: PLC0415
    from storage.sqlite import OutdatedSchema, SqliteJobStore  # noqa: PLC0415

    store = SqliteJobStore(path)
    try:
        await store.open(read_only=True)
    except OutdatedSchema as exc:
        pending = ", ".join(f"V{v}" for v in range(exc.have + 1, exc.want + 1))
        return _fail(
            f"not migrating {path}: {pending} pending, and {locked}. Migrating under a running "
            "bot could break it; stop it and run migrate, or just restart it with this version "
            "(the bot migrates at every start)",
            EXIT_DATABASE_BUSY,
        )
    await store.close()
    version = max(m.version for m in available_migrations())
    print(f"{path}: the schema is current (version {version}); nothing to apply")
    return EXIT_OK


async def _open_read_only(store: JobStore) -> None:
    """Open either backend for reading only: nothing created, migrated or written."""
    from storage.postgres import PostgresJobStore  # noqa: PLC0415
    from storage.sqlite import SqliteJobStore  # noqa: PLC0415

    if isinstance(store, SqliteJobStore | PostgresJobStore):
        await store.open(read_only=True)
    else:  # pragma: no cover - every backend is one of the two
        raise TypeError(f"no read-only open for {type(store).__name__}")


def _no_database(url: str) -> str | None:
    """For SQLite: the line saying the file does not exist yet (``None`` when it does)."""
    from storage.factory import sqlite_path  # noqa: PLC0415

    if _is_sqlite(url) and not sqlite_path(url).exists():
        return (
            f"no database at {sqlite_path(url)} (DATABASE_URL); the bot creates it at its first "
            "start, or run `python -m bot migrate`"
        )
    return None


async def _jobs(args: argparse.Namespace) -> int:
    from storage.factory import display_url, store_for_url  # noqa: PLC0415
    from storage.sqlite import OutdatedSchema  # noqa: PLC0415

    url = _database_url()
    shown = display_url(url)
    missing = _no_database(url)
    if missing is not None:
        return _fail(missing, EXIT_FAILED)
    store = store_for_url(url)
    try:
        # Reading jobs changes nothing: no WAL switch, no schema, no migration.
        await _open_read_only(store)
    except OutdatedSchema as exc:
        if exc.have == 0 and not _is_sqlite(url):
            return _fail(
                f"no Stemcord tables in {shown}; the bot creates them at its first start, or run "
                "`python -m bot migrate`",
                EXIT_FAILED,
            )
        return _fail(f"{exc}; run `python -m bot migrate` first", EXIT_FAILED)
    except _database_errors() as exc:
        await store.close()
        return _fail(f"cannot read the database {shown} ({_first_line(exc)})", EXIT_CONFIG)
    try:
        if args.jobs_command == "show":
            job = await store.get(args.job_id.strip().lower())
            if job is None:
                print(f"stemcord: no job {args.job_id!r} in {shown}", file=sys.stderr)
                return 1
            print(json.dumps(job_dict(job), indent=2) if args.json else format_job(job))
            return 0
        jobs = await store.list_jobs(
            guild_id=args.guild,
            requester_id=args.user,
            states=[JobState(s) for s in args.state] if args.state else None,
            limit=max(1, args.limit),
        )
    finally:
        await store.close()
    if args.json:
        for job in jobs:
            print(json.dumps(job_dict(job)))
    else:
        print(format_job_table(jobs, now=datetime.now(UTC).timestamp()))
    return 0


# --- moving between databases ------------------------------------------------------------

_MOVE_WHILE_RUNNING = (
    "stop it first: jobs it finishes after the export would be finished and posted again from "
    "the new database (--while-running exports a snapshot to keep, never to import)"
)


def _create_private(path: Path) -> TextIO:
    """A new file only its owner may read (it holds the server secret); never overwrites."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    return os.fdopen(fd, "w", encoding="utf-8", newline="\n")


async def _export(output: str, *, while_running: bool) -> int:
    from storage.factory import display_url, store_for_url  # noqa: PLC0415
    from storage.sqlite import OutdatedSchema  # noqa: PLC0415
    from storage.transfer import TransferError, live_processes  # noqa: PLC0415

    url = _database_url()
    shown = display_url(url)
    missing = _no_database(url)
    if missing is not None:
        return _fail(missing, EXIT_FAILED)
    lock: InstanceLock | None = None
    try:
        lock = _sqlite_lock(url, "export")
    except InstanceLocked as exc:
        if not while_running:
            return _fail(f"{exc}; {_MOVE_WHILE_RUNNING}", EXIT_DATABASE_BUSY)
    except OSError as exc:
        return _lock_file_refusal(url, exc)
    store = store_for_url(url)
    target: Path | None = None if output == "-" else Path(output)
    try:
        try:
            await _open_read_only(store)
            alive = await live_processes(
                store, datetime.now(UTC).timestamp(), stale_after=_instance_timeout()
            )
        except OutdatedSchema as exc:
            return _fail(f"{exc}; run `python -m bot migrate` first", EXIT_FAILED)
        except _database_errors() as exc:
            return _fail(f"cannot read the database {shown} ({_first_line(exc)})", EXIT_CONFIG)
        if alive and not while_running:
            listed = "; ".join(alive)
            return _fail(
                f"{len(alive)} Stemcord process(es) work on {shown} ({listed}); "
                f"{_MOVE_WHILE_RUNNING}",
                EXIT_DATABASE_BUSY,
            )
        try:
            summary = await _export_to(store, target)
        except TransferError as exc:
            return _fail(f"cannot export {shown}: {exc}", EXIT_FAILED)
        except OSError as exc:
            return _fail(f"cannot write {target}: {exc.strerror or exc}", EXIT_CONFIG)
    finally:
        await store.close()
        if lock is not None:
            lock.release()
    where = "standard output" if target is None else str(target)
    print(
        f"exported {summary.describe()} (schema V{summary.schema_version}) from {shown} to {where}",
        file=sys.stderr if target is None else sys.stdout,
    )
    return EXIT_OK


async def _export_to(store: JobStore, target: Path | None) -> TransferSummary:
    """Export to standard output, or to ``target`` by way of ``<target>.partial``: only a
    complete file gets the name asked for, and an existing file is never replaced."""
    from storage.transfer import export_store  # noqa: PLC0415

    if target is None:
        return await export_store(store, sys.stdout)
    partial = target.with_name(target.name + ".partial")
    out = _create_private(partial)
    try:
        summary = await export_store(store, out)
        out.close()
        # A hard link never replaces an existing file (one made meanwhile stays).
        os.link(partial, target)
    finally:
        out.close()
        partial.unlink(missing_ok=True)
    return summary


def _import_file(source: str) -> int:
    """``import``: open the file (here, not in the event loop), then load it."""
    if source == "-":
        return asyncio.run(_import(sys.stdin))
    try:
        infile = Path(source).open(encoding="utf-8")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        return _fail(f"cannot read {source}: {exc.strerror or exc}", EXIT_CONFIG)
    with infile:
        return asyncio.run(_import(infile))


async def _import(infile: TextIO) -> int:
    from storage.factory import display_url, store_for_url  # noqa: PLC0415
    from storage.transfer import TransferError, import_store, live_processes  # noqa: PLC0415

    url = _database_url()
    shown = display_url(url)
    try:
        lock = _sqlite_lock(url, "import")
    except InstanceLocked as exc:
        return _fail(f"{exc}; stop it before importing", EXIT_DATABASE_BUSY)
    except OSError as exc:
        return _lock_file_refusal(url, exc)
    try:
        store = store_for_url(url)
        try:
            try:
                await store.open()
                alive = await live_processes(
                    store, datetime.now(UTC).timestamp(), stale_after=_instance_timeout()
                )
            except _database_errors() as exc:
                return _fail(f"cannot use the database {shown} ({_first_line(exc)})", EXIT_CONFIG)
            if alive:
                return _fail(
                    f"{len(alive)} Stemcord process(es) work on {shown} ({'; '.join(alive)}); "
                    "stop them before importing",
                    EXIT_DATABASE_BUSY,
                )
            try:
                summary = await import_store(store, infile)
            except TransferError as exc:
                return _fail(f"not imported into {shown}: {exc}", EXIT_FAILED)
        finally:
            await store.close()
    finally:
        if lock is not None:
            lock.release()
    print(
        f"imported {summary.describe()} (exported from {summary.source}) into {shown}, schema "
        f"V{summary.schema_version}; start the bot on it"
    )
    return EXIT_OK


# --- job formatting ---------------------------------------------------------------------------

_TIME_FIELDS = ("created_at", "updated_at", "finished_at", "due_at", "deadline_at")
# Only the hash of the callback token is stored; it is useless to a reader and not shown.
_HIDDEN_FIELDS = frozenset({"callback_token_hash"})


def iso(ts: float | None) -> str | None:
    """Epoch seconds as ISO-8601 UTC (``None`` stays ``None``)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def job_dict(job: JobRecord) -> dict[str, Any]:
    """A job as JSON-ready data, times in ISO-8601 UTC."""
    data: dict[str, Any] = {}
    for name in job.__dataclass_fields__:
        if name in _HIDDEN_FIELDS:
            continue
        value = getattr(job, name)
        if name in _TIME_FIELDS:
            value = iso(value)
        elif isinstance(value, Enum):
            value = value.value
        data[name] = value
    return data


def format_job(job: JobRecord) -> str:
    """Every field of a job, one per line; JSON fields indented."""
    lines = []
    for name, value in job_dict(job).items():
        if isinstance(value, dict):
            text = json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n    ")
            lines.append(f"{name}: {text}" if value else f"{name}: {{}}")
        else:
            lines.append(f"{name}: {'-' if value is None else value}")
    return "\n".join(lines)


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 2 * 86400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def format_job_table(jobs: Sequence[JobRecord], *, now: float) -> str:
    """A fixed-width table of jobs (newest first, as given)."""
    if not jobs:
        return "no jobs"
    header = ("ID", "STATE", "MODEL", "CREATED (UTC)", "AGE", "VIDGO TASK", "ERROR")
    rows = [header]
    for job in jobs:
        error = (job.last_error or "").replace("\n", " ")
        rows.append(
            (
                job.id,
                job.state.value,
                job.model,
                iso(job.created_at) or "",
                _age(now - job.created_at),
                job.vidgo_task_id or "-",
                error[:50] + ("…" if len(error) > 50 else ""),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    return "\n".join(
        (
            "  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True))
            + "  "
            + row[-1]
        ).rstrip()
        for row in rows
    )
