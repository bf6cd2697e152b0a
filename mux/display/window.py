"""The window output: the active persona in a window (or full screen) under a trusted banner.

Theory. The window is split into two regions that never overlap:

- the **banner**, a strip of :data:`BANNER_H` pixels along the top, drawn by mux alone:
  the active persona's name on its configured colour, and its lock LEDs;
- the **guest area**, everything below it, where the persona's frame is drawn scaled
  to fit (aspect kept, letterboxed in black).

Guest pixels are only ever blitted into a subsurface of the guest area, which SDL clips
to that rectangle, so whatever a guest draws (even a fake banner of another persona
at the top of its own screen) lands *below* the real one and cannot cover or change it:
the real banner is the one at the window's top edge, as Qubes OS draws its borders
outside the guest. The window title names the persona too.

The **overview** key (Pause, or a click on the banner) replaces the guest area with
every persona's back-buffered frame side by side; a digit or a click picks one and
switches to it, Pause or Escape goes back. While it is shown no keys reach a guest.

**Keys typed into the window** (only when the controller passes ``on_input``, i.e. no
physical keyboard is configured) are translated from SDL scancodes, which are USB HID
usages, to Linux key codes (:mod:`mux.input.scancodes`) and routed like a physical keyboard's,
hotkeys included. Keys held when the window loses focus are released in the guest.

The event loop (:meth:`WindowOutput.run`) reads SDL's events on the asyncio thread. It
wakes when the X server's connection has data (SDL's x11 driver), else polls: every
10 ms for two seconds after an event, every 40 ms when idle, which keeps an idle window
cheap. Drawing happens when a frame is presented, not on a timer. Closing the window
asks mux to stop as Ctrl-C does.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # after the environment it reads at import
from PIL import Image

from mux.display.backbuffer import BackBuffer, Frame
from mux.display.layout import fit, overview_tiles, parse_color, text_color
from mux.display.leds import Leds
from mux.display.output import InputHandler, SwitchHandler
from mux.errors import DisplayError
from mux.input.events import ABS_X, ABS_Y, EV_ABS, EV_KEY, EV_REL, EV_SYN, REL_WHEEL, SYN_REPORT, InputEvent
from mux.input.router import QEMU_ABS_MAX
from mux.input.scancodes import LINUX_BY_SDL_SCANCODE

log = logging.getLogger(__name__)

BANNER_H = 32
DEFAULT_SIZE = (1024, 768 + BANNER_H)
EVENT_POLL_S = 0.01  # while keys or clicks are coming
IDLE_POLL_S = 0.04  # otherwise (a bare asyncio wake-up at 100 Hz costs ~1.5% of a core here)
BUSY_S = 2.0  # how long after an event polling stays fast
OVERVIEW_REFRESH_S = 1.0
OVERVIEW_KEY = pygame.K_PAUSE
LABEL_H = 26
_SYN = InputEvent(EV_SYN, SYN_REPORT, 0)
_BUTTONS = {1: 0x110, 2: 0x112, 3: 0x111}  # SDL's left, middle, right -> BTN_LEFT, _MIDDLE, _RIGHT


def linux_key(scancode: int) -> int | None:
    """The Linux key code of an SDL scancode; None for one with no Linux key."""
    return LINUX_BY_SDL_SCANCODE.get(scancode)


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


def _interrupt() -> None:
    os.kill(os.getpid(), signal.SIGINT)


class WindowOutput:
    """An SDL window showing the active persona; see the module docstring."""

    kind = "window"

    def __init__(self, colors: Mapping[str, str], backbuffer: BackBuffer, *, fullscreen: bool = False,
                 on_input: InputHandler | None = None, on_switch: SwitchHandler | None = None,
                 on_close: Callable[[], None] = _interrupt) -> None:
        self.colors = {name: parse_color(color) for name, color in colors.items()}
        self.names = list(colors)
        self.backbuffer = backbuffer
        self.fullscreen = fullscreen
        self.on_input = on_input
        self.on_switch = on_switch
        self.on_close = on_close
        self.overview = False
        self.presented = 0
        self._screen: pygame.Surface | None = None
        self._font: pygame.font.Font | None = None
        self._name: str | None = None
        self._frame: Frame | None = None
        self._leds: Leds | None = None
        self._pressed: set[int] = set()  # Linux codes sent down, not yet up
        self._overview_drawn = 0.0
        self._banner_drawn: tuple[object, ...] | None = None

    # --- lifecycle --------------------------------------------------------------------

    def open(self) -> None:
        """Open the window (or the whole screen).

        Raises:
            DisplayError: SDL has no usable video driver or display.
        """
        try:
            pygame.display.init()
            pygame.font.init()
            if self.fullscreen:
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
        self._redraw()

    def close(self) -> None:
        """Close the window; safe to call twice or before :meth:`open`."""
        if self._screen is not None:
            self._screen = None
            pygame.display.quit()

    # --- what the display calls -------------------------------------------------------

    def present(self, name: str, frame: Frame | None) -> None:
        switched = name != self._name
        self._name, self._frame = name, frame
        self.presented += 1
        if switched:
            self._leds = None
            pygame.display.set_caption(f"mux: {name}")
        if self._screen is None or (self.overview and not switched):
            return
        self.overview = False
        self._draw_guest()
        if self._draw_banner(force=False) is None:
            pygame.display.update(self._guest_area())  # the banner is as it was
        else:
            pygame.display.flip()

    def show_leds(self, name: str, leds: Leds | None) -> None:
        if name != self._name or self._screen is None:
            return
        self._leds = leds
        rect = self._draw_banner(force=False)
        if rect is not None:
            pygame.display.update(rect)

    def current_frame(self) -> tuple[str, Image.Image, float] | None:
        if self._name is None or self._frame is None:
            return None
        return self._name, self._frame.image, self._frame.captured

    def toggle_overview(self) -> None:
        """Show every persona's back-buffer side by side, or go back to the active one."""
        self.overview = not self.overview
        self._redraw()

    # --- drawing ----------------------------------------------------------------------

    def _surface(self) -> pygame.Surface:
        if self._screen is None:
            raise DisplayError("the window is not open")
        self._screen = pygame.display.get_surface() or self._screen
        return self._screen

    def _guest_area(self) -> pygame.Rect:
        width, height = self._surface().get_size()
        return pygame.Rect(0, BANNER_H, width, max(height - BANNER_H, 0))

    def _redraw(self) -> None:
        if self._screen is None:
            return
        if self.overview:
            self._draw_overview()
        else:
            self._draw_guest()
        self._draw_banner()
        pygame.display.flip()

    def _draw_guest(self) -> None:
        """Draw the frame into the guest area only (a clipped subsurface)."""
        area = self._guest_area()
        guest = self._surface().subsurface(area)
        if self._frame is None:
            guest.fill((0, 0, 0))
            return
        image = self._frame.image
        target = fit(image.size, pygame.Rect((0, 0), area.size))
        if target.size != area.size:
            guest.fill((0, 0, 0))
        picture = _to_surface(image)
        if target.size != image.size:
            picture = pygame.transform.smoothscale(picture, target.size)
        guest.blit(picture, target)

    def _draw_banner(self, force: bool = True) -> pygame.Rect | None:
        """Draw the banner (never covered by guest pixels); returns its rectangle, or None
        when it is unchanged and not ``force``d (guest frames never touch it)."""
        screen = self._surface()
        rect = pygame.Rect(0, 0, screen.get_width(), BANNER_H)
        key = (self._name, self._leds, self.overview, rect.width)
        if not force and key == self._banner_drawn:
            return None
        self._banner_drawn = key
        color = self.colors.get(self._name or "", (64, 64, 64))
        ink = text_color(color)
        screen.fill(color, rect)
        screen.fill((0, 0, 0), pygame.Rect(0, BANNER_H - 2, rect.width, 2))
        font = self._font
        if font is None:
            return rect
        title = self._name or "no persona"
        if self.overview:
            title += "  |  overview: press 1-9 or click a picture; Pause goes back"
        text = font.render(title, True, ink)
        screen.blit(text, (10, (BANNER_H - 2 - text.get_height()) // 2))
        x = rect.right - 10
        for label, on in reversed((("Caps", self._leds.caps if self._leds else False),
                                   ("Num", self._leds.num if self._leds else False),
                                   ("Scroll", self._leds.scroll if self._leds else False))):
            glyph = font.render(label, True, color if on else ink)
            box = pygame.Rect(0, 5, glyph.get_width() + 10, BANNER_H - 12)
            box.right = x
            if on:
                screen.fill(ink, box)
            else:
                pygame.draw.rect(screen, ink, box, 1)
            screen.blit(glyph, glyph.get_rect(center=box.center))
            x = box.left - 6
        return rect

    def _draw_overview(self) -> None:
        area = self._guest_area()
        screen = self._surface()
        screen.fill((24, 24, 24), area)
        font = self._font
        for index, (name, tile) in enumerate(zip(self.names, overview_tiles(len(self.names), area),
                                                 strict=True)):
            color = self.colors[name]
            picture_area = pygame.Rect(tile.x, tile.y, tile.width, max(tile.height - LABEL_H, 0))
            frame = self.backbuffer.get(name)
            if frame is not None:
                target = fit(frame.image.size, picture_area)
                screen.blit(pygame.transform.smoothscale(_to_surface(frame.image), target.size), target)
            label = pygame.Rect(tile.x, picture_area.bottom, tile.width, LABEL_H)
            screen.fill(color, label)
            if font is not None:
                active = " (active)" if name == self._name else ""
                screen.blit(font.render(f"{index + 1}  {name}{active}", True, text_color(color)),
                            (label.x + 6, label.y + 4))
            if name == self._name:
                pygame.draw.rect(screen, (255, 255, 255), tile.inflate(6, 6), 3)
        self._overview_drawn = time.monotonic()

    # --- events -----------------------------------------------------------------------

    async def run(self) -> None:
        """Handle window events until cancelled; never raises for a bad event."""
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        fd = _x11_fd()
        if fd is not None:
            loop.add_reader(fd, wake.set)
        busy_until = 0.0
        try:
            while True:
                wake.clear()
                events = pygame.event.get()
                if events:
                    busy_until = time.monotonic() + BUSY_S
                for event in events:
                    try:
                        await self._handle(event)
                    except Exception:
                        log.exception("window: handling %s failed", pygame.event.event_name(event.type))
                if self.overview and time.monotonic() - self._overview_drawn > OVERVIEW_REFRESH_S:
                    self._redraw()
                fast = fd is None and time.monotonic() < busy_until
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(EVENT_POLL_S if fast else IDLE_POLL_S):
                        await wake.wait()
        finally:
            if fd is not None:
                loop.remove_reader(fd)
            await self._release_held()

    async def _handle(self, event: pygame.event.Event) -> None:
        if event.type == pygame.QUIT:
            log.info("window closed: stopping mux")
            self.on_close()
        elif event.type in (pygame.WINDOWSIZECHANGED, pygame.WINDOWEXPOSED):
            self._redraw()
        elif event.type == pygame.WINDOWFOCUSLOST:
            await self._release_held()
        elif event.type == pygame.MOUSEBUTTONDOWN and (event.pos[1] < BANNER_H or self.overview):
            if event.button == 1:
                await self._click(event.pos)
        elif event.type in (pygame.MOUSEMOTION, pygame.MOUSEBUTTONDOWN, pygame.MOUSEBUTTONUP,
                            pygame.MOUSEWHEEL):
            await self._mouse(event)
        elif event.type == pygame.KEYDOWN:
            await self._key_down(event)
        elif event.type == pygame.KEYUP:
            await self._key_up(event)

    def _guest_picture(self) -> pygame.Rect | None:
        """Where the guest's picture is drawn in the window (letterboxed), if anywhere."""
        if self._frame is None:
            return None
        area = self._guest_area()
        return fit(self._frame.image.size, pygame.Rect((0, 0), area.size)).move(area.topleft)

    async def _mouse(self, event: pygame.event.Event) -> None:
        """The window's mouse as an absolute pointer (QEMU's 0..0x7fff) in the active guest."""
        picture = self._guest_picture()
        if self.on_input is None or self.overview or picture is None:
            return
        if event.type == pygame.MOUSEWHEEL:
            if event.y:
                await self.on_input([InputEvent(EV_REL, REL_WHEEL, int(event.y)), _SYN])
            return
        x, y = event.pos
        if not picture.collidepoint(x, y):
            return
        events = [InputEvent(EV_ABS, ABS_X, (x - picture.x) * QEMU_ABS_MAX // max(picture.w - 1, 1)),
                  InputEvent(EV_ABS, ABS_Y, (y - picture.y) * QEMU_ABS_MAX // max(picture.h - 1, 1))]
        button = _BUTTONS.get(getattr(event, "button", 0))
        if event.type != pygame.MOUSEMOTION and button is not None:
            down = event.type == pygame.MOUSEBUTTONDOWN
            if down == (button in self._pressed):
                return
            (self._pressed.add if down else self._pressed.discard)(button)
            events.append(InputEvent(EV_KEY, button, int(down)))
        await self.on_input([*events, _SYN])

    async def _click(self, pos: tuple[int, int]) -> None:
        if pos[1] < BANNER_H:
            self.toggle_overview()
            await self._release_held()
            return
        if not self.overview:
            return
        for name, tile in zip(self.names, overview_tiles(len(self.names), self._guest_area()), strict=True):
            if tile.collidepoint(pos):
                await self._pick(name)
                return

    async def _pick(self, name: str) -> None:
        self.overview = False
        if self.on_switch is not None and name != self._name:
            await self.on_switch(name)  # presents the new persona
        else:
            self._redraw()

    async def _key_down(self, event: pygame.event.Event) -> None:
        if event.key == OVERVIEW_KEY:
            self.toggle_overview()
            await self._release_held()
            return
        if self.overview:
            if event.key == pygame.K_ESCAPE:
                self.toggle_overview()
            elif pygame.K_1 <= event.key <= pygame.K_9 and event.key - pygame.K_1 < len(self.names):
                await self._pick(self.names[event.key - pygame.K_1])
            return
        code = linux_key(event.scancode)
        if code is None:
            log.debug("window: SDL scancode %d has no Linux key code", event.scancode)
            return
        if self.on_input is not None and code not in self._pressed:
            self._pressed.add(code)
            await self.on_input([InputEvent(EV_KEY, code, 1), _SYN])

    async def _key_up(self, event: pygame.event.Event) -> None:
        code = linux_key(event.scancode)
        if code is not None and code in self._pressed and self.on_input is not None:
            self._pressed.discard(code)
            await self.on_input([InputEvent(EV_KEY, code, 0), _SYN])

    async def _release_held(self) -> None:
        """Release in the guest every key typed into the window and still held."""
        held, self._pressed = self._pressed, set()
        if held and self.on_input is not None:
            await self.on_input([*(InputEvent(EV_KEY, code, 0) for code in sorted(held)), _SYN])


def _x11_fd() -> int | None:
    """The file descriptor of SDL's X server connection; None on other drivers or failure."""
    if pygame.display.get_driver() != "x11":
        return None
    try:
        capsule = pygame.display.get_wm_info()["display"]
        get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
        get_pointer.restype = ctypes.c_void_p
        get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
        libx11 = ctypes.CDLL(ctypes.util.find_library("X11") or "libX11.so.6")
        libx11.XConnectionNumber.argtypes = [ctypes.c_void_p]
        libx11.XConnectionNumber.restype = ctypes.c_int
        fd = int(libx11.XConnectionNumber(get_pointer(capsule, b"display")))
    except (KeyError, OSError, ValueError, AttributeError) as exc:
        log.debug("window: no X connection to wait on (%s); polling", exc)
        return None
    return fd if fd >= 0 else None


def _to_surface(image: Image.Image) -> pygame.Surface:
    """A pygame surface over a copy of a PIL RGB image's pixels."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    return pygame.image.frombuffer(image.tobytes(), image.size, "RGB")
