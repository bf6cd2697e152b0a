"""The switcher: the one owner of "who is active where", and of how a switch is applied.

It holds :class:`~mux.input.seats.Seats` (one seat without ``[[seat]]``): a request
switches one seat; the plan (:meth:`Seats.plan_switch`) may move a second seat too, the one
a ``steal`` takes the persona from, and every part below is applied per seat that moves.

Every switch request (hotkey, control socket, scenario step, MQTT, the window's
overview) is put on one queue and applied by one consumer, in order, so two sources can
never interleave half a switch. ``next``/``previous`` are resolved against the state at
the moment the request is applied, by :func:`mux.input.router.switch_target` (the one
implementation, shared with the router's tests).

A switch goes to a running persona. Before anything else, ``ready(new)`` makes sure of
it: the controller starts a stopped persona (``[mux] start_on_switch = true``, the
default) or refuses the switch (``false``); a refusal changes nothing, like one from
prepare below. This is the one place that rule lives, so hotkeys, ``ctl switch``,
scenario steps and MQTT's ``active/set`` all follow it.

The consistency rule. A switch has two halves:

1. **prepare** (devices that follow the active persona move to the new one) may
   *refuse*: if it raises, nothing else is touched, :attr:`Switcher.active` stays the
   old persona, and the caller gets the error. Routing, display and LEDs never heard of
   the switch, so they still agree with ``status``. Devices follow the first seat's
   persona: prepare runs for that seat's move only. A seat refusing the persona (another
   seat shows it, or it may not show it) is a refusal before anything else.
2. the **parts** (the router with the old persona's held-key releases, then the display
   with the LEDs) are then *all* applied, in order, even if one raises; the switch is
   complete, :attr:`Switcher.active` becomes the new persona, :class:`Switched` is
   published, and only then is the failure reported: a :class:`~mux.errors.MuxError`
   as :class:`~mux.errors.SwitchIncomplete` (naming the part), anything else (a bug in
   mux) re-raised as it is. Either way every failure is logged here too, so none is lost
   when nobody waits for the answer.

So after any switch, successful or not, the router, the display, the LEDs and
``status`` name the same active persona. Rolling back instead was rejected: undoing a
device move can fail in turn, and a half-undone switch is worse than a reported one.

The CPU (``[mux] background``, :mod:`mux.guest.priority` makes the calls). The new persona
gets the active persona's share (normal priority, or resumed from ``pause``) before
prepare, so that devices move to a guest that runs; every other running persona is sent
to the background after the parts; but a persona is sent to the background only once its
guest is ready (:mod:`mux.guest.ready`): one that boots keeps normal priority, so a busy
host still boots every persona. A persona that becomes ready (after a start, a restart
after a crash) is given its share by the same consumer, in order with the switches. None
of this refuses or fails a switch: a refused priority change is logged once and skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from mux.app.events import Event, Events, ReadyChanged, StateChanged, Switched
from mux.errors import MuxError, StateError, SwitchIncomplete, UnknownPersona
from mux.guest.persona import Persona
from mux.guest.priority import Background, Mode
from mux.guest.state import RunState
from mux.input.hotkeys import NEXT, PREVIOUS
from mux.input.seats import Seats, SwitchPlan

log = logging.getLogger(__name__)

SwitchPart = Callable[[str | None, str | None, str], Awaitable[None]]
"""``part(old, new, seat)``: one piece of applying a switch, for one seat that changes (``new``
is None only for a seat another seat took its persona from, with none free to go back to)."""

Prepare = Callable[[str | None, str], Awaitable[None]]
"""``prepare(old, new)``: the refusable half, for the first seat's change (devices follow it)."""

Ready = Callable[[str], Awaitable[None]]
"""``ready(new)``: make the target persona run, or raise a MuxError to refuse the switch."""

ApplyInput = Callable[[SwitchPlan], Awaitable[None]]
"""``apply_input(plan)``: :meth:`Seats.apply <mux.input.seats.Seats.apply>` the plan and send
each router's releases (the input routing does it under its lock)."""


async def _always_ready(_: str) -> None:
    return None


async def _nothing(_: str | None, __: str) -> None:
    return None


