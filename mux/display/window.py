"""The window output's event loop: SDL's events in, switches and guest input out.

What the window looks like (banner, guest area, overview) is :mod:`mux.display.canvas`;
this module decides *when* to draw and what each event means:

- a frame presented by the display is drawn at once: its changed rectangles go to the
  guest's texture and SDL draws the window (see :mod:`mux.display.canvas`);
- the **overview** key (Pause, or a click on the banner) shows every persona's
  back-buffered frame side by side; a digit or a click picks one and switches to it,
  Pause or Escape goes back. While it is shown no keys reach a guest;
- **keys typed into the window** (only when the controller passes ``on_input``, i.e. no
  physical keyboard is configured) are translated from SDL scancodes, which are USB HID
  usages, to Linux key codes (:mod:`mux.input.scancodes`) and routed like a physical
  keyboard's, hotkeys included. Keys held when the window loses focus are released in
  the guest. The mouse over the guest's picture is an absolute pointer in that guest.

The loop (:meth:`WindowOutput.run`) reads SDL's events on the asyncio thread. It wakes
when the X server's connection has data (SDL's x11 driver: the connection comes from
``SDL_GetWindowWMInfo``, through ctypes), else polls: every 10 ms for
two seconds after an event, every 40 ms when idle, which keeps an idle window cheap
(every 0.5 s under SDL's windowless ``dummy`` and ``offscreen`` drivers, where events
come only from the program itself).
Drawing happens when a frame is presented, not on a timer (a notice, shown in the banner
for :data:`NOTICE_S`, is taken down by the loop). Closing the window asks mux to stop as
Ctrl-C does. The window title names the active persona too. When the window's size
changes (resized, or made full screen) ``on_resize`` is told its guest area's new size:
the display asks a guest that follows the window for it (:mod:`mux.display.resize`).
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
from collections.abc import Awaitable, Callable, Mapping, Sequence

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # after the environment it reads at import
from PIL import Image

from mux.display.backbuffer import BackBuffer, Frame
from mux.display.canvas import BANNER_H, WindowCanvas
from mux.display.layout import Rect
from mux.display.leds import Leds
from mux.input.events import ABS_X, ABS_Y, EV_ABS, EV_KEY, EV_REL, EV_SYN, REL_WHEEL, SYN_REPORT, InputEvent
from mux.input.router import QEMU_ABS_MAX
from mux.input.scancodes import LINUX_BY_SDL_SCANCODE

log = logging.getLogger(__name__)

InputHandler = Callable[[list[InputEvent]], Awaitable[None]]
SwitchHandler = Callable[[str], Awaitable[object]]
ResizeHandler = Callable[[tuple[int, int]], None]

EVENT_POLL_S = 0.01  # while keys or clicks are coming
IDLE_POLL_S = 0.04  # otherwise (a bare asyncio wake-up at 100 Hz costs ~1.5% of a core here)
#: Idle polling under SDL's windowless drivers: no person can type into them, events come
#: only from the program itself (pygame.event.post), so a wake-up every 40 ms was waste.
HEADLESS_POLL_S = 0.5
HEADLESS_DRIVERS = ("dummy", "offscreen")
BUSY_S = 2.0  # how long after an event polling stays fast
OVERVIEW_REFRESH_S = 1.0
OVERVIEW_KEY = pygame.K_PAUSE
NOTICE_S = 3.0  #: how long the banner shows a notice
_SYN = InputEvent(EV_SYN, SYN_REPORT, 0)
_BUTTONS = {1: 0x110, 2: 0x112, 3: 0x111}  # SDL's left, middle, right -> BTN_LEFT, _MIDDLE, _RIGHT


def linux_key(scancode: int) -> int | None:
    """The Linux key code of an SDL scancode; None for one with no Linux key."""
    return LINUX_BY_SDL_SCANCODE.get(scancode)


def _interrupt() -> None:
    os.kill(os.getpid(), signal.SIGINT)


class WindowOutput:
    """An SDL window showing the active persona; see the module docstring."""

    kind = "window"

    def __init__(self, colors: Mapping[str, str], backbuffer: BackBuffer, *, fullscreen: bool = False,
                 on_input: InputHandler | None = None, on_switch: SwitchHandler | None = None,
                 on_close: Callable[[], None] = _interrupt, seat: str | None = None,
                 monitor: int | None = None) -> None:
        """``seat`` labels the banner and title ("two: home"; None: the persona alone, the
        implicit seat's); ``monitor`` is the SDL display the window opens on (None: SDL's
        choice)."""
        self.canvas = WindowCanvas(colors, backbuffer, seat=seat)
        self.seat = seat
        self.monitor = monitor
        self.names = list(colors)
        self.backbuffer = backbuffer
        self.fullscreen = fullscreen
        self.on_input = on_input
        self.on_switch = on_switch
        self.on_close = on_close
        self.on_resize: ResizeHandler | None = None
        self.notice_until = 0.0  # time.monotonic() when the banner's notice goes
        self.overview = False
        self.presented = 0
        self._name: str | None = None
        self._frame: Frame | None = None
        self._leds: Leds | None = None
        self._leds_told: dict[str, Leds | None] = {}  # the newest LEDs shown for each persona
        self._pressed: set[int] = set()  # Linux codes sent down, not yet up

    # --- lifecycle --------------------------------------------------------------------

    def open(self) -> None:
        """Open the window (or the whole screen).

        Raises:
            DisplayError: SDL has no usable video driver or display.
        """
        self.canvas.open(self.fullscreen, self.monitor)
        self._redraw()

    def close(self) -> None:
        """Close the window; safe to call twice or before :meth:`open`."""
        self.canvas.close()

    # --- what the display calls -------------------------------------------------------

    def present(self, name: str, frame: Frame | None) -> None:
        switched = name != self._name
        self._name, self._frame = name, frame
        self.presented += 1
        if switched:  # LEDs told before the switch's present are drawn with it (one draw)
            self._leds = self._leds_told.get(name)
            self.canvas.set_title(f"mux: {name}" if self.seat is None else f"mux: {self.seat}: {name}")
        if not self.canvas.is_open or (self.overview and not switched):
            return
        self.overview = False
        self.canvas.show(name, frame, self._leds, overview=False)

    def show_leds(self, name: str, leds: Leds | None) -> None:
        self._leds_told[name] = leds
        if name != self._name or not self.canvas.is_open:
            return
        self._leds = leds
        self.canvas.show(name, self._frame, leds, self.overview)

    def show_attention(self, requests: Sequence[tuple[str, str]]) -> None:
        """The banner shows the newest pending request (see :mod:`mux.display.canvas`)."""
        self.canvas.attention = list(requests)
        if self.canvas.is_open:
            self.canvas.show(self._name, self._frame, self._leds, self.overview)

    def notify(self, text: str) -> None:
        """Show a notice in the banner for :data:`NOTICE_S` (and log it)."""
        log.info("%s", text)
        self.canvas.notice = " ".join(text.split())[:200]  # one line, bounded
        self.notice_until = time.monotonic() + NOTICE_S
        if self.canvas.is_open:
            self.canvas.show(self._name, self._frame, self._leds, self.overview)

    def expire_notice(self, now: float) -> None:
        """Take the banner's notice down if its time is over at ``now``."""
        if self.canvas.notice is not None and now >= self.notice_until:
            self.canvas.notice = None
            if self.canvas.is_open:
                self.canvas.show(self._name, self._frame, self._leds, self.overview)

    def guest_area_size(self) -> tuple[int, int] | None:
        """The window below the banner; None while it is not open."""
        return self.canvas.guest_area().size if self.canvas.is_open else None

    def current_frame(self) -> tuple[str, Image.Image, float] | None:
        if self._name is None or self._frame is None:
            return None
        return self._name, self._frame.image, self._frame.captured

    def toggle_overview(self) -> None:
        """Show every persona's back-buffer side by side, or go back to the active one."""
        self.overview = not self.overview
        self._redraw()

    def _redraw(self) -> None:
        self.canvas.show(self._name, self._frame, self._leds, self.overview, compose=True)

    def _guest_picture(self) -> Rect | None:
        """Where the guest's picture is drawn in the window (letterboxed), if anywhere."""
        return self.canvas.guest_picture(self._frame)

    # --- events -----------------------------------------------------------------------

    async def run(self) -> None:
        """Handle window events until cancelled; never raises for a bad event."""
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        fd = _x11_fd(self.canvas.window)
        if fd is not None:
            loop.add_reader(fd, wake.set)
        busy_until = 0.0
        idle_poll = HEADLESS_POLL_S if pygame.display.get_driver() in HEADLESS_DRIVERS else IDLE_POLL_S
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
                if self.overview and time.monotonic() - self.canvas.overview_drawn > OVERVIEW_REFRESH_S:
                    self._redraw()
                self.expire_notice(time.monotonic())
                fast = fd is None and time.monotonic() < busy_until
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(EVENT_POLL_S if fast else idle_poll):
                        await wake.wait()
        finally:
            if fd is not None:
                loop.remove_reader(fd)
            await self._release_held()

    async def _handle(self, event: pygame.event.Event) -> None:
        if event.type == pygame.QUIT:
            log.info("window closed: stopping mux")
            self.on_close()
        elif event.type == pygame.WINDOWSIZECHANGED:
            self._redraw()
            area = self.guest_area_size()
            if self.on_resize is not None and area is not None:
                self.on_resize(area)
        elif event.type == pygame.WINDOWEXPOSED:
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
        for name, tile in self.canvas.overview_tiles():
            if tile.collidepoint(*pos):
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


