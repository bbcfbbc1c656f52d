"""The media settings: defaults, where the folder goes, and the checks at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import Settings, SettingsError, load_settings


def settings(**overrides: object) -> Settings:
    values: dict[str, object] = {"DISCORD_TOKEN": "token", "VIDGO_API_KEY": "key"}
    values.update(overrides)
    return load_settings(_env_file=None, **values)


def test_the_defaults() -> None:
    s = settings()
    assert (s.MEDIA_RETENTION_DAYS, s.MEDIA_MIN_FREE_MB, s.MEDIA_MAX_STEM_MB) == (7, 1024, 100)
    assert (s.MEDIA_LINK_TTL_HOURS, s.MEDIA_FETCH_TIMEOUT_SECONDS) == (24, 300)
    assert (s.AUDIO_WORKERS, s.AUDIO_QUEUE_LIMIT) == (2, 8)
    assert s.media_link_secret is None
    assert s.media_allowed_hosts == {"storage.vidgo.ai", "api.vidgo.ai"}


def test_the_media_folder_sits_beside_the_sqlite_database_unless_set(tmp_path: Path) -> None:
    assert settings().media_dir == Path("data/media")
    database = f"sqlite:///{tmp_path / 'volume' / 'stemcord.sqlite3'}"
    assert settings(DATABASE_URL=database).media_dir == tmp_path / "volume" / "media"
    assert settings(DATABASE_URL="postgresql://u@db/stemcord").media_dir == Path("data/media")
    assert settings(MEDIA_DIR=str(tmp_path / "elsewhere")).media_dir == tmp_path / "elsewhere"


def test_the_allowed_hosts_default_to_vidgos_and_a_value_replaces_them() -> None:
    local = settings(VIDGO_BASE_URL="http://127.0.0.1:8900")
    assert local.media_allowed_hosts == {"storage.vidgo.ai", "127.0.0.1"}
    listed = settings(MEDIA_ALLOWED_HOSTS="cdn.example.org, Storage.Vidgo.AI.")
    assert listed.media_allowed_hosts == {"cdn.example.org", "storage.vidgo.ai"}


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("MEDIA_ALLOWED_HOSTS", "*.vidgo.ai", "MEDIA_ALLOWED_HOSTS: takes exact host names"),
        ("MEDIA_ALLOWED_HOSTS", "https://storage.vidgo.ai", "MEDIA_ALLOWED_HOSTS"),
        ("MEDIA_LINK_SECRET", "too-short", "MEDIA_LINK_SECRET: must be at least 32 bytes"),
        ("MEDIA_RETENTION_DAYS", "-1", "MEDIA_RETENTION_DAYS"),
        ("MEDIA_MIN_FREE_MB", "-5", "MEDIA_MIN_FREE_MB"),
        ("MEDIA_MAX_STEM_MB", "0", "MEDIA_MAX_STEM_MB"),
        ("MEDIA_LINK_TTL_HOURS", "0", "MEDIA_LINK_TTL_HOURS"),
        ("MEDIA_FETCH_TIMEOUT_SECONDS", "0", "MEDIA_FETCH_TIMEOUT_SECONDS"),
        ("AUDIO_WORKERS", "0", "AUDIO_WORKERS"),
        ("AUDIO_QUEUE_LIMIT", "-1", "AUDIO_QUEUE_LIMIT"),
    ],
)
def test_a_bad_value_stops_the_start_naming_it(name: str, value: str, says: str) -> None:
    with pytest.raises(SettingsError) as refused:
        settings(**{name: value})
    assert says in str(refused.value)
    if name == "MEDIA_LINK_SECRET":
        assert value not in str(refused.value)  # a secret is never echoed


def test_a_long_enough_secret_is_used_and_a_blank_one_means_the_databases() -> None:
    secret = "x" * 32
    assert settings(MEDIA_LINK_SECRET=secret).media_link_secret == secret.encode()
    assert settings(MEDIA_LINK_SECRET="  ").media_link_secret is None
