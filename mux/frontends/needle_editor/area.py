"""A needle's area as the editor holds it, and where the picture is in the window (pure).

An :class:`EditArea` is immutable, so the editor's undo can keep old lists of them, and
it writes itself as openQA's JSON area object (``margin`` only when it is not the
default 50; a click point as ``{xpos, ypos}`` or ``"center"``). Positions are picture
pixels; an area covers ``x <= px < x + width``. :class:`Viewport` maps window pixels
to picture edges (between pixels, so a drag from 0 to 88 is 88 pixels wide): 1:1
whenever the picture fits in the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mux.needles.model import DEFAULT_MARGIN, DEFAULT_MATCH

TYPES = ("match", "exclude", "ocr")
Point = tuple[int, int]
ClickPoint = tuple[float, float] | str | None  # (x, y) in the area, "center", or none


@dataclass(frozen=True)
class EditArea:
    """One area as openQA writes it; ``click`` is relative to the area's corner."""

    x: int
    y: int
    width: int
    height: int
    type: str = "match"
    match: float = DEFAULT_MATCH
    margin: int = DEFAULT_MARGIN
    click: ClickPoint = None

    @property
    def box(self) -> tuple[int, int, int, int]:
        return self.x, self.y, self.x + self.width, self.y + self.height

    def contains(self, point: Point) -> bool:
        return self.x <= point[0] < self.x + self.width and self.y <= point[1] < self.y + self.height

    def click_xy(self) -> tuple[float, float] | None:
        """The click point relative to the area (the centre for ``"center"``)."""
        if self.click == "center":
            return self.width / 2, self.height / 2
        return self.click if isinstance(self.click, tuple) else None

    def to_json(self) -> dict[str, Any]:
        """openQA's area object (``margin`` only when it is not the default)."""
        entry: dict[str, Any] = {"xpos": self.x, "ypos": self.y, "width": self.width, "height": self.height,
                                 "type": self.type, "match": _number(self.match)}
        if self.margin != DEFAULT_MARGIN:
            entry["margin"] = self.margin
        if self.click == "center":
            entry["click_point"] = "center"
        elif isinstance(self.click, tuple):
            entry["click_point"] = {"xpos": _number(self.click[0]), "ypos": _number(self.click[1])}
        return entry


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


@dataclass(frozen=True)
class Viewport:
    """Where the picture is in the window: its top left corner and its scale (1: 1:1)."""

    left: int = 0
    top: int = 0
    scale: float = 1.0

    def to_picture(self, pos: Point, size: Point) -> Point:
        """A window position as a picture edge position, clamped to the picture."""
        x = round((pos[0] - self.left) / self.scale)
        y = round((pos[1] - self.top) / self.scale)
        return min(max(x, 0), size[0]), min(max(y, 0), size[1])

    def to_window(self, point: tuple[float, float]) -> Point:
        return self.left + round(point[0] * self.scale), self.top + round(point[1] * self.scale)


def span(a: Point, b: Point) -> tuple[int, int, int, int]:
    """The box (left, top, right, bottom) with corners ``a`` and ``b``."""
    return min(a[0], b[0]), min(a[1], b[1]), max(a[0], b[0]), max(a[1], b[1])
