"""Lyrics rendering cost: parsing a result, writing the LRC file, drawing the waveform PNG.

Run: ``.venv/bin/python -m bench.lyrics [--repeat 20]``

Parsing runs once per lyrics job (when Vidgo's result arrives); the LRC text and the PNG are
made at every delivery, on the event loop, so they should stay in the low milliseconds. Two
synthetic songs: a typical one (300 words, 10,000 waveform points) and a large one (3,000
words, 400,000 points: about Vidgo's 4 MB reply cap).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.lyrics import Lyrics, parse_lyrics, to_lrc
from bot.waveform import draw_waveform

RESULTS = Path(__file__).resolve().parent / "results"


def song(words: int, points: int) -> dict[str, Any]:
    aligned = [
        {
            "word": ("[Verse]\n" if i % 40 == 0 else "")
            + f"word{i}"
            + ("\n" if i % 7 == 6 else " "),
            "start_s": i * 0.5,
            "end_s": i * 0.5 + 0.4,
            "success": i % 13 != 0,
            "palign": 0.9,
        }
        for i in range(words)
    ]
    return {"aligned_words": aligned, "waveform_data": [math.sin(i / 5) for i in range(points)]}


def timed(repeat: int, work: Callable[[], object]) -> float:
    """Median milliseconds of ``repeat`` runs."""
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        runs.append((time.perf_counter() - start) * 1000)
    return sorted(runs)[len(runs) // 2]


def measure(label: str, words: int, points: int, repeat: int) -> dict[str, Any]:
    """One song's figures."""
    payload = song(words, points)
    stored = parse_lyrics(payload).to_stored()
    lyrics = Lyrics.from_stored(stored)
    marks = [line.start / (lyrics.end or 1) for line in lyrics.sung_lines]
    parse_ms = timed(repeat, lambda: parse_lyrics(payload))
    lrc_ms = timed(repeat, lambda: to_lrc(Lyrics.from_stored(stored), title="t"))
    png = draw_waveform(lyrics.waveform, marks=marks)
    png_ms = timed(repeat, lambda: draw_waveform(lyrics.waveform, marks=marks))
    return {
        "song": label,
        "words": words,
        "points": points,
        "parse_ms": round(parse_ms, 2),
        "lrc_ms": round(lrc_ms, 2),
        "png_ms": round(png_ms, 2),
        "stored_bytes": len(json.dumps(stored)),
        "png_bytes": len(png),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}")
    print("| song | parse ms | LRC ms | PNG ms | stored result | PNG size |")
    print("|---|---|---|---|---|---|")
    rows = [
        measure(label, words, points, args.repeat)
        for label, words, points in (("typical", 300, 10_000), ("large", 3_000, 400_000))
    ]
    for row in rows:
        print(
            f"| {row['song']} ({row['words']} words, {row['points']:,} points) "
            f"| {row['parse_ms']:.1f} | {row['lrc_ms']:.1f} | {row['png_ms']:.1f} "
            f"| {row['stored_bytes'] / 1024:.0f} KB | {row['png_bytes'] / 1024:.1f} KB |"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "lyrics.json").write_text(
        json.dumps({"python": platform.python_version(), "rows": rows}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
