"""Window layout, pure: fitting a guest's picture, tiling the overview, banner colours.

Rectangles are :class:`Rect`, plain integer geometry with pygame's names (``center``,
``collidepoint``, ``inflate``); a ``Rect`` is a 4-tuple, so pygame's drawing calls take it
as it is. The guest's picture keeps its aspect ratio and is centred in the area it is
given; the overview's tiles form a near-square grid, row by row, in persona order. No
pygame, no I/O: the tests drive it with numbers.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from mux.errors import DisplayError

RGB = tuple[int, int, int]


class Rect(NamedTuple):
    """An integer rectangle: ``x``, ``y`` its top-left corner; ``right``/``bottom`` exclusive."""

    x: int
    y: int
    width: int
    height: int

    @property
    def w(self) -> int:
        return self.width

    @property
    def h(self) -> int:
        return self.height

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    @property
    def right(self) -> int:
        return self.x + self.width

    @property
    def bottom(self) -> int:
        return self.y + self.height

    @property
    def topleft(self) -> tuple[int, int]:
        return self.x, self.y

    @property
    def center(self) -> tuple[int, int]:
        return self.x + self.width // 2, self.y + self.height // 2

    def centred_at(self, center: tuple[int, int]) -> Rect:
        """The same size, moved so that its :attr:`center` is ``center``."""
        return Rect(center[0] - self.width // 2, center[1] - self.height // 2, self.width, self.height)

    def move(self, dx: int, dy: int) -> Rect:
        return Rect(self.x + dx, self.y + dy, self.width, self.height)

    def inflate(self, dx: int, dy: int) -> Rect:
        """Grown by ``dx`` and ``dy`` (shrunk if negative), around the same centre (as
        pygame does it: half the growth, rounded toward zero, on the left and top)."""
        return Rect(self.x - int(dx / 2), self.y - int(dy / 2), self.width + dx, self.height + dy)

    def collidepoint(self, x: int, y: int) -> bool:
        return self.x <= x < self.right and self.y <= y < self.bottom

    def colliderect(self, other: Rect) -> bool:
        """Whether the two share a pixel (an empty rectangle shares none)."""
        if min(self.width, self.height, other.width, other.height) <= 0:
            return False
        return (self.x < other.right and other.x < self.right
                and self.y < other.bottom and other.y < self.bottom)


def parse_color(hex_color: str) -> RGB:
    """``"c03030"`` (or ``"#c03030"``) -> (192, 48, 48).

    Raises:
        DisplayError: not six hex digits (the config checks colours before this).
    """
    value = hex_color.lstrip("#")
    try:
        if len(value) != 6:
            raise ValueError(value)
        return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)
    except ValueError:
        raise DisplayError(f"not an RGB colour: {hex_color!r}") from None


def text_color(background: RGB) -> RGB:
    """Black or white, whichever reads better on ``background``."""
    r, g, b = background
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 150 else (255, 255, 255)


def fit(size: tuple[int, int], area: Rect) -> Rect:
    """The largest rectangle of ``size``'s aspect ratio inside ``area``, centred."""
    width, height = size
    if width <= 0 or height <= 0 or area.width <= 0 or area.height <= 0:
        return Rect(area.x, area.y, 0, 0)
    scale = min(area.width / width, area.height / height)
    return Rect(0, 0, max(1, round(width * scale)), max(1, round(height * scale))).centred_at(area.center)


def overview_tiles(count: int, area: Rect, gap: int = 8) -> list[Rect]:
    """``count`` equal tiles in a near-square grid filling ``area``, row by row."""
    if count <= 0:
        return []
    cols = math.ceil(math.sqrt(count))
    rows = math.ceil(count / cols)
    width = (area.width - gap * (cols + 1)) // cols
    height = (area.height - gap * (rows + 1)) // rows
    return [Rect(area.x + gap + (i % cols) * (width + gap),
                        area.y + gap + (i // cols) * (height + gap), max(width, 0), max(height, 0))
            for i in range(count)]
