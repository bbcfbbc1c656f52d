"""``check`` against the real fakes: good settings pass, each bad one fails with a fix."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.doctor import (
    CheckResult,
    Status,
    exit_status,
    format_checklist,
    run_checks,
    settings_failure,
)
from bot.engine import CallbackOutcome
from bot.settings import Settings, SettingsError, load_settings
from bot.webhook import CallbackServer
from tests.fakes.discord import FakeDiscord
from tests.fakes.https_proxy import HttpsProxy
from tests.fakes.vidgo import FakeVidgo


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
        ("vidgo", Status.OK),
        ("discord", Status.OK),
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


async def test_unreachable_services_fail(env: Env) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    results = by_name(
        await run_checks(env.settings(VIDGO_BASE_URL=dead, DISCORD_API_BASE=dead + "/api/v10"))
    )
    assert (
        results["vidgo"].status is Status.FAIL and "no answer from Vidgo" in results["vidgo"].detail
    )
    assert results["discord"].status is Status.FAIL
    assert "no answer from Discord" in results["discord"].detail


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
