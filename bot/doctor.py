"""``python -m bot check``: is this installation ready to run?

Each check prints one line, ``ok`` or ``FAIL`` (``skip`` when an earlier failure makes it
meaningless), and every failure comes with one sentence saying how to fix it:

* **settings** — every variable is valid (the same validation as at start-up);
* **database** — the file opens (created if missing), migrations are applied, and SQLite's
  ``quick_check`` passes;
* **vidgo** — ``GET /api/user/balance`` with ``VIDGO_API_KEY`` (the key works, the credits);
* **discord** — ``GET {DISCORD_API_BASE}/users/@me`` with ``DISCORD_TOKEN`` (the token works);
* **public_url** — unset (polling only) or https (Vidgo calls only https URLs);
* **callbacks** — with an https ``PUBLIC_URL``, a probe ``POST`` to
  ``PUBLIC_URL/vidgo/callback/<random token>`` must come back from Stemcord's own listener.
  If the bot is not running, ``check`` listens on ``WEBHOOK_HOST:WEBHOOK_PORT`` itself for the
  moment of the probe, so the whole path (DNS, reverse proxy, certificate, port) is tested
  before the first start; if the bot is running, its listener answers the unknown token with
  404 ``unknown callback`` and writes nothing, which passes too.

The output never contains a secret: messages are built from status codes and cleaned error
texts, and the whole checklist passes through the same redactor as the logs.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import aiohttp

from bot.engine import CALLBACK_PATH, CallbackOutcome
from bot.logs import Redactor
from bot.settings import Settings, SettingsError
from bot.vidgo.client import VidgoClient
from bot.vidgo.errors import VidgoAuthError, VidgoError
from bot.webhook import CallbackServer
from storage.migrate import schema_version
from storage.sqlite import SqliteJobStore

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
USER_AGENT = "DiscordBot (https://github.com/stemcord/stemcord, 0.1) Stemcord-check"


class Status(StrEnum):
    """The result of one check."""

    OK = "ok"
    FAIL = "FAIL"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One line of the checklist."""

    name: str
    status: Status
    detail: str
    fix: str | None = None

    @property
    def failed(self) -> bool:
        """Whether this check makes ``check`` exit non-zero."""
        return self.status is Status.FAIL


def _plain(text: object, limit: int = 200) -> str:
    """Untrusted text as one short printable line."""
    cleaned = _CONTROL.sub(" ", str(text)).strip()
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def settings_failure(error: SettingsError) -> CheckResult:
    """The checklist line for settings that do not validate."""
    return CheckResult(
        "settings",
        Status.FAIL,
        str(error),
        "copy .env.example to .env (or set the variables) and fix the values named above",
    )


async def check_database(settings: Settings) -> CheckResult:
    """Open the database, apply migrations, run ``PRAGMA quick_check``."""
    store = SqliteJobStore(settings.database_path)
    try:
        await store.open()
        version = await schema_version(store.conn)
        async with store.conn.execute("PRAGMA quick_check") as cur:
            row = await cur.fetchone()
        verdict = str(row[0]) if row else "no answer"
    except Exception as exc:
        return CheckResult(
            "database",
            Status.FAIL,
            f"cannot open {settings.database_path}: {_plain(exc)}",
            "point DATABASE_URL at a file in a folder this user can write "
            "(sqlite:////data/stemcord.sqlite3 in the container)",
        )
    finally:
        await store.close()
    if verdict != "ok":
        return CheckResult(
            "database",
            Status.FAIL,
            f"{settings.database_path}: quick_check says {_plain(verdict)}",
            "stop the bot and restore the database from a backup (docs/operations.md)",
        )
    return CheckResult("database", Status.OK, f"{settings.database_path}, schema version {version}")


