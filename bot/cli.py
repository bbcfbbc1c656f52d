"""``python -m bot``: run the bot, or sync its slash commands."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

import discord

from bot.settings import load_settings_or_exit


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bot", description="Stemcord: karaoke stems for Discord."
    )
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="run the bot (the default)")
    sync = sub.add_parser(
        "sync",
        help="register the slash commands with Discord (globally, or in one guild)",
        description="Global commands can take up to an hour to appear; a guild sync is instant.",
    )
    sync.add_argument("--guild", type=int, default=None, help="guild (server) id to sync to")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    settings = load_settings_or_exit()
    logging.basicConfig(
        level=settings.LOG_LEVEL,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("discord").setLevel(
        max(logging.INFO, logging.getLevelName(settings.LOG_LEVEL))
    )
    # Imported late so that `--help` and settings errors do not pay for importing discord.py.
    from bot.app import run_app, sync_commands  # noqa: PLC0415

    try:
        if args.command == "sync":
            count = asyncio.run(sync_commands(settings, args.guild))
            where = f"guild {args.guild}" if args.guild else "all servers (may take an hour)"
            print(f"synced {count} command(s) to {where}")
            return 0
        asyncio.run(run_app(settings))
    except discord.LoginFailure:
        print("stemcord: Discord rejected DISCORD_TOKEN; copy the bot token again", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
