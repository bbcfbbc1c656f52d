"""The MP3 writer: the level that goes in comes out, and files appear whole or not at all."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bot.audio import InvalidSetting
from bot.audio.mp3 import MP3_BITRATES, Mp3Writer, mp3_sample_rate, nearest_bitrate
from bot.audio.stream import read_all

RATE = 44_100


def sine(amplitude: float, seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    wave = (amplitude * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    return np.stack([wave, wave])


@pytest.mark.parametrize("kbps", [b for b in MP3_BITRATES if b >= 64])
def test_every_bitrate_decodes_at_the_level_written(tmp_path: Path, kbps: int) -> None:
    # LAME lowers the level by a preset factor per bitrate; the writer must undo exactly that.
    written = sine(0.5)
    out = tmp_path / "s.mp3"
    with Mp3Writer(out, sample_rate=RATE, channels=2, bitrate_kbps=kbps) as writer:
        writer.write(written)
    decoded = read_all(out)
    assert decoded.shape == written.shape
    scale = float(np.sum(decoded * written) / np.sum(written * written))
    assert scale == pytest.approx(1.0, abs=0.005)


def test_a_failed_encode_leaves_no_file(tmp_path: Path) -> None:
    out = tmp_path / "s.mp3"

    class Interrupted(Exception):
        pass

    with (
        pytest.raises(Interrupted),
        Mp3Writer(out, sample_rate=RATE, channels=2, bitrate_kbps=128) as w,
    ):
        w.write(sine(0.1, 0.5))
        raise Interrupted
    assert list(tmp_path.iterdir()) == []


def test_the_file_appears_only_when_complete(tmp_path: Path) -> None:
    out = tmp_path / "s.mp3"
    with Mp3Writer(out, sample_rate=RATE, channels=2, bitrate_kbps=128) as writer:
        writer.write(sine(0.1, 0.5))
        assert not out.exists()
    assert out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["s.mp3"]


def test_only_mp3_bitrates_and_rates_are_accepted(tmp_path: Path) -> None:
    with pytest.raises(InvalidSetting):
        Mp3Writer(tmp_path / "a.mp3", sample_rate=RATE, channels=2, bitrate_kbps=100)
    with pytest.raises(InvalidSetting):
        Mp3Writer(tmp_path / "a.mp3", sample_rate=22_050, channels=2, bitrate_kbps=128)
    assert nearest_bitrate(131.7) == 128
    assert nearest_bitrate(400) == 320
    assert mp3_sample_rate(22_050) == 32_000
    assert mp3_sample_rate(96_000) == 48_000
    assert mp3_sample_rate(44_100) == 44_100
