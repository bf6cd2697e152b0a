"""The guest follows the window: the active persona is asked for the window's size.

Theory. A persona with ``vga = "virtio"`` whose guest runs a resizing agent (the
``desktop`` image: spice-vdagent, or a desktop that follows its monitor) takes a new
screen size when QEMU tells its virtual monitor one; QEMU's VNC server does that for a
client's SetDesktopSize (RFB's ExtendedDesktopSize extension). So when the window's guest
area (the window below the banner) changes size, the display asks the *active* persona,
if it follows the window (:func:`mux.config.machine.follows_window`), for that size; a
background persona is asked when it becomes active, and the active one again when its
link comes back (a restart). Until the guest has changed, the window scales its old
picture to fit, as it scales any picture.

:class:`GuestSizer` spaces the requests: the first goes at once, then at most one every
:data:`RESIZE_INTERVAL_S` (a window dragged by its corner sends dozens of sizes a
second); the last size wins, and a request that comes due for a persona no longer active
is dropped. A persona whose picture has the wanted size already is not asked. Only
:mod:`mux.guest` talks to QEMU: the request goes through the persona's VNC link
(``RfbClient.set_desktop_size``). Headless outputs have no size and never ask.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from mux.errors import RfbError
from mux.guest.rfb_update import MAX_SIDE  # a guest is never asked for more than the VNC link accepts

log = logging.getLogger(__name__)

RESIZE_INTERVAL_S = 0.5  #: at most one request this often (the last size wins)
MIN_SIDE = 64  #: a guest is never asked for less (a window shrunk to nothing)


class SizedLink(Protocol):
    """What the sizer needs of a persona's VNC link (:class:`mux.guest.rfb.RfbClient`)."""

    @property
    def size(self) -> tuple[int, int]: ...

    def set_desktop_size(self, width: int, height: int) -> object:
        """Ask QEMU for this screen size (may return an awaitable)."""
        ...


@dataclass(frozen=True)
class SizeRequest:
    """One request sent: which persona, what size."""

    persona: str
    size: tuple[int, int]


def guest_size(area: tuple[int, int]) -> tuple[int, int]:
    """The size to ask a guest for, for a guest area of ``area``: bounded to
    [:data:`MIN_SIDE`, :data:`MAX_SIDE`] a side."""
    return (min(max(area[0], MIN_SIDE), MAX_SIDE), min(max(area[1], MIN_SIDE), MAX_SIDE))


class GuestSizer:
    """Spaced size requests to the active persona; see the module docstring.

    ``link_of(name)`` is the persona's connected link (None while it has none);
    ``active()`` the persona active now; ``area()`` the output's guest area now (None:
    headless). Only the personas in :attr:`follow` are ever asked.
    """

    def __init__(self, link_of: Callable[[str], SizedLink | None], active: Callable[[], str | None],
                 area: Callable[[], tuple[int, int] | None], interval: float = RESIZE_INTERVAL_S) -> None:
        self._link_of = link_of
        self._active = active
        self._area = area
        self.interval = interval
        self.follow: frozenset[str] = frozenset()  #: the personas that follow the window
        self._wanted: tuple[str, tuple[int, int]] | None = None
        self._wake = asyncio.Event()
        self.sent: list[SizeRequest] = []  #: every request sent, oldest first
        self.last: dict[str, tuple[int, int]] = {}  #: the size each persona was last asked for

    def resized(self, area: tuple[int, int]) -> None:
        """The window's guest area is now ``area``: the active persona is asked for it."""
        active = self._active()
        if active is not None:
            self.want(active, area)

    def activated(self, persona: str) -> None:
        """``persona`` became active (or its link came up): it is asked for the window's size."""
        try:
            area = self._area()
        except Exception:  # a broken output must not break switching
            log.exception("reading the window's size failed")
            return
        if area is not None:
            self.want(persona, area)

    def want(self, persona: str, area: tuple[int, int]) -> None:
        """Ask ``persona``, if it follows the window, for a guest area of ``area`` (when
        due; a later call replaces it)."""
        if persona in self.follow:
            self._wanted = (persona, guest_size(area))
            self._wake.set()

    async def run(self) -> None:
        """Send the wanted sizes, spaced; until cancelled. Never raises for a failed request."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            wanted, self._wanted = self._wanted, None
            if wanted is None or not await self._send(*wanted):
                continue
            await asyncio.sleep(self.interval)

    async def _send(self, persona: str, size: tuple[int, int]) -> bool:
        """Ask now; returns whether a request went out."""
        if persona != self._active():
            return False  # switched away meanwhile: asked again when it is active
        link = self._link_of(persona)
        if link is None:
            return False  # asked again when its link comes up
        if link.size == size:
            self.last[persona] = size
            return False
        try:
            result = link.set_desktop_size(*size)
            if inspect.isawaitable(result):
                await result
        except RfbError as exc:
            log.info("%s: the guest was not asked for %dx%d: %s", persona, *size, exc)
            return False
        except Exception:  # a broken link must not end the display's loops
            log.exception("%s: asking the guest for %dx%d failed", persona, *size)
            return False
        log.info("%s: asked the guest for %dx%d (the window's size)", persona, *size)
        self.sent.append(SizeRequest(persona, size))
        self.last[persona] = size
        return True

