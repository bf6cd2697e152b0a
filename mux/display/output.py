"""Outputs: where the active persona's picture goes (``[display] output``).

Theory: the display (:mod:`mux.display.display`) decides *what* is shown: at a switch, the new
persona's back-buffered frame at once; after that, each of its live frames. An output
only shows what it is given, and it is the only place that knows how:

- :class:`HeadlessOutput` keeps the current frame in memory (for tests, CI, servers);
- :class:`mux.display.window.WindowOutput` draws it with pygame-ce (SDL2) in a window, or full
  screen (SDL's KMS/DRM driver on a kiosk), under a banner no guest can draw on.

``output = "auto"`` picks the window when a display looks available (``DISPLAY``,
``WAYLAND_DISPLAY`` or ``SDL_VIDEODRIVER`` set) and SDL opens one, else headless; one
progress line says which and why ("output: window on DISPLAY=:99", "output: headless (no
DISPLAY or WAYLAND_DISPLAY)"). pygame is imported only when a window is wanted.

An output with a window tells ``on_resize`` the size of its guest area (the window below
the banner) whenever the window's size changes; the display asks a guest that follows the
window for that size (:mod:`mux.display.resize`). Headless has no size: it never asks.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol

from PIL import Image

from mux.config import DisplaySection
from mux.display.backbuffer import BackBuffer, Frame
from mux.display.leds import Leds
from mux.errors import DisplayError
from mux.input.events import InputEvent

log = logging.getLogger(__name__)

InputHandler = Callable[[list[InputEvent]], Awaitable[None]]
SwitchHandler = Callable[[str], Awaitable[object]]
ResizeHandler = Callable[[tuple[int, int]], None]
Progress = Callable[[str], None]


class Output(Protocol):
    """What the display draws on."""

    kind: str
    #: Told the guest area's new size when the window's size changes (set by the display).
    on_resize: ResizeHandler | None

    def guest_area_size(self) -> tuple[int, int] | None:
        """The size a guest that follows the window should have (the window below the
        banner); None when there is no window (headless)."""
        ...

    def present(self, name: str, frame: Frame | None) -> None:
        """Show ``name``'s frame now (None: it has none yet; show no other persona's)."""
        ...

    def show_leds(self, name: str, leds: Leds | None) -> None:
        """The active persona's lock LEDs changed (the window's banner shows them). At a
        switch they are told just before the new persona's frame is presented, so an
        output can draw both at once."""
        ...

    def current_frame(self) -> tuple[str, Image.Image, float] | None:
        """(persona, image, capture time) last presented; None before any frame."""
        ...

    def show_attention(self, requests: Sequence[tuple[str, str]]) -> None:
        """The pending requests for attention, (persona, text) oldest first ([]: none):
        the banner shows them over whatever is active (:mod:`mux.app.attention`)."""
        ...

    def notify(self, text: str) -> None:
        """Show a short notice for a few seconds (a window's banner; headless: logged), such
        as "copied 42 characters from home". Never clipboard content."""
        ...

    async def run(self) -> None:
        """The output's own loop (window events); returns at once if it has none."""
        ...

    def toggle_overview(self) -> None:
        """Show every persona's back-buffer side by side, or go back (the overview hotkey)."""
        ...

    def close(self) -> None: ...


class HeadlessOutput:
    """Keeps the presented frame in memory; draws nothing."""

    kind = "headless"

    def __init__(self) -> None:
        self.on_resize: ResizeHandler | None = None  # never called: no window, no size
        self._current: tuple[str, Frame | None] | None = None
        self.presented = 0
        self.attention: list[tuple[str, str]] = []  # what a window's banner would show
        self.notices: list[str] = []  # every notice, oldest first

    def present(self, name: str, frame: Frame | None) -> None:
        self._current = (name, frame)
        self.presented += 1

    def show_leds(self, name: str, leds: Leds | None) -> None:
        pass

    def guest_area_size(self) -> tuple[int, int] | None:
        return None

    def show_attention(self, requests: Sequence[tuple[str, str]]) -> None:
        self.attention = list(requests)

    def notify(self, text: str) -> None:
        self.notices.append(text)
        log.info("%s", text)

    def current_frame(self) -> tuple[str, Image.Image, float] | None:
        if self._current is None:
            return None
        name, frame = self._current
        return None if frame is None else (name, frame.image, frame.captured)

    async def run(self) -> None:
        return

    def toggle_overview(self) -> None:
        self.overview = not getattr(self, "overview", False)  # nothing to draw it on

    def close(self) -> None:
        pass


def display_available(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether a window can be expected: an X or Wayland display, or an SDL driver chosen."""
    return any(environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"))


def display_named(environ: Mapping[str, str] = os.environ) -> str:
    """Where a window would open, as the environment names it ("DISPLAY=:99"); "" if nowhere."""
    for name in ("WAYLAND_DISPLAY", "DISPLAY", "SDL_VIDEODRIVER"):
        if value := environ.get(name):
            return f"{name}={value}"
    return ""


def open_output(config: DisplaySection, colors: Mapping[str, str], backbuffer: BackBuffer, *,
                on_input: InputHandler | None, on_switch: SwitchHandler,
                progress: Progress | None = None) -> Output:
    """The output the config asks for, opened; ``progress`` (default: the log) gets one
    line saying which output and why.

    ``on_input`` gets keys typed into the window (None: the window routes no keys, as
    when physical keyboards are configured); ``on_switch`` is called with a persona name
    picked in the overview.

    Raises:
        DisplayError: ``output = "window"`` and SDL cannot open a window. (With
            ``"auto"`` that falls back to headless, saying why.)
    """
    tell = progress or (lambda line: log.info("%s", line))
    if config.output == "headless":
        tell("output: headless (output = \"headless\")")
        return HeadlessOutput()
    if config.output == "auto" and not display_available():
        tell("output: headless (no DISPLAY or WAYLAND_DISPLAY)")
        return HeadlessOutput()
    from mux.display.window import WindowOutput

    window = WindowOutput(colors, backbuffer, fullscreen=config.fullscreen,
                          on_input=on_input, on_switch=on_switch)
    where = display_named()
    try:
        window.open()
    except DisplayError as exc:
        if config.output == "window":
            raise
        tell(f"output: headless (SDL could not open {where.partition('=')[2] or 'a window'}: {exc})")
        return HeadlessOutput()
    tell(f"output: window on {where}" if where else "output: window")
    return window
