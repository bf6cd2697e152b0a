"""Keyboard LEDs: each persona's lock state, and which of them the physical keyboards show.

Theory (the Cellrox rule for a stateless device): every persona has its own Caps, Num
and Scroll Lock state, as its guest last set it (QEMU reports it over the VNC link, see
:mod:`mux.guest.rfb`). The physical keyboards show the *active* persona's state only:

- a change in the active persona is written to every sink at once;
- a change in an inactive persona is recorded, never written;
- a switch writes the new active persona's recorded state (if it has reported one yet;
  otherwise the physical LEDs stay as they are until it does);
- a sink added later gets the current physical state at once.

A sink is anything with ``set_leds(caps, num, scroll)``: a grabbed evdev keyboard
(:class:`mux.input.sources.EvdevSource`), or a recorder in tests. :class:`LedRouter` is pure
(no asyncio, no devices): the display feeds it guest reports and switches.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from mux.errors import UnknownPersona

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Leds:
    """A keyboard's lock LEDs."""

    caps: bool
    num: bool
    scroll: bool

    @classmethod
    def from_byte(cls, value: int) -> Leds:
        """Decode QEMU's LED state byte (scroll=1, num=2, caps=4)."""
        return cls(caps=bool(value & 4), num=bool(value & 2), scroll=bool(value & 1))


class LedSink(Protocol):
    """Something that shows lock LEDs, such as a physical keyboard."""

    def set_leds(self, caps: bool, num: bool, scroll: bool) -> None: ...


def leds_dict(leds: Leds | None) -> dict[str, bool] | None:
    """``{"caps": .., "num": .., "scroll": ..}`` for status replies; None stays None."""
    if leds is None:
        return None
    return {"caps": leds.caps, "num": leds.num, "scroll": leds.scroll}


class LedRouter:
    """Per-persona LED state, and the physical state derived from the active persona."""

    def __init__(self, names: Iterable[str], *, shares: LedRouter | None = None) -> None:
        """``shares``: another seat's router whose per-persona state this one reads (the guests'
        LEDs are one state; each seat writes its own keyboards from its own active persona)."""
        self._state: dict[str, Leds | None] = shares._state if shares is not None else dict.fromkeys(names)
        self._sinks: list[LedSink] = []
        self.active: str | None = None
        self.physical: Leds | None = None
        #: Called with (persona, leds) after every guest report; the window's banner uses it.
        self.listeners: list[Callable[[str, Leds], None]] = []

    def persona(self, name: str) -> Leds | None:
        """The LEDs ``name``'s guest last set; None before its first report.

        Raises:
            UnknownPersona: no such persona.
        """
        if name not in self._state:
            raise UnknownPersona(name, self._state)
        return self._state[name]

    def add_sink(self, sink: LedSink) -> None:
        """Add a physical keyboard; it shows the current physical state at once, if any."""
        self._sinks.append(sink)
        if self.physical is not None:
            self._write_one(sink, self.physical)

    def remove_sink(self, sink: LedSink) -> None:
        """Forget a sink (an unplugged keyboard); one not added is ignored."""
        if sink in self._sinks:
            self._sinks.remove(sink)

    def guest_set(self, name: str, leds: Leds) -> None:
        """Record a guest's report; write it to the sinks only if ``name`` is active.

        Raises:
            UnknownPersona: no such persona.
        """
        self.persona(name)
        previous, self._state[name] = self._state[name], leds
        if previous != leds:
            log.debug("%s: LEDs %s%s", name, _describe(leds), "" if name == self.active else " (kept)")
        if name == self.active and leds != self.physical:
            self._write(leds)
        for listener in list(self.listeners):
            listener(name, leds)

    def switch(self, name: str) -> None:
        """Make ``name`` active and write its recorded state, if it has one.

        Raises:
            UnknownPersona: no such persona.
        """
        leds = self.persona(name)
        self.active = name
        if leds is not None:
            self._write(leds)

    def _write(self, leds: Leds) -> None:
        self.physical = leds
        for sink in list(self._sinks):
            self._write_one(sink, leds)

    @staticmethod
    def _write_one(sink: LedSink, leds: Leds) -> None:
        try:
            sink.set_leds(leds.caps, leds.num, leds.scroll)
        except Exception:  # one broken sink must not stop the others or the switch
            log.exception("LED sink %r failed", sink)


def _describe(leds: Leds) -> str:
    on = [name for name in ("caps", "num", "scroll") if getattr(leds, name)]
    return "+".join(on) if on else "off"
