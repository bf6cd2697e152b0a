"""One seat's screen: its output, the persona it shows, its keyboards' LEDs, the guest sizer.

The display (:mod:`mux.display.display`) keeps what every seat shares: the personas' VNC
links, the back-buffer, the screendumps, the guests' LED reports. Each seat has one
:class:`Screen`: a persona active on that seat is presented on its output (and only
there: a persona is active on at most one seat), its LEDs go to that seat's keyboards
(a :class:`~mux.display.leds.LedRouter` reading the one shared per-persona state), and a
guest that follows the window is sized to that seat's window. A config without
``[[seat]]`` has one screen, the ``default`` seat's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from mux.display.backbuffer import Frame
from mux.display.leds import LedRouter, Leds
from mux.display.output import HeadlessOutput, Output
from mux.display.resize import GuestSizer, SizedLink

log = logging.getLogger(__name__)


class Screen:
    """A seat's output, active persona, keyboards' LEDs and guest sizer."""

    def __init__(self, seat: str, names: Iterable[str], link_of: Callable[[str], SizedLink | None], *,
                 shares: LedRouter | None = None) -> None:
        self.seat = seat
        self.output: Output = HeadlessOutput()
        self.active: str | None = None
        self.leds = LedRouter(names, shares=shares)
        self.sizer = GuestSizer(link_of, lambda: self.active, lambda: self.output.guest_area_size())
        self.leds.listeners.append(self.leds_changed)

    def attach(self, output: Output, follow: frozenset[str]) -> None:
        """Draw on ``output``; ``follow``: the personas whose guest takes the window's size."""
        self.output = output
        self.sizer.follow = follow
        output.on_resize = self.sizer.resized

    def show(self, new: str | None, frame: Frame | None) -> None:
        """The screen's part of a switch: ``new``'s LEDs and last picture, at once (None:
        nothing is shown: another seat took the persona and none was free to go back to)."""
        self.active = new
        if new is None:
            self.present("", None)
            return
        self.leds.switch(new)
        self.leds_changed(new, self.leds.persona(new))  # told first: drawn with the frame
        self.present(new, frame)
        self.sizer.activated(new)

    def present(self, name: str, frame: Frame | None) -> None:
        try:
            self.output.present(name, frame)
        except Exception:  # a broken output must not break switching or the links
            log.exception("output %s (seat %s): presenting %s failed", self.output.kind, self.seat, name)

    def leds_changed(self, name: str, leds: Leds | None) -> None:
        if name != self.active:
            return
        try:
            self.output.show_leds(name, leds)
        except Exception:
            log.exception("output %s (seat %s): showing %s's LEDs failed", self.output.kind, self.seat, name)
