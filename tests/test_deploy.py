"""Deployment files: what can be checked without building the image.

The image itself is not built in the test suite (no registry access); these tests hold the
Dockerfile, compose.yaml and the Caddyfile to the settings and routes they rely on, and run the
image's HEALTHCHECK command against a real admin listener.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import sys
import tomllib
from pathlib import Path
from typing import Any

import yaml

from bot.admin import HEALTHZ_PATH, AdminRoutes, AdminServer
from bot.engine import CALLBACK_PATH
from bot.settings import Settings, database_path

ROOT = Path(__file__).resolve().parents[1]


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) pairs, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    found = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            instruction, _, rest = line.partition(" ")
            found.append((instruction.upper(), rest.strip()))
    return found


def instructions(name: str) -> list[str]:
    return [rest for instruction, rest in dockerfile() if instruction == name]


def env_values() -> dict[str, str]:
    values: dict[str, str] = {}
    for rest in instructions("ENV"):
        for item in shlex.split(rest):
            key, _, value = item.partition("=")
            values[key] = value
    return values


def compose() -> dict[str, object]:
    loaded = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def default(name: str) -> object:
    return Settings.model_fields[name].default


def test_image_is_slim_python_and_runs_as_a_non_root_user() -> None:
    assert instructions("FROM") == ["python:3.11-slim"]
    users = instructions("USER")
    assert users and users[-1] not in ("root", "0")
    order = [i for i, _ in dockerfile()]
    assert order.index("USER") < order.index("ENTRYPOINT")
    assert json.loads(instructions("ENTRYPOINT")[0]) == ["python", "-m", "bot"]
    assert json.loads(instructions("CMD")[0]) == ["run"]


def test_image_keeps_the_database_on_the_data_volume() -> None:
    assert json.loads(instructions("VOLUME")[0]) == ["/data"]
    url = env_values()["DATABASE_URL"]
    assert url == "sqlite:////data/stemcord.sqlite3"
    assert database_path(url) == Path("/data/stemcord.sqlite3")


def test_image_copies_every_package_and_what_pyproject_needs() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = {shlex.split(rest)[0] for rest in instructions("COPY")}
    copied_files = {f for rest in instructions("COPY") for f in shlex.split(rest)[:-1]}
    assert packages <= copied
    assert {"pyproject.toml", project["project"]["readme"]} <= copied_files
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    for secret_or_state in (".env", "data/", "*.sqlite3", ".venv/", ".git/"):
        assert secret_or_state in ignored


def test_healthcheck_probes_the_admin_listener_defaults() -> None:
    [healthcheck] = instructions("HEALTHCHECK")
    command = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert command[:2] == ["python", "-c"]
    code = command[2]
    assert f"os.environ.get('ADMIN_PORT', '{default('ADMIN_PORT')}')" in code
    assert f"'{HEALTHZ_PATH}'" in code
    assert env_values()["ADMIN_PORT"] == str(default("ADMIN_PORT"))
    # Inside the container the check connects to 127.0.0.1, so the admin listener must bind
    # there or everywhere.
    assert env_values()["ADMIN_HOST"] in ("0.0.0.0", "127.0.0.1")


def healthcheck_code() -> str:
    [healthcheck] = instructions("HEALTHCHECK")
    return str(json.loads(healthcheck.split(" CMD ", 1)[1])[2])


async def run_healthcheck(port: int) -> int:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        healthcheck_code(),
        env={**os.environ, "ADMIN_PORT": str(port)},
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await asyncio.wait_for(proc.wait(), 30)


async def test_the_healthcheck_command_passes_only_while_the_listener_answers() -> None:
    server = AdminServer(AdminRoutes(checks={}), host="127.0.0.1", port=0)
    await server.start()
    port = server.port
    try:
        assert await run_healthcheck(port) == 0
    finally:
        await server.stop()
    assert await run_healthcheck(port) != 0


_COMPOSE_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def interpolate(value: object, env: dict[str, str]) -> object:
    """Compose's ``${NAME}`` / ``${NAME:-default}`` substitution (from the shell or .env)."""
    if isinstance(value, str):
        return _COMPOSE_VARIABLE.sub(lambda m: env.get(m["name"]) or (m["default"] or ""), value)
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    return value


