"""The controller's seats: their outputs, and what the control API says of them (a mixin).

A config without ``[[seat]]`` has one implicit seat, ``default``, whose output is opened
exactly as before seats (:func:`mux.display.output.open_output`, in this process). With
``[[seat]]`` tables each seat's output is opened by
:func:`mux.display.seat_window.open_seat_output`: a window per seat, each in its own process
(pygame has one window per process, and SDL's X11 driver one X display). The window of a seat
that grabs no input device routes the keys typed into it to that seat.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from mux.config import Config
from mux.config.seats import seats_of
from mux.display.backbuffer import BackBuffer
from mux.display.display import Display
from mux.display.leds import Leds, LedSink
from mux.display.output import HeadlessOutput, Output, open_output
from mux.display.screen import Screen
from mux.errors import SeatError
from mux.input.events import InputEvent
from mux.input.seats import Seats

Progress = Callable[[str], None]


def open_outputs(config: Config, backbuffer: BackBuffer,
                 on_input: Callable[[Iterable[InputEvent], str | None], Awaitable[None]],
                 on_switch: Callable[[str, str | None], Awaitable[None]], progress: Progress,
                 stack: contextlib.AsyncExitStack) -> dict[str, Output]:
    """Every seat's output, opened (closed when ``stack`` closes), by seat name in config order.

    Raises:
        DisplayError: a seat's ``output = "window"`` cannot be opened.
    """
    colors = {pc.name: pc.color for pc in config.personas}
    outputs: dict[str, Output] = {}
    for seat in seats_of(config):
        def typed(events: list[InputEvent], seat: str = seat.name) -> Awaitable[None]:
            return on_input(events, seat)

        def picked(name: str, seat: str = seat.name) -> Awaitable[None]:
            return on_switch(name, seat)

        keys = None if seat.input else typed
        if not config.seats:
            output = open_output(config.display, colors, backbuffer, on_input=keys, on_switch=picked,
                                 progress=progress)
        elif seat.output == "headless":
            progress(f"output (seat {seat.name}): headless")
            output = HeadlessOutput()
        else:
            from mux.display.seat_window import open_seat_output

            shown = {name: color for name, color in colors.items()
                     if seat.personas is None or name in seat.personas}
            output = open_seat_output(seat, shown, backbuffer, on_input=keys, on_switch=picked,
                                      progress=progress)
        stack.callback(output.close)
        outputs[seat.name] = output
    return outputs


class SeatCalls:
    """``seats``, ``explicit_seats``, ``active_on``, each seat's output and LED sinks, and the
    seats' status; the controller provides what is declared here."""

    config: Config
    seating: Seats
    display: Display

    @property
    def seats(self) -> Sequence[str]:
        """The seat names, in config order (``("default",)`` without ``[[seat]]``)."""
        return self.seating.seats

    @property
    def explicit_seats(self) -> bool:
        """Whether the config has ``[[seat]]`` tables."""
        return bool(self.config.seats)

    def active_on(self, seat: str) -> str | None:
        """The persona ``seat`` shows (None: none). Raises SeatError: no such seat."""
        return self.seating.active(seat)

    def screen_of(self, seat: str | None) -> Screen:
        """``seat``'s screen (None: the first seat's). Raises SeatError: no such seat."""
        if seat is None:
            return self.display.primary
        if seat not in self.display.screens:
            raise SeatError(f"unknown seat {seat!r} (seats: {', '.join(self.seating.seats)})")
        return self.display.screens[seat]

    @property
    def output(self) -> Output:
        """The first seat's output (``HeadlessOutput`` or a window)."""
        return self.display.output

    @property
    def physical_leds(self) -> Leds | None:
        """What mux last wrote to the first seat's physical keyboards (LED sinks); None before
        any write."""
        return self.display.leds.physical

    def physical_leds_of(self, seat: str | None) -> Leds | None:
        """What mux last wrote to ``seat``'s (None: the first's) physical keyboards; None
        before any write. Raises SeatError: no such seat."""
        return self.screen_of(seat).leds.physical

    def add_led_sink(self, sink: LedSink, seat: str | None = None) -> None:
        """Show ``seat``'s (None: the first's) active persona's LEDs on ``sink`` too
        (``set_leds(caps, num, scroll)``). Raises SeatError: no such seat."""
        self.screen_of(seat).leds.add_sink(sink)

    def output_of(self, seat: str | None) -> Output:
        """``seat``'s output (None: the first seat's). Raises SeatError: no such seat."""
        return self.screen_of(seat).output

    def seat_status(self) -> list[dict[str, Any]]:
        """``status()["seats"]``: each seat's name, active persona, personas it may show, output."""
        return [{"name": seat, "active": self.seating.active(seat),
                 "personas": list(self.seating.personas(seat)),
                 "output": self.display.screens[seat].output.kind} for seat in self.seating.seats]
