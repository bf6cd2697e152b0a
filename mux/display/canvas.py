"""Drawing the window: the trusted banner, the guest area and the overview.

Theory. The window is split into two regions that never overlap:

- the **banner**, a strip of :data:`BANNER_H` pixels along the top, drawn by mux alone:
  the active persona's name on its configured colour, and its lock LEDs;
- the **guest area**, everything below it, where the persona's frame is drawn scaled
  to fit (aspect kept, letterboxed in black), or the overview's tiles.

Guest pixels are only ever blitted into a subsurface of the guest area, which SDL clips
to that rectangle, so whatever a guest draws (even a fake banner of another persona
at the top of its own screen) lands *below* the real one and cannot cover or change it:
the real banner is the one at the window's top edge, as Qubes OS draws its borders
outside the guest.

:class:`WindowCanvas` only draws what it is told (which persona, which frame, which
LEDs); the event loop in :mod:`mux.display.window` decides when. The geometry is
:mod:`mux.display.layout`'s.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # after the environment it reads at import
from PIL import Image

from mux.display.backbuffer import BackBuffer, Frame
from mux.display.layout import Rect, fit, overview_tiles, parse_color, text_color
from mux.display.leds import Leds
from mux.errors import DisplayError

log = logging.getLogger(__name__)

BANNER_H = 32
DEFAULT_SIZE = (1024, 768 + BANNER_H)
LABEL_H = 26
NO_PERSONA_COLOR = (64, 64, 64)
OVERVIEW_BACKGROUND = (24, 24, 24)


class WindowCanvas:
    """The window's surface and everything drawn on it; see the module docstring."""

    def __init__(self, colors: Mapping[str, str], backbuffer: BackBuffer) -> None:
        """``colors`` maps each persona, in overview order, to its banner colour.

        Raises:
            DisplayError: a colour is not six hex digits.
        """
        self.colors = {name: parse_color(color) for name, color in colors.items()}
        self.names = list(colors)
        self.backbuffer = backbuffer
        self._screen: pygame.Surface | None = None
        self._font: pygame.font.Font | None = None
        self._banner_drawn: tuple[object, ...] | None = None
        self.overview_drawn = 0.0  # time.monotonic() of the last overview drawn

    @property
    def is_open(self) -> bool:
        return self._screen is not None

    def open(self, fullscreen: bool) -> None:
        """Open the window (or the whole screen).

        Raises:
            DisplayError: SDL has no usable video driver or display.
        """
        try:
            pygame.display.init()
            pygame.font.init()
            if fullscreen:
                screen = pygame.display.set_mode((0, 0), pygame.FULLSCREEN)
            else:
                screen = pygame.display.set_mode(_window_size(), pygame.RESIZABLE)
        except pygame.error as exc:
            pygame.display.quit()
            driver = os.environ.get("SDL_VIDEODRIVER", "SDL's default driver")
            raise DisplayError(f"cannot open a window with {driver}: {exc}") from exc
        self._screen = screen
        self._font = pygame.font.Font(None, 26)
        pygame.key.stop_text_input()  # raw key events only: no IME, no TEXTINPUT
        pygame.display.set_caption("mux")
        log.info("window output: %dx%d with SDL driver %s", *screen.get_size(), pygame.display.get_driver())

    def close(self) -> None:
        """Close the window; safe to call twice or before :meth:`open`."""
        if self._screen is not None:
            self._screen = None
            pygame.display.quit()

    def surface(self) -> pygame.Surface:
        """The window's surface (a resize gives SDL a new one).

        Raises:
            DisplayError: the window is not open.
        """
        if self._screen is None:
            raise DisplayError("the window is not open")
        self._screen = pygame.display.get_surface() or self._screen
        return self._screen

    def guest_area(self) -> Rect:
        """Everything below the banner."""
        width, height = self.surface().get_size()
        return Rect(0, BANNER_H, width, max(height - BANNER_H, 0))

    def guest_picture(self, frame: Frame | None) -> Rect | None:
        """Where ``frame`` is drawn in the window (letterboxed), if anywhere."""
        if frame is None:
            return None
        area = self.guest_area()
        return fit(frame.image.size, Rect(0, 0, area.width, area.height)).move(area.x, area.y)

    def overview_tiles(self) -> list[tuple[str, Rect]]:
        """Each persona's tile in the overview, in order."""
        return list(zip(self.names, overview_tiles(len(self.names), self.guest_area()), strict=True))

    def draw_guest(self, frame: Frame | None) -> None:
        """Draw ``frame`` into the guest area only (a clipped subsurface); black if None."""
        area = self.guest_area()
        guest = self.surface().subsurface(area)
        if frame is None:
            guest.fill((0, 0, 0))
            return
        image = frame.image
        target = fit(image.size, Rect(0, 0, area.width, area.height))
        if target.size != area.size:
            guest.fill((0, 0, 0))
        picture = _to_surface(image)
        if target.size != image.size:
            picture = pygame.transform.smoothscale(picture, target.size)
        guest.blit(picture, target)

    def draw_banner(self, name: str | None, leds: Leds | None, overview: bool,
                    force: bool = True) -> Rect | None:
        """Draw the banner (never covered by guest pixels); returns its rectangle, or None
        when it is unchanged and not ``force``d (guest frames never touch it)."""
        screen = self.surface()
        rect = Rect(0, 0, screen.get_width(), BANNER_H)
        key = (name, leds, overview, rect.width)
        if not force and key == self._banner_drawn:
            return None
        self._banner_drawn = key
        color = self.colors.get(name or "", NO_PERSONA_COLOR)
        ink = text_color(color)
        screen.fill(color, rect)
        screen.fill((0, 0, 0), Rect(0, BANNER_H - 2, rect.width, 2))
        font = self._font
        if font is None:
            return rect
        title = name or "no persona"
        if overview:
            title += "  |  overview: press 1-9 or click a picture; Pause goes back"
        text = font.render(title, True, ink)
        screen.blit(text, (10, (BANNER_H - 2 - text.get_height()) // 2))
        x = rect.right - 10
        for label, on in reversed((("Caps", leds.caps if leds else False),
                                   ("Num", leds.num if leds else False),
                                   ("Scroll", leds.scroll if leds else False))):
            glyph = font.render(label, True, color if on else ink)
            box = Rect(x - glyph.get_width() - 10, 5, glyph.get_width() + 10, BANNER_H - 12)
            if on:
                screen.fill(ink, box)
            else:
                pygame.draw.rect(screen, ink, box, 1)
            screen.blit(glyph, glyph.get_rect(center=box.center))
            x = box.x - 6
        return rect

    def draw_overview(self, active: str | None) -> None:
        """Every persona's back-buffered frame in its tile, labelled; ``active`` outlined."""
        screen = self.surface()
        screen.fill(OVERVIEW_BACKGROUND, self.guest_area())
        font = self._font
        for index, (name, tile) in enumerate(self.overview_tiles()):
            color = self.colors[name]
            picture_area = Rect(tile.x, tile.y, tile.width, max(tile.height - LABEL_H, 0))
            frame = self.backbuffer.get(name)
            if frame is not None:
                target = fit(frame.image.size, picture_area)
                screen.blit(pygame.transform.smoothscale(_to_surface(frame.image), target.size), target)
            label = Rect(tile.x, picture_area.bottom, tile.width, LABEL_H)
            screen.fill(color, label)
            if font is not None:
                mark = " (active)" if name == active else ""
                screen.blit(font.render(f"{index + 1}  {name}{mark}", True, text_color(color)),
                            (label.x + 6, label.y + 4))
            if name == active:
                pygame.draw.rect(screen, (255, 255, 255), tile.inflate(6, 6), 3)
        self.overview_drawn = time.monotonic()

    def redraw(self, name: str | None, frame: Frame | None, leds: Leds | None, overview: bool) -> None:
        """Draw everything again and show it (after a resize, an expose, the overview)."""
        if self._screen is None:
            return
        if overview:
            self.draw_overview(name)
        else:
            self.draw_guest(frame)
        self.draw_banner(name, leds, overview)
        pygame.display.flip()


def _window_size() -> tuple[int, int]:
    """:data:`DEFAULT_SIZE`, shrunk (aspect kept) to 90% of a smaller desktop."""
    if pygame.display.get_driver() in ("dummy", "offscreen"):
        return DEFAULT_SIZE  # no desktop to fit
    try:
        desktop = pygame.display.get_desktop_sizes()[0]
    except (pygame.error, IndexError):
        return DEFAULT_SIZE
    scale = min(1.0, 0.9 * desktop[0] / DEFAULT_SIZE[0], 0.9 * desktop[1] / DEFAULT_SIZE[1])
    if scale <= 0:
        return DEFAULT_SIZE
    return round(DEFAULT_SIZE[0] * scale), round(DEFAULT_SIZE[1] * scale)


def _to_surface(image: Image.Image) -> pygame.Surface:
    """A pygame surface over a copy of a PIL RGB image's pixels."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    return pygame.image.frombuffer(image.tobytes(), image.size, "RGB")
