"""Reading a screen full of text (mux/needles/ocr.py): the screen is cut into its text
lines (each drawn line is one band, holding its own pixels and no other line's), a dense
screen is read line for line and exactly, columns far apart on one row read as one line,
and once the console scrolls by a line only the new line is read again
(docs/guides/performance.md: "after a scroll only the new lines are read").

The screen is drawn here (white monospace text on the persona red, 34 rows), so the text
expected is the text drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

pytestmark = pytest.mark.pure

MONO = Path("/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf")
WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo",
         "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform", "victor",
         "whiskey", "xray", "yankee", "zulu")
PITCH = 22
ROWS = (768 - 8) // PITCH


def rows_of_text() -> list[str]:
    """``ls -l``-like rows: columns set apart by runs of spaces."""
    n = len(WORDS)
    return [f"{WORDS[i % n]} {WORDS[(i * 7 + 3) % n]}        {i * 37 + 100}    {WORDS[(i * 11 + 5) % n]}.txt"
            f" -> /srv/{WORDS[(i * 5 + 1) % n]}" for i in range(ROWS)]


def screen(rows: list[str], only: int | None = None) -> Image.Image:
    """1024x768, the rows drawn every PITCH pixels (``only``: that row alone)."""
    if not MONO.is_file():
        pytest.skip(f"no {MONO} (Debian: fonts-dejavu-core)")
    image = Image.new("RGB", (1024, 768), (192, 48, 48))
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(str(MONO), 18)
    for i, row in enumerate(rows):
        if only is None or i == only:
            draw.text((8, 4 + i * PITCH), row, fill=(255, 255, 255), font=font)
    return image


def grey(image: Image.Image) -> Any:
    return cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2GRAY)


def reader() -> Any:
    from mux.needles.ocr import OcrUnavailable, TextReader

    found = TextReader()
    try:
        found.text(Image.new("RGB", (64, 16)))
    except OcrUnavailable as exc:
        pytest.skip(f"OCR: {exc}")
    return found


def test_the_band_split_finds_each_drawn_line() -> None:
    from mux.needles.ocr import line_bands

    rows = rows_of_text()
    bands = line_bands(grey(screen(rows)))
    assert len(bands) == ROWS
    background = grey(screen([]))
    for i, (top, bottom) in enumerate(bands):
        ink = np.flatnonzero((grey(screen(rows, only=i)) != background).any(axis=1))
        assert ink.size, f"row {i} drew nothing"
        assert top <= ink[0] and ink[-1] < bottom, f"row {i}: ink {ink[0]}..{ink[-1]}, band {top}..{bottom}"
        others = [j for j, (t, b) in enumerate(bands) if j != i and t <= ink[-1] and ink[0] < b]
        assert not others, f"row {i}'s ink reaches the bands of rows {others}"


def test_a_dense_screen_reads_line_for_line_exactly() -> None:
    rows = rows_of_text()
    text = reader().text(screen(rows))
    # runs of spaces between columns read as one space; each screen row is one line
    assert text.splitlines() == [" ".join(row.split()) for row in rows]


def test_after_a_scroll_only_the_new_line_is_read() -> None:
    rows = rows_of_text()
    ocr = reader()
    assert ocr.text(screen(rows)).splitlines()[-1] == " ".join(rows[-1].split())
    first = ocr.reads
    assert first == ROWS  # positive control: every line was read once
    scrolled = [*rows[1:], "zulu yankee        4242    xray.txt -> /srv/whiskey"]
    text = ocr.text(screen(scrolled))
    assert text.splitlines() == [" ".join(row.split()) for row in scrolled]
    assert ocr.reads == first + 1
