"""openQA needles: read them as os-autoinst does, and match them against a screen.

A needle is ``NAME.json`` beside ``NAME.png``. The JSON has ``tags`` (a needle is found
by any of them; ``"a b"`` asks for a needle with both) and ``area`` entries ``{xpos,
ypos, width, height, type, match, margin}``: ``type`` is ``match`` (default),
``exclude`` or ``ocr``; ``match`` is the similarity in percent an area needs (default
96); ``margin`` is how far, in pixels, the area may have moved (default 50). Other keys
(``properties``, ``click_point``) are accepted and ignored. OCR is not supported: an
``ocr`` area loads with a warning and is ignored.

Matching follows os-autoinst's tinycv (``search_TEMPLATE`` and ``enhancedMSE``):

1. exclude areas are painted pure green in both the screen and the needle picture, so
   nothing in them can differ;
2. both become grey (ITU-R 601 luma) and are blurred with the 3x3 binomial kernel
   (what OpenCV's ``GaussianBlur(3x3, 0)`` uses);
3. each match area is looked for within ``margin`` pixels of its position: the place
   with the smallest sum of squared differences wins (ties: the one nearest the
   needle's own position);
4. there, pixels less than 16 grey levels apart count 0 and the others count the
   difference of their 16-level values: ``mse`` is the mean square, and the area's
   similarity is ``0.9 + (40 - mse) / 380`` clamped to [0, 1];
5. an area passes when its similarity is at least ``match / 100``; a needle passes when
   every match area does. Of several needles the best passing one wins.

Pillow only, no numpy: each comparison is ``ImageChops.difference`` plus a histogram
(C loops), and the search is coarse to fine (a 2x pyramid: every shift at the coarsest
level, the three best refined level by level), so a 1024x768 screen takes milliseconds.
The original position is tried first, so an unmoved screen costs one comparison.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageChops, ImageDraw, ImageFilter

from mux.errors import ConfigError, Location
from mux.sourcemap import SourceMap, load_yaml_text

AREA_TYPES = ("match", "exclude", "ocr")
DEFAULT_MATCH = 96.0
DEFAULT_MARGIN = 50
EXCLUDED = (0, 255, 0)  # os-autoinst paints exclude areas this colour
_BLUR = ImageFilter.Kernel((3, 3), (1, 2, 1, 2, 4, 2, 1, 2, 1), scale=16)
SQUARES = [i * i for i in range(256)]
_QUANT = [int(v / 16 + 0.5) for v in range(256)]
FAR = [255 if d >= 16 else 0 for d in range(256)]  # a grey difference that counts (>= 16 levels): 255
_QSQUARES = [(16 * k) ** 2 for k in range(256)]
_KEEP = 3  # candidates refined per pyramid level

Problems = list[tuple[Location, str]]


@dataclass(frozen=True)
class Area:
    xpos: int
    ypos: int
    width: int
    height: int
    type: str = "match"
    match: float = DEFAULT_MATCH
    margin: int = DEFAULT_MARGIN
    location: Location = field(default=Location("<needle>"), compare=False)

    @property
    def box(self) -> tuple[int, int, int, int]:
        return (self.xpos, self.ypos, self.xpos + self.width, self.ypos + self.height)


@dataclass(eq=False)
class Needle:
    """One needle file; its picture is read on first use and kept."""

    name: str
    json_path: Path
    png_path: Path
    tags: tuple[str, ...]
    areas: tuple[Area, ...]
    size: tuple[int, int]
    _image: Image.Image | None = None
    _prepped: Image.Image | None = None

    @property
    def match_areas(self) -> list[Area]:
        return [a for a in self.areas if a.type == "match"]

    @property
    def excludes(self) -> list[Area]:
        return [a for a in self.areas if a.type == "exclude"]

    def image(self) -> Image.Image:
        """The needle's picture (RGB) with its exclude areas painted green."""
        if self._image is None:
            with Image.open(self.png_path) as raw:
                self._image = paint_excludes(raw.convert("RGB"), self.excludes)
        return self._image

    def prepped(self) -> Image.Image:
        if self._prepped is None:
            self._prepped = prep(self.image())
        return self._prepped


# --- loading ----------------------------------------------------------------------


