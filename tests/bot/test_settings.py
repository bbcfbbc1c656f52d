"""Settings: validated at start-up, one clear line per problem, secrets never echoed."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import SettingsError, database_path, load_settings, load_settings_or_exit

REQUIRED = {"DISCORD_TOKEN": "discord-secret-value-123", "VIDGO_API_KEY": "vidgo-secret-value-456"}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Run where no .env exists and no real setting leaks in.
    monkeypatch.chdir(tmp_path)
    for name in list(__import__("os").environ):
        if name.startswith(
            (
                "DISCORD_",
                "VIDGO_",
                "WEBHOOK_",
                "POLL_",
                "JOB_",
                "PUBLIC_URL",
                "DATABASE_URL",
                "DEV_GUILD",
                "ALLOWED_GUILD",
                "CREDITS_",
            )
        ):
            monkeypatch.delenv(name, raising=False)


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in REQUIRED.items():
        monkeypatch.setenv(k, v)
    s = load_settings()
    assert s.DISCORD_API_BASE == "https://discord.com/api/v10"
    assert s.VIDGO_BASE_URL == "https://api.vidgo.ai"
    assert s.database_path == Path("data/stemcord.sqlite3")
    assert s.PUBLIC_URL is None and not s.callbacks_enabled
    assert (s.WEBHOOK_HOST, s.WEBHOOK_PORT) == ("0.0.0.0", 8080)
    assert s.POLL_INTERVAL_SECONDS == 5 and s.JOB_TIMEOUT_SECONDS == 1800
    assert s.DEV_GUILD_ID is None


def test_missing_required_names_the_variable() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings()
    text = str(info.value)
    assert "DISCORD_TOKEN is required" in text
    assert "VIDGO_API_KEY is required" in text
    assert "\n" not in text


def test_invalid_value_names_variable_and_expectation_without_echoing_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for k, v in REQUIRED.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("WEBHOOK_PORT", "99999")
    monkeypatch.setenv("PUBLIC_URL", "ftp://nope")
    with pytest.raises(SettingsError) as info:
        load_settings()
    text = str(info.value)
    assert "WEBHOOK_PORT" in text and "PUBLIC_URL: must be a https:// URL" in text
    for secret in REQUIRED.values():
        assert secret not in text


def test_secrets_are_hidden_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in REQUIRED.items():
        monkeypatch.setenv(k, v)
    s = load_settings()
    for secret in REQUIRED.values():
        assert secret not in repr(s)
        assert secret not in str(s.model_dump())


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "DISCORD_TOKEN=a\nVIDGO_API_KEY=b\nPUBLIC_URL=https://bot.example.org/\nDEV_GUILD_ID=\n"
    )
    s = load_settings()
    assert s.PUBLIC_URL == "https://bot.example.org"
    assert s.DEV_GUILD_ID is None


def test_exit_prints_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        load_settings_or_exit()
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("stemcord: invalid settings")


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///data/x.sqlite3", Path("data/x.sqlite3")),
        ("sqlite:////var/lib/x.db", Path("/var/lib/x.db")),
    ],
)
def test_database_url(url: str, path: Path) -> None:
    assert database_path(url) == path


@pytest.mark.parametrize("url", ["postgres://x", "sqlite:///", "data.sqlite3"])
def test_bad_database_url(url: str) -> None:
    with pytest.raises(ValueError, match="sqlite:///"):
        database_path(url)


def test_env_example_lists_every_setting_with_a_comment() -> None:
    from bot.settings import Settings

    example = Path(__file__).resolve().parents[2] / ".env.example"
    lines = example.read_text().splitlines()
    names = {line.split("=", 1)[0] for line in lines if line and not line.startswith("#")}
    assert names == set(Settings.model_fields)
    for i, line in enumerate(lines):
        if line and not line.startswith("#"):
            assert lines[i - 1].startswith("# "), f"{line} has no comment above it"


def test_empty_secrets_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # As left by copying .env.example without filling it in.
    monkeypatch.setenv("DISCORD_TOKEN", "")
    monkeypatch.setenv("VIDGO_API_KEY", "  ")
    with pytest.raises(SettingsError) as info:
        load_settings()
    text = str(info.value)
    assert "DISCORD_TOKEN: must not be empty" in text
    assert "VIDGO_API_KEY: must not be empty" in text


@pytest.mark.parametrize(("raw", "enabled"), [(None, False), ("true", True), ("0", False)])
def test_midi_is_off_unless_enabled(
    monkeypatch: pytest.MonkeyPatch, raw: str | None, enabled: bool
) -> None:
    for k, v in REQUIRED.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("ENABLE_MIDI", raising=False)
    if raw is not None:
        monkeypatch.setenv("ENABLE_MIDI", raw)
    assert load_settings().ENABLE_MIDI is enabled


def test_a_bad_midi_switch_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in REQUIRED.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("ENABLE_MIDI", "perhaps")
    with pytest.raises(SettingsError, match="ENABLE_MIDI"):
        load_settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PUBLIC_URL", "http://bot.example.org"),
        ("VIDGO_BASE_URL", "http://api.vidgo.ai"),
        ("DISCORD_API_BASE", "http://discord.com/api/v10"),
        ("DISCORD_API_BASE", "http://10.0.0.5:8000/api/v10"),  # private is not loopback
        ("VIDGO_BASE_URL", "http://127.0.0.1.nip.io"),  # a name that only looks local
    ],
)
def test_plain_http_is_refused_for_a_host_that_is_not_loopback(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    for k, v in REQUIRED.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    text = str(info.value)
    assert f"{name}: must use https:// (http:// is accepted only for a loopback host" in text
    assert "\n" not in text


def test_a_plain_ws_gateway_is_refused_unless_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in REQUIRED.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("DISCORD_GATEWAY_URL", "ws://gateway.discord.gg/")
    with pytest.raises(SettingsError, match=r"DISCORD_GATEWAY_URL: must use wss://"):
        load_settings()
    monkeypatch.setenv("DISCORD_GATEWAY_URL", "http://gateway.discord.gg/")
    with pytest.raises(SettingsError, match=r"DISCORD_GATEWAY_URL: must be a wss:// URL"):
        load_settings()


@pytest.mark.parametrize(
    "host", ["127.0.0.1:8900", "127.8.9.10", "localhost:8900", "LOCALHOST", "[::1]:8900"]
)
def test_plain_http_and_ws_are_accepted_for_a_loopback_host(
    monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    # The local fakes (tests, the offline trial) and a proxy on this machine.
    for k, v in REQUIRED.items():
        monkeypatch.setenv(k, v)
    for name in ("PUBLIC_URL", "VIDGO_BASE_URL", "DISCORD_API_BASE"):
        monkeypatch.setenv(name, f"http://{host}/")
    monkeypatch.setenv("DISCORD_GATEWAY_URL", f"ws://{host}/gateway")
    s = load_settings()
    assert s.PUBLIC_URL == s.VIDGO_BASE_URL == s.DISCORD_API_BASE == f"http://{host}"
    gateway = s.DISCORD_GATEWAY_URL  # (a name in capitals reads as a constant to the linter)
    assert gateway == f"ws://{host}/gateway"


def test_https_and_wss_are_accepted_anywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in REQUIRED.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("PUBLIC_URL", "https://bot.example.org")
    monkeypatch.setenv("DISCORD_GATEWAY_URL", "wss://gateway.example.org/")
    s = load_settings()
    assert s.PUBLIC_URL == "https://bot.example.org"


def test_settings_error_says_where_dotenv_was_looked_for(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings()
    expected = tmp_path / ".env"
    assert f"(no file at {expected}, so only the environment was read)" in str(info.value)
    assert expected.is_absolute()

    (tmp_path / ".env").write_text("DISCORD_TOKEN=abcdefgh\n")  # VIDGO_API_KEY still missing
    with pytest.raises(SettingsError) as info:
        load_settings()
    text = str(info.value)
    assert "VIDGO_API_KEY is required" in text and f"(read {expected})" in text
    assert "DISCORD_TOKEN is required" not in text


def test_settings_error_when_no_dotenv_is_read() -> None:
    with pytest.raises(SettingsError, match=r"\(no \.env file was read\)$"):
        load_settings(_env_file=None)


def test_database_settings_error_also_says_where_dotenv_was_looked_for(tmp_path: Path) -> None:
    from bot.settings import load_database_settings

    (tmp_path / ".env").write_text("DATABASE_URL=mysql://nope\n")
    with pytest.raises(SettingsError) as info:
        load_database_settings()
    assert "DATABASE_URL: must look like sqlite:///" in str(info.value)
    assert "or postgresql://" in str(info.value)
    assert f"(read {tmp_path / '.env'})" in str(info.value)


def test_allowed_guild_ids_are_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in REQUIRED.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("ALLOWED_GUILD_IDS", " 123456789012345678, 234567890123456789 ,")
    allowed = load_settings().ALLOWED_GUILD_IDS
    assert allowed == {123456789012345678, 234567890123456789}
    monkeypatch.setenv("ALLOWED_GUILD_IDS", "")
    assert not load_settings().ALLOWED_GUILD_IDS  # any server


@pytest.mark.parametrize(
    "value", ["abc", "123;456", "-5", "0", "\uff11\uff12\uff13", "99999999999999999999"]
)
def test_allowed_guild_ids_refuse_anything_but_ids(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    for k, v in REQUIRED.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("ALLOWED_GUILD_IDS", value)
    with pytest.raises(SettingsError, match="ALLOWED_GUILD_IDS: must be server ids"):
        load_settings()


def test_credit_checks_default_to_rare_and_never_under_a_minute(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for k, v in REQUIRED.items():
        monkeypatch.setenv(k, v)
    s = load_settings()
    assert s.CREDITS_CHECK_MINUTES == 30 and s.CREDITS_WARN_BELOW == 500
    monkeypatch.setenv("CREDITS_CHECK_MINUTES", "0.5")  # below the balance cache's minute
    with pytest.raises(SettingsError, match="CREDITS_CHECK_MINUTES"):
        load_settings()
    monkeypatch.setenv("CREDITS_CHECK_MINUTES", "5")
    monkeypatch.setenv("CREDITS_WARN_BELOW", "-1")
    with pytest.raises(SettingsError, match="CREDITS_WARN_BELOW"):
        load_settings()
