"""``python -m bot check``: is this installation ready to run?

Each check prints one line, ``ok`` or ``FAIL`` (``skip`` when an earlier failure makes it
meaningless), and every failure comes with one sentence saying how to fix it. The checks run
one after another and report as they go (:class:`CheckProgress`): a line when a check starts
(what it does and how long it may take), a line when it ends. Every network check makes one
attempt and gives up after :data:`CHECK_TIMEOUT_SECONDS`:

* **settings** — every variable is valid (the same validation as at start-up);
* **database** — the file opens (created if missing), migrations are applied, and SQLite's
  ``quick_check`` passes. While a bot holds the database (:mod:`bot.instance_lock`) the file
  is only read: ``check`` never migrates a database under a running bot. On PostgreSQL
  (shared by several bots) nothing is migrated: the server answers within 15 s, its version
  and the schema's are reported, and with the schema current the role makes the same
  committed write readiness makes;
* **media** — the folder for kept stems (``MEDIA_DIR``) exists or can be made, takes a written
  file (one is written, synced and removed), and has more free space than
  ``MEDIA_MIN_FREE_MB`` (below it nothing would be kept);
* **vidgo** — ``GET /api/user/balance`` with ``VIDGO_API_KEY`` (the key works, the credits);
* **discord** — ``GET {DISCORD_API_BASE}/users/@me`` with ``DISCORD_TOKEN`` (the token works);
* **servers** — the servers the bot is in (``GET /users/@me/guilds``), the operator's
  ``ALLOWED_GUILD_IDS`` and how many of those servers are outside it (the running bot leaves
  them). Informational: it fails only when Discord cannot list the servers;
* **public_url** — unset (polling only) or https (Vidgo calls only https URLs);
* **callbacks** — with an https ``PUBLIC_URL``, a probe ``POST`` to
  ``PUBLIC_URL/vidgo/callback/<random token>`` must come back from Stemcord's own listener.
  If the bot is not running, ``check`` listens on ``WEBHOOK_HOST:WEBHOOK_PORT`` itself for the
  moment of the probe, so the whole path (DNS, reverse proxy, certificate, port) is tested
  before the first start; if the bot is running, its listener answers the unknown token with
  404 ``unknown callback`` and writes nothing, which passes too.

A failure to reach a server is named in words (:func:`describe_network_error`: connection
refused, DNS, no answer within N s, TLS), never by an exception class alone.

The output never contains a secret: messages are built from status codes and cleaned error
texts, and the whole checklist passes through the same redactor as the logs.

The module also holds what the running bot reports about itself at start-up:
:func:`command_drift` (are the slash commands Discord has the ones this version defines?) and
:func:`sync_command` (the exact command that fixes it).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shlex
import shutil
import socket
import ssl
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import aiosqlite
import asyncpg

from bot.engine import CALLBACK_PATH, CallbackOutcome
from bot.instance_lock import InstanceLock, InstanceLocked
from bot.logs import Redactor
from bot.settings import Settings, SettingsError
from bot.vidgo.client import VidgoClient
from bot.vidgo.errors import VidgoAuthError, VidgoError
from bot.webhook import CallbackServer
from storage.factory import display_url, postgresql_dsn
from storage.migrate import available_migrations, schema_version
from storage.postgres import PostgresJobStore
from storage.sqlite import SqliteJobStore

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
USER_AGENT = "DiscordBot (https://github.com/stemcord/stemcord, 0.1) Stemcord-check"
# Each network check makes one attempt and waits at most this long for it.
CHECK_TIMEOUT_SECONDS = 15.0


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


def _host_port(exc: aiohttp.ClientConnectorError) -> str:
    host = f"[{exc.host}]" if ":" in exc.host else exc.host
    return f"{host}:{exc.port}"


def describe_network_error(exc: BaseException, *, timeout: float | None = None) -> str:
    """What went wrong reaching a server, in words an operator can act on.

    Connection refused, a name DNS cannot resolve, no answer within ``timeout``, a TLS
    failure, a dropped connection; never only an exception's class name, and never a URL's
    query or a header (so never a secret).
    """
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        reason = _plain(getattr(exc.certificate_error, "verify_message", "") or "", 80)
        return f"the TLS certificate of {exc.host} is not trusted" + (
            f" ({reason})" if reason else ""
        )
    if isinstance(exc, aiohttp.ClientConnectorSSLError):
        return f"the TLS handshake with {_host_port(exc)} failed"
    if isinstance(exc, aiohttp.ClientConnectorError):
        cause = exc.os_error
        if isinstance(cause, socket.gaierror):
            return f"the host name {exc.host} could not be resolved (DNS)"
        if isinstance(cause, ConnectionRefusedError):
            return f"connection refused by {_host_port(exc)} (nothing listens there)"
        if isinstance(cause, TimeoutError):
            return f"no answer from {_host_port(exc)} while connecting"
        reason = cause.strerror if cause.strerror else str(cause)
        return f"cannot connect to {_host_port(exc)}: {_plain(reason, 80).lower()}"
    if isinstance(exc, TimeoutError):  # aiohttp's own timeouts are TimeoutErrors too
        return f"no answer within {timeout:g} s" if timeout else "no answer in time"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without answering"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the answer was cut off"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"the server sent an invalid answer (HTTP {exc.status})"
    if isinstance(exc, aiohttp.InvalidURL):
        return "the URL is not valid"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed ({_plain(exc.reason or exc, 80)})"
    if isinstance(exc, socket.gaierror):
        return "the host name could not be resolved (DNS)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens there)"
    if isinstance(exc, ConnectionResetError):
        return "the connection was reset"
    if isinstance(exc, OSError) and exc.strerror:
        return _plain(exc.strerror, 80).lower()
    text = _plain(exc, 120)
    return text or "the request failed"


def settings_failure(error: SettingsError) -> CheckResult:
    """The checklist line for settings that do not validate."""
    return CheckResult(
        "settings",
        Status.FAIL,
        str(error),
        "copy .env.example to .env (or set the variables) and fix the values named above",
    )


async def check_database(settings: Settings) -> CheckResult:
    """Open the database, apply migrations, run ``PRAGMA quick_check``.

    While another process holds the database's instance lock (a running bot), the file is
    opened read-only instead: nothing is migrated or written under it. PostgreSQL:
    :func:`check_postgresql`.
    """
    if settings.database_backend == "postgresql":
        return await check_postgresql(settings)
    lock = InstanceLock(settings.database_path, "check")
    try:
        lock.acquire()
    except InstanceLocked as locked:
        return await _check_database_in_use(settings, locked)
    except OSError as exc:
        return _database_unusable(settings, exc)
    store = SqliteJobStore(settings.database_path)
    try:
        await store.open()
        version = await schema_version(store.conn)
        verdict = await _quick_check(store.conn)
    except Exception as exc:
        return _database_unusable(settings, exc)
    finally:
        await store.close()
        lock.release()
    return _database_verdict(settings, version, verdict, note="")


async def _check_database_in_use(settings: Settings, locked: InstanceLocked) -> CheckResult:
    """The read-only variant: a running bot holds the file."""
    uri = f"{settings.database_path.resolve().as_uri()}?mode=ro"
    try:
        conn = await aiosqlite.connect(uri, uri=True)
    except Exception as exc:
        return _database_unusable(settings, exc)
    try:
        await conn.execute("PRAGMA busy_timeout = 5000")
        async with conn.execute("SELECT MAX(version) FROM schema_migrations") as cur:
            row = await cur.fetchone()
        version = int(row[0]) if row and row[0] is not None else 0
        verdict = await _quick_check(conn)
    except Exception as exc:
        return _database_unusable(settings, exc)
    finally:
        await conn.close()
    note = f"; in use by another Stemcord process ({locked.holder.describe()}), so only read"
    wanted = max(m.version for m in available_migrations())
    if version < wanted:
        note += f"; a bot of this version applies V{version + 1}-V{wanted} when it starts"
    return _database_verdict(settings, version, verdict, note=note)


async def _quick_check(conn: aiosqlite.Connection) -> str:
    async with conn.execute("PRAGMA quick_check") as cur:
        row = await cur.fetchone()
    return str(row[0]) if row else "no answer"


def _database_verdict(settings: Settings, version: int, verdict: str, *, note: str) -> CheckResult:
    if verdict != "ok":
        return CheckResult(
            "database",
            Status.FAIL,
            f"{settings.database_path}: quick_check says {_plain(verdict)}",
            "stop the bot and restore the database from a backup (docs/operations.md)",
        )
    return CheckResult(
        "database", Status.OK, f"{settings.database_path}, schema version {version}{note}"
    )


def _database_unusable(settings: Settings, exc: BaseException) -> CheckResult:
    return CheckResult(
        "database",
        Status.FAIL,
        f"cannot open {settings.database_path}: {_plain(exc)}",
        "point DATABASE_URL at a file in a folder this user can write "
        "(sqlite:////data/stemcord.sqlite3 in the container)",
    )


async def check_postgresql(settings: Settings) -> CheckResult:
    """Reach the server (one attempt, :data:`CHECK_TIMEOUT_SECONDS`), report its version and
    the schema's, and make readiness's committed write when the schema is current.

    Never migrates: other bots may be running on the database; each bot migrates at its
    start (or ``migrate`` does, with none running).
    """
    shown = display_url(settings.DATABASE_URL)
    dsn, schema = postgresql_dsn(settings.DATABASE_URL)
    store = PostgresJobStore(
        dsn,
        schema=schema,
        min_pool_size=1,
        max_pool_size=1,
        connect_timeout=CHECK_TIMEOUT_SECONDS,
        application_name="stemcord-check",
    )
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS * 2):
            await store.open(migrate=False, require_current=False)
            server = (await store.server_version()).split(" ")[0]
            have = await store.schema_version()
            want = max(m.version for m in available_migrations("postgresql"))
            if have >= want:
                await store.check_writable(time.time())
    except Exception as exc:
        return _postgresql_unusable(shown, exc)
    finally:
        await store.close()
    where = f"{shown}: PostgreSQL {server}, schema {store.schema}"
    if have == 0:
        note = "; no Stemcord tables yet: the bot creates them at its first start"
    elif have < want:
        note = (
            f", schema version {have}; a bot of this version applies V{have + 1}-V{want} when "
            "it starts (or run migrate with the bots stopped)"
        )
    else:
        note = f", schema version {have}"
    return CheckResult("database", Status.OK, where + note)


def _postgresql_unusable(shown: str, exc: BaseException) -> CheckResult:
    """The failing database line for a PostgreSQL server, in words."""
    if isinstance(
        exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError
    ):
        return CheckResult(
            "database",
            Status.FAIL,
            f"{shown}: PostgreSQL refused the login ({_plain(exc)})",
            "check the user and password in DATABASE_URL (a password with @, : or / must be "
            "percent-encoded)",
        )
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return CheckResult(
            "database",
            Status.FAIL,
            f"{shown}: {_plain(exc)}",
            "create the database (CREATE DATABASE stemcord OWNER stemcord;) or fix its name in "
            "DATABASE_URL",
        )
    if isinstance(exc, asyncpg.InsufficientPrivilegeError | asyncpg.ReadOnlySQLTransactionError):
        return CheckResult(
            "database",
            Status.FAIL,
            f"{shown}: the role may not write there ({_plain(exc)})",
            "give the role its own schema (?schema=stemcord in DATABASE_URL) or make it the "
            "database's owner; a read-only standby cannot hold the jobs",
        )
    if isinstance(exc, OSError | asyncpg.InterfaceError):
        return CheckResult(
            "database",
            Status.FAIL,
            f"cannot reach PostgreSQL for {shown}: "
            f"{describe_network_error(exc, timeout=CHECK_TIMEOUT_SECONDS)}",
            "check the host and port in DATABASE_URL, that PostgreSQL runs and listens there "
            "(listen_addresses, pg_hba.conf), and any firewall between",
        )
    return CheckResult(
        "database",
        Status.FAIL,
        f"{shown}: {type(exc).__name__}: {_plain(exc)}",
        "check DATABASE_URL and the PostgreSQL server's log",
    )


def vidgo_check_timeout(settings: Settings) -> float:
    """The one attempt's deadline: the configured Vidgo timeout, at most the check's."""
    return min(settings.VIDGO_TIMEOUT_SECONDS, CHECK_TIMEOUT_SECONDS)


async def check_vidgo(settings: Settings, session: aiohttp.ClientSession) -> CheckResult:
    """Ask Vidgo for the balance with the configured key."""
    timeout = vidgo_check_timeout(settings)
    # One attempt: a retry would double the wait the checklist announced.
    client = VidgoClient(
        session,
        settings.VIDGO_BASE_URL,
        settings.VIDGO_API_KEY.get_secret_value(),
        timeout=timeout,
        max_retries=0,
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
        cause = exc.__cause__
        if exc.status is None and cause is not None:
            detail = (
                f"cannot reach Vidgo at {settings.VIDGO_BASE_URL}: "
                f"{describe_network_error(cause, timeout=timeout)}"
            )
        else:
            detail = f"Vidgo at {settings.VIDGO_BASE_URL} failed: {_plain(exc.message)}"
        return CheckResult(
            "vidgo",
            Status.FAIL,
            detail,
            "check VIDGO_BASE_URL and that this server can make outbound https requests",
        )
    if credits <= 0:
        note = " (no credits left: top up before separating)"
    elif credits < settings.CREDITS_WARN_BELOW:
        note = f" (below CREDITS_WARN_BELOW, {settings.CREDITS_WARN_BELOW}: top up soon)"
    else:
        note = ""
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
            url,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=CHECK_TIMEOUT_SECONDS),
            allow_redirects=False,
        ) as response:
            status = response.status
            body: Any = await response.json(content_type=None) if status == 200 else None
    except (aiohttp.ClientError, OSError) as exc:  # TimeoutError is an OSError
        return CheckResult(
            "discord",
            Status.FAIL,
            f"cannot reach Discord at {settings.DISCORD_API_BASE}: "
            f"{describe_network_error(exc, timeout=CHECK_TIMEOUT_SECONDS)}",
            "check DISCORD_API_BASE, DNS, and that this server can make outbound https "
            "requests (a firewall, a proxy)",
        )
    except ValueError:
        return CheckResult(
            "discord",
            Status.FAIL,
            f"Discord at {settings.DISCORD_API_BASE} answered GET /users/@me with invalid JSON",
            "check DISCORD_API_BASE (default https://discord.com/api/v10)",
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


def _megabytes(size: float) -> str:
    return f"{size / 1_048_576:,.0f} MB"


def check_media(settings: Settings) -> CheckResult:
    """The media folder exists (or is made), takes a written file, and has room to keep more."""
    folder = settings.media_dir
    fix_place = "set MEDIA_DIR to a folder on the data volume that the bot's user may write"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".check-{secrets.token_hex(6)}"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"stemcord check")
            os.fsync(fd)
        finally:
            os.close(fd)
            probe.unlink(missing_ok=True)
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        reason = _plain(exc.strerror or type(exc).__name__, 80).lower()
        return CheckResult("media", Status.FAIL, f"{folder} is not writable ({reason})", fix_place)
    minimum = settings.MEDIA_MIN_FREE_MB * 1_048_576
    if free < minimum:
        return CheckResult(
            "media",
            Status.FAIL,
            f"{folder}: only {_megabytes(free)} free, and MEDIA_MIN_FREE_MB keeps "
            f"{_megabytes(minimum)} free, so no stem would be kept",
            "free some disk space, move MEDIA_DIR to a bigger volume, or lower MEDIA_MIN_FREE_MB",
        )
    return CheckResult(
        "media",
        Status.OK,
        f"{folder}, writable, {_megabytes(free)} free ({_megabytes(minimum)} kept free)",
    )


# Discord lists at most 200 servers a page.
_GUILDS_PAGE = 200


async def check_servers(settings: Settings, session: aiohttp.ClientSession) -> CheckResult:
    """The servers the bot is in, against ``ALLOWED_GUILD_IDS`` (one page per 200 servers)."""
    headers = {
        "Authorization": f"Bot {settings.DISCORD_TOKEN.get_secret_value()}",
        "User-Agent": USER_AGENT,
    }
    ids: list[int] = []
    after = 0
    try:
        while True:
            async with session.get(
                f"{settings.DISCORD_API_BASE}/users/@me/guilds",
                params={"limit": str(_GUILDS_PAGE), "after": str(after)},
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=CHECK_TIMEOUT_SECONDS),
                allow_redirects=False,
            ) as response:
                status = response.status
                page: Any = await response.json(content_type=None) if status == 200 else None
            if status != 200 or not isinstance(page, list):
                return CheckResult(
                    "servers",
                    Status.FAIL,
                    f"Discord answered HTTP {status} to GET /users/@me/guilds",
                    "try again later; the bot needs no extra permission to list its servers",
                )
            found = [
                int(g["id"]) for g in page if isinstance(g, dict) and str(g.get("id")).isdigit()
            ]
            ids.extend(found)
            if len(page) < _GUILDS_PAGE or not found:
                break
            after = max(found)
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        return CheckResult(
            "servers",
            Status.FAIL,
            f"could not list the bot's servers: "
            f"{describe_network_error(exc, timeout=CHECK_TIMEOUT_SECONDS)}",
            "check DISCORD_API_BASE and try again",
        )
    return CheckResult("servers", Status.OK, describe_servers(settings.ALLOWED_GUILD_IDS, ids))


def describe_servers(allowed: Iterable[int], present: Sequence[int]) -> str:
    """The allowed list and where the bot is, in one line."""
    listed = sorted(set(allowed))
    count = len(present)
    where = f"the bot is in {count} server{'' if count == 1 else 's'}"
    if not listed:
        return (
            f"ALLOWED_GUILD_IDS is empty, so any server may add the bot; {where} "
            "(set it, and turn off Public Bot in the developer portal, to keep others out)"
        )
    outside = [guild_id for guild_id in present if guild_id not in set(listed)]
    shown = ", ".join(str(guild_id) for guild_id in listed[:10])
    more = f" and {len(listed) - 10} more" if len(listed) > 10 else ""
    verdict = (
        "none of them outside the list"
        if not outside
        else f"{len(outside)} of them outside the list (the running bot leaves "
        f"{'it' if len(outside) == 1 else 'them'})"
    )
    return f"allowed: {shown}{more}; {where}, {verdict}"


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
            timeout=aiohttp.ClientTimeout(total=CHECK_TIMEOUT_SECONDS),
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
    except (aiohttp.ClientError, OSError) as exc:
        reason = describe_network_error(exc, timeout=CHECK_TIMEOUT_SECONDS)
        return CheckResult(
            "callbacks",
            Status.FAIL,
            f"{settings.PUBLIC_URL} is not reachable from this host ({reason})",
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


class CheckProgress(Protocol):
    """Told as the checklist goes: a check started (and what it does), a check ended."""

    def started(self, name: str, action: str) -> None:
        """``name`` began; ``action`` says what it does and how long it may take."""

    def finished(self, result: CheckResult) -> None:
        """One line of the checklist is known."""


class _Quiet:
    def started(self, name: str, action: str) -> None:
        return None

    def finished(self, result: CheckResult) -> None:
        return None


async def run_checks(
    settings: Settings,
    *,
    ssl_context: ssl.SSLContext | None = None,
    progress: CheckProgress | None = None,
) -> list[CheckResult]:
    """Every check after the settings, in checklist order, one after another.

    ``progress`` hears of each check as it starts and ends (the command line prints them).
    ``ssl_context`` replaces the system trust store for the callback probe only (tests use a
    private certificate authority).
    """
    report = progress or _Quiet()
    results: list[CheckResult] = []

    def done(result: CheckResult) -> None:
        results.append(result)
        report.finished(result)

    done(CheckResult("settings", Status.OK, "valid"))
    report.started("database", _database_action(settings))
    done(await check_database(settings))
    report.started("media", f"writing a test file in {settings.media_dir}")
    done(await asyncio.to_thread(check_media, settings))
    wait = f"up to {CHECK_TIMEOUT_SECONDS:g} s"
    async with aiohttp.ClientSession() as session:
        report.started(
            "vidgo",
            f"asking {settings.VIDGO_BASE_URL} for the credit balance "
            f"(up to {vidgo_check_timeout(settings):g} s)",
        )
        done(await check_vidgo(settings, session))
        report.started("discord", f"GET {settings.DISCORD_API_BASE}/users/@me ({wait})")
        discord_result = await check_discord(settings, session)
        done(discord_result)
        if discord_result.failed:
            done(CheckResult("servers", Status.SKIP, "the token does not work (see discord)"))
        else:
            report.started("servers", f"GET {settings.DISCORD_API_BASE}/users/@me/guilds ({wait})")
            done(await check_servers(settings, session))
        done(check_public_url(settings))
        if settings.PUBLIC_URL is not None and settings.PUBLIC_URL.startswith("https://"):
            report.started("callbacks", f"sending a probe through {settings.PUBLIC_URL} ({wait})")
        done(await check_callbacks(settings, session, ssl_context))
    return results


def _database_action(settings: Settings) -> str:
    """What the database check is doing, for its ``..`` line."""
    if settings.database_backend == "postgresql":
        shown = display_url(settings.DATABASE_URL)
        return f"connecting to {shown} (up to {CHECK_TIMEOUT_SECONDS:g} s)"
    return f"opening {settings.database_path}"


def format_started(name: str, action: str) -> str:
    """The line shown while a check runs."""
    return f"  {'..':<4}  {name:<10}  {action}"


def format_result(result: CheckResult) -> str:
    """One check's line, and its fix on the next line when it failed."""
    line = f"  {result.status.value:<4}  {result.name:<10}  {result.detail}"
    return line + (f"\n{'':18}fix: {result.fix}" if result.fix else "")


