"""The waveform picture is a PNG of a fixed size for any input."""

from __future__ import annotations

import io
import math

from PIL import Image

from bot.lyrics import downsample
from bot.waveform import BACKGROUND, HEIGHT, TICK, WAVE, WIDTH, draw_waveform
from tests.fakes.vidgo import fake_waveform


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_a_waveform_decodes_with_the_expected_size_and_draws_bars() -> None:
    image = decode(draw_waveform(downsample(fake_waveform()), marks=[0.0, 0.5]))
    assert image.format == "PNG"
    assert image.size == (WIDTH, HEIGHT)
    rgb = image.convert("RGB")
    colours = {rgb.getpixel((x, HEIGHT // 2 - 20)) for x in range(WIDTH)}
    assert WAVE in colours
    assert rgb.getpixel((WIDTH // 2, HEIGHT - 2)) == TICK or rgb.getpixel(
        (WIDTH // 2 - 1, HEIGHT - 2)
    ) in (TICK, WAVE)


def test_an_empty_waveform_is_a_flat_picture() -> None:
    image = decode(draw_waveform(())).convert("RGB")
    assert image.size == (WIDTH, HEIGHT)
    assert image.getpixel((10, 10)) == BACKGROUND
    assert all(image.getpixel((x, 20)) == BACKGROUND for x in range(WIDTH))


def test_odd_values_are_clamped_and_any_length_fits() -> None:
    for peaks in ([math.nan, math.inf, -5.0, 7.0], [0.5] * 5, [0.3] * 100_000):
        image = decode(draw_waveform(peaks, marks=[math.nan, -1.0, 2.0]))
        assert image.size == (WIDTH, HEIGHT)


def test_a_custom_size_is_honoured() -> None:
    assert decode(draw_waveform([1.0], width=10, height=4)).size == (10, 4)