def compose_with(env: dict[str, str]) -> dict[str, Any]:
    resolved = interpolate(compose(), env)
    assert isinstance(resolved, dict)
    return resolved


def test_compose_runs_the_bot_with_a_named_volume_and_the_env_file() -> None:
    spec = compose_with({})
    services = spec["services"]
    bot = services["stemcord"]
    assert bot["build"] == "."
    assert bot["env_file"] == ".env"
    assert "stemcord-data:/data" in bot["volumes"]
    assert "stemcord-data" in spec["volumes"]
    # Beats a DATABASE_URL copied from .env.example, so the data stays on the volume.
    assert bot["environment"]["DATABASE_URL"] == env_values()["DATABASE_URL"]
    assert bot["environment"]["ADMIN_HOST"] == "0.0.0.0"
    admin_port = f"{default('ADMIN_PORT')}"
    webhook_port = f"{default('WEBHOOK_PORT')}"
    # Health and metrics (and the raw callback port) are published on loopback only.
    assert f"127.0.0.1:{admin_port}:{admin_port}" in bot["ports"]
    assert f"127.0.0.1:{webhook_port}:{webhook_port}" in bot["ports"]
    assert all(str(p).startswith("127.0.0.1:") for p in bot["ports"])
    assert bot["environment"]["ADMIN_PORT"] == admin_port
    assert bot["environment"]["WEBHOOK_PORT"] == webhook_port


def test_compose_follows_the_ports_set_in_dotenv() -> None:
    # Compose reads .env for ${...}: changing the ports there moves the bot's listeners, the
    # published ports, the image's HEALTHCHECK (it reads ADMIN_PORT) and Caddy's upstream.
    spec = compose_with({"WEBHOOK_PORT": "9090", "ADMIN_PORT": "9091"})
    bot = spec["services"]["stemcord"]
    assert bot["environment"]["WEBHOOK_PORT"] == "9090"
    assert bot["environment"]["ADMIN_PORT"] == "9091"
    assert sorted(bot["ports"]) == ["127.0.0.1:9090:9090", "127.0.0.1:9091:9091"]
    assert spec["services"]["caddy"]["environment"]["WEBHOOK_PORT"] == "9090"
    # An empty value (as .env.example leaves nothing empty, but an edited .env might) falls
    # back to the default rather than publishing port "".
    spec = compose_with({"WEBHOOK_PORT": "", "ADMIN_PORT": ""})
    assert spec["services"]["stemcord"]["environment"]["ADMIN_PORT"] == str(default("ADMIN_PORT"))


def test_compose_caddy_is_optional_and_proxies_only_callbacks() -> None:
    caddy = compose_with({})["services"]["caddy"]
    assert caddy["profiles"] == ["https"]
    assert "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro" in caddy["volumes"]
    assert {"80:80", "443:443"} <= set(caddy["ports"])
    caddyfile = (ROOT / "deploy" / "Caddyfile").read_text()
    assert f"handle {CALLBACK_PATH}*" in caddyfile
    assert f"reverse_proxy stemcord:{{$WEBHOOK_PORT:{default('WEBHOOK_PORT')}}}" in caddyfile
    assert "8081" not in caddyfile  # the admin port is never proxied


def caddy_block(text: str, name: str) -> str:
    """The body of the first ``name { ... }`` block (balanced braces)."""
    start = text.index(name + " {") + len(name) + 2
    depth, i = 1, start
    while depth:
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
    return text[start : i - 1]


def test_caddy_limits_callback_bodies_and_slow_clients() -> None:
    caddyfile = (ROOT / "deploy" / "Caddyfile").read_text()
    timeouts = dict(
        line.split() for line in caddy_block(caddyfile, "timeouts").strip().splitlines()
    )
    # Vidgo waits 10 s for an answer: the head and the body must each arrive well within it.
    assert timeouts["read_header"] == "5s" and timeouts["read_body"] == "5s"
    assert set(timeouts) == {"read_header", "read_body", "write", "idle"}
    callback_route = caddy_block(caddyfile, f"handle {CALLBACK_PATH}*")
    body = caddy_block(callback_route, "request_body")
    # The proxy refuses what the bot's own listener would refuse anyway.
    assert body.split() == ["max_size", "64KiB"]
    assert default("CALLBACK_MAX_BYTES") == 64 * 1024
