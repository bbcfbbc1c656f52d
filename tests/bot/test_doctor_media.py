"""``bot check``'s media line: the folder for kept stems is writable and has room."""

from __future__ import annotations

import shutil
from pathlib import Path

from bot.doctor import Status, check_media
from bot.settings import Settings, load_settings


def settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "DISCORD_TOKEN": "token",
        "VIDGO_API_KEY": "key",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'stemcord.sqlite3'}",
    }
    values.update(overrides)
    return load_settings(_env_file=None, **values)


def test_the_default_folder_beside_the_database_is_made_and_written(tmp_path: Path) -> None:
    result = check_media(settings(tmp_path))
    folder = tmp_path / "data" / "media"
    assert result.status is Status.OK
    assert result.detail.startswith(f"{folder}, writable, ")
    assert "MB free (1,024 MB kept free)" in result.detail
    assert list(folder.iterdir()) == []  # the probe file is gone


def test_a_folder_that_cannot_be_written_fails_with_a_fix(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = check_media(settings(tmp_path, MEDIA_DIR=str(blocker / "media")))
    assert result.status is Status.FAIL
    assert "is not writable" in result.detail
    assert result.fix is not None and "MEDIA_DIR" in result.fix


def test_too_little_free_space_fails_naming_the_setting(tmp_path: Path) -> None:
    free_mb = shutil.disk_usage(tmp_path).free / 1_048_576
    result = check_media(settings(tmp_path, MEDIA_MIN_FREE_MB=free_mb * 4))
    assert result.status is Status.FAIL
    assert "MEDIA_MIN_FREE_MB" in result.detail and "no stem would be kept" in result.detail
    assert result.fix is not None and "MEDIA_MIN_FREE_MB" in result.fix
