"""Loading needle files as openQA does: lenient where it is, strict where it is.

Lenient (os-autoinst's ``needle.pm``): numbers may be JSON strings (``"match": "90"``);
a missing ``tags``, ``properties``, ``type``, ``match`` or ``margin`` takes its default
(``[]``, ``[]``, ``match``, 96, 50), and a 0 ``match`` or ``margin`` counts as missing;
a missing ``xpos``, ``ypos``, ``width`` or ``height`` is 0; an area of a type it does
not know is kept and plays no part. The PNG only has to be there and not empty: one
that is not a picture (a Git LFS pointer, say) is read only when a step matches the
needle, which then skips it. Strict: a needle needs a ``match`` (or ``ocr``) area and a
non-empty PNG beside it; at most one area has a ``click_point``, which is ``"center"``
or ``{xpos, ypos}`` with both non-zero. mux adds that an area must lie inside the
picture (when it is one).

A needle that breaks a rule is skipped with one warning naming its file (the first
problem's line and column, then every problem): it is never fatal to its directory. A
needle that loads only thanks to the leniency (a number written as a string, a match
area without a size, a PNG that is no picture) loads with one warning, so ``mux replay
--check`` can point at it; the last two fail or are skipped when a step matches them
(:mod:`mux.needles.match`).
:func:`load_needle` is the strict form for one file, which raises instead.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml
from PIL import Image

from mux.errors import ConfigError, Location
from mux.needles.model import DEFAULT_MARGIN, DEFAULT_MATCH, Area, ClickPoint, Needle, lfs_pointer
from mux.sourcemap import SourceMap, load_yaml_text

Problems = list[tuple[Location, str]]
JsonPath = tuple[str | int, ...]


def load_needle(json_path: Path) -> Needle:
    """Read one needle file and check it against its PNG.

    Raises:
        ConfigError: every problem in it (not JSON, bad areas, no match area, missing or
            empty PNG, an area outside the picture), each with file:line:column.
    """
    problems: Problems = []
    needle = read_needle(json_path, problems)
    if needle is None:
        raise ConfigError(problems)
    return needle


def read_needle(json_path: Path, problems: Problems, notes: Problems | None = None) -> Needle | None:
    """:func:`load_needle` that appends its problems and returns None instead of raising;
    ``notes`` gets what openQA accepts but a needle should not do (numbers as strings, a
    match area without a size, a PNG that is no picture)."""
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
    except (ValueError, RecursionError) as exc:  # a number of thousands of digits; nesting
        problems.append((top, f"needle is not JSON that can be read: {str(exc)[:100]}"))
        return None
    locate = _json_positions(text, json_path)
    before = len(problems)

    def fail(path: JsonPath, message: str) -> None:
        problems.append((locate(path), f"needle {json_path.stem}: {message}"))

    def note(path: JsonPath, message: str) -> None:
        if notes is not None:
            notes.append((locate(path), f"needle {json_path.stem}: {message}"))

    if not isinstance(data, dict):
        fail((), "a needle is a JSON object with tags and area")
        return None
    tags = data.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        fail(("tags",), "tags must be a list of strings")
        tags = []
    properties = data.get("properties") or []
    if not isinstance(properties, list):
        fail(("properties",), "properties must be a list")
        properties = []
    raw_areas = data.get("area") or []
    if not isinstance(raw_areas, list):
        fail(("area",), "area must be a list of areas")
        raw_areas = []
    areas = [a for i, item in enumerate(raw_areas) if (a := _area(item, ("area", i), locate, fail, note))]
    clicks = [i for i, item in enumerate(raw_areas) if isinstance(item, dict) and item.get("click_point")]
    if len(clicks) > 1:
        fail(("area", clicks[1], "click_point"), "more than one area has a click point")
    if len(problems) == before and not any(a.type in ("match", "ocr") for a in areas):
        fail(("area",) if "area" in data else (), "a needle needs at least one match area")
    png = json_path.with_suffix(".png")
    size = (0, 0)
    if not png.is_file() or png.stat().st_size == 0:
        fail((), f"no PNG beside it ({png.name} is {'empty' if png.is_file() else 'missing'})")
    else:
        try:
            with Image.open(png) as image:
                size = image.size
        except OSError as exc:  # openQA loads it, and skips it when it searches
            why = lfs_pointer(png) or f"{png.name} is not a picture ({exc})"
            note((), f"{why} (the needle loads, as in openQA, and a step that searches it skips it)")
    if size != (0, 0):
        for area in areas:
            if area.xpos + area.width > size[0] or area.ypos + area.height > size[1]:
                problems.append((area.location, f"needle {json_path.stem}: {area.type} area"
                                 f" {area.width}x{area.height}+{area.xpos}+{area.ypos} lies outside"
                                 f" the {size[0]}x{size[1]} picture"))
    if len(problems) > before:
        return None
    return Needle(json_path.stem, json_path, png, tuple(tags), tuple(areas), size, tuple(properties))


def number(value: Any) -> float | None:
    """A JSON number, or a string holding one (openQA reads both); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            parsed = float(value)
        except OverflowError:  # an integer of hundreds of digits
            return None
        return parsed if math.isfinite(parsed) else None  # JSON as Python reads it: 1e999, NaN
    if isinstance(value, str):
        try:
            parsed = float(value.strip())
        except ValueError:
            return None
        return parsed if math.isfinite(parsed) else None
    return None


