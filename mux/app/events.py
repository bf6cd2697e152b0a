"""What happened in mux, as typed events on one hub: the only way to hear of changes.

Frontends (the MQTT bridge, tests) learn of switches, persona run states and readiness,
LED reports, device moves and clipboard copies and pastes by subscribing to
:class:`Events` (``unsubscribe = events.subscribe(cb)``); there are no per-part listener
lists to find. The events carry plain data (names, strings, booleans), so a subscriber
imports nothing from the parts that made them.

Delivery is synchronous and in order, on the event loop, right after the change: a
subscriber must not block (set a flag, put on a queue). A subscriber that raises is
logged with its traceback and the others are still called: one broken subscriber never
undoes a switch or hides an event from the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Switched:
    """``seat``'s active persona changed from ``old`` (None: none was) to ``new``; ``source``
    asked. ``new`` is None only for a seat another seat took its persona from (``[mux] steal``)
    with nothing free to go back to. A config without ``[[seat]]`` has the one seat
    ``"default"``; with seats, ``Switched`` of the first seat is what ``active`` follows."""

    old: str | None
    new: str | None
    source: str
    seat: str = "default"


@dataclass(frozen=True)
class StateChanged:
    """A persona's run state changed (``"starting"``, ``"running"``, ``"stopped"``...)."""

    persona: str
    state: str


@dataclass(frozen=True)
class ReadyChanged:
    """A persona's guest became ready for work (its agent answers, or MUX-READY), or stopped
    being (it stopped or crashed): see :mod:`mux.guest.ready`."""

    persona: str
    ready: bool


@dataclass(frozen=True)
class LedsChanged:
    """A persona's guest reported its lock LEDs."""

    persona: str
    caps: bool
    num: bool
    scroll: bool


@dataclass(frozen=True)
class DevicesChanged:
    """A device move was made (``error`` None) or tried; ``persona`` is where it is now."""

    device: str
    source: str | None
    target: str | None
    persona: str | None
    error: str | None = None


@dataclass(frozen=True)
class AudioChanged:
    """What a persona's sound does now: ``"live"`` (heard, has the microphone),
    ``"muted"``, ``"ducked"`` (20 dB down), ``"off"`` (no ``audio``) or ``"unavailable"``
    (no sound server, or QEMU has no ``pa`` backend: it runs without sound)."""

    persona: str
    state: str


@dataclass(frozen=True)
class AttentionRequested:
    """A persona's guest asked for attention (``MUX-ATTENTION <text>`` or its ``attention``
    pattern) at ``time`` (``time.time()``)."""

    persona: str
    text: str
    time: float


@dataclass(frozen=True)
class AttentionCleared:
    """A persona's pending requests for attention were answered: it was made active."""

    persona: str


@dataclass(frozen=True)
class ClipboardChanged:
    """An explicit ``"copy"`` or ``"paste"`` (:mod:`mux.app.clipboard`) was made, or refused
    (``refused``: the banner's text, ``refused: home → work``). Never the clipboard's text.

    ``persona``: copied from or pasted into (None: none was active); ``origin``: where the
    text came from (None: nothing was copied yet); ``chars``: how many characters moved (0
    when refused); ``source``: who asked (``"hotkey"``, ``"control socket"``, ``"mqtt"``...).
    """

    action: str
    persona: str | None
    origin: str | None
    chars: int
    source: str
    refused: str | None = None


Event: TypeAlias = (Switched | StateChanged | ReadyChanged | LedsChanged | DevicesChanged
                    | AudioChanged | AttentionRequested | AttentionCleared | ClipboardChanged)
Subscriber: TypeAlias = Callable[[Event], None]
Unsubscribe: TypeAlias = Callable[[], None]


class Events:
    """The hub: ``publish`` an event to every subscriber; see the module docstring."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, callback: Subscriber) -> Unsubscribe:
        """Call ``callback(event)`` for every event from now on; returns how to stop."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def publish(self, event: Event) -> None:
        """Tell every subscriber, in subscription order; a failing one is logged, never raised."""
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:
                log.exception("event subscriber %r failed on %s", callback, event)
