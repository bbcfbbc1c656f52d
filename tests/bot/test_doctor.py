"""``check`` against the real fakes: good settings pass, each bad one fails with a fix."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot import doctor
from bot.doctor import (
    CheckResult,
    Status,
    check_database,
    command_drift,
    exit_status,
    format_checklist,
    run_checks,
    settings_failure,
    sync_command,
)
from bot.engine import CallbackOutcome
from bot.instance_lock import InstanceLock
from bot.settings import Settings, SettingsError, load_settings
from bot.webhook import CallbackServer
from storage.migrate import available_migrations
from tests.fakes.discord import FakeDiscord
from tests.fakes.https_proxy import HttpsProxy
from tests.fakes.vidgo import FakeVidgo
from tests.helpers import free_port, make_old_database


@dataclass
class Env:
    vidgo: FakeVidgo
    discord: FakeDiscord
    tmp: Path

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "DISCORD_TOKEN": self.discord.token,
            "DISCORD_API_BASE": self.discord.api_base,
            "VIDGO_API_KEY": self.vidgo.api_key,
            "VIDGO_BASE_URL": self.vidgo.base_url,
            "DATABASE_URL": f"sqlite:///{self.tmp / 'data' / 'stemcord.sqlite3'}",
            "WEBHOOK_HOST": "127.0.0.1",
            "WEBHOOK_PORT": free_port(),
        }
        values.update(overrides)
        return load_settings(_env_file=None, **values)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with FakeVidgo() as vidgo, FakeDiscord(bot_name="Stemcord") as discord:
        yield Env(vidgo, discord, tmp_path)


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


async def test_good_settings_pass_every_check(env: Env) -> None:
    results = await run_checks(env.settings())
    assert [(r.name, r.status) for r in results] == [
        ("settings", Status.OK),
        ("database", Status.OK),
        ("media", Status.OK),
        ("vidgo", Status.OK),
        ("discord", Status.OK),
        ("servers", Status.OK),
        ("public_url", Status.OK),
        ("callbacks", Status.SKIP),
    ]
    checks = by_name(results)
    assert "schema version" in checks["database"].detail
    assert (env.tmp / "data" / "stemcord.sqlite3").exists()  # created and migrated
    assert f"{env.vidgo.credits} credits" in checks["vidgo"].detail
    assert "logged in as Stemcord" in checks["discord"].detail
    assert "polls" in checks["public_url"].detail
    assert exit_status(results) == 0
    text = format_checklist(results)
    assert text.splitlines()[-1] == "All checks passed."
    assert "fix:" not in text


async def test_a_wrong_vidgo_key_fails_with_a_fix(env: Env) -> None:
    secret = "wrong-vidgo-key-123456"
    results = await run_checks(env.settings(VIDGO_API_KEY=secret))
    vidgo = by_name(results)["vidgo"]
    assert vidgo.status is Status.FAIL
    assert "rejected VIDGO_API_KEY" in vidgo.detail
    assert vidgo.fix and "Vidgo console" in vidgo.fix
    assert by_name(results)["discord"].status is Status.OK  # the others still ran
    assert exit_status(results) == 1
    text = format_checklist(results, [secret])
    assert "FAIL  vidgo" in text and "fix: copy the API key" in text
    assert secret not in text
    assert text.splitlines()[-1].startswith("1 check(s) failed")


async def test_a_wrong_discord_token_fails_with_a_fix(env: Env) -> None:
    results = await run_checks(env.settings(DISCORD_TOKEN="wrong-bot-token"))
    discord = by_name(results)["discord"]
    assert discord.status is Status.FAIL
    assert discord.detail == "Discord rejected DISCORD_TOKEN (HTTP 401)"
    assert discord.fix and "developer portal" in discord.fix
    assert exit_status(results) == 1


async def test_unreachable_services_fail_naming_what_happened(env: Env) -> None:
    port = free_port()
    dead = f"http://127.0.0.1:{port}"
    results = by_name(
        await run_checks(env.settings(VIDGO_BASE_URL=dead, DISCORD_API_BASE=dead + "/api/v10"))
    )
    refused = f"connection refused by 127.0.0.1:{port} (nothing listens there)"
    assert results["vidgo"].status is Status.FAIL
    assert results["vidgo"].detail == f"cannot reach Vidgo at {dead}: {refused}"
    assert results["discord"].status is Status.FAIL
    assert results["discord"].detail == f"cannot reach Discord at {dead}/api/v10: {refused}"


async def test_an_http_public_url_fails(env: Env) -> None:
    # A plain-http server really listens there: the failure is about the scheme alone.
    app = web.Application()
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = int(runner.addresses[0][1])
        results = by_name(await run_checks(env.settings(PUBLIC_URL=f"http://127.0.0.1:{port}")))
    finally:
        await runner.cleanup()
    assert results["public_url"].status is Status.FAIL
    assert "not https" in results["public_url"].detail
    assert results["public_url"].fix and "reverse proxy" in results["public_url"].fix
    assert results["callbacks"].status is Status.SKIP


async def test_an_unreachable_public_url_fails(env: Env) -> None:
    results = by_name(await run_checks(env.settings(PUBLIC_URL=f"https://127.0.0.1:{free_port()}")))
    assert results["public_url"].status is Status.OK
    callbacks = results["callbacks"]
    assert callbacks.status is Status.FAIL
    assert "not reachable from this host" in callbacks.detail
    assert callbacks.fix and "reverse proxy forwards /vidgo/callback/" in callbacks.fix


async def test_a_probe_through_the_proxy_reaches_the_listener_check_opens(env: Env) -> None:
    settings_port = free_port()
    async with HttpsProxy(settings_port) as proxy:
        settings = env.settings(PUBLIC_URL=proxy.url, WEBHOOK_PORT=settings_port)
        results = by_name(await run_checks(settings, ssl_context=proxy.client_ssl))
        assert results["callbacks"].status is Status.OK, results["callbacks"]
        assert "reached the listener" in results["callbacks"].detail
        [(method, path, status)] = proxy.forwarded
        assert method == "POST" and path.startswith("/vidgo/callback/") and status == 404
        # The listener was only up for the probe: nothing listens now.
        with pytest.raises(ConnectionRefusedError), socket.socket() as s:
            s.connect(("127.0.0.1", settings_port))


async def test_a_proxy_forwarding_elsewhere_fails(env: Env) -> None:
    # The proxy points at a port where nothing listens (a typo in its config): 502.
    async with HttpsProxy(free_port()) as proxy:
        results = by_name(
            await run_checks(env.settings(PUBLIC_URL=proxy.url), ssl_context=proxy.client_ssl)
        )
    callbacks = results["callbacks"]
    assert callbacks.status is Status.FAIL
    assert "got HTTP 502, not Stemcord's listener" in callbacks.detail


async def test_an_untrusted_certificate_fails(env: Env) -> None:
    port = free_port()
    async with HttpsProxy(port) as proxy:
        # The system trust store does not know the test CA, as with a self-signed certificate.
        results = by_name(await run_checks(env.settings(PUBLIC_URL=proxy.url, WEBHOOK_PORT=port)))
    callbacks = results["callbacks"]
    assert callbacks.status is Status.FAIL
    assert "TLS failed" in callbacks.detail
    assert callbacks.fix and "certificate" in callbacks.fix


async def test_an_unusable_database_fails(env: Env) -> None:
    blocker = env.tmp / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    results = by_name(
        await run_checks(env.settings(DATABASE_URL=f"sqlite:///{blocker}/stemcord.sqlite3"))
    )
    database = results["database"]
    assert database.status is Status.FAIL
    assert database.fix and "DATABASE_URL" in database.fix


def test_invalid_settings_make_one_failed_line() -> None:
    result = settings_failure(SettingsError("invalid settings: DISCORD_TOKEN is required"))
    text = format_checklist([result])
    assert "FAIL  settings    invalid settings: DISCORD_TOKEN is required" in text
    assert "fix: copy .env.example to .env" in text
    assert exit_status([result]) == 1


class _NoJobs:
    async def on_callback(self, token: str, task_hint: str | None = None) -> CallbackOutcome:
        return CallbackOutcome.UNKNOWN


async def test_a_bot_running_elsewhere_behind_the_proxy_passes(env: Env) -> None:
    # The proxy leads to the bot's listener in another container; check's own listener (on
    # WEBHOOK_PORT here) never sees the probe, but the bot's own 404 answer counts.
    bot_listener = CallbackServer(_NoJobs(), host="127.0.0.1", port=0)
    await bot_listener.start()
    try:
        async with HttpsProxy(bot_listener.port) as proxy:
            results = by_name(
                await run_checks(env.settings(PUBLIC_URL=proxy.url), ssl_context=proxy.client_ssl)
            )
    finally:
        await bot_listener.stop()
    assert results["callbacks"].status is Status.OK
    assert "the running bot answered" in results["callbacks"].detail


async def test_something_else_answering_404_fails(env: Env) -> None:
    app = web.Application()  # every path is a plain 404: a web server, not Stemcord
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        async with HttpsProxy(int(runner.addresses[0][1])) as proxy:
            results = by_name(
                await run_checks(env.settings(PUBLIC_URL=proxy.url), ssl_context=proxy.client_ssl)
            )
    finally:
        await runner.cleanup()
    assert results["callbacks"].status is Status.FAIL
    assert "got HTTP 404, not Stemcord's listener" in results["callbacks"].detail


class SilentServer:
    """Accepts connections and never answers (until released); counts them."""

    def __init__(self) -> None:
        self.connections = 0
        self.held: list[asyncio.StreamWriter] = []
        self.release = asyncio.Event()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> SilentServer:
        self._server = await asyncio.start_server(self._hold, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        for writer in self.held:
            writer.close()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.held.append(writer)
        await self.release.wait()
        writer.close()


async def test_a_silent_endpoint_gets_one_attempt_within_the_stated_time(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(doctor, "CHECK_TIMEOUT_SECONDS", 0.3)
    async with SilentServer() as vidgo, SilentServer() as discord:
        settings = env.settings(
            VIDGO_BASE_URL=vidgo.url,
            VIDGO_TIMEOUT_SECONDS=30,  # the check's own deadline is the shorter one
            DISCORD_API_BASE=discord.url + "/api/v10",
        )
        results = by_name(await run_checks(settings))
        assert (vidgo.connections, discord.connections) == (1, 1)  # no retry
        assert results["vidgo"].detail == (
            f"cannot reach Vidgo at {vidgo.url}: no answer within 0.3 s"
        )
        assert results["discord"].detail == (
            f"cannot reach Discord at {discord.url}/api/v10: no answer within 0.3 s"
        )


async def test_an_unresolvable_host_is_named_as_a_dns_failure(env: Env) -> None:
    # .invalid never resolves (RFC 6761), so this fails at DNS, before any connection.
    results = by_name(
        await run_checks(env.settings(DISCORD_API_BASE="https://stemcord-test.invalid/api/v10"))
    )
    assert results["discord"].detail == (
        "cannot reach Discord at https://stemcord-test.invalid/api/v10: "
        "the host name stemcord-test.invalid could not be resolved (DNS)"
    )


async def test_a_server_that_hangs_up_is_named_so(env: Env) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        results = by_name(
            await run_checks(env.settings(DISCORD_API_BASE=f"http://127.0.0.1:{port}/api/v10"))
        )
    finally:
        server.close()
        await server.wait_closed()
    assert results["discord"].detail.endswith(
        ": the server closed the connection without answering"
    )


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def started(self, name: str, action: str) -> None:
        self.events.append(("started", name))

    def finished(self, result: CheckResult) -> None:
        self.events.append(("finished", result.name))


async def test_progress_hears_each_check_start_before_it_ends(env: Env) -> None:
    recorder = Recorder()
    results = await run_checks(env.settings(), progress=recorder)
    assert recorder.events == [
        ("finished", "settings"),
        ("started", "database"),
        ("finished", "database"),
        ("started", "media"),
        ("finished", "media"),
        ("started", "vidgo"),
        ("finished", "vidgo"),
        ("started", "discord"),
        ("finished", "discord"),
        ("started", "servers"),
        ("finished", "servers"),
        ("finished", "public_url"),
        ("finished", "callbacks"),  # skipped: no PUBLIC_URL, nothing to wait for
    ]
    assert [("finished", r.name) for r in results] == [
        e for e in recorder.events if e[0] == "finished"
    ]


async def test_check_only_reads_a_database_a_running_bot_holds(env: Env) -> None:
    settings = env.settings()
    make_old_database(settings.database_path, 1)
    before = settings.database_path.read_bytes()
    latest = max(m.version for m in available_migrations())
    with InstanceLock(settings.database_path, "run"):  # a bot runs on it
        result = await check_database(settings)
    assert result.status is Status.OK
    assert result.detail.startswith(f"{settings.database_path}, schema version 1; in use by ")
    assert f"pid {os.getpid()}" in result.detail and "`run`" in result.detail
    assert result.detail.endswith(f"a bot of this version applies V2-V{latest} when it starts")
    assert settings.database_path.read_bytes() == before  # not migrated, not written


async def test_check_migrates_a_database_nobody_holds_and_releases_the_lock(env: Env) -> None:
    settings = env.settings()
    make_old_database(settings.database_path, 1)
    latest = max(m.version for m in available_migrations())
    result = await check_database(settings)
    assert result.detail == f"{settings.database_path}, schema version {latest}"
    with InstanceLock(settings.database_path, "run"):  # free again for the bot
        pass


def test_command_drift_sees_missing_changed_and_removed_commands() -> None:
    separate = {
        "type": 1,
        "name": "separate",
        "description": "Separate a song",
        "options": [{"type": 3, "name": "link", "description": "a link", "required": False}],
    }
    jobs = {"type": 1, "name": "jobs", "description": "Your jobs", "options": []}
    menu = {"type": 3, "name": "Separate vocals", "description": ""}
    # What Discord sends back: defaults left out, fields of its own added.
    stored_separate = {
        "id": "1",
        "version": "2",
        "type": 1,
        "name": "separate",
        "description": "Separate a song",
        "options": [{"type": 3, "name": "link", "description": "a link"}],
        "nsfw": False,
    }
    assert command_drift([separate, jobs, menu], [stored_separate, jobs, menu]).in_sync

    changed = {**separate, "options": [{**separate["options"][0], "required": True}]}
    old = {"type": 1, "name": "oldcmd", "description": "gone"}
    drift = command_drift([changed, jobs, menu], [stored_separate, old])
    assert not drift.in_sync
    assert drift.missing == ("/jobs", "'Separate vocals' (menu)")
    assert drift.outdated == ("/separate",)
    assert drift.extra == ("/oldcmd",)
    assert drift.describe() == (
        "missing /jobs, 'Separate vocals' (menu); changed /separate; no longer defined /oldcmd"
    )


def test_sync_command_names_this_interpreter_as_started(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STEMCORD_IMAGE", raising=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / ".venv" / "bin" / "python"))
    assert sync_command() == ".venv/bin/python -m bot sync"
    assert sync_command(42) == ".venv/bin/python -m bot sync --guild 42"
    monkeypatch.setattr(sys, "executable", "/opt/python 3/bin/python")
    assert sync_command() == "'/opt/python 3/bin/python' -m bot sync"
    monkeypatch.setenv("STEMCORD_IMAGE", "1")  # in the image, the command is typed on the host
    assert sync_command(42) == "docker compose run --rm stemcord sync --guild 42"


async def test_servers_line_shows_the_allowed_list_and_how_many_servers_are_outside(
    env: Env,
) -> None:
    home = env.discord.add_guild(name="Home")
    stray = [env.discord.add_guild(name=f"Stray {n}") for n in range(2)]
    results = by_name(await run_checks(env.settings(ALLOWED_GUILD_IDS=str(home.id))))
    line = results["servers"]
    assert line.status is Status.OK
    assert line.detail == (
        f"allowed: {home.id}; the bot is in 3 servers, 2 of them outside the list "
        "(the running bot leaves them)"
    )
    assert all(str(guild.id) not in line.detail for guild in stray)
    open_door = by_name(await run_checks(env.settings()))["servers"].detail
    assert open_door.startswith("ALLOWED_GUILD_IDS is empty, so any server may add the bot")
    assert "Public Bot" in open_door


async def test_servers_are_listed_page_by_page(env: Env) -> None:
    for n in range(205):
        env.discord.add_guild(name=f"Server {n}")
    detail = by_name(await run_checks(env.settings()))["servers"].detail
    assert "the bot is in 205 servers" in detail


async def test_vidgo_line_warns_below_the_credit_warning_level(env: Env) -> None:
    env.vidgo.credits = 120
    detail = by_name(await run_checks(env.settings(CREDITS_WARN_BELOW=500)))["vidgo"].detail
    assert detail == "key accepted, 120 credits (below CREDITS_WARN_BELOW, 500: top up soon)"