@dataclass
class _Request:
    target: str
    source: str
    seat: str
    steal: bool | None = None
    done: asyncio.Future[str] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Switcher:
    """Orders switch requests and applies each: ``prepare`` (may refuse), then every part.

    ``seats`` is who is active where (:class:`~mux.input.seats.Seats`: this switcher is the
    only one that applies switches to it); a list of names is one implicit seat with every
    persona (``active`` first). ``background`` (``[mux] background``) with ``personas``
    (looked up at each use) gives the personas active on a seat the CPU first (see the module
    docstring); with ``"run"`` or without ``personas`` nobody's share is touched.
    """

    def __init__(self, seats: Seats | Sequence[str], events: Events, *, prepare: Prepare = _nothing,
                 parts: Sequence[tuple[str, SwitchPart]], active: str | None = None,
                 ready: Ready = _always_ready, background: Mode = "run",
                 personas: Mapping[str, Persona] | None = None,
                 apply_input: ApplyInput | None = None) -> None:
        self.seats = seats if isinstance(seats, Seats) else Seats.single(seats, active=active)
        self.names = self.seats.names
        self.first = self.seats.seats[0]
        self._ready = ready
        self._events = events
        self._prepare = prepare
        self._parts = list(parts)
        self._apply_input = apply_input
        self._queue: asyncio.Queue[_Request | str] = asyncio.Queue()  # a name: settle its share
        self._background = Background(background) if personas is not None and background != "run" else None
        self._personas: Mapping[str, Persona] = personas if personas is not None else {}
        self._stopping: set[asyncio.Task[None]] = set()
        if self._background is not None:
            events.subscribe(self._heard)

    @property
    def active(self) -> str | None:
        """The first seat's active persona: changed only by a switch this switcher applied."""
        return self.seats.active(self.first)

    def resolve(self, target: str, seat: str | None = None) -> str:
        """Persona name for ``target`` (a name, ``next`` or ``previous``) on ``seat`` now.

        Raises:
            UnknownPersona: no such persona.  SeatError: no such seat, or the seat refuses it.
        """
        return self.seats.plan_switch(seat or self.first, target).persona

    async def request(self, target: str, source: str, seat: str | None = None,
                      steal: bool | None = None) -> str:
        """Queue a switch of ``seat`` (None: the first) and wait until it is applied; returns
        the seat's new active persona. ``steal``: overrides ``[mux] steal`` for this request.

        Raises:
            UnknownPersona: unknown persona (checked before queueing).
            SeatError: unknown seat (checked before queueing); the seat may not show the
                persona, or it is active on another seat and steal is off: nothing changed.
            MuxError: ``ready`` (e.g. StateError: the persona is stopped and may not be
                started) or ``prepare`` (e.g. DeviceError) refused the switch; nothing changed.
            SwitchIncomplete: switched, but a part failed (see the module docstring).
        """
        seat = seat or self.first
        self.seats.personas(seat)  # an unknown seat: SeatError now
        if target not in (*self.names, NEXT, PREVIOUS):
            raise UnknownPersona(target, self.names)
        request = _Request(target, source, seat, steal)
        await self._queue.put(request)
        return await request.done

    async def run(self) -> None:
        """The single consumer; runs until cancelled."""
        while True:
            request = await self._queue.get()
            if isinstance(request, str):
                nobody = all(self.seats.active(s) is None for s in self.seats.seats)
                await self._share(request, nobody or self.seats.seat_of(request) is not None)
                continue
            try:
                new = await self._apply(request)
                if not request.done.done():
                    request.done.set_result(new)
            except asyncio.CancelledError:
                request.done.cancel()
                raise
            except Exception as exc:  # the caller gets it; the switcher goes on
                if not request.done.done():
                    request.done.set_exception(exc)

    async def _apply(self, request: _Request) -> str:
        old = self.seats.active(request.seat)
        new = request.target
        try:
            plan = self.seats.plan_switch(request.seat, request.target, steal=request.steal)
            new = plan.persona
            await self._ready(new)  # even for the active persona: it may have been stopped
            if not plan.moves:
                return new
            await self._share(new, True)
            for move in plan.moves:
                if move.seat == self.first and move.new is not None:
                    await self._prepare(move.old, move.new)  # devices follow the first seat
        except MuxError as exc:
            log.warning("switch %s -> %s (%s) refused: %s", old, new, request.source, exc)
            if old is not None and new != old and new in self.names and self.seats.seat_of(new) is None:
                await self._share(new, False)
            raise
        failures: list[tuple[str, Exception]] = []
        try:
            await (self._apply_input or self._apply_plain)(plan)
        except Exception as exc:  # the others still apply: see the module docstring
            log.error("switch %s -> %s: the input part failed", old, new, exc_info=exc)
            failures.append(("input", exc))
        if self.seats.active(plan.seat) != plan.persona:  # the input part failed before applying
            self.seats.apply(plan)
        for move in plan.moves:
            for name, part in self._parts:
                try:
                    await part(move.old, move.new, move.seat)
                except Exception as exc:  # the others still apply: see the module docstring
                    log.error("switch %s -> %s: the %s part failed", move.old, move.new, name, exc_info=exc)
                    failures.append((name, exc))
        for name in self.names:
            if self.seats.seat_of(name) is None:
                await self._share(name, False)
        for move in plan.moves:
            where = "" if len(self.seats.seats) == 1 else f" on seat {move.seat}"
            log.info("switched %s -> %s%s (%s)", move.old, move.new, where, request.source)
            self._events.publish(Switched(move.old, move.new, request.source, move.seat))
        for _, error in failures:
            if not isinstance(error, MuxError):
                raise error  # a bug in mux: not dressed up as a refused request
        if failures:
            raise SwitchIncomplete(new, [(name, str(error)) for name, error in failures]) from failures[0][1]
        return new

    async def _apply_plain(self, plan: SwitchPlan) -> None:
        self.seats.apply(plan)  # no input routing (tests): the releases have nobody to go to

    async def _share(self, name: str, active: bool) -> None:
        """Give ``name`` the active persona's CPU share, or the background's (once it is
        ready: see the module docstring); never raises."""
        persona = self._personas.get(name)
        if self._background is not None and persona is not None:
            await self._background.apply(persona, active or not persona.readiness.ready)

    def background_of(self, name: str) -> str | None:
        """``"paused"`` or ``"low"``: ``[mux] background`` applied to ``name`` now; None: it
        has the active persona's share (it is active, still booting, or the mode is "run")."""
        persona = self._personas.get(name)
        if self._background is None or persona is None:
            return None
        return self._background.share(persona)

    def _heard(self, event: Event) -> None:
        """A persona became ready: its share is settled in order with the switches; one is
        being stopped: a paused one is resumed at once, so that it can shut down."""
        if self._background is None:
            return
        if isinstance(event, ReadyChanged) and event.ready:
            self._queue.put_nowait(event.persona)
        elif (isinstance(event, StateChanged) and event.state == RunState.STOPPING
              and (persona := self._personas.get(event.persona))):
            task = asyncio.get_running_loop().create_task(self._background.stopping(persona),
                                                          name=f"background:{event.persona}:stopping")
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)


def first_active(running: Sequence[str], remembered: str | None, configured: str | None) -> str | None:
    """The persona made active when none is yet, among the ``running`` ones (config order).

    The one active when mux last ran this config (``remembered``) comes first, then
    ``[mux] active`` (``configured``), then the first running persona; a choice that is
    not running is passed over.
    """
    for choice in (remembered, configured):
        if choice is not None and choice in running:
            return choice
    return running[0] if running else None


async def start_to_switch(persona: Persona, start_on_switch: bool) -> None:
    """The controller's ``ready``: the switch target runs, started now if it may be.

    A persona that is starting or stopping is waited for first.

    Raises:
        StateError: it is stopped or crashed and ``[mux] start_on_switch`` is false.
        PersonaError: it did not start (LaunchError...).
    """
    while persona.state in (RunState.STARTING, RunState.STOPPING):
        await asyncio.sleep(0.05)
    if persona.state == RunState.RUNNING:
        return
    if not start_on_switch:
        raise StateError(persona.name, persona.state, "running ([mux] start_on_switch is false)")
    log.info("%s is %s: starting it to switch to it", persona.name, persona.state)
    await persona.start()
