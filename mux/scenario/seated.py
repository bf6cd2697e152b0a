"""Which persona a step means, and the way its input goes: through its seat.

Seats (:mod:`mux.input.seats`): each step that acts on, or looks at, "the active persona"
takes ``seat`` (:data:`~mux.scenario.model.SEATED`); left out, it is the first seat, the
only one of a config without ``[[seat]]``, so a scenario written before seats means what it
meant (and its steps call the controller exactly as before: no ``seat`` argument). A
persona given by name is that persona on any seat; a step's input still goes through its
seat's router, so it reaches the seat's active persona only. A seat the controller does
not have is a :class:`~mux.errors.SeatError`, which fails the step (the file's check finds
it first when the scenario's config is known).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mux.app.controller import Controller
from mux.errors import StepFailed
from mux.input.events import InputEvent


class SeatedSteps:
    """The base of the runner's step mixins: the step's persona and seat."""

    ctl: Controller

    def active_on(self, seat: str | None) -> str | None:
        """The persona ``seat`` shows (None: the first seat's).

        Raises:
            SeatError: no such seat.
        """
        return self.ctl.active if seat is None else self.ctl.active_on(seat)

    def _persona(self, a: dict[str, Any]) -> str:
        """The persona a step means: its ``persona``, else its seat's active one.

        Raises:
            StepFailed: neither (the seat shows no persona).
            SeatError: no such seat.
        """
        seat = a.get("seat")
        name = a.get("persona") or self.active_on(seat)
        if name is None:
            where = f" on seat {seat}" if seat is not None else ""
            raise StepFailed(f"no persona is active{where}, and the step names none")
        return str(name)

    async def send(self, events: Iterable[InputEvent], seat: str | None) -> None:
        """Input from ``seat``'s devices (None: the first seat's), through its router."""
        if seat is None:
            await self.ctl.input(events)
        else:
            await self.ctl.input(events, seat=seat)
