"""The input router: physical evdev events in, QMP ``input-send-event`` batches out.

Sans-I/O (like h11): the caller feeds :class:`InputEvent` s and gets back a list of
actions: :class:`Send` (events for one persona's ``input-send-event``),
:class:`SwitchRequest` (a hotkey completed: a switch, or the overview, copy or paste,
which the controller carries out) and :class:`Unmapped` (a key QEMU cannot express,
reported once per code). The router never changes the active persona on its own; the
switcher does that by calling :meth:`Router.switch`, which returns the releases owed to
the persona being left. Where ``next`` and ``previous`` land is :func:`switch_target`,
the one implementation the switcher and these tests share.

The rules, and why:

- Frames. evdev groups events into frames ended by ``SYN_REPORT``; a frame becomes at
  most one ``Send`` per persona, so QEMU sees e.g. a diagonal move as one step. After
  ``SYN_DROPPED`` the rest of the frame and the next one are discarded; the input
  source then sends a frame releasing the keys the device no longer reports down
  (:mod:`mux.input.sources`).
- Ownership ("consistent" routing, as in evsieve). Each key or button that is down is
  owned by the persona that got its press; its release goes there and nowhere else. A
  switch releases everything the old persona owns at once, so keys held across a switch
  never appear down in the new persona and their physical release goes nowhere. A
  persona is never sent a release it had no press for.
- Hotkeys (see :mod:`mux.input.hotkeys`). A press that could begin a chord is *held back*,
  sent nowhere. The next press decides: if it completes a chord, a SwitchRequest is
  emitted and every chord key is *swallowed* (its repeats and release are dropped); if
  not, the held-back presses are flushed, in order, before it. Releasing a held-back key
  flushes the held-back presses, then the release. A wheel or button flushes them too
  (ctrl+wheel must zoom in the guest); pointer motion does not. While the prefix keys of
  a completed chord stay down they are *armed*: another final key fires again
  (scrolllock held, right, right: two switches). An external switch swallows any
  held-back keys, so they never reach the new persona either.
- Autorepeat (value 2): ``"pass"`` sends it as another press, only to the persona that
  owns the key, if that persona is active; ``"drop"`` drops it.
- With no active persona, presses and motion are dropped (releases still go to owners).
- Pointer: REL_X/REL_Y become ``rel``; REL_WHEEL/REL_HWHEEL notches become a wheel
  button press+release each (the hi-res wheel axes are ignored: they duplicate them);
  ABS_X/ABS_Y become ``abs``, scaled to QEMU's 0..0x7fff when the device range is known.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from mux.errors import InputError, UnknownPersona
from mux.input.events import (
    EV_ABS,
    EV_KEY,
    EV_REL,
    EV_SYN,
    KEY_PRESS,
    KEY_RELEASE,
    KEY_REPEAT,
    REL_HWHEEL,
    REL_WHEEL,
    REL_X,
    REL_Y,
    SYN_DROPPED,
    SYN_REPORT,
    InputEvent,
)
from mux.input.hotkeys import DEFAULT_HOTKEYS, NEXT, PREVIOUS, TARGETS, HotkeyMatcher
from mux.input.keymap import qmp_key

QEMU_ABS_MAX = 0x7FFF

# Linux button code -> QMP InputButton, as QEMU's own input-linux maps them.
BUTTONS: dict[int, str] = {
    0x110: "left",  # BTN_LEFT
    0x111: "right",  # BTN_RIGHT
    0x112: "middle",  # BTN_MIDDLE
    0x113: "side",  # BTN_SIDE
    0x114: "extra",  # BTN_EXTRA
    0x150: "wheel-down",  # BTN_GEAR_DOWN
    0x151: "wheel-up",  # BTN_GEAR_UP
}
_WHEELS = {REL_WHEEL: ("wheel-up", "wheel-down"), REL_HWHEEL: ("wheel-right", "wheel-left")}
_AXES = {REL_X: "x", REL_Y: "y"}  # the same numbers serve ABS_X/ABS_Y

QmpEvent: TypeAlias = dict[str, Any]


@dataclass(frozen=True)
class Send:
    """Events for one persona: ``input-send-event {"events": events}``."""

    persona: str
    events: list[QmpEvent]


@dataclass(frozen=True)
class SwitchRequest:
    """A hotkey completed: a switch to a persona name, ``"next"`` or ``"previous"``, or one
    of the targets that are no switch (``"overview"``, ``"copy"``, ``"paste"``)."""

    target: str


@dataclass(frozen=True)
class Unmapped:
    """A key or button QEMU cannot express was pressed (reported once per code)."""

    code: int


Action: TypeAlias = Send | SwitchRequest | Unmapped


def switch_target(personas: Sequence[str], active: str | None, target: str) -> str | None:
    """The persona a switch to ``target`` (a persona, ``next`` or ``previous``) lands on.

    ``next``/``previous`` walk ``personas`` in order, wrapping around; with no active
    persona, ``next`` is the first persona and ``previous`` the last. None if ``target``
    is neither a persona nor ``next``/``previous``.
    """
    if target in (NEXT, PREVIOUS):
        step = 1 if target == NEXT else -1
        if active is None:
            return personas[0 if step == 1 else -1]
        return personas[(list(personas).index(active) + step) % len(personas)]
    return target if target in personas else None


class _Out:
    """Collects one step's output: events per persona (in order), then other actions."""

    def __init__(self) -> None:
        self.events: dict[str, list[QmpEvent]] = {}
        self.notes: list[Action] = []

    def add(self, persona: str, event: QmpEvent) -> None:
        self.events.setdefault(persona, []).append(event)

    def actions(self) -> list[Action]:
        return [*(Send(p, evs) for p, evs in self.events.items()), *self.notes]


