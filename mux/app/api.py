"""The control API: everything a frontend may ask of mux, as a ``Protocol``.

Frontends (the control socket :mod:`mux.frontends.control`, the MQTT bridge
:mod:`mux.frontends.mqtt`) import this module and nothing else from :mod:`mux.app`;
:class:`~mux.app.controller.Controller` implements it, and ``mux.cli`` hands the
controller the frontends to serve (:class:`Frontend`), so the controller imports no
frontend either. What crosses the API is plain data: names, JSON-ready dicts, PIL
images, and the events of :mod:`mux.app.events` (re-exported here).

Errors: every method raises only :class:`~mux.errors.MuxError` subclasses for a
request that cannot be carried out (an unknown persona is
:class:`~mux.errors.UnknownPersona`); anything else escaping is a bug in mux, and a
frontend reports it as one, never as a refused command.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

from PIL import Image

from mux.app.events import (
    AttentionCleared,
    AttentionRequested,
    AudioChanged,
    ClipboardChanged,
    DevicesChanged,
    Event,
    LedsChanged,
    ReadyChanged,
    StateChanged,
    Subscriber,
    Switched,
    Unsubscribe,
)

__all__ = ["AttentionCleared", "AttentionRequested", "AudioChanged", "ClipboardChanged", "ControlAPI",
           "DevicesChanged",
           "Event", "Frontend", "LedsChanged", "ReadyChanged",
           "StateChanged", "Subscriber", "Switched", "Unsubscribe"]


class ControlAPI(Protocol):
    """What frontends may do: see who is active and what runs, switch, start and stop
    personas, run commands in their guests, move devices, take screenshots, copy and paste
    between personas' clipboards, and hear of changes."""

    @property
    def names(self) -> Sequence[str]:
        """The configured persona names, in config order (the order ``next`` walks)."""
        ...

    @property
    def active(self) -> str | None:
        """The active persona (None before the first one runs)."""
        ...

    @property
    def guests_outlive_stop(self) -> bool:
        """Whether a clean stop leaves the guests running (``keep_guests = "always"``)."""
        ...

    def status(self) -> dict[str, Any]:
        """Everything ``mux ctl status`` prints: active, personas (state, LEDs...), devices,
        and ``seats``: ``[{"name", "active", "personas", "output"}]`` in config order."""
        ...

    def devices(self, persona: str) -> list[dict[str, Any]]:
        """The devices ``persona`` holds now. Raises UnknownPersona."""
        ...

    async def switch(self, target: str, source: str, seat: str | None = None) -> str:
        """Switch ``seat`` (None: the first seat) to a persona, ``next`` or ``previous``;
        returns the seat's new active persona.

        Raises UnknownPersona; SeatError (no such seat, the seat may not show the persona, or
        it is active on another seat and ``[mux] steal`` is false: nothing changed);
        DeviceError (a device kept the switch back: nothing changed); SwitchIncomplete
        (switched, but a part failed; see mux.app.switcher).
        """
        ...

    @property
    def seats(self) -> Sequence[str]:
        """The seat names, in config order (``("default",)`` without ``[[seat]]`` tables)."""
        ...

    @property
    def explicit_seats(self) -> bool:
        """Whether the config has ``[[seat]]`` tables (else its one seat is implicit: the
        frontends then speak of ``active`` only, as before seats)."""
        ...

    def active_on(self, seat: str) -> str | None:
        """The persona ``seat`` shows (None: none). Raises SeatError: no such seat."""
        ...

    async def start(self, persona: str) -> None:
        """Start a persona (nothing if it runs). Raises UnknownPersona, PersonaError."""
        ...

    async def stop(self, persona: str) -> None:
        """Stop a persona's guest (nothing if stopped). Raises UnknownPersona, PersonaError."""
        ...

    async def restart(self, persona: str) -> None:
        """Stop, then start. Raises UnknownPersona, PersonaError."""
        ...

    async def exec(self, persona: str, argv: Sequence[str], timeout: float = 60.0) -> dict[str, Any]:
        """Run ``argv`` in the persona's guest through its guest agent and wait for it:
        ``{"exitcode": int | None, "signal": int | None, "stdout": bytes, "stderr": bytes}``.

        Raises UnknownPersona; PersonaError (no agent, it did not answer within
        ``timeout``, it refused the command, or the command did not end in time).
        """
        ...

    async def set_clock(self, persona: str, seconds: float, timeout: float = 60.0) -> None:
        """Set the clock of the persona's guest to ``seconds`` since the epoch through its
        guest agent (``guest-set-time``), waiting up to ``timeout`` for the agent.

        Raises UnknownPersona; PersonaError (not running, no agent, it did not answer,
        or it refused the time).
        """
        ...

    def serial_lines(self, since: float | None = None, follow: bool = False) -> AsyncIterator[dict[str, Any]]:
        """Every persona's serial lines, tagged (mux.app.taglog): first a header
        ``{"t", "personas", "colors"}``, then ``{"t", "persona", "line"}`` per line kept
        (from ``since``, seconds since the epoch), then with ``follow`` each new line as it
        comes, and last ``{"end": "done" | "stopped" | "behind"}``."""
        ...

    async def attach(self, device: str, persona: str, timeout: float | None = None) -> dict[str, Any]:
        """Move a device to a persona; returns its status. Raises DeviceError."""
        ...

    async def detach(self, device: str, persona: str | None = None,
                     timeout: float | None = None) -> dict[str, Any]:
        """Unplug a device (held by ``persona`` if given); returns its status. Raises DeviceError."""
        ...

    async def screenshot(self, persona: str) -> Image.Image:
        """The persona's latest screen. Raises UnknownPersona, StateError, PersonaError."""
        ...

    async def clipboard_copy(self, source: str) -> dict[str, Any]:
        """The active persona's clipboard into mux's own (``source``: who asks, such as
        ``"mqtt"``); returns ``{"action": "copy", "persona": "home", "chars": 42, "from":
        "home", "message": "copied 42 characters from home"}``: never the text.

        Raises ClipboardRefused (its message is the banner's): no active persona, it has
        no ``clipboard = true``, its link is down, its clipboard is empty or over the cap.
        """
        ...

    async def clipboard_paste(self, source: str) -> dict[str, Any]:
        """mux's clipboard to the active persona; returns ``{"action": "paste", "persona":
        "work", "chars": 42, "from": "home", "message": "pasted 42 characters from home into
        work"}``: never the text.

        Raises ClipboardRefused (its message is the banner's): nothing copied yet, no active
        persona, it has no ``clipboard = true``, ``[clipboard] allow`` refuses the
        direction (``refused: home → work``), or its link is down.
        """
        ...

    def subscribe(self, callback: Subscriber) -> Unsubscribe:
        """Hear of every event from now on (see mux.app.events); returns how to stop."""
        ...


class Frontend(Protocol):
    """A way into mux from outside, served for as long as the controller runs."""

    def serve(self, api: ControlAPI) -> contextlib.AbstractAsyncContextManager[object]:
        """Start serving ``api`` on entry (raising MuxError if it cannot), stop on exit.

        Tasks the frontend needs live inside this context, named, and end with it.
        """
        ...
