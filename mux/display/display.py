"""The display: per-persona VNC links, the back-buffer, each seat's output and LEDs, together.

Theory. Each persona's QEMU serves VNC; :class:`DisplayLink` keeps the persona's VNC
link (:meth:`Persona.vnc_link <mux.guest.persona.Persona.vnc_link>`, a
:class:`~mux.guest.rfb.RfbClient`: only :mod:`mux.guest` opens QEMU's sockets) up while the
persona is running (told by ``Persona.listeners``), and reconnects when the link drops
or the persona restarts, with a short back-off. The link carries:

- the guest's **LED state**, always, to the :class:`~mux.display.leds.LedRouter`;
- **the changes of each interval** while the persona is not active: one incremental
  request every ``backbuffer_interval_s`` (and a whole frame every
  :data:`~mux.display.link.FULL_POLL_S`), so an unchanged screen sends nothing and costs nothing. Once
  the link has had a whole frame (:attr:`RfbClient.complete`), its framebuffer is the
  persona's picture, and each update goes to the back-buffer. QEMU's VNC server slows
  its own refresh down to once every 3 s while nothing changes, so after a quiet spell
  a change reaches the back-buffer up to that late;
- **live frames**, only while the persona is active. After a link goes live (a switch
  to it, or a reconnect) its first frames may be built on a stale picture (an update
  QEMU still owed from an earlier request), so nothing is used until a whole-screen
  update has arrived (:meth:`RfbClient.frame`); frames that came meanwhile are kept
  aside and the newest of them from that full frame on is taken. A live link that has
  sent nothing for an interval asks for a whole frame again (see
  :meth:`DisplayLink.keep_fresh`).

:class:`Display` puts it together:

- the active persona's back-buffer follows its live frames, the others' their links'
  changes; a running persona whose link has no whole picture yet (not connected, or no
  synced live picture and no whole frame on its way) is refreshed with QMP
  ``screendump`` every ``backbuffer_interval_s``, read and decoded in a thread (a
  1024x768 one blocked the event loop ~10 ms here: a switch then waited for it);
- every frame kept for the active persona is presented on the output, and only those:
  an inactive persona's frames go to the back-buffer, never to the output;
- each seat has a :class:`~mux.display.screen.Screen` (its output, the persona it shows,
  its keyboards' LEDs, its guest sizer); a config without ``[[seat]]`` has one, and
  ``output``, ``active`` and ``leds`` here are the first seat's. A persona is active on at
  most one seat, so a frame is presented on at most one output;
- :meth:`Display.switch` (the display's part of a switch of one seat, applied by
  :mod:`mux.app.switcher`) writes the new persona's LEDs to that seat's keyboards, presents
  its back-buffered frame at once on that seat's output (the window draws once, frame and
  LEDs together), then turns its link live (and the old persona's back, unless another seat
  shows it); a persona that follows the window (``vga = "virtio"``, ``resize_guest``) is
  then asked for its seat's window size, as the active one is whenever the window is
  resized (:mod:`mux.display.resize`).

Nothing here raises into the controller's loops: a link or a screendump that fails is
logged and retried.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image

from mux.config import DisplaySection
from mux.config.machine import follows_window
from mux.display.backbuffer import BackBuffer, Frame, Pixels, bgrx_image, decode_image, fingerprint
from mux.display.leds import LedRouter, Leds
from mux.display.link import DisplayLink
from mux.display.output import HeadlessOutput, Output
from mux.display.resize import GuestSizer, SizedLink
from mux.display.screen import Screen
from mux.errors import DisplayError, PersonaError
from mux.guest.persona import Persona
from mux.guest.state import RunState

DEFAULT_SEAT = "default"  # mux.input.seats.DEFAULT_SEAT (the display does not import input)

log = logging.getLogger(__name__)

def _read_dump(path: Path) -> tuple[bytes, int]:
    data = path.read_bytes()
    return data, fingerprint(data)


class Display:
    """Links, back-buffer, and one :class:`~mux.display.screen.Screen` per seat."""

    def __init__(self, names: list[str], config: DisplaySection,
                 seats: Sequence[str] = (DEFAULT_SEAT,)) -> None:
        self.config = config
        self.interval = config.backbuffer_interval_s
        self.backbuffer = BackBuffer(names)
        self.links: dict[str, DisplayLink] = {}
        self.screendumps = 0
        first = Screen(seats[0], names, self._sized_link)
        self.screens = {seats[0]: first, **{seat: Screen(seat, names, self._sized_link, shares=first.leds)
                                            for seat in seats[1:]}}
        self._personas: Mapping[str, Persona] = {}
        self._runtime_dir = Path()
        self._dump_locks: dict[str, asyncio.Lock] = {name: asyncio.Lock() for name in names}
        self.backbuffer.listeners.append(self._kept)

    # The first seat's screen (the only one without [[seat]]): what a single-seat caller means.
    @property
    def primary(self) -> Screen:
        return next(iter(self.screens.values()))

    @property
    def output(self) -> Output:
        return self.primary.output

    @property
    def active(self) -> str | None:
        return self.primary.active

    @property
    def leds(self) -> LedRouter:
        """The first seat's LEDs (every seat's router reads the same per-persona state)."""
        return self.primary.leds

    @property
    def sizer(self) -> GuestSizer:
        return self.primary.sizer

    def attach(self, personas: Mapping[str, Persona], runtime_dir: Path, output: Output,
               others: Mapping[str, Output] | None = None) -> None:
        """Connect to the personas (links follow their run state) and the outputs: ``output``
        is the first seat's, ``others`` the other seats' by name."""
        self._personas = personas
        self._runtime_dir = runtime_dir
        self.links = {name: DisplayLink(persona, self) for name, persona in personas.items()}
        follow = frozenset(name for name, persona in personas.items()
                           if follows_window(self.config, persona.config))
        for seat, screen in self.screens.items():
            mine = output if screen is self.primary else (others or {}).get(seat, HeadlessOutput())
            screen.attach(mine, follow)

    async def run(self) -> None:
        """The links, the back-buffer refresher, each screen's output loop and sizer; until cancelled."""
        async with asyncio.TaskGroup() as group:
            for name, link in self.links.items():
                group.create_task(link.run(), name=f"display-link:{name}")
            group.create_task(self._refresh_loop(), name="backbuffer-refresh")
            for seat, screen in self.screens.items():
                suffix = "" if screen is self.primary else f":{seat}"
                group.create_task(screen.output.run(), name=f"output:{screen.output.kind}{suffix}")
                group.create_task(screen.sizer.run(), name=f"guest-sizer{suffix}")

    async def switch(self, old: str | None, new: str | None, seat: str | None = None) -> None:
        """The display's part of a switch of ``seat`` (None: the first): the new persona's last
        picture and LEDs, now; then its link live, and ``old``'s link back to the background's
        pace unless another seat shows it now.

        The screen's ``active`` is set first, so even if a later step raises, the display names
        the persona the switcher made active (see :mod:`mux.app.switcher`).
        """
        screen = self.primary if seat is None else self.screens[seat]
        screen.show(new, None if new is None else self.backbuffer.get(new))
        shown = {s.active for s in self.screens.values()}
        if old is not None and old in self.links and old not in shown:
            self.links[old].set_live(False)
        if new is not None and new in self.links:
            self.links[new].set_live(True)

    def link_up(self, name: str) -> None:
        """``name``'s VNC link came up: the seat showing it asks for the window's size again."""
        for screen in self.screens.values():
            if screen.active == name:
                screen.sizer.activated(name)

    def live_frame(self, name: str, frame: Frame) -> None:
        """A frame from ``name``'s live link (presented if kept and ``name`` is active)."""
        self.backbuffer.put(name, frame)

    def guest_leds(self, name: str, leds: Leds) -> None:
        """``name``'s guest set its LEDs: kept, and written to the keyboards of the seat showing it."""
        for screen in self.screens.values():
            screen.leds.guest_set(name, leds)

    def shown_on(self, name: str) -> Screen | None:
        """The screen of the seat ``name`` is active on, if any."""
        return next((s for s in self.screens.values() if s.active == name), None)

    def _sized_link(self, name: str) -> SizedLink | None:
        link = self.links.get(name)
        return link.rfb if link is not None and link.connected else None

    def _kept(self, name: str, frame: Frame) -> None:
        if (screen := self.shown_on(name)) is not None:
            screen.present(name, frame)

    # --- screendumps ------------------------------------------------------------------

    async def refresh(self, name: str) -> Frame:
        """Take a screendump of ``name`` into its back-buffer; returns the frame now kept.

        Raises:
            KeyError: no such persona.
            StateError: it is not running.  PersonaError: QEMU failed the screendump,
                or its file could not be read or decoded.
        """
        persona = self._personas[name]
        path = self._runtime_dir / f"{name}.ppm"
        async with self._dump_locks[name]:
            captured = time.monotonic()
            await persona.screendump(path)
            self.screendumps += 1
            try:  # reading, the checksum and decoding in a thread: ~10 ms for 1024x768 here
                data, mark = await asyncio.to_thread(_read_dump, path)
                image = None
                if not self.backbuffer.known_screendump(name, mark):
                    image = await asyncio.to_thread(decode_image, data)
                return self.backbuffer.put_screendump(name, data, captured, decoded=(mark, image))
            except (OSError, DisplayError) as exc:
                raise PersonaError(f"persona {name!r}: screendump {path}: {exc}") from exc

    async def _refresh_loop(self) -> None:
        while True:
            began = time.monotonic()
            for name, persona in self._personas.items():
                if persona.state != RunState.RUNNING:
                    continue
                link = self.links[name]
                if link.follows:
                    if link.live:
                        link.keep_fresh(self.interval)
                    continue  # follows its link's frames
                if link.resyncing:
                    continue  # just switched to: its whole frame is on its way (see DisplayLink)
                try:
                    await self.refresh(name)
                except PersonaError as exc:
                    log.debug("back-buffer: %s", exc)
            await asyncio.sleep(max(self.interval - (time.monotonic() - began), 0.05))

    async def screenshot(self, name: str) -> Image.Image:
        """``name``'s latest back-buffered frame, refreshed first if older than one interval
        (unless its VNC link is followed: then it is the link's picture; see the module
        docstring for how late that can be). Live pixels are converted in a thread.

        If the refresh fails, an older frame is still returned when there is one.

        Raises:
            KeyError: no such persona.
            StateError: it is not running and has no frame yet.  PersonaError: the
                screendump failed and there is no frame yet.
        """
        frame = self.backbuffer.get(name)
        link = self.links.get(name)
        followed = link is not None and link.follows and frame is not None and frame.source == "vnc"
        if frame is None or (not followed and frame.age(time.monotonic()) > self.interval):
            try:
                frame = await self.refresh(name)
            except PersonaError:
                frame = self.backbuffer.get(name)
                if frame is None:
                    raise
        if not frame.has_image() and isinstance(frame.picture, Pixels):
            raw = frame.picture.snapshot()  # here: the link writes into it on this thread
            frame.keep_image(await asyncio.to_thread(bgrx_image, raw, frame.picture.size))
        return frame.image.copy()
