"""Which of Vidgo's stems make up a karaoke backing track (pure, no I/O).

Vidgo names the parts it returns: ``separate-vocals`` gives ``vocals`` and ``instrumental``;
an upload split gives six stems (``vocals, bass, drums, piano, guitar, other``) and
``stem-split`` up to thirteen (:data:`STEM_SPLIT_STEMS`). Only the first kind comes with a
ready backing track; for the others every stem but the lead vocal is mixed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from bot.audio.errors import NothingToMix

LEAD_VOCALS = "vocals"
BACKING_VOCALS = "backing_vocals"
INSTRUMENTAL = "instrumental"

UPLOAD_STEMS = ("vocals", "bass", "drums", "piano", "guitar", "other")
STEM_SPLIT_STEMS = (
    "vocals",
    "backing_vocals",
    "bass",
    "brass",
    "drums",
    "fx",
    "guitar",
    "keyboard",
    "percussion",
    "strings",
    "synth",
    "woodwinds",
    "piano",
)
# Mixing order: the known stems in a fixed order, so the same stems always give the same
# floating-point sum; names Vidgo may add later follow alphabetically.
_KNOWN_ORDER = {name: index for index, name in enumerate((*STEM_SPLIT_STEMS, "other"))}
# Spellings of the lead vocal seen in stem names; anything else is accompaniment.
_LEAD_VOCAL_NAMES = frozenset({"vocals", "vocal", "lead_vocals", "lead_vocal"})
_SEPARATORS = re.compile(r"[\s\-]+")


def canonical_stem_name(name: str) -> str:
    """``name`` lower-cased with spaces and hyphens as underscores (``Backing Vocals`` ->
    ``backing_vocals``), so names from Vidgo compare whatever their spelling."""
    return _SEPARATORS.sub("_", name.strip().lower())


def select_backing_stems(
    stems: Mapping[str, Path], *, keep_backing_vocals: bool = True
) -> list[Path] | None:
    """The stems to mix into a backing track, or ``None`` when Vidgo returned one already.

    Every stem except the lead vocal is chosen; ``backing_vocals`` only when
    ``keep_backing_vocals`` (karaoke singers usually want the harmonies, hence the default).
    ``None`` means an ``instrumental`` stem exists: use it as it is, nothing needs mixing.
    Raises :class:`NothingToMix` when no accompaniment is left (only vocals came back).
    """
    by_name = {canonical_stem_name(name): path for name, path in stems.items()}
    if INSTRUMENTAL in by_name:
        return None
    chosen = [
        name
        for name in by_name
        if name not in _LEAD_VOCAL_NAMES and (keep_backing_vocals or name != BACKING_VOCALS)
    ]
    if not chosen:
        raise NothingToMix("no accompaniment stem to mix (got: " + ", ".join(sorted(by_name)) + ")")
    chosen.sort(key=lambda name: (_KNOWN_ORDER.get(name, len(_KNOWN_ORDER)), name))
    return [by_name[name] for name in chosen]
