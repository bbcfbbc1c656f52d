"""Choosing the stems of a backing track: everything but the lead vocal, harmonies by flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.audio import NothingToMix, select_backing_stems
from bot.audio.stems import STEM_SPLIT_STEMS, UPLOAD_STEMS, canonical_stem_name


def paths(*names: str) -> dict[str, Path]:
    return {name: Path(f"/stems/{name}.mp3") for name in names}


def test_an_upload_split_mixes_every_stem_but_the_vocals() -> None:
    chosen = select_backing_stems(paths(*UPLOAD_STEMS), keep_backing_vocals=True)
    assert chosen == [
        Path(f"/stems/{n}.mp3") for n in ("bass", "drums", "guitar", "piano", "other")
    ]


def test_stem_split_keeps_backing_vocals_by_default() -> None:
    chosen = select_backing_stems(paths(*STEM_SPLIT_STEMS))
    assert chosen is not None
    assert Path("/stems/backing_vocals.mp3") in chosen
    assert Path("/stems/vocals.mp3") not in chosen
    assert len(chosen) == 12


def test_stem_split_drops_backing_vocals_when_asked() -> None:
    chosen = select_backing_stems(paths(*STEM_SPLIT_STEMS), keep_backing_vocals=False)
    assert chosen is not None
    assert {p.stem for p in chosen} == set(STEM_SPLIT_STEMS) - {"vocals", "backing_vocals"}


def test_an_instrumental_needs_no_mix() -> None:
    assert select_backing_stems(paths("vocals", "instrumental"), keep_backing_vocals=True) is None


def test_only_vocals_leave_nothing_to_mix() -> None:
    with pytest.raises(NothingToMix):
        select_backing_stems(paths("vocals"), keep_backing_vocals=True)
    with pytest.raises(NothingToMix):
        select_backing_stems(paths("vocals", "backing_vocals"), keep_backing_vocals=False)


def test_names_are_compared_whatever_their_spelling() -> None:
    stems = {"Vocals": Path("/v.mp3"), "Backing Vocals": Path("/bv.mp3"), "BASS": Path("/b.mp3")}
    assert select_backing_stems(stems, keep_backing_vocals=False) == [Path("/b.mp3")]
    assert canonical_stem_name(" backing-vocals ") == "backing_vocals"


def test_unknown_stem_names_are_accompaniment_and_mixed_last_in_a_fixed_order() -> None:
    chosen = select_backing_stems(paths("zither", "vocals", "choir", "bass"))
    assert chosen == [Path("/stems/bass.mp3"), Path("/stems/choir.mp3"), Path("/stems/zither.mp3")]


def test_the_order_does_not_depend_on_the_mapping_order() -> None:
    forward = select_backing_stems(paths(*STEM_SPLIT_STEMS))
    backward = select_backing_stems(paths(*reversed(STEM_SPLIT_STEMS)))
    assert forward == backward
