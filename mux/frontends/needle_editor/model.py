"""The needle editor's state, pure: areas, the selection, drags, typed entries, undo.

Theory. Everything is in the needle picture's pixels. An area is an immutable
:class:`EditArea` (a box, its type, match level, margin, click point); the editor holds
a list of them, the tags and the properties, and which area is selected. Every edit
builds new areas and records the state before it, so undo and redo are swaps of
(areas, tags, selection) tuples, and "unsaved" is "differs from the state last saved".

The mouse works with edges, not pixels: a drag from (x1, y1) to (x2, y2) covers
``min..max`` on each axis, so a drag from (0, 76) to (88, 96) is the 88x20 area at
(0, 76). A press inside the selected area moves it (or resizes it from a corner
handle); a press elsewhere draws a new area; a press that hardly moves is a click,
which selects the area under it (again and again: the next of those stacked there).
Keys type numbers and tags into an :class:`Entry` that Enter commits. Areas and the
window's mapping are :mod:`.area`'s, the mouse's moves :mod:`.mouse`'s. No pygame, no
I/O: the tests drive it with lists of calls.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from mux.frontends.needle_editor.area import TYPES, ClickPoint, EditArea, Point
from mux.frontends.needle_editor.mouse import Drag, MouseEdits
from mux.needles.model import Needle

NEW_SIZE = (100, 40)  # an area made with a key, centred in the picture
UNDO_DEPTH = 500


@dataclass
class Entry:
    """Text being typed for a field of the selected area (``match``, ``margin``) or ``tags``."""

    field: str
    text: str = ""


State = tuple[tuple[EditArea, ...], tuple[str, ...], int | None]


class EditorModel(MouseEdits):
    """The editor's state; see the module docstring. ``message`` is the latest news for
    the status line."""

    def __init__(self, size: Point, areas: list[EditArea] | None = None, tags: list[str] | None = None,
                 properties: list[Any] | None = None) -> None:
        self.size = size
        self.areas: list[EditArea] = list(areas or [])
        self.tags: list[str] = list(tags or [])
        self.properties: list[Any] = list(properties or [])
        self.selected: int | None = 0 if self.areas else None
        self.entry: Entry | None = None
        self.drag: Drag | None = None
        self.message = ""
        self.show_help = False
        self.picture_changed = False
        self._undo: list[State] = []
        self._redo: list[State] = []
        self._saved = self._content()

    @classmethod
    def from_needle(cls, needle: Needle) -> EditorModel:
        """The editor on a needle loaded by :mod:`mux.needles.loader`."""
        areas = []
        for a in needle.areas:
            point = a.click_point
            click: ClickPoint = None if point is None else "center" if point.center else (
                point.xpos, point.ypos)
            areas.append(EditArea(a.xpos, a.ypos, a.width, a.height, a.type, a.match, a.margin, click))
        return cls(needle.size, areas, list(needle.tags), list(needle.properties))

    # --- state, undo, saving ----------------------------------------------------------

    def _content(self) -> tuple[tuple[EditArea, ...], tuple[str, ...]]:
        return tuple(self.areas), tuple(self.tags)

    @property
    def dirty(self) -> bool:
        return self.picture_changed or self._content() != self._saved

    def mark_saved(self) -> None:
        self._saved = self._content()
        self.picture_changed = False

    def _remember(self) -> None:
        self._undo.append((tuple(self.areas), tuple(self.tags), self.selected))
        del self._undo[:-UNDO_DEPTH]
        self._redo.clear()

    def _set(self, areas: list[EditArea], selected: int | None, tags: list[str] | None = None) -> None:
        self._remember()
        self.areas, self.selected = areas, selected
        if tags is not None:
            self.tags = tags

    def undo(self) -> None:
        self._swap(self._undo, self._redo, "undo")

    def redo(self) -> None:
        self._swap(self._redo, self._undo, "redo")

    def _swap(self, source: list[State], target: list[State], what: str) -> None:
        if not source:
            self.message = f"nothing to {what}"
            return
        target.append((tuple(self.areas), tuple(self.tags), self.selected))
        areas, tags, selected = source.pop()
        self.areas, self.tags, self.selected = list(areas), list(tags), selected
        self.message = what

    def to_json(self) -> dict[str, Any]:
        """openQA's needle JSON, as ``mux needle capture`` writes it."""
        return {"tags": list(self.tags), "area": [a.to_json() for a in self.areas],
                "properties": list(self.properties)}

    def problems(self) -> list[str]:
        """Why mux.needles.loader would refuse this needle (empty when it would load)."""
        found = []
        if not any(a.type in ("match", "ocr") for a in self.areas):
            found.append("a needle needs a match area")
        if sum(a.click is not None for a in self.areas) > 1:
            found.append("more than one area has a click point")
        return found

    # --- the selection ------------------------------------------------------------------

    @property
    def current(self) -> EditArea | None:
        return self.areas[self.selected] if self.selected is not None else None

    def select_next(self, step: int = 1) -> None:
        """Tab: the next (or previous) area, round."""
        if not self.areas:
            self.message = "no areas: drag to draw one, or press N"
            return
        self.selected = 0 if self.selected is None and step > 0 else (
            (self.selected if self.selected is not None else 0) + step) % len(self.areas)

    def under(self, point: Point) -> list[int]:
        """The areas at ``point``, smallest first."""
        found = [i for i, a in enumerate(self.areas) if a.contains(point)]
        return sorted(found, key=lambda i: (self.areas[i].width * self.areas[i].height, i))

    def click(self, point: Point) -> None:
        """Select the area at ``point``; clicked again, the next one stacked there."""
        found = self.under(point)
        if not found:
            self.selected = None
        elif self.selected in found:
            self.selected = found[(found.index(self.selected) + 1) % len(found)]
        else:
            self.selected = found[0]

    # --- the keyboard (and the toolbar) -----------------------------------------------------

    def new_area(self) -> None:
        w, h = min(NEW_SIZE[0], self.size[0]), min(NEW_SIZE[1], self.size[1])
        area = EditArea((self.size[0] - w) // 2, (self.size[1] - h) // 2, w, h)
        self._set([*self.areas, area], len(self.areas))
        self.message = "new match area in the middle: arrows move it, Shift+arrows resize it"

    def move(self, dx: int, dy: int) -> None:
        if (area := self._need()) is not None:
            self._update(self._clamp(replace(area, x=area.x + dx, y=area.y + dy)))

    def resize(self, dw: int, dh: int) -> None:
        if (area := self._need()) is not None:
            self._update(self._clamp(replace(area, width=max(area.width + dw, 1),
                                             height=max(area.height + dh, 1)), keep_corner=True))

    def set_type(self, kind: str) -> None:
        if (area := self._need()) is not None:
            self._update(replace(area, type=kind))

    def cycle_type(self) -> None:
        if (area := self._need()) is not None:
            self._update(replace(area, type=TYPES[(TYPES.index(area.type) + 1) % len(TYPES)]
                                 if area.type in TYPES else TYPES[0]))

    def set_match(self, value: float) -> None:
        if (area := self._need()) is not None:
            if not 0 < value <= 100:
                self.message = f"match {value:g}: a percentage in (0, 100]"
                return
            self._update(replace(area, match=value))

    def step_match(self, step: float) -> None:
        if (area := self.current) is not None:
            self.set_match(min(max(area.match + step, 1), 100))

    def set_margin(self, value: int) -> None:
        if (area := self._need()) is not None:
            if value < 1:
                self.message = f"margin {value}: at least 1 pixel (openQA reads 0 as the default, 50)"
                return
            self._update(replace(area, margin=value))

    def step_margin(self, step: int) -> None:
        if (area := self.current) is not None:
            self.set_margin(max(area.margin + step, 1))

    def toggle_click(self) -> None:
        """The selected area's click point: none -> its centre -> none."""
        if (area := self._need()) is not None:
            if area.click is not None:
                self._update(replace(area, click=None))
            else:
                self._set_click(area.width / 2, area.height / 2)

    def move_click(self, dx: int, dy: int) -> None:
        if (area := self._need()) is not None:
            x, y = area.click_xy() or (area.width / 2, area.height / 2)
            self._set_click(min(max(x + dx, 1), area.width), min(max(y + dy, 1), area.height))

    def _set_click(self, x: float, y: float) -> None:
        assert self.selected is not None
        areas = [replace(a, click=None) for a in self.areas]  # one click point per needle
        areas[self.selected] = replace(self.areas[self.selected], click=(x, y))
        self._set(areas, self.selected)

    def delete(self) -> None:
        if self._need() is not None and self.selected is not None:
            areas = self.areas[:self.selected] + self.areas[self.selected + 1:]
            self._set(areas, min(self.selected, len(areas) - 1) if areas else None)
            self.message = "area deleted (Ctrl+Z brings it back)"

    def set_tags(self, tags: list[str]) -> None:
        if tags != self.tags:
            self._set(list(self.areas), self.selected, tags)

    def _need(self) -> EditArea | None:
        if self.current is None:
            self.message = "no area selected: click one or press Tab"
        return self.current

    def _update(self, area: EditArea) -> None:
        if area != self.current:
            self._set(self._with(area), self.selected)

    def _with(self, area: EditArea) -> list[EditArea]:
        assert self.selected is not None
        areas = list(self.areas)
        areas[self.selected] = area
        return areas

    def _inside(self, point: Point) -> Point:
        return min(max(point[0], 0), self.size[0]), min(max(point[1], 0), self.size[1])

    def _clamp(self, area: EditArea, keep_corner: bool = False) -> EditArea:
        """Inside the picture: moved back in, or (``keep_corner``) made smaller."""
        cols, rows = self.size
        width, height = min(area.width, cols), min(area.height, rows)
        if keep_corner:
            width, height = min(width, cols - area.x), min(height, rows - area.y)
        x, y = min(max(area.x, 0), cols - width), min(max(area.y, 0), rows - height)
        return replace(area, x=x, y=y, width=width, height=height)

    def fit_picture(self, size: Point) -> None:
        """A new picture (retaken): areas outside it are moved or cut to fit."""
        self.size = size
        self.picture_changed = True
        self.areas = [self._clamp(a) for a in self.areas]

    # --- typed entries --------------------------------------------------------------------

    def begin_entry(self, field: str, text: str = "") -> None:
        if field != "tags" and self._need() is None:
            return
        self.entry = Entry(field, text)

    def type_text(self, text: str) -> None:
        if self.entry is not None:
            self.entry.text += text

    def backspace(self) -> None:
        if self.entry is not None:
            self.entry.text = self.entry.text[:-1]

    def cancel_entry(self) -> None:
        self.entry = None

    def commit_entry(self) -> None:
        entry, self.entry = self.entry, None
        if entry is None:
            return
        if entry.field == "tags":
            self.set_tags([t for t in entry.text.replace(",", " ").split() if t])
            return
        try:
            value = float(entry.text)
        except ValueError:
            self.message = f"{entry.field} {entry.text!r} is not a number"
            return
        if entry.field == "match":
            self.set_match(value)
        elif value.is_integer():
            self.set_margin(int(value))
        else:
            self.message = f"margin {entry.text}: a whole number of pixels"
