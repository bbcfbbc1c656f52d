"""Settings read from the environment and an optional ``.env`` file.

Every setting is validated at start-up; :func:`load_settings` turns a validation failure into
one line that names the variable and what it expects, says where ``.env`` was looked for, and
never echoes a secret's value.

Settings that cannot work are refused here rather than failing later: the URLs Stemcord talks
to (``DISCORD_API_BASE``, ``DISCORD_GATEWAY_URL``, ``VIDGO_BASE_URL``) and the one Vidgo calls
back (``PUBLIC_URL``) must be https/wss, because the token, the API key and the callback tokens
travel in them. Plain http/ws is accepted only for a loopback host (127.0.0.0/8, ``::1``,
``localhost``): the local fakes and a proxy on the same machine.
"""

from __future__ import annotations

import ipaddress
import re
import sys
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.media.hosts import parse_allowed_hosts
from bot.media.signing import MIN_SECRET_BYTES
from storage.factory import backend_of, check_database_url

DISCORD_API_BASE_DEFAULT = "https://discord.com/api/v10"
DISCORD_GATEWAY_DEFAULT = "wss://gateway.discord.gg/"
ENV_FILE = ".env"
_LOOPBACK_NAMES = frozenset({"localhost"})
_SNOWFLAKE = re.compile(r"^[0-9]{1,20}$")
# Far beyond any bot (Discord's largest run a few thousand shards); it only keeps a typo of
# a few extra digits from asking for millions of sessions.
MAX_SHARD_COUNT = 100_000


def is_loopback_host(host: str | None) -> bool:
    """127.0.0.0/8, ``::1`` or ``localhost``: traffic that never leaves this machine."""
    if not host:
        return False
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _secure_url(value: str, *, secure: str, plain: str, example: str) -> str:
    """``value`` if it is a ``secure`` URL, or a ``plain`` one to a loopback host."""
    parts = urlsplit(value)
    if parts.scheme not in {secure, plain} or not parts.netloc:
        raise ValueError(f"must be a {secure}:// URL such as {example}")
    try:
        host = parts.hostname
    except ValueError:
        host = None
    if not host:
        raise ValueError(f"must be a {secure}:// URL such as {example}")
    if parts.scheme == plain and not is_loopback_host(host):
        raise ValueError(
            f"must use {secure}:// ({plain}:// is accepted only for a loopback host: "
            "127.0.0.1, ::1, localhost)"
        )
    return value


def _https_url(value: str) -> str:
    checked = _secure_url(value, secure="https", plain="http", example="https://example.org")
    return checked.rstrip("/")


