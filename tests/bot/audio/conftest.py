"""Real MP3 stems for the audio engine's tests, written once per session (read-only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.audio import STEM_SPLIT_STEMS, UPLOAD_STEMS, write_stems

SECONDS = 4.0


@pytest.fixture(scope="session")
def upload_stems(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The six stems of an upload split, 4 s, 44.1 kHz stereo, 192 kbps."""
    return write_stems(tmp_path_factory.mktemp("upload"), UPLOAD_STEMS, seconds=SECONDS)


@pytest.fixture(scope="session")
def split_stems(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The thirteen stems of ``stem-split``."""
    return write_stems(tmp_path_factory.mktemp("split"), STEM_SPLIT_STEMS, seconds=SECONDS)