def load_needle(json_path: Path) -> Needle:
    """Read one needle file and check it against its PNG.

    Raises:
        ConfigError: every problem in it (not JSON, bad areas, no match area, missing or
            unreadable PNG, an area outside the picture), each with file:line:column.
    """
    problems: Problems = []
    needle = read_needle(json_path, problems, [])
    if needle is None or problems:
        raise ConfigError(problems)
    return needle


def read_needle(json_path: Path, problems: Problems, warnings: Problems) -> Needle | None:
    """:func:`load_needle` that appends its problems (and OCR warnings) instead of raising."""
    top = Location(json_path, 1, 1)
    try:
        text = json_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append((top, f"cannot read needle: {exc}"))
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        problems.append((Location(json_path, exc.lineno, exc.colno), f"needle is not JSON: {exc.msg}"))
        return None
    locate = _json_positions(text, json_path)
    before = len(problems)

    def fail(path: tuple[str | int, ...], message: str) -> None:
        problems.append((locate(path), f"needle {json_path.stem}: {message}"))

    if not isinstance(data, dict):
        fail((), "a needle is a JSON object with tags and area")
        return None
    tags = data.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        fail(("tags",), "tags must be a list of strings")
        tags = []
    raw_areas = data.get("area")
    if not isinstance(raw_areas, list):
        fail(("area",) if "area" in data else (), "area must be a list of areas")
        raw_areas = []
    areas = [a for i, item in enumerate(raw_areas) if (a := _area(item, ("area", i), locate, fail))]
    for area in areas:
        if area.type == "ocr":
            warnings.append((area.location, f"needle {json_path.stem}: ocr areas are not supported"
                                            " (OCR is not built in); this area is ignored"))
    if raw_areas and not any(a.type == "match" for a in areas) and len(problems) == before:
        fail(("area",), "a needle needs at least one match area")
    png = json_path.with_suffix(".png")
    size = (0, 0)
    if not png.is_file():
        fail((), f"no PNG beside it ({png.name} is missing)")
    else:
        try:
            with Image.open(png) as image:
                size = image.size
        except OSError as exc:
            fail((), f"{png.name} is not a readable picture: {exc}")
    if size != (0, 0):
        for area in areas:
            if area.xpos + area.width > size[0] or area.ypos + area.height > size[1]:
                problems.append((area.location, f"needle {json_path.stem}: {area.type} area"
                                 f" {area.width}x{area.height}+{area.xpos}+{area.ypos} lies outside"
                                 f" the {size[0]}x{size[1]} picture"))
    if len(problems) > before:
        return None
    return Needle(json_path.stem, json_path, png, tuple(tags), tuple(areas), size)


def _area(item: Any, path: tuple[str | int, ...], locate: SourceMap, fail: Any) -> Area | None:
    if not isinstance(item, dict):
        fail(path, "an area is an object {xpos, ypos, width, height, type}")
        return None
    ok = True
    values: dict[str, int] = {}
    for key in ("xpos", "ypos", "width", "height"):
        value = item.get(key, 0)
        least = 1 if key in ("width", "height") else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            fail((*path, key) if key in item else path,
                 f"area {key} must be an integer >= {least}" + ("" if key in item else " (missing)"))
            ok = False
        values[key] = value
    kind = item.get("type", "match")
    if kind not in AREA_TYPES:
        fail((*path, "type"), f"area type must be one of {', '.join(AREA_TYPES)}, not {kind!r}")
        ok = False
    match = item.get("match", DEFAULT_MATCH)
    if isinstance(match, bool) or not isinstance(match, int | float) or not 0 < match <= 100:
        fail((*path, "match"), "area match must be a percentage in (0, 100]")
        ok = False
    margin = item.get("margin", DEFAULT_MARGIN)
    if isinstance(margin, bool) or not isinstance(margin, int | float) or margin < 0:
        fail((*path, "margin"), "area margin must be a number of pixels >= 0")
        ok = False
    if not ok:
        return None
    # os-autoinst treats 0 as "not given" for match and margin.
    return Area(values["xpos"], values["ypos"], values["width"], values["height"], kind,
                float(match or DEFAULT_MATCH), int(margin + 0.5) if margin else DEFAULT_MARGIN,
                locate(path))


def _json_positions(text: str, path: Path) -> SourceMap:
    """Where each JSON value is (JSON is YAML, once tabs, which JSON allows only between
    tokens, become spaces: columns stay the same)."""
    try:
        return load_yaml_text(text.replace("\t", " "), path)[1]
    except ConfigError:
        return lambda _path: Location(path, 1, 1)


