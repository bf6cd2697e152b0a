"""Input routing: events from any source through the pure router to the guests.

Each seat's :class:`~mux.input.router.Router` (held by :class:`~mux.input.seats.Seats`)
decides (sans-I/O) which persona gets what from that seat's devices; :class:`InputRouting`
carries their decisions out: ``Send`` batches go to the persona's
QMP ``input-send-event`` (dropped, with a debug line, when it is not running), an
``Unmapped`` key is warned about once per code, and a completed hotkey
(``SwitchRequest``) is handed to the controller's ``hotkey(target, seat)``: a switch of
that seat, its overview, a clipboard copy or paste. Hotkeys never reach a guest: the router swallows
their keys.

One lock serialises the routers: a frame's actions are sent before the next frame is
fed, and the input part of a switch (:meth:`InputRouting.apply`: the seats' new state and
the releases owed to the personas left) never interleaves with a frame. A hotkey's action runs after the
lock is released, since a switch takes the lock again to apply itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping
from typing import cast

from mux.config import Config
from mux.config.seats import seat_hotkeys, seats_of
from mux.errors import PersonaError
from mux.guest.persona import Persona
from mux.guest.state import RunState
from mux.input.events import InputEvent
from mux.input.router import Action, Router, Send, SwitchRequest, Unmapped
from mux.input.seats import Seat, Seats, SwitchPlan
from mux.input.sources import InputSource

log = logging.getLogger(__name__)


class InputRouting:
    """Feeds each seat's input events to its router and carries out what it decides."""

    def __init__(self, seats: Seats, personas: Mapping[str, Persona], *,
                 hotkey: Callable[[str, str], Awaitable[None]], input_came: Callable[[], None]) -> None:
        """``hotkey(target, seat)`` carries a completed hotkey out (it must not raise MuxError);
        ``input_came()`` is told of every event (mux's attention switch waits for quiet)."""
        self.seats = seats
        self.personas = personas
        self.hotkey = hotkey
        self.input_came = input_came
        self._lock = asyncio.Lock()
        self._unmapped_reported: set[int] = set()

    @property
    def router(self) -> Router:
        """The first seat's router (the only one without ``[[seat]]``)."""
        return self.seats.router(self.seats.seats[0])

    async def input(self, events: Iterable[InputEvent], seat: str | None = None) -> None:
        """Route events from any input source of ``seat`` (None: the first); a completed
        hotkey is carried out at once. Raises SeatError: no such seat."""
        seat = seat or self.seats.seats[0]
        for event in events:
            async with self._lock:
                actions = self.seats.feed(seat, event)
                self.input_came()
                await self._dispatch(actions)
            for action in actions:
                if isinstance(action, SwitchRequest):
                    await self.hotkey(action.target, seat)

    async def apply(self, plan: SwitchPlan) -> None:
        """The input part of a switch: every moved seat's releases to the persona it leaves,
        then its input goes to its new persona (the switcher's ``apply_input``)."""
        async with self._lock:
            await self._dispatch(self.seats.apply(plan))

    async def pump(self, source: InputSource, seat: str | None = None) -> None:
        """Feed one input source's frames to ``seat`` until cancelled (or the source ends)."""
        batches = cast(AsyncGenerator[list[InputEvent], None], source.batches())
        async with contextlib.aclosing(batches) as frames:
            async for frame in frames:
                await self.input(frame, seat)

    async def _dispatch(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                persona = self.personas[action.persona]
                if persona.state != RunState.RUNNING:
                    log.debug("%s is %s; dropped %d input events", persona.name, persona.state,
                              len(action.events))
                    continue
                try:
                    await persona.send_input(action.events)
                except PersonaError as exc:
                    log.warning("%s", exc)
            elif isinstance(action, Unmapped) and action.code not in self._unmapped_reported:
                self._unmapped_reported.add(action.code)
                log.warning("key code %d has no QEMU key code; it is not sent", action.code)


def seats_for(config: Config) -> Seats:
    """The config's seats (its ``[[seat]]`` tables, or the one implicit seat), none active yet.

    Raises:
        SeatError, InputError, UnknownPersona: as :class:`~mux.input.seats.Seats` (a config
            that parsed has none of these).
    """
    return Seats(config.names, [Seat(s.name, s.personas, seat_hotkeys(config, s)) for s in seats_of(config)],
                 steal=config.mux.steal, autorepeat=config.input.autorepeat)
