"""Seats: several keyboards and screens, each showing its own active persona.

A Linux *seat* (logind's ``seat0``, ``seat1`` ...) is a set of devices, a keyboard, a
mouse, a screen, that one person uses at a time; logind gives each seat its own session.
mux's seats are the same idea one level up: each :class:`Seat` has its own input devices,
its own hotkeys and its own active persona, and may be limited to some personas. A config
with no ``[[seat]]`` has one seat, :data:`DEFAULT_SEAT`, with every persona: exactly the
single-seat behaviour, one :class:`~mux.input.router.Router`.

This module is pure (sans-I/O, like the router): :class:`Seats` holds who is active where
and one router per seat, and answers with the router's actions.

- *A persona is active on at most one seat*: it has one screen and one input queue, and
  two people typing into one guest would interleave. A switch of a seat to a persona that
  is active on another seat is refused (:class:`~mux.errors.SeatError`, naming that seat),
  and so is one to a persona the seat may not show.
- *steal* (``[mux] steal = true``, or per request) moves the persona instead: the other
  seat goes back to the persona it showed most recently that is free after the move (it
  may be the one the stealing seat leaves), or to none. Stealing never chains: the seat
  stolen from only takes a free persona.
- ``next``/``previous`` walk the personas the seat may show, in config order, wrapping
  around, *skipping those active on another seat* (with steal, they skip none and may
  steal). With nothing else free the seat stays where it is; with no active persona and
  nothing free, the switch is refused.
- A switch is two steps, so that the switcher can do its refusable work (device moves)
  between them: :meth:`Seats.plan_switch` decides, changing nothing; :meth:`Seats.apply`
  makes it so and returns each router's releases owed to the persona its seat leaves. A
  plan made before another switch was applied is stale and refused.

Each router keeps its own rules (ownership, held-back hotkey keys, releases at a switch),
so a seat's router only ever sends to that seat's active persona, and a persona moved to
another seat first gets the releases of every key it had down from the old one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from mux.errors import InputError, SeatError, UnknownPersona
from mux.input.events import InputEvent
from mux.input.hotkeys import DEFAULT_HOTKEYS, NEXT, PREVIOUS, TARGETS
from mux.input.router import Action, Router, switch_target

DEFAULT_SEAT = "default"
"""The name of the one seat a config without ``[[seat]]`` has."""


@dataclass(frozen=True)
class Seat:
    """One seat's setup: its name, the personas it may show (None: every one) and its
    hotkeys (``{chord: target}``; None: :data:`~mux.input.hotkeys.DEFAULT_HOTKEYS`)."""

    name: str
    personas: Sequence[str] | None = None
    hotkeys: Mapping[str, str] | None = None


@dataclass(frozen=True)
class SeatMove:
    """One seat's active persona changes from ``old`` to ``new`` (either may be None)."""

    seat: str
    old: str | None
    new: str | None


@dataclass(frozen=True)
class SwitchPlan:
    """What a switch of ``seat`` to ``target`` does: it lands on ``persona``, and each seat
    in ``moves`` changes its active persona (the asking seat first, then the one stolen
    from, if any). No moves: the seat already shows ``persona``. ``version`` is the state
    the plan was made against (see :meth:`Seats.apply`)."""

    seat: str
    target: str
    persona: str
    moves: tuple[SeatMove, ...]
    version: int

    @property
    def stolen_from(self) -> str | None:
        """The seat that loses ``persona`` to this switch, if any."""
        return next((m.seat for m in self.moves if m.old == self.persona), None)