class NeedleLibrary:
    """Needle files read once each, found by path or by tag in a ``needles/`` directory."""

    def __init__(self) -> None:
        self.problems: Problems = []
        self.warnings: Problems = []
        self._files: dict[Path, Needle | None] = {}
        self._dirs: dict[Path, list[Needle]] = {}
        self._broken: set[str] = set()  # names and tags of needles with problems (reported once)

    def file(self, path: Path) -> Needle | None:
        path = path.resolve()
        if path not in self._files:
            self._files[path] = needle = read_needle(path, self.problems, self.warnings)
            if needle is None:
                self._broken.add(path.stem)
                try:
                    tags = json.loads(path.read_text(encoding="utf-8")).get("tags", [])
                    self._broken.update(t for t in tags if isinstance(t, str))
                except (OSError, ValueError, AttributeError):
                    pass
        return self._files[path]

    def directory(self, directory: Path) -> list[Needle]:
        directory = directory.resolve()
        if directory not in self._dirs:
            found = [self.file(p) for p in sorted(directory.rglob("*.json"))] if directory.is_dir() else []
            self._dirs[directory] = [n for n in found if n is not None]
        return self._dirs[directory]

    def resolve(self, ref: str | list[str], base: Path) -> tuple[list[Needle], str | None]:
        """Needles for a step's ``needle`` argument; (needles, None) or ([], why not), where
        why is "" when the needle's own file is broken (its problems are reported already).

        ``ref`` is a path to a needle (it has a ``/`` or ends in ``.json`` or ``.png``;
        relative to ``base``), or tags searched in ``base/needles`` (a needle's file name
        counts as a tag too), or a list of either (any of them).
        """
        if isinstance(ref, list):
            found: list[Needle] = []
            for item in ref:
                more, error = self.resolve(item, base)
                if error:
                    return [], error
                found += [n for n in more if n not in found]
            return found, None
        if "/" in ref or ref.endswith((".json", ".png")):
            path = base / ref
            path = path.with_suffix(".json") if path.suffix in (".png", "") else path
            if not path.is_file():
                return [], f"no needle file {path}"
            needle = self.file(path)
            return ([needle], None) if needle else ([], "")
        directory = base / "needles"
        if not directory.is_dir():
            return [], f"needle {ref!r}: no needles directory at {directory}"
        wanted = ref.split()
        needles = self.directory(directory)
        found = [n for n in needles if all(t in n.tags or t == n.name for t in wanted)]
        if not found and all(t in self._broken for t in wanted):
            return [], ""
        if not found:
            return [], (f"no needle tagged {ref!r} in {directory} "
                        f"(tags there: {', '.join(sorted({t for n in needles for t in n.tags})) or 'none'})")
        return found, None


# --- matching ---------------------------------------------------------------------


@dataclass(frozen=True)
class AreaResult:
    area: Area
    similarity: float
    x: int
    y: int

    @property
    def ok(self) -> bool:
        return self.similarity >= self.area.match / 100


@dataclass(frozen=True)
class NeedleMatch:
    needle: Needle
    areas: tuple[AreaResult, ...]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.areas)

    @property
    def error(self) -> float:
        """os-autoinst's ranking: mean square of (1 - similarity) over the areas."""
        return sum((1 - r.similarity) ** 2 for r in self.areas) / max(len(self.areas), 1)

    def describe(self) -> str:
        parts = [f"area {a.area.width}x{a.area.height}+{a.area.xpos}+{a.area.ypos}: "
                 f"{a.similarity * 100:.1f}% (needs {a.area.match:g}%)"
                 + (f" found at +{a.x}+{a.y}" if (a.x, a.y) != (a.area.xpos, a.area.ypos) else "")
                 for a in self.areas]
        return f"needle {self.needle.name} {'matched' if self.ok else 'did not match'}: " + "; ".join(parts)


def paint_excludes(image: Image.Image, excludes: list[Area]) -> Image.Image:
    if not excludes:
        return image
    image = image.copy()
    draw = ImageDraw.Draw(image)
    for area in excludes:
        draw.rectangle((area.xpos, area.ypos, area.xpos + area.width - 1, area.ypos + area.height - 1),
                       fill=EXCLUDED)
    return image


def prep(image: Image.Image) -> Image.Image:
    """Grey and blurred, as os-autoinst compares pictures."""
    return image.convert("RGB").convert("L").filter(_BLUR)


