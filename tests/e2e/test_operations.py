"""Operating the real app: health, readiness, metrics, retention, check, the bot process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bot.app import RunningApp, run_app
from bot.doctor import Status, run_checks
from storage.jobstate import JobState
from tests.e2e.conftest import World
from tests.fakes.discord import FakeDiscord
from tests.fakes.https_proxy import HttpsProxy
from tests.fakes.vidgo import FakeVidgo

ROOT = Path(__file__).resolve().parents[2]


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.text()


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_health_readiness_and_metrics_of_a_running_bot(world: World) -> None:
    app = await world.start()
    assert app.admin is not None and app.retention is not None
    admin = app.admin.base_url
    assert await get(admin + "/healthz") == (200, '{"ok": true}')
    status, body = await get(admin + "/readyz")
    assert (status, json.loads(body)) == (
        200,
        {
            "ok": True,
            "checks": {"database": "ok", "dispatcher": "ok", "discord": "ok"},
            "shards": {"count": 1, "connected": [0], "not_connected": []},
        },
    )
    assert app.retention.runs >= 1  # retention ran at start

    await world.separate_song(0)
    job = await world.job_for_task_wait()
    await world.vidgo.finish(job.vidgo_task_id or "")
    await world.wait_job(job.id, JobState.DELIVERED)

    status, text = await get(admin + "/metrics")
    assert status == 200
    got = parse(text)
    assert got[("stemcord_jobs", (("state", "delivered"),))] == 1
    assert got[("stemcord_unfinished_jobs", ())] == 0
    assert got[("stemcord_oldest_unfinished_job_age_seconds", ())] == 0
    assert got[("stemcord_vidgo_calls_total", (("endpoint", "submit"), ("outcome", "ok")))] == 1
    assert got[("stemcord_vidgo_calls_total", (("endpoint", "detail"), ("outcome", "ok")))] >= 1
    assert got[("stemcord_callbacks_total", (("outcome", "accepted"),))] >= 1
    assert got[("stemcord_delivery_latency_seconds_count", (("outcome", "succeeded"),))] == 1
    # Metrics are not on the public callback listener unless configured.
    assert app.server is not None
    assert (await get(f"http://127.0.0.1:{app.server.port}/metrics"))[0] == 404


async def test_readyz_fails_while_the_gateway_does_not_answer(world: World) -> None:
    # REST login works, but the gateway accepts the connection and never answers the
    # handshake: the bot stays not ready while the database answers.
    held: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read()

    gateway = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = gateway.sockets[0].getsockname()[1]
    world.overrides = {"DISCORD_GATEWAY_URL": f"ws://127.0.0.1:{port}/"}
    stop = asyncio.Event()
    started: asyncio.Future[RunningApp] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run_app(world.settings(), stop=stop, started=started))
    try:
        app = await asyncio.wait_for(started, 20)
        assert app.admin is not None
        # Wait until discord.py is inside the gateway handshake, then ask.
        await world.discord.wait_until(lambda: bool(held), 20)
        status, body = await get(app.admin.base_url + "/readyz")
        assert status == 503
        assert json.loads(body)["checks"] == {
            "database": "ok",
            "dispatcher": "ok",
            "discord": "fail",
        }
        assert (await get(app.admin.base_url + "/healthz"))[0] == 200
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        for writer in held:
            writer.close()
        gateway.close()
        await gateway.wait_closed()


async def test_metrics_on_the_callback_listener_when_configured(world: World) -> None:
    world.overrides = {"METRICS_ON_WEBHOOK": True, "ADMIN_ENABLED": False}
    app = await world.start()
    assert app.admin is None and app.server is not None
    status, text = await get(f"http://127.0.0.1:{app.server.port}/metrics")
    assert status == 200 and "stemcord_jobs" in text
    assert (await get(f"http://127.0.0.1:{app.server.port}/readyz"))[0] == 200


async def test_check_probes_the_running_bot_through_https(world: World) -> None:
    app = await world.start()
    assert app.server is not None
    async with HttpsProxy(app.server.port) as proxy:
        settings = world.settings().model_copy(update={"PUBLIC_URL": proxy.url})
        results = {r.name: r for r in await run_checks(settings, ssl_context=proxy.client_ssl)}
    assert all(r.status is not Status.FAIL for r in results.values()), results
    assert "the running bot answered" in results["callbacks"].detail
    assert await app.store.list_jobs() == []  # the probe wrote nothing


# --- the bot as a real process ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bot_env(
    discord: FakeDiscord, vidgo: FakeVidgo, tmp_path: Path, **values: str
) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DISCORD_", "VIDGO_", "WEBHOOK_", "ADMIN_", "LOG_", "PUBLIC_URL"))
    }
    env.update(
        PYTHONPATH=str(ROOT),
        DISCORD_TOKEN=discord.token,
        DISCORD_API_BASE=discord.api_base,
        DISCORD_GATEWAY_URL=discord.gateway_url,
        VIDGO_API_KEY=vidgo.api_key,
        VIDGO_BASE_URL=vidgo.base_url,
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        PUBLIC_URL="",
        ADMIN_PORT=str(free_port()),
        LOG_FORMAT="json",
        LOG_LEVEL="DEBUG",
    )
    env.update(values)
    return env


async def test_the_bot_process_serves_health_and_logs_json(tmp_path: Path) -> None:
    async with FakeDiscord() as discord, FakeVidgo() as vidgo:
        discord.add_guild()
        env = bot_env(discord, vidgo, tmp_path)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            base = f"http://127.0.0.1:{env['ADMIN_PORT']}"
            async with asyncio.timeout(30):
                while True:
                    try:
                        if (await get(base + "/readyz"))[0] == 200:
                            break
                    except aiohttp.ClientConnectionError:
                        pass
                    await asyncio.sleep(0.1)
            assert (await get(base + "/healthz"))[0] == 200
            proc.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(proc.communicate(), 30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0, err.decode()[-2000:]
    lines = err.decode().splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    messages = [r["message"] for r in records]
    assert any("admin listener" in m for m in messages)
    assert any("retention: deleted 0" in m for m in messages)
    assert "shutting down" in messages
    assert discord.token not in err.decode() + out.decode()
    assert vidgo.api_key not in err.decode() + out.decode()


async def test_the_bot_process_with_a_wrong_token_exits_without_writing_it(
    tmp_path: Path,
) -> None:
    secret = "MTA5ODc2NTQzMjEwOTg3NjU0.Gxyzab.wrong-token-for-this-test-0123456789"
    async with FakeDiscord() as discord, FakeVidgo() as vidgo:
        env = bot_env(discord, vidgo, tmp_path, DISCORD_TOKEN=secret)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    text = err.decode()
    lines = text.splitlines()
    assert "stemcord: Discord rejected DISCORD_TOKEN; copy the bot token again" in lines
    # Everything else is a JSON log line (some are written while the process winds down).
    for line in lines:
        if not line.startswith("stemcord: "):
            json.loads(line)
    assert '"logger": "bot.app"' in text or '"logger": "asyncio"' in text
    assert secret not in text + out.decode()
