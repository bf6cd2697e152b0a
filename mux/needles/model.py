"""What a needle is once loaded: its areas, tags, properties and click point (pure data).

A needle is ``NAME.json`` beside ``NAME.png``. Its ``area`` entries are ``{xpos, ypos,
width, height, type, match, margin, click_point}``: ``type`` is ``match`` (default),
``exclude`` or ``ocr``; ``match`` is the similarity in percent an area needs (default
96); ``margin`` is how far, in pixels, the area may have moved while an assertion
waits (default 50). At most one area has a ``click_point``: ``{xpos, ypos}`` relative to
the area, or ``"center"``. ``properties`` are names, or ``{name, value}`` objects; the
one that changes matching is ``workaround`` (a workaround needle wins a tie).

The picture is read on first use (:meth:`Needle.rgb`) with the exclude areas painted
pure green, as os-autoinst does, so nothing in them can differ from a screen painted
the same way.

Two kinds of needle load, as in openQA, but cannot be matched: one whose PNG is not a
picture (its reading fails, and the search skips it; a Git LFS pointer that was never
pulled is named as such, :func:`lfs_pointer`), and one with a match area without a size
(openQA reads the missing width or height as 0, and its search dies on the area).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from mux.errors import Location

DEFAULT_MATCH = 96.0
DEFAULT_MARGIN = 50
EXCLUDED = (0, 255, 0)  # os-autoinst paints exclude areas this colour (RGB)

RGB = npt.NDArray[np.uint8]  # height x width x 3
Grey = npt.NDArray[np.uint8]  # height x width


@dataclass(frozen=True)
class ClickPoint:
    """Where to click, relative to its area's top left corner; ``center`` is the middle."""

    xpos: float = 0.0
    ypos: float = 0.0
    center: bool = False


@dataclass(frozen=True)
class Area:
    xpos: int
    ypos: int
    width: int
    height: int
    type: str = "match"
    match: float = DEFAULT_MATCH
    margin: int = DEFAULT_MARGIN
    click_point: ClickPoint | None = None
    location: Location = field(default=Location("<needle>"), compare=False)

    @property
    def box(self) -> tuple[int, int, int, int]:
        return (self.xpos, self.ypos, self.xpos + self.width, self.ypos + self.height)


LFS_VERSION = b"version https://git-lfs.github.com/spec/v1"  # a pointer file's first line


class NeedleImageMissing(Exception):
    """The needle's PNG could not be read as a picture when it was needed."""


def lfs_pointer(png: Path) -> str | None:
    """``NAME.png is a Git LFS pointer: run `git lfs pull` in REPO`` when ``png`` is a Git
    LFS pointer file (the picture was never fetched), else None. REPO is the git work tree
    holding it (the nearest directory up with a ``.git``), else the needle's directory."""
    try:
        with png.open("rb") as file:
            head = file.read(1024)  # the spec keeps a pointer file under 1024 bytes
    except OSError:
        return None
    if not head.startswith(LFS_VERSION + b"\n") or b"\noid sha256:" not in head or b"\nsize " not in head:
        return None
    directory = png.parent.resolve()
    repo = next((d for d in (directory, *directory.parents) if (d / ".git").exists()), directory)
    return f"{png.name} is a Git LFS pointer: run `git lfs pull` in {repo}"


@dataclass(eq=False)
class Needle:
    """One needle file; its picture is read on first use and kept."""

    name: str
    json_path: Path
    png_path: Path
    tags: tuple[str, ...]
    areas: tuple[Area, ...]
    size: tuple[int, int] = (0, 0)
    properties: tuple[Any, ...] = ()
    _rgb: RGB | None = None
    _prepped: Grey | None = None

    @property
    def match_areas(self) -> list[Area]:
        return [a for a in self.areas if a.type == "match"]

    @property
    def excludes(self) -> list[Area]:
        return [a for a in self.areas if a.type == "exclude"]

    @property
    def ocr_areas(self) -> list[Area]:
        return [a for a in self.areas if a.type == "ocr"]

    def has_property(self, name: str) -> bool:
        return any((p.get("name") if isinstance(p, dict) else p) == name for p in self.properties)

    @property
    def workaround(self) -> bool:
        return self.has_property("workaround")

    def rgb(self) -> RGB:
        """The needle's picture (RGB) with its exclude areas painted green.

        Raises:
            NeedleImageMissing: the PNG is gone or not a picture (a Git LFS pointer is
                named as such).
        """
        if self._rgb is None:
            try:
                with Image.open(self.png_path) as raw:
                    picture = np.array(raw.convert("RGB"))
            except (OSError, ValueError) as exc:
                why = lfs_pointer(self.png_path) or f"cannot read {self.png_path}: {exc}"
                raise NeedleImageMissing(f"needle {self.name}: {why}") from exc
            self._rgb = paint_excludes(picture, self.excludes)
        return self._rgb

    def image(self) -> Image.Image:
        """:meth:`rgb` as a Pillow picture.

        Raises:
            NeedleImageMissing: the PNG is gone or unreadable.
        """
        return Image.fromarray(self.rgb(), "RGB")


def paint_excludes(rgb: RGB, excludes: list[Area]) -> RGB:
    """A copy of ``rgb`` with every exclude area pure green (``rgb`` itself if none)."""
    if not excludes:
        return rgb
    painted = rgb.copy()
    height, width = painted.shape[:2]
    for area in excludes:
        if area.xpos + area.width <= width and area.ypos + area.height <= height:
            painted[area.ypos:area.ypos + area.height, area.xpos:area.xpos + area.width] = EXCLUDED
    return painted
