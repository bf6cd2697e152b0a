"""Matching needles against a screen as os-autoinst does today (numpy and OpenCV only).

For each needle (os-autoinst's ``tinycv``: ``search_TEMPLATE``, ``enhancedMSE``):

1. exclude areas are painted pure green in both the screen and the needle picture, so
   nothing in them can differ;
2. both become grey (ITU-R 601 luma) and are blurred with OpenCV's 3x3 Gaussian (the
   picture's edge is reflected, so an area on the edge is blurred like any other);
3. each match area is looked for within a margin of its position: OpenCV's
   ``matchTemplate`` gives the sum of squared differences at every place; the error at
   the needle's own place is the bound, the places within 10 of the smallest error
   are "good" and the good place nearest the needle's own place wins (an unmoved area
   that fits exactly is taken at once);
4. there the mean square of the grey difference, ``mse``, gives the similarity
   ``0.9 + (40 - mse) / 380`` clamped to [0, 1] (os-autoinst dropped its old measure,
   which ignored differences under 16 grey levels, because it took an unchecked
   checkbox for a checked one);
5. an area passes when its similarity is at least ``match / 100 - threshold``; a
   needle when every match area does. Its error is the mean of (1 - similarity)².

The margin is the area's own while an assertion waits, widened by ``search_ratio``
towards the whole screen: ``int(margin + ratio * (1024 - margin))`` (os-autoinst uses
0.02 most of the time and 1 every 5th second and at the deadline).

Of several needles (:func:`search`) a passing one wins, then the smallest error, then
a ``workaround`` needle, then the name. A needle whose picture cannot be read is
skipped (and named in :attr:`SearchResult.skipped`), as os-autoinst skips it. A match
area without a width or height (openQA reads them as 0) lying on the screen stops the
whole search (:class:`NeedleUnsearchable`): OpenCV cannot search an empty area, and
os-autoinst's search dies there too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image

from mux.needles.model import RGB, Area, Grey, Needle, NeedleImageMissing, paint_excludes

FULL_SEARCH = 1024  # os-autoinst widens margins towards this many pixels
GOOD_WITHIN = 10.0  # squared-difference sums this close to the best are "good" places


def prep(rgb: RGB) -> Grey:
    """Grey and blurred, as os-autoinst compares pictures."""
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    blurred: Grey = cv2.GaussianBlur(grey, (3, 3), 0).astype(np.uint8, copy=False)
    return blurred


def as_rgb(picture: Image.Image | RGB) -> RGB:
    if isinstance(picture, Image.Image):
        return np.asarray(picture.convert("RGB"))
    return picture


class Screen:
    """One screen frame, with its grey blurred forms kept per set of exclude areas.

    A search window under half the screen is blurred on its own (with a pixel of its
    surroundings, so it comes out as in the whole blurred screen); a larger one blurs
    and keeps the whole screen, as os-autoinst does.
    """

    def __init__(self, picture: Image.Image | RGB) -> None:
        self.rgb = as_rgb(picture)
        self._painted: dict[tuple[tuple[int, int, int, int], ...], RGB] = {}
        self._prepped: dict[tuple[tuple[int, int, int, int], ...], Grey] = {}

    @property
    def size(self) -> tuple[int, int]:
        return self.rgb.shape[1], self.rgb.shape[0]

    def prepped(self, excludes: list[Area]) -> Grey:
        """The whole screen, exclude areas painted, grey and blurred (kept)."""
        key = tuple(a.box for a in excludes)
        if key not in self._prepped:
            self._prepped[key] = prep(self._paint(excludes))
        return self._prepped[key]

    def window(self, excludes: list[Area], box: tuple[int, int, int, int]) -> Grey:
        """The grey blurred screen within ``box`` (left, top, right, bottom)."""
        left, top, right, bottom = box
        key = tuple(a.box for a in excludes)
        width, height = self.size
        if key in self._prepped or 2 * (right - left) * (bottom - top) >= width * height:
            return self.prepped(excludes)[top:bottom, left:right]
        pl, pt = max(left - 1, 0), max(top - 1, 0)
        pr, pb = min(right + 1, width), min(bottom + 1, height)
        blurred = prep(self._paint(excludes)[pt:pb, pl:pr])
        return blurred[top - pt:top - pt + bottom - top, left - pl:left - pl + right - left]

    def _paint(self, excludes: list[Area]) -> RGB:
        key = tuple(a.box for a in excludes)
        if key not in self._painted:
            self._painted[key] = paint_excludes(self.rgb, excludes)
        return self._painted[key]


class NeedleUnsearchable(Exception):
    """A needle has a match area without a width or height on the screen: it cannot be
    searched, and os-autoinst's search dies on it (OpenCV's template match asserts)."""


def search_margin(margin: int, search_ratio: float) -> int:
    return int(margin + search_ratio * (FULL_SEARCH - margin))


def similarity_of(mse: float) -> float:
    return min(max(0.9 + (40 - mse) / 380, 0.0), 1.0)


def mean_square(a: Grey, b: Grey) -> float:
    diff = a.astype(np.int32) - b.astype(np.int32)
    return float(np.mean(diff * diff)) if diff.size else 0.0


def search_area(screen: Screen, excludes: list[Area], needle: Grey, x: int, y: int, width: int,
                height: int, margin: int) -> tuple[float, int, int]:
    """Where the needle's area ``(x, y, width, height)`` fits best on the screen (exclude
    areas painted) within ``margin``; returns (similarity, found x, found y). An area
    outside either picture gives (0, 0, 0), as in os-autoinst."""
    cols, rows = screen.size
    if (x < 0 or y < 0 or x + width > cols or y + height > rows or width <= 0 or height <= 0
            or x + width > needle.shape[1] or y + height > needle.shape[0]):
        return 0.0, 0, 0
    target = needle[y:y + height, x:x + width]
    left, top = max(0, x - margin), max(0, y - margin)
    right, bottom = min(cols, x + width + margin), min(rows, y + height + margin)
    window = screen.window(excludes, (left, top, right, bottom))
    origin = (x - left, y - top)
    if np.array_equal(window[origin[1]:origin[1] + height, origin[0]:origin[0] + width], target):
        return 1.0, x, y
    if window.shape == target.shape:  # one place only: no search
        fx, fy = x, y
    else:
        errors = cv2.matchTemplate(window.astype(np.float32), target.astype(np.float32),
                                   cv2.TM_SQDIFF).astype(np.float64)
        bound = float(errors[origin[1], origin[0]])
        flat = errors.ravel()
        first = int(np.argmin(flat))  # the first place (in reading order) with the smallest error
        if flat[first] < bound:
            # os-autoinst's scan restarts its list at the first smallest error it meets
            good = np.flatnonzero(flat[first:] <= flat[first] + GOOD_WITHIN) + first
        else:
            good = np.flatnonzero(flat <= bound + GOOD_WITHIN)
        gy, gx = np.divmod(good, errors.shape[1])
        nearest = int(np.argmin((gx - origin[0]) ** 2 + (gy - origin[1]) ** 2))
        fx, fy = int(gx[nearest]) + left, int(gy[nearest]) + top
    found = window[fy - top:fy - top + height, fx - left:fx - left + width]
    return similarity_of(mean_square(found, target)), fx, fy


@dataclass(frozen=True)
class AreaResult:
    area: Area
    similarity: float
    x: int
    y: int
    ok: bool = True

    @property
    def moved(self) -> bool:
        return (self.x, self.y) != (self.area.xpos, self.area.ypos)


@dataclass(frozen=True)
class NeedleMatch:
    needle: Needle
    areas: tuple[AreaResult, ...]
    search_ratio: float = 0.0

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.areas)

    @property
    def error(self) -> float:
        """os-autoinst's ranking: mean square of (1 - similarity) over the areas."""
        return sum((1 - r.similarity) ** 2 for r in self.areas) / max(len(self.areas), 1)

    def click_point(self) -> tuple[int, int]:
        """Where a click on this match lands, in screen pixels: the click point of the area
        that has one (relative to where that area was found), else the centre of the first
        match area as found."""
        chosen = next((r for r in self.areas if r.area.click_point is not None), None)
        if chosen is None and not self.areas:
            raise ValueError(f"needle {self.needle.name} has no match area to click")
        result = chosen or self.areas[0]
        point = result.area.click_point
        if point is None or point.center:
            dx, dy = result.area.width / 2, result.area.height / 2
        else:
            dx, dy = point.xpos, point.ypos
        return int(result.x + dx + 0.5), int(result.y + dy + 0.5)

    def describe(self) -> str:
        parts = [f"area {a.area.width}x{a.area.height}+{a.area.xpos}+{a.area.ypos}: "
                 f"{a.similarity * 100:.1f}% (needs {a.area.match:g}%)"
                 + (f" closest at +{a.x}+{a.y}" if a.moved else "")
                 for a in self.areas]
        return f"needle {self.needle.name} {'matched' if self.ok else 'did not match'}: " + "; ".join(parts)


