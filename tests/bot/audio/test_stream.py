"""Reading files in chunks: exact lengths, any chunking, layout conversions, typed errors."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bot.audio import UnreadableAudio, UnsupportedLayout
from bot.audio import stream as stream_module
from bot.audio.stream import AudioStream, probe, read_all
from tests.fakes.audio import StemSound, decode, dominant_frequency, write_sound


@pytest.fixture(scope="module")
def tone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sound(tmp_path_factory.mktemp("stream") / "t.mp3", StemSound(440.0), seconds=2.0)


def test_any_chunk_size_reads_the_same_samples(tone: Path) -> None:
    whole = read_all(tone)
    for size in (1, 1000, 4096, 100_000):
        with AudioStream(tone) as stream:
            parts = []
            while (chunk := stream.read(size)).shape[1]:
                parts.append(chunk)
        assert np.array_equal(np.concatenate(parts, axis=1), whole), size


def test_every_read_but_the_last_is_full(tone: Path) -> None:
    with AudioStream(tone) as stream:
        sizes = []
        while (chunk := stream.read(30_000)).shape[1]:
            sizes.append(chunk.shape[1])
    assert sizes[:-1] == [30_000] * (len(sizes) - 1)
    assert sum(sizes) == 88_200


def test_resampling_keeps_the_pitch_and_the_exact_length(tone: Path) -> None:
    resampled = read_all(tone, sample_rate=48_000)
    assert resampled.shape == (2, 96_000)
    assert dominant_frequency(resampled, 48_000) == pytest.approx(440.0, rel=0.002)


def test_mono_is_spread_to_stereo_and_stereo_folded_to_mono(tmp_path: Path) -> None:
    mono = write_sound(tmp_path / "m.wav", StemSound(440.0), seconds=0.5, channels=1)
    spread = read_all(mono, channels=2)
    assert spread.shape == (2, 22_050)
    assert np.array_equal(spread[0], spread[1])
    stereo = tmp_path / "s.wav"
    from pedalboard.io import WriteableAudioFile

    with WriteableAudioFile(str(stereo), samplerate=44_100, num_channels=2) as out:
        out.write(np.stack([np.full(100, 0.5), np.full(100, 0.1)]).astype(np.float32))
    assert read_all(stereo, channels=1) == pytest.approx(np.full((1, 100), 0.3), abs=1e-4)


def test_a_length_underestimated_by_the_probe_still_reads_everything(
    tone: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = probe(tone)
    monkeypatch.setattr(stream_module, "probe", lambda path: replace(real, frames=1000))
    assert read_all(tone).shape == (2, 88_200)


def test_a_file_that_is_not_audio_is_a_typed_error(tmp_path: Path) -> None:
    junk = tmp_path / "song.mp3"
    junk.write_bytes(b"\x00" * 5000)
    with pytest.raises(UnreadableAudio) as caught:
        AudioStream(junk)
    assert caught.value.path == junk
    with pytest.raises(UnreadableAudio):
        probe(tmp_path / "missing.mp3")


def test_more_than_two_channels_is_refused(tmp_path: Path) -> None:
    from pedalboard.io import WriteableAudioFile

    path = tmp_path / "six.wav"
    with WriteableAudioFile(str(path), samplerate=44_100, num_channels=6) as out:
        out.write(np.zeros((6, 10), dtype=np.float32))
    with pytest.raises(UnsupportedLayout) as caught:
        AudioStream(path)
    assert caught.value.channels == 6


def test_the_stream_matches_a_plain_decode_minus_priming(tone: Path) -> None:
    raw, _ = decode(tone)
    trimmed = read_all(tone)
    assert np.array_equal(trimmed, raw[:, 1105 : 1105 + trimmed.shape[1]])
