"""The persona's live screen, through a running mux's control socket, matched in a thread.

Theory. The screen comes the way ``mux needle capture`` gets it: a ``screenshot``
request on the control socket, which has the controller write the persona's
back-buffered picture to a file (a PPM here: quick to write and to read). The window
must stay responsive, so :class:`LiveMatcher` fetches a screen and matches the
editor's areas against it in one worker thread, at most once every
:data:`INTERVAL_S`, and the window picks the result up when it is ready.

Matching is :mod:`mux.needles.match`'s, area by area (:func:`match_areas`): the needle's
picture and the screen get the exclude areas painted, both are greyed and blurred, and
each match area is searched within its margin. Results are keyed by the area they were
computed for, so an area edited since shows none until the next round.
"""

from __future__ import annotations

import concurrent.futures
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from mux.errors import ControlError, MuxError
from mux.frontends import control
from mux.frontends.needle_editor.area import EditArea
from mux.needles.match import Screen, prep, search_area
from mux.needles.model import Area, paint_excludes

INTERVAL_S = 1.0
REQUEST_S = 30.0


def grab_screen(socket: Path, persona: str) -> Image.Image:
    """The persona's screen now (RGB).

    Raises:
        ControlError: no controller answers, or it has no such persona, or no picture.
    """
    with tempfile.TemporaryDirectory(prefix="mux-needle-edit-") as directory:
        file = Path(directory) / "screen.ppm"
        reply = control.request(socket, {"cmd": "screenshot", "persona": persona, "file": str(file)},
                                REQUEST_S)
        if not reply.get("ok"):
            raise ControlError(f"screenshot of {persona}: {reply.get('error')}")
        with Image.open(file) as picture:
            return picture.convert("RGB")


@dataclass(frozen=True)
class Found:
    """Where a match area fits best on the screen, and how well (0..1)."""

    similarity: float
    x: int
    y: int
    ok: bool


def match_areas(needle: Image.Image, screen: Image.Image,
                areas: tuple[EditArea, ...]) -> dict[EditArea, Found]:
    """Each match area of ``areas`` searched on ``screen`` within its margin, as
    :func:`mux.needles.match.match_needle` does (exclude areas painted in both)."""
    excludes = [Area(a.x, a.y, a.width, a.height, "exclude") for a in areas if a.type == "exclude"]
    rgb = np.asarray(needle.convert("RGB"))
    template = prep(paint_excludes(rgb, excludes))
    on_screen = Screen(screen)
    found = {}
    for area in areas:
        if area.type == "match":
            similarity, x, y = search_area(on_screen, excludes, template, area.x, area.y, area.width,
                                           area.height, area.margin)
            found[area] = Found(similarity, x, y, similarity >= area.match / 100)
    return found


@dataclass(frozen=True)
class LiveResult:
    screen: Image.Image
    found: dict[EditArea, Found]


class LiveMatcher:
    """Fetches the persona's screen and matches the areas, once an interval, in a thread."""

    def __init__(self, socket: Path, persona: str, interval: float = INTERVAL_S) -> None:
        self.socket, self.persona, self.interval = socket, persona, interval
        self.latest: LiveResult | None = None
        self.error: str | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="needle-live")
        self._job: concurrent.futures.Future[LiveResult] | None = None
        self._started = 0.0

    def poll(self, needle: Image.Image, areas: tuple[EditArea, ...]) -> bool:
        """Pick up a finished round, start the next when due; True when news arrived."""
        news = False
        if self._job is not None and self._job.done():
            try:
                self.latest, self.error = self._job.result(), None
            except (MuxError, OSError) as exc:  # no controller, no persona, an unreadable picture
                self.error = str(exc)
            self._job, news = None, True
        if self._job is None and time.monotonic() - self._started >= self.interval:
            self._started = time.monotonic()
            self._job = self._pool.submit(self._round, needle, areas)
        return news

    def _round(self, needle: Image.Image, areas: tuple[EditArea, ...]) -> LiveResult:
        screen = grab_screen(self.socket, self.persona)
        found = match_areas(needle, screen, areas) if screen.size == needle.size else {}
        return LiveResult(screen, found)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
