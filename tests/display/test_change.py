"""The screenshot rule: a blinking cursor or a clock's seconds are no change, a new line is."""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw

from mux.display.change import MIN_PIXELS, changed_pixels, noticeable

pytestmark = pytest.mark.pure

CELL = (8, 16)  # the console's font cell


def console(lines: list[str], cursor: tuple[int, int] | None) -> Image.Image:
    """A 1024x768 text console: grey text on black, a block cursor at (column, row)."""
    image = Image.new("RGB", (1024, 768))
    draw = ImageDraw.Draw(image)
    for row, text in enumerate(lines):
        draw.text((0, row * CELL[1] + 2), text, fill=(170, 170, 170))
    if cursor is not None:
        x, y = cursor[0] * CELL[0], cursor[1] * CELL[1]
        draw.rectangle((x, y, x + CELL[0] - 1, y + CELL[1] - 1), fill=(170, 170, 170))
    return image


PROMPT = ["MUX console work", "", "/ # "]


def test_a_blinking_cursor_is_not_a_change() -> None:
    on, off = console(PROMPT, (4, 2)), console(PROMPT, None)
    assert changed_pixels(off, on) == 0 and not noticeable(off, on) and not noticeable(on, off)
    assert not noticeable(on, on)


def test_a_new_line_of_text_is_a_change() -> None:
    before = console(PROMPT, (4, 2))
    after = console([*PROMPT[:2], "/ # ls", "bin  dev  etc  lib  proc  sys", "/ # "], (4, 4))
    assert changed_pixels(before, after) >= MIN_PIXELS and noticeable(before, after)


def test_a_clocks_seconds_are_not_a_change_but_its_minutes_may_be() -> None:
    def clock(text: str) -> Image.Image:
        return console([f"{'':100}{text}"], None)

    assert not noticeable(clock("12:34:56"), clock("12:34:57"))
    assert not noticeable(clock("12:34:59"), clock("12:35:09"))  # two digits: still small


def test_small_changes_add_up_against_the_last_published_picture() -> None:
    published = console(PROMPT, (4, 2))
    typed = [console([*PROMPT[:2], "/ # " + "echo hello"[:n]], (4 + n, 2)) for n in range(1, 11)]
    assert not noticeable(published, typed[0])  # one letter and the cursor beside it
    assert noticeable(published, typed[-1])  # a word


def test_a_colour_or_size_change_is_a_change() -> None:
    black = Image.new("RGB", (1024, 768))
    assert noticeable(black, Image.new("RGB", (1024, 768), (0, 0, 120)))
    assert noticeable(black, Image.new("RGB", (800, 600)))
    assert noticeable(None, black)
    assert not noticeable(black, Image.new("RGB", (1024, 768), (20, 20, 20)))  # below the level
