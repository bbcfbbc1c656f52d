"""Fitting under an upload limit: never over the limit, never under the quality floor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bot.audio import InvalidSetting, fit_to_limit
from bot.audio import fit as fit_module
from bot.audio.fit import FLOOR_MONO_KBPS, FLOOR_STEREO_KBPS, predicted_bytes
from bot.audio.mp3 import MP3_BITRATES
from bot.audio.mp3info import read_mp3_info
from bot.audio.stream import probe, read_all
from tests.fakes.audio import magnitude_db, write_stem

SECONDS = 6.0


@pytest.fixture(scope="module")
def track(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six seconds of stereo at 256 kbps: ~192 KB."""
    directory = tmp_path_factory.mktemp("fit")
    return write_stem(directory / "bass.mp3", "bass", seconds=SECONDS, bitrate_kbps=256)


def kbps_bytes(kbps: int) -> int:
    return kbps * 125 * int(SECONDS)


def test_a_track_that_fits_is_copied_untouched(track: Path, tmp_path: Path) -> None:
    result = fit_to_limit(track, tmp_path / "out.mp3", limit_bytes=track.stat().st_size)
    assert result is not None
    assert not result.reencoded
    assert result.bitrate_kbps == 256
    assert (tmp_path / "out.mp3").read_bytes() == track.read_bytes()


@pytest.mark.parametrize("limit_kbps", [200, 150, 100])
def test_the_fitted_file_never_exceeds_the_limit(
    track: Path, tmp_path: Path, limit_kbps: int
) -> None:
    limit = kbps_bytes(limit_kbps)
    out = tmp_path / "out.mp3"
    result = fit_to_limit(track, out, limit_bytes=limit)
    assert result is not None
    assert result.reencoded
    assert out.stat().st_size == result.bytes <= limit
    header = read_mp3_info(out)
    assert header is not None
    assert header.bitrate_kbps == result.bitrate_kbps
    assert result.bitrate_kbps >= FLOOR_STEREO_KBPS
    # The best bitrate that fits: the next one up would not.
    higher = [b for b in MP3_BITRATES if b > result.bitrate_kbps]
    assert predicted_bytes(probe(track), higher[0]) > limit
    # Same audio, same level, same length.
    assert probe(out).frames == probe(track).frames
    assert magnitude_db(read_all(out), 44_100, 110.0) == pytest.approx(
        magnitude_db(read_all(track), 44_100, 110.0), abs=0.2
    )


def test_below_the_floor_it_does_not_fit(track: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp3"
    assert fit_to_limit(track, out, limit_bytes=kbps_bytes(FLOOR_STEREO_KBPS) - 2000) is None
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_mono_goes_down_to_its_own_lower_floor(tmp_path: Path) -> None:
    mono = write_stem(tmp_path / "m.mp3", "bass", seconds=SECONDS, channels=1, bitrate_kbps=128)
    stereo = write_stem(tmp_path / "s.mp3", "bass", seconds=SECONDS, bitrate_kbps=128)
    limit = kbps_bytes(72)  # room for 64 kbps, not for 80
    mono_result = fit_to_limit(mono, tmp_path / "mo.mp3", limit_bytes=limit)
    assert mono_result is not None
    assert mono_result.bitrate_kbps == FLOOR_MONO_KBPS
    assert fit_to_limit(stereo, tmp_path / "so.mp3", limit_bytes=limit) is None


def test_it_never_encodes_above_the_source_bitrate(tmp_path: Path) -> None:
    # 128 kbps audio behind a large cover picture: too big, but the audio alone fits.
    plain = write_stem(tmp_path / "p.mp3", "bass", seconds=SECONDS, bitrate_kbps=128)
    size = 200_000
    tag = b"ID3\x04\x00\x00" + bytes((size >> s) & 0x7F for s in (21, 14, 7, 0)) + bytes(size)
    tagged = tmp_path / "tagged.mp3"
    tagged.write_bytes(tag + plain.read_bytes())
    result = fit_to_limit(tagged, tmp_path / "out.mp3", limit_bytes=kbps_bytes(300))
    assert result is not None
    assert result.reencoded
    assert result.bitrate_kbps == 128


def test_a_prediction_that_was_too_hopeful_steps_down_until_it_fits(
    track: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fit_module, "predicted_bytes", lambda info, kbps: 0)
    limit = kbps_bytes(150)
    result = fit_to_limit(track, tmp_path / "out.mp3", limit_bytes=limit)
    assert result is not None
    assert result.attempts > 1
    assert result.bitrate_kbps == 128
    assert (tmp_path / "out.mp3").stat().st_size <= limit


def test_a_wav_source_always_becomes_an_mp3(tmp_path: Path) -> None:
    wav = write_stem(tmp_path / "s.wav", "bass", seconds=1.0)
    result = fit_to_limit(wav, tmp_path / "out.mp3", limit_bytes=10**9)
    assert result is not None
    assert result.reencoded
    assert result.bitrate_kbps == max(MP3_BITRATES)
    assert read_mp3_info(tmp_path / "out.mp3") is not None


def test_a_loud_source_is_not_clipped_by_the_reencode(tmp_path: Path) -> None:
    loud = write_stem(tmp_path / "l.wav", "bass", seconds=2.0, amplitude=0.999)
    result = fit_to_limit(loud, tmp_path / "out.mp3", limit_bytes=kbps_bytes(140) // 3)
    assert result is not None
    assert float(np.max(np.abs(read_all(tmp_path / "out.mp3")))) < 1.0


def test_a_limit_of_nothing_is_refused(track: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidSetting):
        fit_to_limit(track, tmp_path / "out.mp3", limit_bytes=0)