def match_needle(screen: Image.Image, needle: Needle) -> NeedleMatch:
    """Match one needle against a screen (RGB); never raises for a mismatch."""
    screen_p = prep(paint_excludes(screen.convert("RGB"), needle.excludes))
    needle_p = needle.prepped()
    results = []
    for area in needle.match_areas:
        if area.box[2] > screen_p.width or area.box[3] > screen_p.height:
            results.append(AreaResult(area, 0.0, area.xpos, area.ypos))
            continue
        target = needle_p.crop(area.box)
        here = _similarity(screen_p.crop(area.box), target)
        x, y = area.xpos, area.ypos
        if here < area.match / 100:
            x, y = _search(screen_p, target, area.xpos, area.ypos, area.margin)
            if (x, y) != (area.xpos, area.ypos):
                found = _similarity(screen_p.crop((x, y, x + area.width, y + area.height)), target)
                if found > here:
                    here = found
                else:
                    x, y = area.xpos, area.ypos
        results.append(AreaResult(area, here, x, y))
    return NeedleMatch(needle, tuple(results))


def best_match(screen: Image.Image, needles: list[Needle]) -> NeedleMatch:
    """The best of several needles: a passing one first, then the smallest error, then by name."""
    matches = [match_needle(screen, n) for n in needles]
    return min(matches, key=lambda m: (not m.ok, m.error, m.needle.name))


def _sse(a: Image.Image, b: Image.Image) -> int:
    histogram = ImageChops.difference(a, b).histogram()
    return sum(count * square for count, square in zip(histogram, SQUARES, strict=False))


def enhanced_mse(a: Image.Image, b: Image.Image) -> float:
    """os-autoinst's error between two grey pictures of one size (ignores small changes)."""
    far = ImageChops.difference(a, b).point(FAR)
    quantised = ImageChops.difference(a.point(_QUANT), b.point(_QUANT))
    histogram = ImageChops.darker(quantised, far).histogram()
    sse = sum(count * square for count, square in zip(histogram, _QSQUARES, strict=False))
    return sse / max(a.width * a.height, 1)


def _similarity(a: Image.Image, b: Image.Image) -> float:
    return min(max(0.9 + (40 - enhanced_mse(a, b)) / 380, 0.0), 1.0)


def _search(screen_p: Image.Image, target: Image.Image, x: int, y: int, margin: int) -> tuple[int, int]:
    """Where ``target`` fits best within ``margin`` of (x, y): smallest squared difference."""
    w, h = target.size
    x0, y0 = max(0, x - margin), max(0, y - margin)
    x1, y1 = min(screen_p.width, x + w + margin), min(screen_p.height, y + h + margin)
    reach_x, reach_y = x1 - x0 - w, y1 - y0 - h
    if reach_x <= 0 and reach_y <= 0:
        return x, y
    window = screen_p.crop((x0, y0, x1, y1))
    origin = (x - x0, y - y0)
    levels = 0
    while max(reach_x, reach_y) >> levels > 3 and min(w, h) >> (levels + 1) >= 8:
        levels += 1
    windows, targets = [window], [target]
    for _ in range(levels):
        windows.append(windows[-1].reduce(2))
        targets.append(targets[-1].reduce(2))

    def score(level: int, ox: int, oy: int) -> tuple[int, float]:
        t = targets[level]
        near = math.hypot(ox * (1 << level) - origin[0], oy * (1 << level) - origin[1])
        return _sse(windows[level].crop((ox, oy, ox + t.width, oy + t.height)), t), near

    def limits(level: int) -> tuple[int, int]:
        return windows[level].width - targets[level].width, windows[level].height - targets[level].height

    mx, my = limits(levels)
    candidates = sorted((score(levels, ox, oy), (ox, oy)) for ox in range(mx + 1) for oy in range(my + 1))
    best = [c for _, c in candidates[:_KEEP]]
    for level in range(levels - 1, -1, -1):
        mx, my = limits(level)
        tried = {(min(max(2 * ox + dx, 0), mx), min(max(2 * oy + dy, 0), my))
                 for ox, oy in best for dx in range(-2, 3) for dy in range(-2, 3)}
        best = [c for _, c in sorted((score(level, ox, oy), (ox, oy)) for ox, oy in tried)[:_KEEP]]
    return x0 + best[0][0], y0 + best[0][1]