async def check_vidgo(settings: Settings, session: aiohttp.ClientSession) -> CheckResult:
    """Ask Vidgo for the balance with the configured key."""
    client = VidgoClient(
        session,
        settings.VIDGO_BASE_URL,
        settings.VIDGO_API_KEY.get_secret_value(),
        timeout=min(settings.VIDGO_TIMEOUT_SECONDS, 15.0),
        max_retries=1,
    )
    try:
        credits = await client.balance()
    except VidgoAuthError as exc:
        return CheckResult(
            "vidgo",
            Status.FAIL,
            f"Vidgo rejected VIDGO_API_KEY ({exc.message})",
            "copy the API key again from the Vidgo console into VIDGO_API_KEY",
        )
    except VidgoError as exc:
        return CheckResult(
            "vidgo",
            Status.FAIL,
            f"no answer from Vidgo at {settings.VIDGO_BASE_URL}: {exc.message}",
            "check VIDGO_BASE_URL and that this server can make outbound https requests",
        )
    note = "" if credits > 0 else " (no credits left: top up before separating)"
    return CheckResult("vidgo", Status.OK, f"key accepted, {credits} credits{note}")


async def check_discord(settings: Settings, session: aiohttp.ClientSession) -> CheckResult:
    """``GET /users/@me`` with the bot token."""
    url = f"{settings.DISCORD_API_BASE}/users/@me"
    headers = {
        "Authorization": f"Bot {settings.DISCORD_TOKEN.get_secret_value()}",
        "User-Agent": USER_AGENT,
    }
    try:
        async with session.get(
            url, headers=headers, timeout=aiohttp.ClientTimeout(total=15), allow_redirects=False
        ) as response:
            status = response.status
            body: Any = await response.json(content_type=None) if status == 200 else None
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return CheckResult(
            "discord",
            Status.FAIL,
            f"no answer from Discord at {settings.DISCORD_API_BASE}: {type(exc).__name__}",
            "check DISCORD_API_BASE and that this server can make outbound https requests",
        )
    if status == 401:
        return CheckResult(
            "discord",
            Status.FAIL,
            "Discord rejected DISCORD_TOKEN (HTTP 401)",
            "reset the token in the developer portal (Bot tab) and paste it into DISCORD_TOKEN",
        )
    if status != 200 or not isinstance(body, dict):
        return CheckResult(
            "discord",
            Status.FAIL,
            f"Discord answered HTTP {status} to GET /users/@me",
            "check DISCORD_API_BASE (default https://discord.com/api/v10) and try again later",
        )
    name = _plain(body.get("username", "?"), 64)
    return CheckResult(
        "discord", Status.OK, f"token accepted: logged in as {name} (id {_plain(body.get('id'))})"
    )


def check_public_url(settings: Settings) -> CheckResult:
    """Unset (polling only) or https."""
    if settings.PUBLIC_URL is None:
        return CheckResult("public_url", Status.OK, "not set: Stemcord polls Vidgo (no callbacks)")
    if not settings.PUBLIC_URL.startswith("https://"):
        return CheckResult(
            "public_url",
            Status.FAIL,
            f"{settings.PUBLIC_URL} is not https; Vidgo only calls https URLs",
            "put a reverse proxy with a certificate in front of the listener and set "
            "PUBLIC_URL=https://your.domain (README, Deploy), or leave it empty to poll",
        )
    return CheckResult("public_url", Status.OK, f"{settings.PUBLIC_URL} (https)")


