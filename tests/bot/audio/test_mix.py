"""The backing-track mix, checked by analysing the decoded result against the stems."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from pedalboard.io import WriteableAudioFile

from bot.audio import (
    NothingToMix,
    UnreadableAudio,
    UnsupportedLayout,
    mix_backing_track,
    select_backing_stems,
)
from bot.audio import mix as mix_module
from bot.audio.mp3info import read_mp3_info
from bot.audio.spill import db_to_gain
from bot.audio.stream import probe, read_all
from tests.fakes.audio import (
    DRUMS_BAND,
    STEM_SOUNDS,
    band_level_db,
    burst_rate,
    decode,
    duration_s,
    magnitude_db,
    peak,
    plain_sum,
    write_stem,
    write_stems,
)

CEILING = db_to_gain(-1.0)


def tone_level(path: Path, name: str) -> float:
    samples, rate = decode(path)
    return magnitude_db(samples, rate, STEM_SOUNDS[name].frequency)


def test_backing_track_holds_every_accompaniment_stem_and_no_lead_vocal(
    upload_stems: dict[str, Path], tmp_path: Path
) -> None:
    chosen = select_backing_stems(upload_stems, keep_backing_vocals=True)
    assert chosen is not None
    out = tmp_path / "instrumental.mp3"
    report = mix_backing_track(chosen, out)
    mixed, rate = decode(out)
    for name in ("bass", "piano", "guitar", "other"):
        expected = tone_level(upload_stems[name], name) + report.gain_db
        assert magnitude_db(mixed, rate, STEM_SOUNDS[name].frequency) == pytest.approx(
            expected, abs=0.5
        ), name
    drums, _ = decode(upload_stems["drums"])
    assert burst_rate(mixed, rate) == pytest.approx(4.0, abs=0.1)
    assert band_level_db(mixed, rate, DRUMS_BAND) == pytest.approx(
        band_level_db(drums, rate, DRUMS_BAND) + report.gain_db, abs=1.0
    )
    vocal_level = tone_level(upload_stems["vocals"], "vocals")
    assert magnitude_db(mixed, rate, STEM_SOUNDS["vocals"].frequency) < vocal_level - 40


def test_backing_vocals_are_kept_by_default_and_dropped_by_the_flag(
    split_stems: dict[str, Path], tmp_path: Path
) -> None:
    harmony = tone_level(split_stems["backing_vocals"], "backing_vocals")
    lead = tone_level(split_stems["vocals"], "vocals")
    kept_stems = select_backing_stems(split_stems)
    dropped_stems = select_backing_stems(split_stems, keep_backing_vocals=False)
    assert kept_stems is not None
    assert dropped_stems is not None
    kept = mix_backing_track(kept_stems, tmp_path / "kept.mp3")
    dropped = mix_backing_track(dropped_stems, tmp_path / "dropped.mp3")
    with_harmony = tone_level(tmp_path / "kept.mp3", "backing_vocals")
    assert with_harmony == pytest.approx(harmony + kept.gain_db, abs=0.5)
    assert tone_level(tmp_path / "dropped.mp3", "backing_vocals") < harmony - 40
    for out in ("kept.mp3", "dropped.mp3"):
        assert tone_level(tmp_path / out, "vocals") < lead - 40
    # Every other stem-split part is in both.
    for name in ("brass", "fx", "keyboard", "strings", "synth", "woodwinds", "piano", "bass"):
        assert tone_level(tmp_path / "dropped.mp3", name) == pytest.approx(
            tone_level(split_stems[name], name) + dropped.gain_db, abs=0.5
        ), name


def test_the_level_equals_the_plain_sum_when_that_does_not_clip(tmp_path: Path) -> None:
    stems = write_stems(tmp_path, ("bass", "piano", "drums"), seconds=3.0, amplitude=0.1)
    out = tmp_path / "mix.mp3"
    report = mix_backing_track(list(stems.values()), out)
    reference, _ = plain_sum(stems)
    assert report.gain == 1.0
    assert report.peak_before_gain == pytest.approx(peak(reference), abs=1e-4)
    mixed, _ = decode(out)
    # Sample by sample: what is left after subtracting the plain sum is only MP3 coding noise.
    length = min(mixed.shape[1], reference.shape[1])
    residual = mixed[:, :length] - reference[:, :length]
    signal_power = float(np.mean(np.square(reference[:, :length], dtype=np.float64)))
    noise_power = float(np.mean(np.square(residual, dtype=np.float64)))
    assert 10 * math.log10(signal_power / noise_power) > 20


def test_a_sum_that_would_clip_is_scaled_down_to_the_ceiling(
    split_stems: dict[str, Path], tmp_path: Path
) -> None:
    chosen = select_backing_stems(split_stems)
    assert chosen is not None
    out = tmp_path / "loud.mp3"
    report = mix_backing_track(chosen, out)
    reference, _ = plain_sum(chosen)
    assert peak(reference) > 1.0  # twelve stems at 0.2 each: the plain sum clips
    assert report.peak_before_gain == pytest.approx(peak(reference), abs=1e-4)
    assert report.gain == pytest.approx(CEILING / report.peak_before_gain)
    mixed, _ = decode(out)
    assert peak(mixed) < 1.0
    assert peak(read_all(out)) < 1.0


def test_the_gain_is_uniform_over_the_whole_track(tmp_path: Path) -> None:
    # Loud only in the first 1.5 s (a short stem); the quiet rest must get the same gain.
    long = write_stem(tmp_path / "bass.mp3", "bass", seconds=7.0, amplitude=0.5)
    short = write_stem(tmp_path / "brass.mp3", "brass", seconds=1.5, amplitude=0.9)
    out = tmp_path / "mix.mp3"
    report = mix_backing_track([long, short], out)
    assert report.gain < 0.7
    mixed = read_all(out)
    bass = read_all(long)
    tail = slice(44_100 * 4, 44_100 * 7)  # several chunks after the loud part
    level_in_mix = magnitude_db(mixed[:, tail], 44_100, 110.0)
    level_alone = magnitude_db(bass[:, tail], 44_100, 110.0)
    assert level_in_mix - level_alone == pytest.approx(report.gain_db, abs=0.2)


def test_the_track_lasts_as_long_as_the_longest_stem(tmp_path: Path) -> None:
    bass = write_stem(tmp_path / "bass.mp3", "bass", seconds=5.0)
    piano = write_stem(tmp_path / "piano.mp3", "piano", seconds=2.0)
    out = tmp_path / "mix.mp3"
    report = mix_backing_track([piano, bass], out)
    assert report.frames == 5 * 44_100
    assert report.duration_s == 5.0
    assert read_all(out).shape[1] == 5 * 44_100
    assert probe(out).frames == 5 * 44_100
    assert duration_s(out) == pytest.approx(duration_s(bass), abs=0.03)
    # After the short stem ends there is bass and silence where the piano was.
    tail = read_all(out)[:, 44_100 * 3 :]
    assert magnitude_db(tail, 44_100, 110.0) > -25
    assert magnitude_db(tail, 44_100, 262.0) < -70


def test_stems_of_other_rates_and_channel_counts_mix_at_the_highest_rate(tmp_path: Path) -> None:
    stereo = write_stem(tmp_path / "bass.mp3", "bass", seconds=3.0, sample_rate=44_100)
    mono = write_stem(tmp_path / "piano.mp3", "piano", seconds=2.0, sample_rate=48_000, channels=1)
    out = tmp_path / "mix.mp3"
    report = mix_backing_track([stereo, mono], out)
    assert (report.sample_rate, report.channels) == (48_000, 2)
    assert report.frames == 3 * 48_000
    mixed = read_all(out)
    assert mixed.shape == (2, 3 * 48_000)
    for channel in (0, 1):
        one = mixed[channel : channel + 1]
        assert magnitude_db(one, 48_000, 110.0) == pytest.approx(
            tone_level(stereo, "bass"), abs=1.0
        )
        # The piano was resampled, not played fast: its tone is still at 262 Hz.
        assert magnitude_db(one[:, : 2 * 48_000], 48_000, 262.0) == pytest.approx(
            magnitude_db(read_all(mono), 48_000, 262.0), abs=1.0
        )


def test_the_mix_uses_the_stems_bitrate_unless_told(tmp_path: Path) -> None:
    stems = write_stems(tmp_path, ("bass", "piano"), seconds=1.0, bitrate_kbps=128)
    matched = mix_backing_track(list(stems.values()), tmp_path / "a.mp3")
    told = mix_backing_track(list(stems.values()), tmp_path / "b.mp3", bitrate_kbps=256)
    assert matched.bitrate_kbps == 128
    assert told.bitrate_kbps == 256
    headers = [read_mp3_info(tmp_path / name) for name in ("a.mp3", "b.mp3")]
    assert [header.bitrate_kbps if header else None for header in headers] == [128, 256]


def test_the_chunk_size_does_not_change_the_result(
    upload_stems: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = [upload_stems[n] for n in ("bass", "drums", "other")]
    whole = mix_backing_track(chosen, tmp_path / "a.mp3")
    monkeypatch.setattr(mix_module, "CHUNK_FRAMES", 1_000)
    chunked = mix_backing_track(chosen, tmp_path / "b.mp3")
    assert chunked == whole
    assert (tmp_path / "a.mp3").read_bytes() == (tmp_path / "b.mp3").read_bytes()


def test_without_stems_there_is_nothing_to_mix(tmp_path: Path) -> None:
    with pytest.raises(NothingToMix):
        mix_backing_track([], tmp_path / "out.mp3")


def test_an_unreadable_stem_is_a_typed_error_and_leaves_no_file(
    upload_stems: dict[str, Path], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.mp3"
    broken.write_text("<html>not found</html>")
    with pytest.raises(UnreadableAudio) as caught:
        mix_backing_track([upload_stems["bass"], broken], tmp_path / "out.mp3")
    assert caught.value.path == broken
    assert list(tmp_path.iterdir()) == [broken]


def test_a_stem_with_more_than_two_channels_is_refused(tmp_path: Path) -> None:
    surround = tmp_path / "surround.wav"
    with WriteableAudioFile(str(surround), samplerate=44_100, num_channels=4) as out:
        out.write(np.zeros((4, 1000), dtype=np.float32))
    with pytest.raises(UnsupportedLayout):
        mix_backing_track([surround], tmp_path / "out.mp3")
    assert not (tmp_path / "out.mp3").exists()


def test_silent_stems_mix_to_silence_without_gain(tmp_path: Path) -> None:
    silent = write_stem(tmp_path / "bass.mp3", "bass", seconds=1.0, amplitude=0.0)
    report = mix_backing_track([silent, silent], tmp_path / "out.mp3")
    assert report.gain == 1.0
    assert report.peak_before_gain == 0.0
    assert peak(read_all(tmp_path / "out.mp3")) == 0.0