def format_summary(results: Sequence[CheckResult]) -> str:
    """The checklist's last line."""
    failed = sum(1 for r in results if r.failed)
    if not failed:
        return "All checks passed."
    return f"{failed} check(s) failed; fix them and run again."


def format_checklist(results: Sequence[CheckResult], secrets: Sequence[str] = ()) -> str:
    """The checklist as printed, with every secret redacted."""
    lines = ["Stemcord check", *(format_result(r) for r in results), format_summary(results)]
    return Redactor(secrets)("\n".join(lines))


def exit_status(results: Sequence[CheckResult]) -> int:
    """0 when nothing failed, else 1."""
    return 1 if any(r.failed for r in results) else 0


# --- what the running bot reports about itself ----------------------------------------------

_SLASH = 1


def _option_signature(option: Mapping[str, Any]) -> tuple[Any, ...]:
    return (
        int(option.get("type") or 0),
        str(option.get("name", "")),
        str(option.get("description") or ""),
        bool(option.get("required", False)),
        tuple((str(c.get("name")), c.get("value")) for c in option.get("choices") or ()),
        bool(option.get("autocomplete", False)),
        tuple(_option_signature(o) for o in option.get("options") or ()),
    )


def _command_key(command: Mapping[str, Any]) -> tuple[int, str]:
    return int(command.get("type") or _SLASH), str(command.get("name", ""))