class DatabaseSettings(BaseSettings):
    """Only ``DATABASE_URL``: what the offline commands (``migrate``, ``jobs``) need.

    They read the database without the bot's secrets, so an operator can inspect jobs on a
    machine that holds only the data volume. :class:`Settings` extends it.
    """

    model_config = SettingsConfigDict(
        env_file=ENV_FILE, env_file_encoding="utf-8", extra="ignore", case_sensitive=True
    )

    DATABASE_URL: str = "sqlite:///data/stemcord.sqlite3"

    @field_validator("DATABASE_URL")
    @classmethod
    def _check_db(cls, value: str) -> str:
        try:
            check_database_url(value)  # sqlite:/// or postgresql://; one line, never the URL
        except ValueError as exc:
            raise ValueError(str(exc).removeprefix("DATABASE_URL ")) from None
        return value

    @property
    def database_path(self) -> Path:
        """The SQLite file named by DATABASE_URL."""
        return database_path(self.DATABASE_URL)

    @property
    def database_backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``: which store DATABASE_URL names."""
        return backend_of(self.DATABASE_URL)


class Settings(DatabaseSettings):
    """All of Stemcord's configuration; names are the environment variables."""

    model_config = SettingsConfigDict(
        env_file=ENV_FILE,
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=True,
        hide_input_in_errors=True,
    )

    DISCORD_TOKEN: SecretStr = Field(description="bot token from the Discord developer portal")
    DISCORD_API_BASE: str = DISCORD_API_BASE_DEFAULT
    DISCORD_GATEWAY_URL: str = DISCORD_GATEWAY_DEFAULT
    VIDGO_API_KEY: SecretStr = Field(description="Vidgo API key")
    VIDGO_BASE_URL: str = "https://api.vidgo.ai"
    PUBLIC_URL: str | None = None
    WEBHOOK_HOST: str = "0.0.0.0"  # noqa: S104 - the callback listener must be reachable
    WEBHOOK_PORT: int = Field(default=8080, ge=0, le=65535)
    POLL_INTERVAL_SECONDS: float = Field(default=5.0, gt=0, le=3600)
    POLL_MAX_INTERVAL_SECONDS: float = Field(default=60.0, gt=0, le=86400)
    POLL_MAX_INTERVAL_WITH_CALLBACKS_SECONDS: float = Field(default=300.0, gt=0, le=86400)
    JOB_TIMEOUT_SECONDS: float = Field(default=1800.0, gt=0)
    SUBMIT_CONFIRM_GRACE_SECONDS: float = Field(default=900.0, gt=0)
    DEV_GUILD_ID: int | None = None

    VIDGO_TIMEOUT_SECONDS: float = Field(default=30.0, gt=0, le=600)
    VIDGO_MAX_RETRIES: int = Field(default=3, ge=0, le=10)
    VIDGO_RATE_PER_SECOND: float = Field(default=5.0, gt=0)
    VIDGO_MAX_CONCURRENCY: int = Field(default=8, ge=1, le=1000)

    DELIVERY_MAX_ATTEMPTS: int = Field(default=6, ge=1, le=100)
    MAX_UPLOAD_MB: float = Field(default=100.0, gt=0)
    CALLBACK_MAX_BYTES: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    # Lyrics files also carry a <mm:ss.xx> timestamp per word (enhanced LRC).
    LYRICS_ENHANCED_LRC: bool = False
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Vidgo has not documented generate-midi: off unless the operator opts in.
    ENABLE_MIDI: bool = False

    # Operations (docs/operations.md).
    LOG_FORMAT: Literal["human", "json"] = "human"
    ADMIN_ENABLED: bool = True
    ADMIN_HOST: str = "127.0.0.1"
    ADMIN_PORT: int = Field(default=8081, ge=0, le=65535)
    METRICS_ON_WEBHOOK: bool = False
    RETENTION_JOBS_DAYS: float = Field(default=30.0, ge=0)
    RETENTION_CACHE_DAYS: float = Field(default=90.0, ge=0)
    RETENTION_INTERVAL_HOURS: float = Field(default=6.0, gt=0, le=24 * 30)

    # Kept stems, backing tracks and signed links (docs/media.md, docs/audio.md).
    # Empty: a "media" folder beside the SQLite database (data/media by default), so the
    # files live on the same volume as the jobs that name them.
    MEDIA_DIR: str = ""
    MEDIA_RETENTION_DAYS: float = Field(default=7.0, ge=0)
    MEDIA_MIN_FREE_MB: float = Field(default=1024.0, ge=0)
    MEDIA_MAX_STEM_MB: float = Field(default=100.0, gt=0, le=4096)
    # Empty: storage.vidgo.ai plus the host of VIDGO_BASE_URL; a value replaces that list.
    MEDIA_ALLOWED_HOSTS: str = ""
    MEDIA_LINK_TTL_HOURS: float = Field(default=24.0, gt=0, le=24 * 366)
    # Empty: a key kept in the database, the same for every process that shares it.
    MEDIA_LINK_SECRET: SecretStr | None = None
    MEDIA_FETCH_TIMEOUT_SECONDS: float = Field(default=300.0, gt=0, le=3600)
    AUDIO_WORKERS: int = Field(default=2, ge=1, le=64)
    AUDIO_QUEUE_LIMIT: int = Field(default=8, ge=0, le=1000)

    # The operator's credits (docs/operations.md, "Allowed servers" and "Credits").
    # Servers the bot may stay in, comma-separated ids; empty = any server.
    ALLOWED_GUILD_IDS: Annotated[frozenset[int], NoDecode] = frozenset()
    # Minutes between two balance reads; Vidgo asks not to poll it, so never below the
    # balance cache's minute (bot/balance.py) and conservative by default.
    CREDITS_CHECK_MINUTES: float = Field(default=30.0, ge=1, le=24 * 60)
    # Warn the bot's owner once when credits fall below this; 0 = never.
    CREDITS_WARN_BELOW: int = Field(default=500, ge=0)

    # Discord sharding (docs/scaling.md). SHARD_COUNT unset: one process, and Discord's
    # recommended number of shards. SHARD_IDS: the shards this process runs (all when unset);
    # several processes each run their own ids against one PostgreSQL database.
    SHARD_COUNT: int | None = Field(default=None, ge=1, le=MAX_SHARD_COUNT)
    SHARD_IDS: str = ""

    @field_validator("DISCORD_TOKEN", "VIDGO_API_KEY")
    @classmethod
    def _secret_not_blank(cls, value: SecretStr) -> SecretStr:
        # .env.example leaves both empty: an empty value means "not filled in yet".
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty (fill it in .env)")
        return value

    @field_validator("DISCORD_API_BASE", "VIDGO_BASE_URL")
    @classmethod
    def _check_http(cls, value: str) -> str:
        return _https_url(value)

    @field_validator("DISCORD_GATEWAY_URL")
    @classmethod
    def _check_gateway(cls, value: str) -> str:
        return _secure_url(value, secure="wss", plain="ws", example=DISCORD_GATEWAY_DEFAULT)

    @field_validator("PUBLIC_URL", mode="before")
    @classmethod
    def _check_public(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if not isinstance(value, str):
            raise ValueError("must be a URL")
        return _https_url(value.strip())

    @field_validator("DEV_GUILD_ID", "MEDIA_LINK_SECRET", "SHARD_COUNT", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("MEDIA_LINK_SECRET")
    @classmethod
    def _check_link_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < MIN_SECRET_BYTES:
            raise ValueError(
                f"must be at least {MIN_SECRET_BYTES} bytes (e.g. the output of "
                "`openssl rand -hex 32`)"
            )
        return value

    @field_validator("MEDIA_ALLOWED_HOSTS")
    @classmethod
    def _check_media_hosts(cls, value: str, info: ValidationInfo) -> str:
        # VIDGO_BASE_URL is declared (so validated) first; its host is in the default list.
        base = info.data.get("VIDGO_BASE_URL") or "https://api.vidgo.ai"
        try:
            parse_allowed_hosts(value, base)
        except ValueError as exc:
            raise ValueError(str(exc).removeprefix("MEDIA_ALLOWED_HOSTS ")) from None
        return value

    @field_validator("ALLOWED_GUILD_IDS", mode="before")
    @classmethod
    def _guild_id_list(cls, value: object) -> object:
        # "123, 456" in the environment; an iterable of ids when passed in code.
        if not isinstance(value, str):
            return value
        ids: set[int] = set()
        for part in value.split(","):
            item = part.strip()
            if not item:
                continue
            if not _SNOWFLAKE.match(item) or not 0 < int(item) < 2**64:
                raise ValueError(
                    "must be server ids separated by commas, such as 123456789012345678,"
                    "234567890123456789 (empty = any server)"
                )
            ids.add(int(item))
        return frozenset(ids)

    @field_validator("SHARD_IDS")
    @classmethod
    def _check_shard_ids(cls, value: str, info: ValidationInfo) -> str:
        # Declared after SHARD_COUNT, so its validated value is known here (absent if it
        # failed: then that error is the one reported).
        ids = parse_shard_ids(value)
        if ids is None:
            return ""
        if "SHARD_COUNT" not in info.data:
            return value
        count = info.data["SHARD_COUNT"]
        if count is None:
            raise ValueError(
                "needs SHARD_COUNT: the ids only mean something out of a known number of shards"
            )
        outside = [shard for shard in ids if shard >= count]
        if outside:
            listed = ", ".join(str(shard) for shard in outside)
            raise ValueError(
                f"shard {listed} is not below SHARD_COUNT ({count}); ids run from 0 to {count - 1}"
            )
        return ",".join(str(shard) for shard in ids)

    @property
    def shard_ids(self) -> tuple[int, ...] | None:
        """The shards this process runs, or ``None`` for all of them."""
        return parse_shard_ids(self.SHARD_IDS)

    @property
    def callbacks_enabled(self) -> bool:
        """Vidgo callbacks are requested only when a public URL is configured."""
        return self.PUBLIC_URL is not None

    @property
    def media_dir(self) -> Path:
        """Where kept files go: ``MEDIA_DIR``, or ``media`` beside the SQLite database.

        With PostgreSQL (no database file) the default is ``data/media``.
        """
        if self.MEDIA_DIR.strip():
            return Path(self.MEDIA_DIR.strip())
        try:
            return database_path(self.DATABASE_URL).parent / "media"
        except ValueError:
            return Path("data") / "media"

    @property
    def media_allowed_hosts(self) -> frozenset[str]:
        """The exact hosts stems may be downloaded from (validated at start-up)."""
        return parse_allowed_hosts(self.MEDIA_ALLOWED_HOSTS, self.VIDGO_BASE_URL)

    @property
    def media_link_secret(self) -> bytes | None:
        """``MEDIA_LINK_SECRET`` as bytes, or ``None`` to use the database-kept key."""
        if self.MEDIA_LINK_SECRET is None:
            return None
        return self.MEDIA_LINK_SECRET.get_secret_value().encode()


def parse_shard_ids(text: str) -> tuple[int, ...] | None:
    """``"0, 2"`` -> ``(0, 2)``; blank -> ``None`` (every shard). ``ValueError`` otherwise.

    Ids are distinct non-negative integers, kept in the order given (discord.py opens the
    shards' sessions in that order).
    """
    if not text.strip():
        return None
    ids: list[int] = []
    for part in text.split(","):
        item = part.strip()
        if not item.isascii() or not item.isdigit():
            raise ValueError(
                "must be shard ids separated by commas, such as 0,1 (empty = every shard)"
            )
        shard = int(item)
        if shard in ids:
            raise ValueError(f"names shard {shard} twice")
        ids.append(shard)
    return tuple(ids)


def database_path(url: str) -> Path:
    """Parse ``sqlite:///relative/path`` or ``sqlite:////absolute/path`` into a path."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise ValueError("must look like sqlite:///data/stemcord.sqlite3")
    return Path(url[len(prefix) :])


class SettingsError(Exception):
    """Settings are missing or invalid; the message is one line fit for the operator."""


def env_file_note(env_file: object = ENV_FILE) -> str:
    """Where ``.env`` was looked for, as an absolute path, and whether it was there.

    ``env_file`` is what pydantic-settings was given: a path relative to the working
    directory (the default), an absolute one, or ``None`` for "do not read one".
    """
    if env_file is None:
        return "no .env file was read"
    if isinstance(env_file, (list, tuple)):
        return "; ".join(env_file_note(item) for item in env_file) or "no .env file was read"
    path = Path(str(env_file))
    absolute = path if path.is_absolute() else Path.cwd() / path
    if absolute.is_file():
        return f"read {absolute}"
    return f"no file at {absolute}, so only the environment was read"


def describe_error(exc: ValidationError, env_file: object = ENV_FILE) -> str:
    """One line naming each bad variable and what it expects (never the value).

    It ends with where ``.env`` was looked for: a value "not set" is often one written in a
    ``.env`` in another folder than the one the bot was started from.
    """
    parts: list[str] = []
    for err in exc.errors():
        name = ".".join(str(p) for p in err["loc"]) or "settings"
        if err["type"] == "missing":
            parts.append(f"{name} is required but not set")
        else:
            msg = str(err["msg"]).removeprefix("Value error, ")
            parts.append(f"{name}: {msg}")
    return f"invalid settings: {'; '.join(parts)} ({env_file_note(env_file)})"


def load_settings(**overrides: object) -> Settings:
    """Read and validate settings; raise :class:`SettingsError` with one clear line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(describe_error(exc, overrides.get("_env_file", ENV_FILE))) from None


def load_settings_or_exit() -> Settings:
    """Entry-point helper: print the one-line error to stderr and exit 2 on bad settings."""
    try:
        return load_settings()
    except SettingsError as exc:
        sys.stderr.write(f"stemcord: {exc}\n")
        raise SystemExit(2) from None


def load_database_settings(**overrides: object) -> DatabaseSettings:
    """Read ``DATABASE_URL`` only; raise :class:`SettingsError` with one clear line."""
    try:
        return DatabaseSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(describe_error(exc, overrides.get("_env_file", ENV_FILE))) from None