class _SysWmX11(ctypes.Structure):
    """SDL_SysWMinfo (SDL 2) as far as its X11 member: version, subsystem, Display*, Window."""

    _fields_ = (("version", ctypes.c_uint8 * 3), ("subsystem", ctypes.c_int),
                ("display", ctypes.c_void_p), ("window", ctypes.c_ulong), ("padding", ctypes.c_uint8 * 64))


def x11_window(window: object) -> tuple[int, int] | None:
    """(X connection fd, X window id) of an SDL window on SDL's x11 driver, else None."""
    if pygame.display.get_driver() != "x11" or window is None:
        return None
    try:
        sdl = ctypes.CDLL(_sdl_library())
        sdl.SDL_GetWindowFromID.restype = ctypes.c_void_p
        sdl.SDL_GetWindowFromID.argtypes = [ctypes.c_uint32]
        sdl.SDL_GetWindowWMInfo.argtypes = [ctypes.c_void_p, ctypes.POINTER(_SysWmX11)]
        handle = sdl.SDL_GetWindowFromID(int(window.id))  # type: ignore[attr-defined]
        info = _SysWmX11()
        info.version[:] = pygame.get_sdl_version(linked=True)
        if not handle or not sdl.SDL_GetWindowWMInfo(handle, ctypes.byref(info)) or not info.display:
            return None
        libx11 = ctypes.CDLL(ctypes.util.find_library("X11") or "libX11.so.6")
        libx11.XConnectionNumber.argtypes = [ctypes.c_void_p]
        libx11.XConnectionNumber.restype = ctypes.c_int
        return int(libx11.XConnectionNumber(info.display)), int(info.window)
    except (OSError, ValueError, AttributeError) as exc:
        log.debug("window: no X connection to wait on (%s); polling", exc)
        return None


def _sdl_library() -> str:
    """The SDL 2 library pygame is linked with (its wheel's own copy, else the system's)."""
    libs = os.path.join(os.path.dirname(os.path.dirname(pygame.__file__)), "pygame_ce.libs")
    with contextlib.suppress(OSError):
        for name in sorted(os.listdir(libs)):
            if name.startswith("libSDL2-"):
                return os.path.join(libs, name)
    return ctypes.util.find_library("SDL2-2.0") or "libSDL2-2.0.so.0"


def _x11_fd(window: object) -> int | None:
    """The file descriptor of SDL's X server connection; None on other drivers or failure."""
    handles = x11_window(window)
    return handles[0] if handles and handles[0] >= 0 else None
