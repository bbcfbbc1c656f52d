"""A waveform picture (PNG) from Vidgo's ``waveform_data``, drawn with Pillow (pure, no I/O).

The picture has a fixed size (:data:`WIDTH` x :data:`HEIGHT`) whatever the input: one mirrored
bar per column from the peaks of :func:`bot.lyrics.downsample`, and a thin tick at the start of
each lyric line so the picture doubles as a map of the song. An empty input draws a flat line.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

from PIL import Image, ImageDraw

WIDTH = 800
HEIGHT = 160
BACKGROUND = (30, 31, 34)
WAVE = (88, 101, 242)  # Discord blurple
TICK = (235, 69, 158)
MIDLINE = (78, 80, 88)
# Keep a margin so the loudest bar does not touch the edge.
MARGIN = 8
TICK_HEIGHT = 10


def draw_waveform(
    peaks: Sequence[float],
    *,
    marks: Sequence[float] = (),
    width: int = WIDTH,
    height: int = HEIGHT,
) -> bytes:
    """PNG bytes of ``peaks`` (values 0..1, stretched to ``width``) with ``marks`` as ticks.

    ``marks`` are positions in 0..1 of the picture's width (line starts over the song's
    length). Values outside 0..1 are clamped and non-finite ones are ignored.
    """
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    middle = height // 2
    half = middle - MARGIN
    draw.line([(0, middle), (width - 1, middle)], fill=MIDLINE)
    values = [_unit(v) for v in peaks]
    if values:
        for x in range(width):
            value = values[min(len(values) - 1, x * len(values) // width)]
            extent = round(value * half)
            if extent > 0:
                draw.line([(x, middle - extent), (x, middle + extent)], fill=WAVE)
    for mark in marks:
        if not math.isfinite(mark):
            continue
        x = min(width - 1, max(0, round(_unit(mark) * (width - 1))))
        draw.line([(x, height - TICK_HEIGHT), (x, height - 1)], fill=TICK)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _unit(value: float) -> float:
    if not math.isfinite(value):
        return 0.0
    return min(1.0, max(0.0, value))
