"""``python -m bot <command>``: run the bot, check an installation, inspect jobs.

Commands (each has ``--help``):

* ``run`` (the default) — run the bot until SIGINT/SIGTERM;
* ``check`` — a checklist of settings, database, Vidgo key, Discord token and PUBLIC_URL
  (:mod:`bot.doctor`); exits 1 if anything failed;
* ``sync [--guild ID]`` — register the slash commands globally or in one guild;
* ``jobs list`` / ``jobs show ID`` — read jobs from the database, offline (only
  ``DATABASE_URL`` is needed, not the secrets);
* ``migrate`` — create the database if needed and apply pending migrations.

Exit status: 0 success, 1 a failed check or an unknown job, 2 invalid settings or usage,
130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

import discord

from bot.logs import setup_logging
from bot.settings import (
    Settings,
    SettingsError,
    load_database_settings,
    load_settings,
    load_settings_or_exit,
)
from storage.jobstate import JobState
from storage.records import JobRecord


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description="Stemcord: karaoke stems for Discord. Without a command, runs the bot.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser(
        "run",
        help="run the bot (the default)",
        description="Run the bot until SIGINT or SIGTERM. Settings come from the environment "
        "and .env (see .env.example).",
    )
    sub.add_parser(
        "check",
        help="check settings, database, Vidgo key, Discord token and PUBLIC_URL",
        description="Print a checklist (ok / FAIL with a fix for each failure) and exit 1 if "
        "any check failed. Opens the database and applies migrations; calls Vidgo's balance "
        "and Discord's GET /users/@me; with an https PUBLIC_URL, sends a probe callback "
        "through it.",
    )
    sync = sub.add_parser(
        "sync",
        help="register the slash commands with Discord (globally, or in one guild)",
        description="Global commands can take up to an hour to appear; a guild sync is instant.",
    )
    sync.add_argument("--guild", type=int, default=None, help="guild (server) id to sync to")

    jobs = sub.add_parser(
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

    sub.add_parser(
        "migrate",
        help="create the database if needed and apply pending migrations",
        description="Apply pending schema migrations to DATABASE_URL (the bot also does this "
        "at every start).",
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
        return 130


def _setup_logging(settings: Settings, level: str | None = None) -> None:
    setup_logging(
        level or settings.LOG_LEVEL,
        settings.LOG_FORMAT,
        _secrets(settings),
    )


def _secrets(settings: Settings) -> list[str]:
    return [settings.VIDGO_API_KEY.get_secret_value(), settings.DISCORD_TOKEN.get_secret_value()]


def _run(settings: Settings) -> int:
    # Imported late so that `--help` and settings errors do not pay for importing discord.py.
    from bot.app import run_app  # noqa: PLC0415

    try:
        asyncio.run(run_app(settings))
    except discord.LoginFailure:
        print("stemcord: Discord rejected DISCORD_TOKEN; copy the bot token again", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        print(
            f"stemcord: {exc}; another program uses that port: change WEBHOOK_PORT or "
            "ADMIN_PORT (or set ADMIN_ENABLED=false)",
            file=sys.stderr,
        )
        return 2
    return 0


def _sync(settings: Settings, guild_id: int | None) -> int:
    from bot.app import sync_commands  # noqa: PLC0415

    try:
        count = asyncio.run(sync_commands(settings, guild_id))
    except discord.LoginFailure:
        print("stemcord: Discord rejected DISCORD_TOKEN; copy the bot token again", file=sys.stderr)
        return 2
    where = f"guild {guild_id}" if guild_id else "all servers (may take an hour)"
    print(f"synced {count} command(s) to {where}")
    return 0


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
    # Library warnings go to stderr, through the same redaction as the bot's logs.
    _setup_logging(settings, level="WARNING")
    results = asyncio.run(run_checks(settings))
    print(format_checklist(results, _secrets(settings)))
    return exit_status(results)


def _database_path() -> Path:
    try:
        return load_database_settings().database_path
    except SettingsError as exc:
        print(f"stemcord: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


async def _migrate() -> int:
    from storage.migrate import schema_version  # noqa: PLC0415
    from storage.sqlite import SqliteJobStore  # noqa: PLC0415

    path = _database_path()
    store = SqliteJobStore(path)
    await store.open()
    try:
        version = await schema_version(store.conn)
        applied = store.applied_migrations
    finally:
        await store.close()
    if applied:
        listed = ", ".join(f"V{v}" for v in applied)
        print(f"{path}: applied {listed}; schema version {version}")
    else:
        print(f"{path}: up to date (schema version {version})")
    return 0


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
