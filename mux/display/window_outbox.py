"""What mux still has to tell a seat's window process: newest frame first, never a backlog.

Theory. A window process that is behind (busy, or a slow X server) must not make mux queue
frames without limit. So the outbox holds at most **one** frame to present, the newest:
a frame presented while the previous one was not yet taken replaces it. A live frame
whose framebuffer the window already has at the version before travels as its changed
rectangles only (:data:`~mux.display.window_pipe.MAX_RECTS` at most; rectangles of
replaced frames are gathered, so nothing changed is missed); else the whole frame goes.
The pixels are read when the message is taken (:meth:`Outbox.take`), so they are the
newest anyway. Back-buffer frames for the overview are kept one per persona the same way.

Other messages (LEDs, attention, notices, overview, close) are small and kept in order,
the attention list replaced in place (only the newest counts); past :data:`MAX_PENDING`
the oldest notice or LED message is dropped. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mux.display.backbuffer import Box, Frame, Pixels
from mux.display.window_pipe import MAX_RECTS, frame_message

MAX_PENDING = 64  #: small messages waiting, at most
_DROPPABLE = ("notice", "leds")


@dataclass
class _Present:
    name: str
    frame: Frame | None
    rects: list[Box] | None  # None: the whole frame


class Outbox:
    """The messages waiting for a window process; see the module docstring."""

    def __init__(self) -> None:
        # ("msg", header) | ("present", None) | ("backbuffer", name), oldest first
        self._items: list[tuple[str, Any]] = []
        self._present: _Present | None = None
        self._backbuffer: dict[str, Frame] = {}
        self._sent: dict[str, tuple[Pixels, int]] = {}  # the window's framebuffer of a persona
        self.dropped = 0  #: small messages dropped because too many waited

    def __len__(self) -> int:
        return len(self._items)

    def present(self, name: str, frame: Frame | None) -> None:
        """Show ``name``'s ``frame`` (None: none yet), replacing a frame not yet taken."""
        rects: list[Box] | None = None
        pending = self._present
        if frame is not None and isinstance(frame.picture, Pixels) and frame.rects is not None:
            if (pending is not None and pending.name == name and pending.frame is not None
                    and pending.frame.picture is frame.picture
                    and pending.frame.version == frame.version - 1):
                rects = None if pending.rects is None else [*pending.rects, *frame.rects]
            elif pending is None or pending.name != name:
                sent = self._sent.get(name)
                if sent is not None and sent[0] is frame.picture and sent[1] == frame.version - 1:
                    rects = list(frame.rects)
        if rects is not None and len(rects) > MAX_RECTS:
            rects = None
        self._present = _Present(name, frame, rects)
        self._items = [item for item in self._items if item[0] != "present"] + [("present", None)]

    def backbuffer(self, name: str, frame: Frame) -> None:
        """Send ``name``'s back-buffered ``frame`` (for the overview), replacing one not taken."""
        if name not in self._backbuffer:
            self._items.append(("backbuffer", name))
        self._backbuffer[name] = frame

    def message(self, header: dict[str, Any]) -> None:
        """Send a small message (no payload) after those waiting."""
        if header["type"] == "attention":
            for index, (kind, waiting) in enumerate(self._items):
                if kind == "msg" and waiting["type"] == "attention":
                    self._items[index] = ("msg", header)
                    return
        self._items.append(("msg", header))
        if sum(kind == "msg" for kind, _ in self._items) > MAX_PENDING:
            for index, (kind, waiting) in enumerate(self._items):
                if kind == "msg" and waiting["type"] in _DROPPABLE:
                    del self._items[index]
                    self.dropped += 1
                    break

    def take(self) -> tuple[dict[str, Any], bytes] | None:
        """The next message to write (header, payload), its pixels read now; None: none."""
        if not self._items:
            return None
        kind, value = self._items.pop(0)
        if kind == "msg":
            header: dict[str, Any] = value
            return header, b""
        if kind == "backbuffer":
            frame = self._backbuffer.pop(value)
            return frame_message("backbuffer", value, frame, None)
        present, self._present = self._present, None
        assert present is not None
        if present.frame is None:
            return {"type": "present", "name": present.name, "frame": False}, b""
        picture = present.frame.picture
        if isinstance(picture, Pixels):
            self._sent[present.name] = (picture, present.frame.version)
        return frame_message("present", present.name, present.frame, present.rects)

    def forget(self) -> None:
        """Drop everything waiting and what the window was known to have (it is gone)."""
        self._items.clear()
        self._present = None
        self._backbuffer.clear()
        self._sent.clear()

    def waiting(self) -> Sequence[str]:
        """The kinds of the messages waiting, oldest first (for tests and logs)."""
        return [value["type"] if kind == "msg" else kind for kind, value in self._items]
