"""Window layout, pure: fitting a guest's picture, tiling the overview, banner colours.

Rectangles are ``pygame.Rect`` (plain integer geometry; nothing here needs a display).
The guest's picture keeps its aspect ratio and is centred in the area it is given; the
overview's tiles form a near-square grid, row by row, in persona order.
"""

from __future__ import annotations

import math
import os

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # after the environment it reads at import

RGB = tuple[int, int, int]


def parse_color(hex_color: str) -> RGB:
    """``"c03030"`` (or ``"#c03030"``) -> (192, 48, 48). Raises ValueError for a bad one."""
    value = hex_color.lstrip("#")
    if len(value) != 6:
        raise ValueError(f"not an RGB colour: {hex_color!r}")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def text_color(background: RGB) -> RGB:
    """Black or white, whichever reads better on ``background``."""
    r, g, b = background
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 150 else (255, 255, 255)


def fit(size: tuple[int, int], area: pygame.Rect) -> pygame.Rect:
    """The largest rectangle of ``size``'s aspect ratio inside ``area``, centred."""
    width, height = size
    if width <= 0 or height <= 0 or area.width <= 0 or area.height <= 0:
        return pygame.Rect(area.x, area.y, 0, 0)
    scale = min(area.width / width, area.height / height)
    rect = pygame.Rect(0, 0, max(1, round(width * scale)), max(1, round(height * scale)))
    rect.center = area.center
    return rect


def overview_tiles(count: int, area: pygame.Rect, gap: int = 8) -> list[pygame.Rect]:
    """``count`` equal tiles in a near-square grid filling ``area``, row by row."""
    if count <= 0:
        return []
    cols = math.ceil(math.sqrt(count))
    rows = math.ceil(count / cols)
    width = (area.width - gap * (cols + 1)) // cols
    height = (area.height - gap * (rows + 1)) // rows
    return [pygame.Rect(area.x + gap + (i % cols) * (width + gap),
                        area.y + gap + (i // cols) * (height + gap), max(width, 0), max(height, 0))
            for i in range(count)]