class Router:
    """Routes one keyboard and mouse to the active persona. See the module docstring."""

    def __init__(
        self,
        personas: Sequence[str],
        hotkeys: Mapping[str, str] = DEFAULT_HOTKEYS,
        autorepeat: Literal["pass", "drop"] = "pass",
        active: str | None = None,
        *,
        abs_ranges: Mapping[int, tuple[int, int]] | None = None,
    ) -> None:
        """``abs_ranges`` maps ABS_X/ABS_Y to the device's (min, max), for scaling.

        Raises:
            InputError: no personas, an empty, duplicate or reserved (a hotkey target:
                ``next``, ``previous``, ``overview``, ``copy``, ``paste``) persona name, an
                unknown ``autorepeat``, an empty abs range, or bad hotkeys (see
                :class:`mux.input.hotkeys.HotkeyMatcher`).
            UnknownPersona: ``active`` is not one of ``personas``.
        """
        if not personas:
            raise InputError("the router needs at least one persona")
        for name in personas:
            if not name or name in TARGETS or list(personas).count(name) > 1:
                raise InputError(f"bad persona name {name!r}: empty, reserved or duplicated")
        if active is not None and active not in personas:
            raise UnknownPersona(active, personas, what="active persona")
        if autorepeat not in ("pass", "drop"):
            raise InputError(f"autorepeat must be 'pass' or 'drop', not {autorepeat!r}")
        for code, (low, high) in (abs_ranges or {}).items():
            if high <= low:
                raise InputError(f"abs axis {code}: empty range {low}..{high}")
        self._personas = tuple(personas)
        self._matcher = HotkeyMatcher(hotkeys, self._personas)
        self._autorepeat = autorepeat
        self._abs_ranges = dict(abs_ranges or {})
        self._active = active
        self._owner: dict[int, str] = {}  # code down in a persona -> that persona
        self._held_back: list[int] = []  # pressed, sent nowhere yet: may begin a chord
        self._swallowed: set[int] = set()  # pressed, never to reach a guest
        self._armed: list[int] = []  # swallowed prefix keys of the last chord, still down
        self._frame: list[InputEvent] = []
        self._dropping = False
        self._reported: set[int] = set()

    @property
    def active(self) -> str | None:
        """The persona that gets new input; changed only by :meth:`switch`."""
        return self._active

    @property
    def personas(self) -> tuple[str, ...]:
        """The persona names, in the order ``next`` walks them."""
        return self._personas

    # --- the public steps -------------------------------------------------------------

    def feed(self, event: InputEvent) -> list[Action]:
        """Take one evdev event; at SYN_REPORT, return the frame's actions."""
        if self._dropping:
            self._dropping = not (event.type == EV_SYN and event.code == SYN_REPORT)
            return []
        if event.type != EV_SYN:
            self._frame.append(event)
            return []
        if event.code == SYN_DROPPED:
            self._frame.clear()
            self._dropping = True
        if event.code != SYN_REPORT:
            return []
        frame, self._frame = self._frame, []
        out = _Out()
        for ev in frame:
            if ev.type == EV_KEY:
                self._key(ev.code, ev.value, out)
            elif ev.type == EV_REL:
                self._rel(ev.code, ev.value, out)
            elif ev.type == EV_ABS:
                self._abs(ev.code, ev.value, out)
        return out.actions()

    def switch(self, persona: str | None) -> list[Action]:
        """Make ``persona`` active; return the releases owed to the persona left.

        Switching to the active persona does nothing. ``None`` leaves the router with no
        active persona (a seat whose persona was taken by another: :mod:`mux.input.seats`).

        Raises:
            UnknownPersona: ``persona`` is not one of the router's.
        """
        if persona is not None and persona not in self._personas:
            raise UnknownPersona(persona, self._personas)
        out = _Out()
        if persona != self._active:
            for code in reversed(list(self._owner)):  # newest first: modifiers last
                self._emit(self._owner.pop(code), code, down=False, out=out)
            self._swallowed.update(self._held_back)
            self._held_back.clear()
            self._active = persona
        return out.actions()

    def resolve(self, target: str) -> str:
        """A persona name for ``next``/``previous`` or a name (see :func:`switch_target`).

        Raises:
            UnknownPersona: ``target`` is neither a persona nor ``next``/``previous``.
        """
        persona = switch_target(self._personas, self._active, target)
        if persona is None:
            raise UnknownPersona(target, (*self._personas, NEXT, PREVIOUS), what="switch target")
        return persona

    def held(self, persona: str) -> frozenset[int]:
        """The key and button codes currently down in ``persona``.

        Raises:
            UnknownPersona: ``persona`` is not one of the router's.
        """
        if persona not in self._personas:
            raise UnknownPersona(persona, self._personas)
        return frozenset(code for code, owner in self._owner.items() if owner == persona)

    def pressed(self) -> bool:
        """Whether any key or button is down now, in any persona or none (held back, or
        swallowed by a hotkey): mux's attention switch waits until none is."""
        return bool(self._owner or self._held_back or self._swallowed)

    # --- keys and buttons -------------------------------------------------------------

    def _key(self, code: int, value: int, out: _Out) -> None:
        if value == KEY_PRESS:
            self._press(code, out)
        elif value == KEY_RELEASE:
            self._release(code, out)
        elif value == KEY_REPEAT and self._autorepeat == "pass":
            persona = self._owner.get(code)
            if persona is not None and persona == self._active:
                self._emit(persona, code, down=True, out=out)

    def _press(self, code: int, out: _Out) -> None:
        if code in self._owner or code in self._swallowed or code in self._held_back:
            return  # already down: a duplicate press after lost events
        if self._armed:
            if self._fire(self._armed, code, out):
                return
            self._armed = []
        if self._fire(self._held_back, code, out):
            self._armed, self._held_back = self._held_back, []
        elif self._matcher.could_begin([*self._held_back, code]):
            self._held_back.append(code)
        else:
            self._flush_held_back(out)
            if self._fire((), code, out):
                return
            if self._matcher.could_begin([code]):
                self._held_back.append(code)
            elif self._active is not None:
                self._deliver(code, out)

    def _fire(self, held: Sequence[int], code: int, out: _Out) -> bool:
        target = self._matcher.completes(held, code)
        if target is None:
            return False
        self._swallowed.update(held)
        self._swallowed.add(code)
        out.notes.append(SwitchRequest(target))
        return True

    def _release(self, code: int, out: _Out) -> None:
        if code in self._swallowed:
            self._swallowed.discard(code)
            if code in self._armed:
                self._armed.remove(code)
            return
        if code in self._held_back:
            self._flush_held_back(out)
        persona = self._owner.pop(code, None)
        if persona is not None:
            self._emit(persona, code, down=False, out=out)

    def _flush_held_back(self, out: _Out) -> None:
        held, self._held_back = self._held_back, []
        if self._active is not None:
            for code in held:
                self._deliver(code, out)

    def _deliver(self, code: int, out: _Out) -> None:
        """Send a press to the active persona, which then owns the key."""
        assert self._active is not None
        if self._emit(self._active, code, down=True, out=out):
            self._owner[code] = self._active

    def _emit(self, persona: str, code: int, *, down: bool, out: _Out) -> bool:
        """Add a key or button event; False (and Unmapped once) if QEMU cannot express it."""
        if code in BUTTONS:
            out.add(persona, {"type": "btn", "data": {"down": down, "button": BUTTONS[code]}})
        elif (key := qmp_key(code)) is not None:
            out.add(persona, {"type": "key", "data": {"down": down, "key": key}})
        else:
            if code not in self._reported:
                self._reported.add(code)
                out.notes.append(Unmapped(code))
            return False
        return True

    # --- pointer ----------------------------------------------------------------------

    def _rel(self, code: int, value: int, out: _Out) -> None:
        if code in _WHEELS:
            self._flush_held_back(out)
        if self._active is None or value == 0:
            return
        if code in _AXES:
            out.add(self._active, {"type": "rel", "data": {"axis": _AXES[code], "value": value}})
        elif code in _WHEELS:
            button = _WHEELS[code][0 if value > 0 else 1]
            for _ in range(abs(value)):
                for down in (True, False):
                    out.add(self._active, {"type": "btn", "data": {"down": down, "button": button}})

    def _abs(self, code: int, value: int, out: _Out) -> None:
        if self._active is None or code not in _AXES:
            return
        if code in self._abs_ranges:
            low, high = self._abs_ranges[code]
            scaled = round((value - low) * QEMU_ABS_MAX / (high - low))
            value = min(max(scaled, 0), QEMU_ABS_MAX)
        out.add(self._active, {"type": "abs", "data": {"axis": _AXES[code], "value": value}})
