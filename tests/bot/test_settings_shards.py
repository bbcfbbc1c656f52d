"""SHARD_COUNT and SHARD_IDS: which Discord shards a process runs, checked at start-up."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.settings import SettingsError, load_settings, parse_shard_ids

REQUIRED = {"DISCORD_TOKEN": "discord-secret-value-123", "VIDGO_API_KEY": "vidgo-secret-value-456"}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("DISCORD_", "VIDGO_", "SHARD_", "DATABASE_URL")):
            monkeypatch.delenv(name, raising=False)
    for key, value in REQUIRED.items():
        monkeypatch.setenv(key, value)


def test_without_shard_settings_discord_decides_and_the_process_runs_every_shard() -> None:
    settings = load_settings()
    assert settings.SHARD_COUNT is None and settings.shard_ids is None


def test_blank_values_from_env_example_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHARD_COUNT", "")
    monkeypatch.setenv("SHARD_IDS", " ")
    settings = load_settings()
    assert settings.SHARD_COUNT is None and settings.shard_ids is None


def test_a_count_and_this_process_s_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHARD_COUNT", "4")
    monkeypatch.setenv("SHARD_IDS", " 3, 1 ")
    settings = load_settings()
    assert settings.SHARD_COUNT == 4
    assert settings.shard_ids == (3, 1)  # the order given: sessions open in that order


def test_a_count_alone_runs_every_shard_of_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHARD_COUNT", "2")
    settings = load_settings()
    assert settings.SHARD_COUNT == 2 and settings.shard_ids is None


def test_ids_without_a_count_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHARD_IDS", "0")
    with pytest.raises(SettingsError, match=r"SHARD_IDS: needs SHARD_COUNT"):
        load_settings()


@pytest.mark.parametrize(
    ("count", "ids", "words"),
    [
        ("2", "2", "shard 2 is not below SHARD_COUNT (2); ids run from 0 to 1"),
        ("3", "0,5,7", "shard 5, 7 is not below SHARD_COUNT (3)"),
        ("2", "1,1", "names shard 1 twice"),
        ("2", "one", "must be shard ids separated by commas"),
        ("2", "-1", "must be shard ids separated by commas"),
        ("2", "0,,1", "must be shard ids separated by commas"),
        ("2", "\u0661", "must be shard ids separated by commas"),  # an Arabic-Indic one
    ],
)
def test_shard_ids_that_cannot_work_are_refused_with_the_variable_named(
    monkeypatch: pytest.MonkeyPatch, count: str, ids: str, words: str
) -> None:
    monkeypatch.setenv("SHARD_COUNT", count)
    monkeypatch.setenv("SHARD_IDS", ids)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert f"SHARD_IDS: {words}" in str(info.value)


@pytest.mark.parametrize("count", ["0", "-2", "two", "1000000"])
def test_a_shard_count_that_cannot_work_is_refused(
    monkeypatch: pytest.MonkeyPatch, count: str
) -> None:
    monkeypatch.setenv("SHARD_COUNT", count)
    with pytest.raises(SettingsError, match="SHARD_COUNT"):
        load_settings()


def test_a_bad_count_is_the_one_error_reported_not_the_ids_against_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHARD_COUNT", "zero")
    monkeypatch.setenv("SHARD_IDS", "0")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "SHARD_COUNT" in str(info.value) and "SHARD_IDS" not in str(info.value)


def test_parse_shard_ids() -> None:
    assert parse_shard_ids("") is None
    assert parse_shard_ids("0") == (0,)
    assert parse_shard_ids("4,0, 2") == (4, 0, 2)
