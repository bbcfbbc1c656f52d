"""Key and tempo changes, checked by the frequency and length of what comes out."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from bot.audio import InputTooLong, InvalidSetting, render_key
from bot.audio.stream import probe, read_all
from tests.fakes.audio import (
    StemSound,
    decode,
    dominant_frequency,
    magnitude_db,
    peak,
    write_sound,
    write_stem,
)

RATE = 44_100


@pytest.fixture(scope="module")
def tone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three seconds of 440 Hz."""
    return write_stem(tmp_path_factory.mktemp("key") / "vocals.mp3", "vocals", seconds=3.0)


def shifted(frequency: float, semitones: int) -> float:
    return frequency * 2 ** (semitones / 12)


def test_two_semitones_up_moves_440_hz_to_493_9(tone: Path, tmp_path: Path) -> None:
    report = render_key(tone, tmp_path / "up.mp3", semitones=2)
    samples, rate = decode(tmp_path / "up.mp3")
    assert dominant_frequency(samples, rate) == pytest.approx(493.88, rel=0.01)
    assert magnitude_db(samples, rate, 440.0) < magnitude_db(samples, rate, 493.88) - 30
    assert report.semitones == 2


def test_three_semitones_down_moves_440_hz_to_370(tone: Path, tmp_path: Path) -> None:
    render_key(tone, tmp_path / "down.mp3", semitones=-3)
    samples, rate = decode(tmp_path / "down.mp3")
    assert dominant_frequency(samples, rate) == pytest.approx(shifted(440, -3), rel=0.01)


@pytest.mark.parametrize("semitones", [-6, 6])
def test_the_whole_range_shifts_by_the_asked_interval(
    tone: Path, tmp_path: Path, semitones: int
) -> None:
    render_key(tone, tmp_path / "s.mp3", semitones=semitones)
    samples, rate = decode(tmp_path / "s.mp3")
    assert dominant_frequency(samples, rate) == pytest.approx(shifted(440, semitones), rel=0.01)


def test_a_key_change_keeps_the_length_and_the_timing(tmp_path: Path) -> None:
    # A tone burst at 1.5 s must still start at 1.5 s (the shifter's latency is removed).
    src = write_sound(
        tmp_path / "burst.mp3", StemSound(1000.0, rate=0.25, burst_s=0.2), seconds=3.0
    )
    samples = read_all(src)
    moved = np.zeros_like(samples)
    moved[:, int(1.5 * RATE) :] = samples[:, : samples.shape[1] - int(1.5 * RATE)]
    moved_path = tmp_path / "moved.wav"
    from pedalboard.io import WriteableAudioFile

    with WriteableAudioFile(str(moved_path), samplerate=RATE, num_channels=2) as out:
        out.write(moved)
    report = render_key(moved_path, tmp_path / "up.mp3", semitones=4)
    result = read_all(tmp_path / "up.mp3")
    assert report.frames == samples.shape[1]
    assert result.shape[1] == samples.shape[1]
    onset = int(np.argmax(np.abs(result[0]) > 0.05)) / RATE
    assert onset == pytest.approx(1.5, abs=0.02)


def test_tempo_changes_the_length_but_not_the_pitch(tone: Path, tmp_path: Path) -> None:
    for tempo in (1.25, 0.8):
        out = tmp_path / f"t{tempo}.mp3"
        report = render_key(tone, out, semitones=0, tempo=tempo)
        assert report.frames == pytest.approx(3.0 * RATE / tempo, rel=0.002)
        assert probe(out).duration_s == pytest.approx(3.0 / tempo, rel=0.002)
        samples, rate = decode(out)
        assert dominant_frequency(samples, rate) == pytest.approx(440.0, rel=0.01)


def test_tempo_and_key_change_together(tone: Path, tmp_path: Path) -> None:
    out = tmp_path / "both.mp3"
    render_key(tone, out, semitones=-2, tempo=1.1)
    samples, rate = decode(out)
    assert dominant_frequency(samples, rate) == pytest.approx(shifted(440, -2), rel=0.01)
    assert probe(out).duration_s == pytest.approx(3.0 / 1.1, rel=0.002)


def test_a_loud_track_does_not_clip_after_the_shift(tmp_path: Path) -> None:
    src = write_sound(tmp_path / "loud.wav", StemSound(300.0), seconds=2.0, amplitude=0.999)
    out = tmp_path / "up.mp3"
    report = render_key(src, out, semitones=5)
    assert report.gain < 1.0
    assert peak(decode(out)[0]) < 1.0


def test_no_change_copies_the_file(tone: Path, tmp_path: Path) -> None:
    report = render_key(tone, tmp_path / "same.mp3", semitones=0)
    assert (tmp_path / "same.mp3").read_bytes() == tone.read_bytes()
    assert report.gain == 1.0


@pytest.mark.parametrize(
    ("semitones", "tempo"),
    [(7, 1.0), (-7, 1.0), (0, 1.3), (0, 0.7), (0, math.nan), (2.5, 1.0), (True, 1.0)],
)
def test_changes_outside_the_offered_range_are_refused(
    tone: Path, tmp_path: Path, semitones: int, tempo: float
) -> None:
    with pytest.raises(InvalidSetting):
        render_key(tone, tmp_path / "x.mp3", semitones=semitones, tempo=tempo)
    assert not (tmp_path / "x.mp3").exists()


def test_a_tempo_change_refuses_a_track_longer_than_its_limit(tone: Path, tmp_path: Path) -> None:
    with pytest.raises(InputTooLong):
        render_key(tone, tmp_path / "x.mp3", semitones=0, tempo=1.2, max_stretch_seconds=2.0)
    # A key change alone streams, so no length limit applies to it.
    render_key(tone, tmp_path / "y.mp3", semitones=1, max_stretch_seconds=2.0)
