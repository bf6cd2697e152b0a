"""Drawing the window: the trusted banner, the guest area and the overview.

Theory. The window is split into two regions that never overlap:

- the **banner**, a strip of :data:`BANNER_H` pixels along the top, drawn by mux alone:
  the active persona's name on its configured colour, its lock LEDs, and between them
  the newest pending request for attention (:mod:`mux.app.attention`): the asking
  persona's name and text in a box of *its* colour, framed in the banner's ink, with
  ``(+N)`` for the others pending; it stays, whatever is active, until that persona is
  visited; after it, a short notice while one is shown (``Output.notify``: "copied 42
  characters from home"), in the banner's ink;
- the **guest area**, everything below it, where the persona's frame is drawn scaled
  to fit (aspect kept, letterboxed in black), or the overview's tiles.

Guest pixels are only ever drawn into a rectangle inside the guest area, so whatever a
guest draws (even a fake banner of another persona at the top of its own screen) lands
*below* the real one and cannot cover or change it: the real banner is the one at the
window's top edge, as Qubes OS draws its borders outside the guest.

Drawing goes through a painter (:mod:`mux.display.paint`): SDL's renderer where it is
accelerated, else the window's own surface. Where the window keeps its pixels between
presents (the software cases), a live frame shown unscaled with nothing else changed
redraws only its rectangles: a blinking cursor does not redraw 3 MB. A live frame takes
only the rectangles it changed from the VNC link's framebuffer. Each present draws the
banner (re-rendered only when it changes) and the guest's picture; the overview is
composed once a second on a surface and drawn as one picture.

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
from pygame._sdl2 import video

from mux.display.backbuffer import BackBuffer, Frame
from mux.display.layout import Rect, fit, overview_tiles, parse_color, text_color
from mux.display.leds import Leds
from mux.display.paint import Painter, RendererPainter, SurfacePainter
from mux.errors import DisplayError

log = logging.getLogger(__name__)

BANNER_H = 32
DEFAULT_SIZE = (1024, 768 + BANNER_H)
LABEL_H = 26
NO_PERSONA_COLOR = (64, 64, 64)
OVERVIEW_BACKGROUND = (24, 24, 24)


class WindowCanvas:
    """The window, its renderer and everything drawn on it; see the module docstring."""

    def __init__(self, colors: Mapping[str, str], backbuffer: BackBuffer, *, seat: str | None = None) -> None:
        """``colors`` maps each persona, in overview order, to its banner colour; ``seat``
        (a ``[[seat]]``'s name) is shown before the persona's ("two: home"), None: not shown.

        Raises:
            DisplayError: a colour is not six hex digits.
        """
        self.colors = {name: parse_color(color) for name, color in colors.items()}
        self.names = list(colors)
        self.backbuffer = backbuffer
        self.seat = seat
        self.window: video.Window | None = None
        self._painter: Painter | None = None
        self._font: pygame.font.Font | None = None
        self._banner: tuple[tuple[object, ...], object] | None = None  # (what it shows, its picture)
        self._overview: object | None = None
        self.attention: list[tuple[str, str]] = []  # pending (persona, text), oldest first
        self.notice: str | None = None  # a short notice the banner shows (the window times it)
        self.overview_drawn = 0.0  # time.monotonic() of the last overview drawn
        self._drawn: tuple[object, ...] | None = None  # what the last whole draw showed
        self.partial_draws = 0

    @property
    def is_open(self) -> bool:
        return self._painter is not None

    @property
    def uploaded_pixels(self) -> int:
        """Guest pixels taken from the framebuffers since the window opened (what frames cost)."""
        return self._painter.uploaded_pixels if self._painter is not None else 0

    def open(self, fullscreen: bool, monitor: int | None = None) -> None:
        """Open the window (or the whole screen) on ``monitor`` (SDL's display number; None:
        where SDL puts it).

        Raises:
            DisplayError: SDL has no usable video driver or display, or no such monitor.
        """
        try:
            pygame.display.init()
            pygame.font.init()
            position = _on_monitor(monitor)
            window = video.Window("mux", size=_window_size(), position=position, resizable=True,
                                  fullscreen_desktop=fullscreen)
            try:
                self._painter = _painter(window)
            except (pygame.error, RuntimeError):
                window.destroy()
                raise
        except DisplayError:
            pygame.display.quit()
            raise
        except (pygame.error, RuntimeError) as exc:
            pygame.display.quit()
            driver = os.environ.get("SDL_VIDEODRIVER", "SDL's default driver")
            raise DisplayError(f"cannot open a window with {driver}: {exc}") from exc
        self.window = window
        self._font = pygame.font.Font(None, 26)
        pygame.key.stop_text_input()  # raw key events only: no IME, no TEXTINPUT
        how = "on its surface" if isinstance(self._painter, SurfacePainter) else "by SDL's renderer"
        log.info("window output: %dx%d with SDL driver %s, drawn %s",
                 *window.size, pygame.display.get_driver(), how)

    def close(self) -> None:
        """Close the window; safe to call twice or before :meth:`open`."""
        if self.window is not None:
            self._painter = self._overview = self._banner = None
            self.window.destroy()
            self.window = None
            pygame.display.quit()

    def set_title(self, title: str) -> None:
        if self.window is not None:
            self.window.title = title

    def size(self) -> tuple[int, int]:
        """The window's size in pixels.

        Raises:
            DisplayError: the window is not open.
        """
        if self.window is None:
            raise DisplayError("the window is not open")
        return self.window.size

    def read(self) -> pygame.Surface:
        """What the window shows (read back; for tests)."""
        return self._require().read()

    def _require(self) -> Painter:
        if self._painter is None:
            raise DisplayError("the window is not open")
        return self._painter

    def guest_area(self) -> Rect:
        """Everything below the banner."""
        width, height = self.size()
        return Rect(0, BANNER_H, width, max(height - BANNER_H, 0))

    def guest_picture(self, frame: Frame | None) -> Rect | None:
        """Where ``frame`` is drawn in the window (letterboxed), if anywhere."""
        if frame is None:
            return None
        area = self.guest_area()
        return fit(frame.size, Rect(0, 0, area.width, area.height)).move(area.x, area.y)

    def overview_tiles(self) -> list[tuple[str, Rect]]:
        """Each persona's tile in the overview, in order."""
        return list(zip(self.names, overview_tiles(len(self.names), self.guest_area()), strict=True))

    # --- drawing ----------------------------------------------------------------------

    def _draw_banner(self, name: str | None, leds: Leds | None, overview: bool) -> None:
        painter = self._require()
        width = self.size()[0]
        key = (name, leds, overview, width, tuple(self.attention), self.notice)
        if self._banner is None or self._banner[0] != key:
            self._banner = (key, painter.picture(self._banner_surface(name, leds, overview, width)))
        painter.draw(self._banner[1], Rect(0, 0, width, BANNER_H))

    def _banner_surface(self, name: str | None, leds: Leds | None, overview: bool,
                        width: int) -> pygame.Surface:
        surface = pygame.Surface((width, BANNER_H))
        color = self.colors.get(name or "", NO_PERSONA_COLOR)
        ink = text_color(color)
        surface.fill(color)
        surface.fill((0, 0, 0), Rect(0, BANNER_H - 2, width, 2))
        font = self._font
        if font is None:
            return surface
        title = name or "no persona"
        if self.seat is not None:
            title = f"{self.seat}: {title}"
        if overview:
            title += "  |  overview: press 1-9 or click a picture; Pause goes back"
        text = font.render(title, True, ink)
        surface.blit(text, (10, (BANNER_H - 2 - text.get_height()) // 2))
        x = width - 10
        for label, on in reversed((("Caps", leds.caps if leds else False),
                                   ("Num", leds.num if leds else False),
                                   ("Scroll", leds.scroll if leds else False))):
            glyph = font.render(label, True, color if on else ink)
            box = Rect(x - glyph.get_width() - 10, 5, glyph.get_width() + 10, BANNER_H - 12)
            if on:
                surface.fill(ink, box)
            else:
                pygame.draw.rect(surface, ink, box, 1)
            surface.blit(glyph, glyph.get_rect(center=box.center))
            x = box.x - 6
        left = self._draw_attention(surface, font, 30 + text.get_width(), x - 14, ink)
        if self.notice:
            self._draw_notice(surface, font, self.notice, left, x - 14, ink)
        return surface

    @staticmethod
    def _draw_notice(surface: pygame.Surface, font: pygame.font.Font, notice: str, left: int, right: int,
                     ink: tuple[int, int, int]) -> None:
        """The notice in the banner's ink between ``left`` and ``right`` (cut to fit)."""
        if right - left < 40:
            return
        glyph = font.render(_cut(font, notice, right - left), True, ink)
        surface.blit(glyph, (left, (BANNER_H - 2 - glyph.get_height()) // 2))

    def _draw_attention(self, surface: pygame.Surface, font: pygame.font.Font, left: int, right: int,
                        frame: tuple[int, int, int]) -> int:
        """The newest pending request in a box of its persona's colour (see the module
        docstring); returns where the room after it begins."""
        if not self.attention or right - left < 80:
            return left
        persona, text = self.attention[-1]
        color = self.colors.get(persona, NO_PERSONA_COLOR)
        label = f"{persona}: {text}" if text else f"{persona} asks for attention"
        more = f"  (+{len(self.attention) - 1})" if len(self.attention) > 1 else ""
        glyph = font.render(_cut(font, label, right - left - 16, more) + more, True, text_color(color))
        box = Rect(left, 3, glyph.get_width() + 16, BANNER_H - 8)
        surface.fill(color, box)
        pygame.draw.rect(surface, frame, box, 2)
        surface.blit(glyph, glyph.get_rect(center=box.center))
        return box.right + 14

    def _compose_overview(self, active: str | None) -> None:
        """Every persona's back-buffered frame in its tile, labelled; ``active`` outlined."""
        area = self.guest_area()
        screen = pygame.Surface(area.size)
        screen.fill(OVERVIEW_BACKGROUND)
        font = self._font
        for index, (name, tile) in enumerate(self.overview_tiles()):
            tile = tile.move(-area.x, -area.y)
            color = self.colors[name]
            picture_area = Rect(tile.x, tile.y, tile.width, max(tile.height - LABEL_H, 0))
            frame = self.backbuffer.get(name)
            if frame is not None:
                target = fit(frame.size, picture_area)
                screen.blit(pygame.transform.smoothscale(_to_surface(frame.image), target.size), target)
            label = Rect(tile.x, picture_area.bottom, tile.width, LABEL_H)
            screen.fill(color, label)
            if font is not None:
                mark = " (active)" if name == active else ""
                screen.blit(font.render(f"{index + 1}  {name}{mark}", True, text_color(color)),
                            (label.x + 6, label.y + 4))
            if name == active:
                pygame.draw.rect(screen, (255, 255, 255), tile.inflate(6, 6), 3)
        self._overview = self._require().picture(screen)
        self.overview_drawn = time.monotonic()

    def show(self, name: str | None, frame: Frame | None, leds: Leds | None, overview: bool, *,
             compose: bool = False) -> None:
        """Draw the window (banner, then the guest's picture or the overview) and present it.

        The guest's picture takes ``frame``'s changed rectangles; the overview is composed
        again when ``compose`` is set or there is none yet.
        """
        painter = self._painter
        if painter is None:
            return
        area = self.guest_area()
        picture = None if overview else self.guest_picture(frame)
        if self._draw_changes_only(painter, name, frame, leds, overview, picture):
            return
        if picture != area:  # else the picture and the banner cover the window: no clear
            painter.clear()  # (a clear fills the whole window: ~0.5 ms at 1024x800 in software)
        if overview:
            if compose or self._overview is None:
                self._compose_overview(name)
            assert self._overview is not None
            painter.draw(self._overview, area)
        elif frame is not None and picture is not None:
            painter.draw_guest(frame, picture)
        self._draw_banner(name, leds, overview)
        painter.present()
        self._drawn = self._whole_key(name, frame, leds, overview, picture)

    def _whole_key(self, name: str | None, frame: Frame | None, leds: Leds | None, overview: bool,
                   picture: Rect | None) -> tuple[object, ...]:
        return (name, leds, overview, tuple(self.attention), self.notice, self.size(), picture,
                frame.picture if frame is not None else None)

    def _draw_changes_only(self, painter: Painter, name: str | None, frame: Frame | None, leds: Leds | None,
                           overview: bool, picture: Rect | None) -> bool:
        """On a window that keeps its pixels, a live frame that follows the one drawn last,
        unscaled and with nothing else changed, draws only its rectangles; returns
        whether it did (else the caller draws everything)."""
        if (not painter.retained or frame is None or picture is None
                or (picture.width, picture.height) != frame.size
                or self._drawn != self._whole_key(name, frame, leds, overview, picture)
                or not painter.follows(frame)):  # a version was missed: all of it is drawn
            return False
        painter.draw_guest(frame, picture, changes_only=True)
        painter.present()
        self.partial_draws += 1
        return True


def _painter(window: video.Window) -> Painter:
    """On the window's own surface where SDL would draw in software anyway (the windowless
    drivers, or no accelerated renderer), else SDL's renderer; see :mod:`mux.display.paint`.

    Raises:
        pygame.error, RuntimeError: SDL can draw on this window neither way.
    """
    if pygame.display.get_driver() not in ("dummy", "offscreen"):
        try:
            return RendererPainter(window)
        except RuntimeError as exc:
            log.info("window output: no accelerated renderer (%s): drawing on the window's surface", exc)
    return SurfacePainter(window)


#: SDL_WINDOWPOS_UNDEFINED_DISPLAY(n) is this mask with n in its low bits (SDL_video.h).
_WINDOWPOS_UNDEFINED_MASK = 0x1FFF0000


def _on_monitor(monitor: int | None) -> int | tuple[int, int]:
    """The window position that puts a window on SDL's display ``monitor`` (None: SDL's choice).

    Raises:
        DisplayError: SDL has no display ``monitor``.
    """
    if monitor is None:
        return video.WINDOWPOS_UNDEFINED
    count = pygame.display.get_num_displays()
    if not 0 <= monitor < count:
        raise DisplayError(f"no monitor {monitor}: SDL sees {count} (0 to {count - 1})")
    return _WINDOWPOS_UNDEFINED_MASK | monitor, _WINDOWPOS_UNDEFINED_MASK | monitor


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


def _cut(font: pygame.font.Font, text: str, room: int, after: str = "") -> str:
    """``text``, cut and ended with "..." if it and ``after`` are wider than ``room``."""
    if font.size(text + after)[0] <= room:
        return text
    while len(text) > 1 and font.size(text + "..." + after)[0] > room:
        text = text[:-1]
    return text + "..."


def _to_surface(image: Image.Image) -> pygame.Surface:
    """A pygame surface over a copy of a PIL RGB image's pixels."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    return pygame.image.frombuffer(image.tobytes(), image.size, "RGB")