def match_needle(screen: Screen | Image.Image | RGB, needle: Needle, threshold: float = 0.0,
                 search_ratio: float = 0.0) -> NeedleMatch:
    """Match one needle against a screen; never raises for a mismatch.

    Raises:
        NeedleImageMissing: the needle's picture cannot be read.
        NeedleUnsearchable: a match area without a size lies on the screen (one off
            the screen is a mismatch, as in os-autoinst).
    """
    screen = screen if isinstance(screen, Screen) else Screen(screen)
    needle_p = needle_prepped(needle)
    results = []
    cols, rows = screen.size
    for area in needle.match_areas:
        if (area.width == 0 or area.height == 0) and 0 <= area.xpos <= cols - area.width \
                and 0 <= area.ypos <= rows - area.height:
            missing = " or ".join(k for k, v in (("width", area.width), ("height", area.height)) if v == 0)
            raise NeedleUnsearchable(
                f"needle {needle.name}: its match area at +{area.xpos}+{area.ypos} has no {missing}"
                f" ({area.location}): openQA reads it as 0 and its search dies on the empty area;"
                " give the area its size")
        margin = search_margin(area.margin, search_ratio)
        sim, x, y = search_area(screen, needle.excludes, needle_p, area.xpos, area.ypos, area.width,
                                area.height, margin)
        results.append(AreaResult(area, sim, x, y, sim >= area.match / 100 - threshold))
    return NeedleMatch(needle, tuple(results), search_ratio)