class _ProbeSink:
    """Stands in for the engine while ``check`` listens: remembers the tokens it sees."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    async def on_callback(self, token: str, task_hint: str | None = None) -> CallbackOutcome:
        self.seen.add(token)
        return CallbackOutcome.UNKNOWN


async def check_callbacks(
    settings: Settings, session: aiohttp.ClientSession, ssl_context: ssl.SSLContext | None
) -> CheckResult:
    """A probe callback through PUBLIC_URL must reach Stemcord's listener."""
    if settings.PUBLIC_URL is None:
        return CheckResult("callbacks", Status.SKIP, "PUBLIC_URL not set")
    if not settings.PUBLIC_URL.startswith("https://"):
        return CheckResult("callbacks", Status.SKIP, "not probed until PUBLIC_URL is https")
    token = secrets.token_urlsafe(16)
    url = f"{settings.PUBLIC_URL}{CALLBACK_PATH}{token}"
    sink = _ProbeSink()
    listener = CallbackServer(sink, host=settings.WEBHOOK_HOST, port=settings.WEBHOOK_PORT)
    try:
        await listener.start()
        own_listener = True
    except OSError:
        own_listener = False  # the port is taken: most likely the bot itself is running
    fix = (
        "check that DNS for the PUBLIC_URL host points at this server, port 443 is open, and "
        f"the reverse proxy forwards {CALLBACK_PATH} to {settings.WEBHOOK_HOST}:"
        f"{settings.WEBHOOK_PORT}"
    )
    try:
        async with session.post(
            url,
            json={"stemcord_check": True},
            ssl=ssl_context if ssl_context is not None else True,
            timeout=aiohttp.ClientTimeout(total=15),
            allow_redirects=False,
        ) as response:
            status = response.status
            text = await response.text()
    except aiohttp.ClientSSLError as exc:
        return CheckResult(
            "callbacks",
            Status.FAIL,
            f"{settings.PUBLIC_URL}: TLS failed ({_plain(exc, 120)})",
            "give the reverse proxy a valid certificate for this host (Caddy does it itself)",
        )
    except (aiohttp.ClientError, TimeoutError) as exc:
        return CheckResult(
            "callbacks",
            Status.FAIL,
            f"{settings.PUBLIC_URL} is not reachable from this host ({type(exc).__name__})",
            fix,
        )
    finally:
        await listener.stop()
    if own_listener and token in sink.seen:
        return CheckResult(
            "callbacks", Status.OK, f"a probe through {settings.PUBLIC_URL} reached the listener"
        )
    if status == 404 and _is_listener_reply(text):
        # A Stemcord listener answered: the running bot (the proxy may lead to another
        # container or host than the one ``check`` runs in).
        return CheckResult(
            "callbacks",
            Status.OK,
            f"the running bot answered a probe through {settings.PUBLIC_URL}",
        )
    return CheckResult(
        "callbacks",
        Status.FAIL,
        f"a probe through {settings.PUBLIC_URL} got HTTP {status}, not Stemcord's listener",
        fix,
    )


def _is_listener_reply(text: str) -> bool:
    try:
        body = json.loads(text)
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("message") == "unknown callback"


async def run_checks(
    settings: Settings, *, ssl_context: ssl.SSLContext | None = None
) -> list[CheckResult]:
    """Every check after the settings, in checklist order.

    ``ssl_context`` replaces the system trust store for the callback probe only (tests use a
    private certificate authority).
    """
    results = [CheckResult("settings", Status.OK, "valid")]
    results.append(await check_database(settings))
    async with aiohttp.ClientSession() as session:
        vidgo, discord = await asyncio.gather(
            check_vidgo(settings, session), check_discord(settings, session)
        )
        results += [vidgo, discord, check_public_url(settings)]
        results.append(await check_callbacks(settings, session, ssl_context))
    return results


def format_checklist(results: Sequence[CheckResult], secrets: Sequence[str] = ()) -> str:
    """The checklist as printed, with every secret redacted."""
    lines = ["Stemcord check"]
    for result in results:
        lines.append(f"  {result.status.value:<4}  {result.name:<10}  {result.detail}")
        if result.fix:
            lines.append(f"{'':18}fix: {result.fix}")
    failed = sum(1 for r in results if r.failed)
    lines.append(
        "All checks passed." if not failed else f"{failed} check(s) failed; fix them and run again."
    )
    return Redactor(secrets)("\n".join(lines))


def exit_status(results: Sequence[CheckResult]) -> int:
    """0 when nothing failed, else 1."""
    return 1 if any(r.failed for r in results) else 0
