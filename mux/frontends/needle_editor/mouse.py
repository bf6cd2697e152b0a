"""The needle editor's mouse, pure, mixed into :class:`~.model.EditorModel`.

The mouse works with edges, not pixels (the model's docstring): a press inside the
selected area moves it, or resizes it from a corner handle; a press elsewhere draws a new
area; a press that moves less than :data:`CLICK_SLOP` is a click, which selects. A drag
changes the selected area as it goes; the release records the change for undo once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from mux.frontends.needle_editor.area import EditArea, Point, span

CLICK_SLOP = 3  # a press that moves less than this (picture pixels) is a click


@dataclass(frozen=True)
class Drag:
    kind: str  # "draw", "move" or "resize"
    start: Point
    original: EditArea | None = None  # the selected area as it was (move, resize)
    anchor: Point = (0, 0)  # the fixed corner while resizing
    corner: Point = (0, 0)  # the corner that follows the mouse
    at: Point = (0, 0)
    engaged: bool = False  # moved at least CLICK_SLOP: no longer a click


class MouseEdits:
    """Press, motion, release: the mouse's edits of the model (see the module docstring)."""

    size: Point
    areas: list[EditArea]
    selected: int | None
    drag: Drag | None
    message: str

    @property
    def current(self) -> EditArea | None:  # the model's
        raise NotImplementedError

    def click(self, point: Point) -> None:  # the model's
        raise NotImplementedError

    def _inside(self, point: Point) -> Point:  # the model's
        raise NotImplementedError

    def _clamp(self, area: EditArea, keep_corner: bool = False) -> EditArea:  # the model's
        raise NotImplementedError

    def _set(self, areas: list[EditArea], selected: int | None, tags: list[str] | None = None) -> None:
        raise NotImplementedError  # the model's

    def _with(self, area: EditArea) -> list[EditArea]:  # the model's
        raise NotImplementedError

    def _set_click(self, x: float, y: float) -> None:  # the model's
        raise NotImplementedError

    def press(self, point: Point, handle: int = 6) -> None:
        """Button down at ``point``: move or resize the selected area, else start drawing.
        ``handle`` is how near (in picture pixels) a corner is grabbed."""
        point = self._inside(point)
        area = self.current
        if area is not None and area.contains(point):
            left, top, right, bottom = area.box
            corners = [((left, top), (right, bottom)), ((right, top), (left, bottom)),
                       ((left, bottom), (right, top)), ((right, bottom), (left, top))]
            near = [(c, o) for c, o in corners
                    if max(abs(point[0] - c[0]), abs(point[1] - c[1])) <= handle]
            if near and (area.width > 2 * handle or area.height > 2 * handle):
                corner, opposite = min(near, key=lambda c: abs(point[0] - c[0][0]) + abs(point[1] - c[0][1]))
                self.drag = Drag("resize", point, area, opposite, corner, point)
            else:
                self.drag = Drag("move", point, area, at=point)
        else:
            self.drag = Drag("draw", point, at=point)

    def motion(self, point: Point) -> None:
        if self.drag is None:
            return
        point = self._inside(point)
        self.drag = replace(self.drag, at=point, engaged=self.drag.engaged or self._moved(point))
        if (self.drag.kind != "draw" and self.drag.engaged and self.selected is not None
                and self.drag.original is not None):
            self.areas[self.selected] = self._dragged(self.drag.original, point)

    def _dragged(self, area: EditArea, point: Point) -> EditArea:
        assert self.drag is not None
        dx, dy = point[0] - self.drag.start[0], point[1] - self.drag.start[1]
        if self.drag.kind == "move":
            return self._clamp(replace(area, x=area.x + dx, y=area.y + dy))
        corner = (min(max(self.drag.corner[0] + dx, 0), self.size[0]),
                  min(max(self.drag.corner[1] + dy, 0), self.size[1]))
        left, top, right, bottom = span(self.drag.anchor, corner)
        return self._clamp(replace(area, x=left, y=top, width=max(right - left, 1),
                                   height=max(bottom - top, 1)))

    @property
    def preview(self) -> tuple[int, int, int, int] | None:
        """The box being drawn (left, top, right, bottom), if a drag draws one."""
        if self.drag is None or self.drag.kind != "draw" or not self.drag.engaged:
            return None
        return span(self.drag.start, self.drag.at)

    def _moved(self, point: Point) -> bool:
        assert self.drag is not None
        return max(abs(point[0] - self.drag.start[0]), abs(point[1] - self.drag.start[1])) >= CLICK_SLOP

    def release(self, point: Point) -> None:
        """Button up: the drawn area is made, the moved one kept, a click selects."""
        if self.drag is None:
            return
        point = self._inside(point)
        self.motion(point)
        drag, self.drag = self.drag, None
        moved = drag.engaged
        if drag.kind == "draw":
            left, top, right, bottom = span(drag.start, point)
            width, height = right - left, bottom - top
            if moved and width >= 1 and height >= 1:
                self._set([*self.areas, EditArea(left, top, width, height)], len(self.areas))
                self.message = f"new match area {width}x{height}+{left}+{top}"
            else:
                self.click(drag.start)
        elif drag.original is not None and self.selected is not None:
            changed = self.areas[self.selected]
            if changed != drag.original:
                self.areas[self.selected] = drag.original
                self._set(self._with(changed), self.selected)
            elif not moved:
                self.click(drag.start)  # a click inside the selected area: the next one stacked there

    def set_click_at(self, point: Point) -> None:
        """Right button: the selected area's click point at ``point`` (if inside it)."""
        area = self.current
        if area is None or not area.contains(point):
            self.message = "right-click inside the selected area to put its click point there"
            return
        self._set_click(max(point[0] - area.x, 1), max(point[1] - area.y, 1))