class Seats:
    """Who is active on which seat, and one router per seat. See the module docstring."""

    def __init__(
        self,
        names: Sequence[str],
        seats: Sequence[Seat],
        *,
        steal: bool = False,
        active: Mapping[str, str | None] | None = None,
        autorepeat: Literal["pass", "drop"] = "pass",
    ) -> None:
        """``names`` are every persona, in config order; ``active`` the first active persona
        of some seats (the others start with none).

        Raises:
            SeatError: no seats, an empty or duplicate seat name, a seat that may show no
                persona, a persona listed twice for a seat, an unknown seat in ``active``,
                a seat's first persona it may not show, a persona first active on two seats.
            UnknownPersona: a seat lists, or ``active`` names, a persona not in ``names``.
            InputError: no, empty, reserved or duplicate persona names, a bad autorepeat (see
                :class:`~mux.input.router.Router`), or a seat's bad hotkeys (the message
                names the seat).
        """
        if not seats:
            raise SeatError("at least one seat is needed")
        self._names = tuple(names)
        if not self._names:
            raise InputError("seats need at least one persona")
        for name in self._names:
            if not name or name in TARGETS or self._names.count(name) > 1:
                raise InputError(f"bad persona name {name!r}: empty, reserved or duplicated")
        self._steal = steal
        self._allowed: dict[str, tuple[str, ...]] = {}
        for seat in seats:
            if not seat.name.strip():
                raise SeatError("a seat has an empty name")
            if seat.name in self._allowed:
                raise SeatError(f"seat {seat.name!r} is defined twice")
            self._allowed[seat.name] = self._check_personas(seat)
        first = dict(active or {})
        for seat_name, persona in first.items():
            if seat_name not in self._allowed:
                raise SeatError(f"unknown seat {seat_name!r} (seats: {', '.join(self._allowed)})")
            if persona is not None:
                self._check_may_show(seat_name, persona)
        shown = [p for p in first.values() if p is not None]
        for persona in shown:
            if shown.count(persona) > 1:
                raise SeatError(f"persona {persona!r} is active on more than one seat")
        self._routers: dict[str, Router] = {}
        for seat in seats:
            try:
                self._routers[seat.name] = Router(
                    self._allowed[seat.name],
                    DEFAULT_HOTKEYS if seat.hotkeys is None else seat.hotkeys,
                    autorepeat,
                    first.get(seat.name),
                )
            except InputError as exc:
                raise InputError(f"seat {seat.name!r}: {exc}") from exc
        # The personas each seat showed, least recently first (its active one last).
        self._history: dict[str, list[str]] = {
            name: [p] if (p := first.get(name)) is not None else [] for name in self._allowed
        }
        self._version = 0

    def _check_personas(self, seat: Seat) -> tuple[str, ...]:
        """The seat's personas in config order; raises SeatError or UnknownPersona."""
        if seat.personas is None:
            return self._names
        listed = list(seat.personas)
        if not listed:
            raise SeatError(f"seat {seat.name!r} may show no persona (omit personas for all)")
        for persona in listed:
            if persona not in self._names:
                raise UnknownPersona(persona, self._names, what=f"persona of seat {seat.name!r}")
            if listed.count(persona) > 1:
                raise SeatError(f"seat {seat.name!r} lists persona {persona!r} twice")
        return tuple(p for p in self._names if p in listed)

    def _check_may_show(self, seat: str, persona: str) -> None:
        if persona not in self._names:
            raise UnknownPersona(persona, self._names)
        if persona not in self._allowed[seat]:
            raise SeatError(f"seat {seat!r} may not show persona {persona!r} "
                            f"(it shows: {', '.join(self._allowed[seat])})")

    # --- the state ------------------------------------------------------------------------

    @property
    def names(self) -> tuple[str, ...]:
        """Every persona, in config order."""
        return self._names

    @property
    def seats(self) -> tuple[str, ...]:
        """The seat names, in the order they were given."""
        return tuple(self._allowed)

    @property
    def steal(self) -> bool:
        """Whether a switch to a persona active elsewhere moves it (else it is refused)."""
        return self._steal

    def personas(self, seat: str) -> tuple[str, ...]:
        """The personas ``seat`` may show, in config order.

        Raises:
            SeatError: no such seat.
        """
        return self._allowed[self._seat(seat)]

    def active(self, seat: str) -> str | None:
        """The persona ``seat`` shows and sends its input to, if any.

        Raises:
            SeatError: no such seat.
        """
        return self._routers[self._seat(seat)].active

    def seat_of(self, persona: str) -> str | None:
        """The seat ``persona`` is active on, if any.

        Raises:
            UnknownPersona: no such persona.
        """
        if persona not in self._names:
            raise UnknownPersona(persona, self._names)
        return next((s for s, r in self._routers.items() if r.active == persona), None)

    def held(self, persona: str) -> frozenset[int]:
        """The key and button codes down in ``persona`` (only ever from its seat).

        Raises:
            UnknownPersona: no such persona.
        """
        seat = self.seat_of(persona)
        return frozenset() if seat is None else self._routers[seat].held(persona)

    def pressed(self, seat: str) -> bool:
        """Whether any key or button of ``seat`` is down (see :meth:`Router.pressed`).

        Raises:
            SeatError: no such seat.
        """
        return self._routers[self._seat(seat)].pressed()

    def router(self, seat: str) -> Router:
        """``seat``'s own router (read it; switch only through :meth:`apply`).

        Raises:
            SeatError: no such seat.
        """
        return self._routers[self._seat(seat)]

    def _seat(self, seat: str) -> str:
        if seat not in self._routers:
            raise SeatError(f"unknown seat {seat!r} (seats: {', '.join(self._routers)})")
        return seat

    # --- input ----------------------------------------------------------------------------

    def feed(self, seat: str, event: InputEvent) -> list[Action]:
        """Take one event from ``seat``'s devices; its router's actions (a ``Send`` only
        ever names ``seat``'s active persona; a ``SwitchRequest`` is for ``seat``).

        Raises:
            SeatError: no such seat.
        """
        return self._routers[self._seat(seat)].feed(event)

    # --- switching ------------------------------------------------------------------------

    def plan_switch(self, seat: str, target: str, *, steal: bool | None = None) -> SwitchPlan:
        """Decide where a switch of ``seat`` to ``target`` (a persona, ``next`` or
        ``previous``) lands and which seats change; nothing changes until :meth:`apply`.

        ``steal`` overrides the seats' own setting for this request.

        Raises:
            SeatError: no such seat; the persona is active on another seat and steal is
                off; the seat may not show it; ``next``/``previous`` with no active persona
                and every persona the seat may show active elsewhere.
            UnknownPersona: ``target`` is neither a persona nor ``next``/``previous``.
        """
        self._seat(seat)
        stealing = self._steal if steal is None else steal
        old = self.active(seat)
        if target in (NEXT, PREVIOUS):
            persona = self._walk(seat, old, target, stealing)
        elif target in self._names:
            self._check_may_show(seat, target)
            persona = target
        else:
            raise UnknownPersona(target, (*self._names, NEXT, PREVIOUS), what="switch target")
        if persona == old:
            return SwitchPlan(seat, target, persona, (), self._version)
        moves = [SeatMove(seat, old, persona)]
        other = self.seat_of(persona)
        if other is not None:
            if not stealing:
                raise SeatError(f"persona {persona!r} is active on seat {other!r} "
                                f"(switch that seat away first, or set [mux] steal = true)")
            moves.append(SeatMove(other, persona, self._fallback(other, seat, persona)))
        return SwitchPlan(seat, target, persona, tuple(moves), self._version)

    def _walk(self, seat: str, old: str | None, target: str, stealing: bool) -> str:
        """Where ``next``/``previous`` land: see the module docstring."""
        candidates = [p for p in self._allowed[seat]
                      if stealing or p == old or self.seat_of(p) is None]
        if not candidates:
            raise SeatError(f"seat {seat!r}: every persona it may show "
                            f"({', '.join(self._allowed[seat])}) is active on another seat")
        persona = switch_target(candidates, old, target)
        assert persona is not None  # next/previous over a non-empty list always land
        return persona

    def _fallback(self, other: str, seat: str, persona: str) -> str | None:
        """What ``other`` shows once ``seat`` takes ``persona`` from it: the persona it
        showed most recently that is free after the move, or None."""
        taken = {persona, *(r.active for s, r in self._routers.items() if s not in (seat, other))}
        return next((p for p in reversed(self._history[other]) if p not in taken), None)

    def apply(self, plan: SwitchPlan) -> list[Action]:
        """Make ``plan`` so; return every moved seat's router releases, owed to the persona
        each seat leaves (in the plan's order; each is for a different persona).

        Raises:
            SeatError: the plan is stale: another switch was applied since it was made.
        """
        if plan.version != self._version:
            raise SeatError(f"the switch of seat {plan.seat!r} to {plan.target!r} was planned "
                            f"before another switch was applied: plan it again")
        actions: list[Action] = []
        for move in plan.moves:
            actions += self._routers[move.seat].switch(move.new)
            if move.new is not None:
                history = self._history[move.seat]
                if move.new in history:
                    history.remove(move.new)
                history.append(move.new)
        if plan.moves:
            self._version += 1
        return actions

    def switch(self, seat: str, target: str, *, steal: bool | None = None) -> list[Action]:
        """:meth:`plan_switch` then :meth:`apply`, for callers with nothing to do between.

        Raises:
            SeatError, UnknownPersona: as :meth:`plan_switch`.
        """
        return self.apply(self.plan_switch(seat, target, steal=steal))

    @classmethod
    def single(
        cls,
        names: Sequence[str],
        hotkeys: Mapping[str, str] | None = None,
        autorepeat: Literal["pass", "drop"] = "pass",
        active: str | None = None,
    ) -> Seats:
        """The one :data:`DEFAULT_SEAT` with every persona: a config without ``[[seat]]``.

        Raises:
            InputError, UnknownPersona, SeatError: as the constructor.
        """
        return cls(names, [Seat(DEFAULT_SEAT, None, hotkeys)], active={DEFAULT_SEAT: active},
                   autorepeat=autorepeat)
