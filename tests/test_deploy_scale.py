"""deploy/compose.yaml (profile "scale") and deploy/Caddyfile.scale, checked without Docker:
PostgreSQL with a health check and a volume, one bot per shard on it, the same secrets for
every bot, and Caddy spreading callbacks over all of them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.engine import CALLBACK_PATH
from bot.settings import load_settings
from storage.factory import backend_of, display_url, postgresql_dsn
from tests.test_deploy import caddy_block

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
# Compose's ${NAME}, ${NAME:-default} and ${NAME:?error}.
_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|:\?)(?P<arg>[^}]*))?\}")
ENV = {"POSTGRES_PASSWORD": "s3cretpw", "STEMCORD_DOMAIN": "karaoke.example.org"}


def interpolate(value: object, env: dict[str, str]) -> object:
    """Compose's substitution, failing like compose when a required variable is missing."""
    if isinstance(value, str):

        def one(match: re.Match[str]) -> str:
            found = env.get(match["name"])
            if found:
                return found
            if match["op"] == ":?":
                raise ValueError(match["arg"])
            return match["arg"] or ""

        return _VARIABLE.sub(one, value)
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    return value


def scale(env: dict[str, str] | None = None) -> dict[str, Any]:
    loaded = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    resolved = interpolate(loaded, ENV if env is None else env)
    assert isinstance(resolved, dict)
    return resolved


def bots(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in spec["services"].items() if name.startswith("stemcord-")}


def test_every_service_is_in_the_scale_profile() -> None:
    spec = scale()
    assert {name: s["profiles"] for name, s in spec["services"].items()} == {
        name: ["scale"] for name in ("postgres", "stemcord-0", "stemcord-1", "caddy")
    }


def test_postgresql_has_a_health_check_and_keeps_its_data_on_a_volume() -> None:
    postgres = scale()["services"]["postgres"]
    assert postgres["image"].startswith("postgres:")
    test = postgres["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL" and "pg_isready -U stemcord -d stemcord" in test[1]
    assert "stemcord-postgres:/var/lib/postgresql/data" in postgres["volumes"]
    assert "stemcord-postgres" in scale()["volumes"]
    assert "ports" not in postgres  # reached by the bots only
    assert postgres["environment"]["POSTGRES_PASSWORD"] == ENV["POSTGRES_PASSWORD"]


def test_a_missing_database_password_stops_compose_with_a_line_naming_it() -> None:
    with pytest.raises(ValueError, match=r"set POSTGRES_PASSWORD in \.env"):
        scale({})


def test_one_bot_per_shard_all_on_one_schema_started_once_postgresql_is_healthy() -> None:
    spec = scale()
    found = bots(spec)
    assert sorted(found) == ["stemcord-0", "stemcord-1"]
    shards = []
    urls = set()
    for bot in found.values():
        assert bot["build"] == ".." and bot["env_file"] == "../.env"
        assert bot["depends_on"] == {"postgres": {"condition": "service_healthy"}}
        environment = bot["environment"]
        assert environment["SHARD_COUNT"] == "2"
        shards.append(int(environment["SHARD_IDS"]))
        urls.add(environment["DATABASE_URL"])
    # Every shard has its bot, and every bot the same database and schema.
    assert sorted(shards) == [0, 1]
    [url] = urls
    assert backend_of(url) == "postgresql"
    dsn, schema = postgresql_dsn(url)
    assert schema == "stemcord" and "@postgres:5432/stemcord" in dsn
    assert display_url(url) == "postgresql://stemcord@postgres:5432/stemcord?schema=stemcord"
    # Each publishes only its admin port, on the host's loopback, on ports of its own.
    ports = [p for bot in found.values() for p in bot["ports"]]
    assert all(str(p).startswith("127.0.0.1:") for p in ports)
    assert len({str(p).split(":")[1] for p in ports}) == len(ports)


def test_each_bot_s_settings_validate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name, bot in bots(scale()).items():
        values = {
            **bot["environment"],
            "DISCORD_TOKEN": "a-discord-token-value",
            "VIDGO_API_KEY": "a-vidgo-key-value",
            "PUBLIC_URL": f"https://{ENV['STEMCORD_DOMAIN']}",
        }
        settings = load_settings(_env_file=None, **values)
        assert settings.database_backend == "postgresql", name
        assert settings.shard_ids == (int(bot["environment"]["SHARD_IDS"]),)


def test_caddy_spreads_callbacks_over_every_bot_with_the_single_bot_limits() -> None:
    spec = scale()
    caddy = spec["services"]["caddy"]
    assert "./Caddyfile.scale:/etc/caddy/Caddyfile:ro" in caddy["volumes"]
    assert set(caddy["depends_on"]) == set(bots(spec))
    text = (DEPLOY / "Caddyfile.scale").read_text()
    route = caddy_block(text, f"handle {CALLBACK_PATH}*")
    upstreams = re.search(r"reverse_proxy ([^{]+)\{", route)
    assert upstreams is not None
    webhook_port = bots(spec)["stemcord-0"]["environment"]["WEBHOOK_PORT"]
    assert upstreams.group(1).split() == [f"{name}:{webhook_port}" for name in sorted(bots(spec))]
    assert caddy_block(route, "request_body").split() == ["max_size", "64KiB"]
    # Health checks ask each bot's admin port, which is never proxied.
    admin_port = bots(spec)["stemcord-0"]["environment"]["ADMIN_PORT"]
    assert f"health_port {admin_port}" in route and "health_uri /healthz" in route
    timeouts = dict(line.split() for line in caddy_block(text, "timeouts").strip().splitlines())
    assert timeouts == {"read_header": "5s", "read_body": "5s", "write": "10s", "idle": "30s"}