def _command_signature(command: Mapping[str, Any]) -> tuple[Any, ...]:
    """What members see of a command: kind, name, description, options (Discord's defaults
    filled in, fields Discord adds left out)."""
    return (
        *_command_key(command),
        str(command.get("description") or ""),
        tuple(_option_signature(o) for o in command.get("options") or ()),
    )


def _command_label(key: tuple[int, str]) -> str:
    kind, name = key
    return f"/{name}" if kind == _SLASH else f"'{name}' (menu)"


@dataclass(frozen=True, slots=True)
class CommandDrift:
    """How the commands Discord has differ from the ones this version defines."""

    missing: tuple[str, ...] = ()
    outdated: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()

    @property
    def in_sync(self) -> bool:
        """Nothing to sync."""
        return not (self.missing or self.outdated or self.extra)

    def describe(self) -> str:
        """``missing /lyrics; changed /separate; no longer defined /old`` (what applies)."""
        parts = []
        for label, names in (
            ("missing", self.missing),
            ("changed", self.outdated),
            ("no longer defined", self.extra),
        ):
            if names:
                parts.append(f"{label} {', '.join(names)}")
        return "; ".join(parts) if parts else "in sync"


def command_drift(
    local: Iterable[Mapping[str, Any]], remote: Iterable[Mapping[str, Any]]
) -> CommandDrift:
    """Compare this version's command payloads with the ones Discord returned."""
    mine = {_command_key(c): _command_signature(c) for c in local}
    theirs = {_command_key(c): _command_signature(c) for c in remote}
    return CommandDrift(
        missing=tuple(_command_label(k) for k in sorted(mine.keys() - theirs.keys())),
        outdated=tuple(
            _command_label(k) for k in sorted(mine.keys() & theirs.keys()) if mine[k] != theirs[k]
        ),
        extra=tuple(_command_label(k) for k in sorted(theirs.keys() - mine.keys())),
    )


def sync_command(guild_id: int | None = None) -> str:
    """The exact command that registers the slash commands for this installation.

    The interpreter as this process was started (``.venv/bin/python`` from the project
    folder), or Docker Compose's form in Stemcord's image (its Dockerfile sets
    ``STEMCORD_IMAGE``; the operator types the command on the host, not in the container).
    """
    where = f" --guild {guild_id}" if guild_id is not None else ""
    if os.environ.get("STEMCORD_IMAGE"):
        return f"docker compose run --rm stemcord sync{where}"
    python = Path(sys.executable)
    try:
        shown = str(python.relative_to(Path.cwd()))
    except ValueError:
        shown = str(python)
    if os.sep not in shown:
        shown = f".{os.sep}{shown}"
    return f"{shlex.quote(shown)} -m bot sync{where}"