def _area(item: Any, path: JsonPath, locate: SourceMap, fail: Any, note: Any) -> Area | None:
    if not isinstance(item, dict):
        fail(path, "an area is an object {xpos, ypos, width, height, type}")
        return None
    for key in ("xpos", "ypos", "width", "height", "match", "margin"):
        value = item.get(key)
        if isinstance(value, str) and (parsed := number(value)) is not None:
            note((*path, key), f"area {key} {value!r} is a string; read as the number {parsed:g}")
    ok = True
    values: dict[str, int] = {}
    for key in ("xpos", "ypos", "width", "height"):
        value = number(item.get(key) or 0)  # os-autoinst: missing (or 0) is 0
        if value is None or value < 0:
            fail((*path, key), f"area {key} must be a number >= 0")
            ok = False
        values[key] = int(value or 0)
    kind = item.get("type") or "match"
    if not isinstance(kind, str):
        fail((*path, "type"), "area type must be a string (match, exclude or ocr)")
        ok = False
    sizeless = [key for key in ("width", "height") if values[key] == 0]
    if ok and sizeless:
        note(path, f"{kind} area has no {' or '.join(sizeless)} (openQA reads 0): "
             + ("a step that searches the needle fails" if kind == "match" else "it covers nothing"))
    match = number(item.get("match") or DEFAULT_MATCH)
    match = DEFAULT_MATCH if match == 0 else match  # os-autoinst: 0 (even "0") means not given
    if match is None or not 0 < match <= 100:
        fail((*path, "match"), "area match must be a percentage in (0, 100]")
        ok = False
    margin = number(item.get("margin") or DEFAULT_MARGIN)
    margin = DEFAULT_MARGIN if margin == 0 else margin
    if margin is None or margin < 0:
        fail((*path, "margin"), "area margin must be a number of pixels >= 0")
        ok = False
    click = _click_point(item.get("click_point"))
    if item.get("click_point") and click is None:
        fail((*path, "click_point"), 'a click point is "center" or {xpos, ypos} with both non-zero')
        ok = False
    if not ok:
        return None
    return Area(values["xpos"], values["ypos"], values["width"], values["height"], str(kind),
                float(match or DEFAULT_MATCH), int(margin or DEFAULT_MARGIN), click, locate(path))


