"""``python -m bot <command>``: run the bot, check an installation, inspect jobs.

Commands (each has ``--help``):

* ``run`` (the default) — run the bot until SIGINT/SIGTERM; one process per database
  (:mod:`bot.instance_lock`);
* ``check`` — a checklist of settings, database, Vidgo key, Discord token and PUBLIC_URL
  (:mod:`bot.doctor`), printed as it goes; exits 1 if anything failed;
* ``sync [--guild ID]`` — register the slash commands globally or in one guild;
* ``jobs list`` / ``jobs show ID`` — read jobs from the database, offline (only
  ``DATABASE_URL`` is needed, not the secrets);
* ``migrate`` — create the database if needed and apply pending migrations.

A failure the operator can fix ends with one line on standard error, ``stemcord: ...``, and
an exit status (:data:`EXIT_STATUSES`, also in ``--help``); a traceback means a bug.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
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
from storage.jobstate import JobState
from storage.records import JobRecord

if TYPE_CHECKING:
    from bot.doctor import CheckResult

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
        "a check failed, no such job, or Discord refused a sync (e.g. not in that server)",
    ),
    (
        EXIT_CONFIG,
        "invalid settings or usage, Discord rejected DISCORD_TOKEN, a listener port is taken, "
        "or the database cannot be opened or written",
    ),
    (EXIT_UNREACHABLE, "Discord could not be reached (refused, DNS, no answer, TLS, 5xx)"),
    (
        EXIT_DATABASE_BUSY,
        "another Stemcord instance holds the database (run), or migrations are pending while "
        "it runs (migrate)",
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
        "and .env (see .env.example). Only one bot may run on a database: a second one exits "
        "at once, naming the first.",
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
        "pending it refuses until the bot is stopped (or just restart the bot).",
    )
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
    return [settings.VIDGO_API_KEY.get_secret_value(), settings.DISCORD_TOKEN.get_secret_value()]


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

    # Before anything touches the database or Discord: one process per database.
    lock = InstanceLock(settings.database_path, "run")
    try:
        lock.acquire()
    except InstanceLocked as exc:
        return _fail(
            f"{exc}; stop it first, or give this one its own DATABASE_URL", EXIT_DATABASE_BUSY
        )
    except OSError as exc:
        return _fail(
            f"cannot create {lock.path}: {exc.strerror or exc}; point DATABASE_URL at a folder "
            "this user can write",
            EXIT_CONFIG,
        )
    try:
        problem = asyncio.run(_database_problem(settings.database_path))
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
        lock.release()
    return EXIT_OK


async def _database_problem(path: Path) -> str | None:
    """Why the bot could not use its database, in one line, or ``None``.

    Opening applies pending migrations (the bot does that at every start anyway); the probe
    write is the one readiness makes. A database that only reads would otherwise fail later,
    at the first job.
    """
    import sqlite3  # noqa: PLC0415

    from storage.sqlite import SqliteJobStore  # noqa: PLC0415

    store = SqliteJobStore(path)
    try:
        await store.open()
        await store.check_writable(datetime.now(UTC).timestamp())
    except (sqlite3.Error, OSError) as exc:
        return (
            f"cannot use the database {path} ({type(exc).__name__}: {exc}); check that this "
            "user may write the file and its folder, and that the disk has room"
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


def _database_path() -> Path:
    try:
        return load_database_settings().database_path
    except SettingsError as exc:
        print(f"stemcord: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


async def _migrate() -> int:
    from storage.migrate import schema_version  # noqa: PLC0415
    from storage.sqlite import SqliteJobStore  # noqa: PLC0415

    path = _database_path()
    lock = InstanceLock(path, "migrate")
    try:
        lock.acquire()
    except InstanceLocked as exc:
        return await _migrate_beside(path, exc)
    except OSError as exc:
        return _fail(
            f"cannot create {lock.path}: {exc.strerror or exc}; point DATABASE_URL at a folder "
            "this user can write",
            EXIT_CONFIG,
        )
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
    if applied:
        listed = ", ".join(f"V{v}" for v in applied)
        print(f"{path}: applied {listed}; schema version {version}")
    else:
        print(f"{path}: the schema is current (version {version}); nothing to apply")
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


async def _jobs(args: argparse.Namespace) -> int:
    from storage.sqlite import OutdatedSchema, SqliteJobStore  # noqa: PLC0415

    path = _database_path()
    if not path.exists():
        print(
            f"stemcord: no database at {path} (DATABASE_URL); the bot creates it at its first "
            "start, or run `python -m bot migrate`",
            file=sys.stderr,
        )
        return 1
    store = SqliteJobStore(path)
    try:
        # Reading jobs changes nothing in the file: no WAL switch, no migration.
        await store.open(read_only=True)
    except OutdatedSchema as exc:
        print(f"stemcord: {exc}; run `python -m bot migrate` first", file=sys.stderr)
        return 1
    try:
        if args.jobs_command == "show":
            job = await store.get(args.job_id.strip().lower())
            if job is None:
                print(f"stemcord: no job {args.job_id!r} in {path}", file=sys.stderr)
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