def needle_prepped(needle: Needle) -> Grey:
    """The needle's grey blurred picture, kept with the needle.

    Raises:
        NeedleImageMissing: the needle's picture cannot be read.
    """
    if needle._prepped is None:
        needle._prepped = prep(needle.rgb())
    return needle._prepped


@dataclass
class SearchResult:
    """The passing needle that wins (or None), the others best first, and the needles
    whose picture could not be read."""

    best: NeedleMatch | None
    candidates: list[NeedleMatch] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def closest(self) -> NeedleMatch | None:
        """The winner, or else the candidate that came closest."""
        return self.best or (self.candidates[0] if self.candidates else None)


def ranking(match: NeedleMatch) -> tuple[bool, float, bool, str]:
    return (not match.ok, match.error, not match.needle.workaround, match.needle.name)


def search(screen: Screen | Image.Image | RGB, needles: list[Needle], threshold: float = 0.0,
           search_ratio: float = 0.0) -> SearchResult:
    """Match every needle; see the module docstring for which one wins.

    Raises:
        NeedleUnsearchable: a needle has a match area without a size on the screen.
    """
    screen = screen if isinstance(screen, Screen) else Screen(screen)
    found, skipped = [], []
    for needle in needles:
        try:
            found.append(match_needle(screen, needle, threshold, search_ratio))
        except NeedleImageMissing as exc:
            skipped.append(str(exc))
    found.sort(key=ranking)
    best = found.pop(0) if found and found[0].ok else None
    return SearchResult(best, found, skipped)


def best_match(screen: Screen | Image.Image | RGB, needles: list[Needle], threshold: float = 0.0,
               search_ratio: float = 0.0) -> NeedleMatch:
    """The winner of :func:`search`, or the closest candidate.

    Raises:
        NeedleImageMissing: no needle's picture could be read.
        NeedleUnsearchable: a needle has a match area without a size on the screen.
    """
    result = search(screen, needles, threshold, search_ratio)
    if result.closest is None:
        raise NeedleImageMissing("; ".join(result.skipped) or "no needles to match")
    return result.closest