def _click_point(value: Any) -> ClickPoint | None:
    if value == "center":
        return ClickPoint(center=True)
    if isinstance(value, dict):
        x, y = number(value.get("xpos")), number(value.get("ypos"))
        if x and y:  # openQA takes 0 (and missing) as invalid
            return ClickPoint(x, y)
    return None


def _json_positions(text: str, path: Path) -> SourceMap:
    """Where each JSON value is (JSON is YAML, once tabs, which JSON allows only between
    tokens, become spaces: columns stay the same)."""
    try:
        return load_yaml_text(text.replace("\t", " "), path)[1]
    except (ConfigError, yaml.YAMLError, ValueError, TypeError, RecursionError):
        # Positions are a courtesy: JSON that YAML cannot place (characters YAML refuses,
        # nesting too deep) is still read, and its problems are placed at its start.
        return lambda _path: Location(path, 1, 1)


class NeedleLibrary:
    """Needle files read once each, found by path or by tag in a ``needles/`` directory.

    A broken needle in a directory is skipped with one warning (in :attr:`warnings`);
    ``problems`` holds what makes a scenario fail to load (a needle file a step names by
    its path that is broken).
    """

    def __init__(self) -> None:
        self.problems: Problems = []
        self.warnings: Problems = []
        self._files: dict[Path, Needle | None] = {}
        self._why: dict[Path, Problems] = {}
        self._dirs: dict[Path, list[Needle]] = {}
        self._skipped_tags: dict[str, list[Path]] = {}  # tags (and names) of skipped needles

    def file(self, path: Path) -> Needle | None:
        """The needle in ``path`` (None when broken: then it has one warning)."""
        path = path.resolve()
        if path not in self._files:
            why: Problems = []
            notes: Problems = []
            self._files[path] = needle = read_needle(path, why, notes)
            if needle is not None and notes:
                details = "; ".join(m.removeprefix(f"needle {path.stem}: ") for _, m in notes)
                self.warnings.append((notes[0][0], f"needle {path.name}: {details}"))
            if needle is None:
                self._why[path] = why
                location = why[0][0] if why else Location(path, 1, 1)
                details = "; ".join(m.removeprefix(f"needle {path.stem}: ") for _, m in why)
                self.warnings.append((location, f"needle {path.name} skipped: {details}"))
                for tag in [path.stem, *_raw_tags(path)]:
                    self._skipped_tags.setdefault(tag, []).append(path)
        return self._files[path]

    def directory(self, directory: Path) -> list[Needle]:
        """Every good needle under ``directory`` (recursively), in file name order."""
        directory = directory.resolve()
        if directory not in self._dirs:
            found = [self.file(p) for p in sorted(directory.rglob("*.json"))] if directory.is_dir() else []
            self._dirs[directory] = [n for n in found if n is not None]
        return self._dirs[directory]

    def resolve(self, ref: str | list[str], base: Path) -> tuple[list[Needle], str | None]:
        """Needles for a step's ``needle`` argument; (needles, None) or ([], why not).

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
            if needle is None:
                return [], f"needle file {path} is broken (see its warning)"
            return [needle], None
        directory = base / "needles"
        if not directory.is_dir():
            return [], f"needle {ref!r}: no needles directory at {directory}"
        wanted = ref.split()
        needles = self.directory(directory)
        found = [n for n in needles if all(t in n.tags or t == n.name for t in wanted)]
        if found:
            return found, None
        skipped = sorted({p.name for t in wanted for p in self._skipped_tags.get(t, [])})
        tags = ", ".join(sorted({t for n in needles for t in n.tags})) or "none"
        return [], (f"no needle tagged {ref!r} in {directory} (tags there: {tags})"
                    + (f"; skipped needles with it: {', '.join(skipped)}" if skipped else ""))


def _raw_tags(path: Path) -> list[str]:
    """The tags a broken needle file declares, as far as they can be read."""
    try:
        tags = json.loads(path.read_text(encoding="utf-8")).get("tags", [])
    except (OSError, ValueError, AttributeError, RecursionError):
        return []
    return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []
