"""Hotkey chords: which held-back keys plus which final key ask for a persona switch.

A hotkey is written ``"scrolllock+right" = "next"``: key names joined by ``+`` (Linux
names without ``KEY_``, see :mod:`mux.input.keymap`), and a target that is a persona name,
``"next"`` or ``"previous"`` (switches), or one of the hotkeys that are no switch:
``"overview"`` (every screen side by side), ``"copy"`` and ``"paste"`` (the active
persona's clipboard into mux's own and back: :mod:`mux.app.clipboard`). Whatever the
target, a hotkey's keys never reach a guest. Every key but the last is a *prefix* key, the last is the
*final* key. ``ctrl``, ``alt``, ``shift`` and ``meta`` match either side; ``leftctrl``
matches only the left one.

Matching is about the keys the router is *holding back* (keys pressed but not yet sent to
any guest because they might begin a chord), never about keys a guest already has down:

- ``completes(held, final)`` names the target when the held-back keys are exactly the
  chord's prefix keys, pressed in any order, and ``final`` is its final key;
- ``could_begin(held)`` says whether the held-back keys are some chord's prefix keys, or
  part of them, so that waiting for more keys makes sense.

So holding shift in a guest does not stop ``scrolllock+right`` from working, and
``ctrl+alt+f1`` also fires when pressed as alt, ctrl, f1. Chords that would make another
unreachable are refused when parsing: two chords completed by the same keys (``ctrl+a``
and ``leftctrl+a``), or one whose keys are all prefix keys of another (``ctrl+alt`` fires
before ``ctrl+alt+f1`` can). Pure: no I/O.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from mux.errors import InputError
from mux.input.keymap import parse_chord

NEXT = "next"
PREVIOUS = "previous"
OVERVIEW = "overview"  # not a switch: the window shows every back-buffer side by side
COPY = "copy"  # not a switch: the active persona's clipboard into mux's own (mux.app.clipboard)
PASTE = "paste"  # not a switch: mux's clipboard to the active persona
TARGETS = (NEXT, PREVIOUS, OVERVIEW, COPY, PASTE)

# Free of common guest shortcuts: ctrl+alt+Fn switches VTs, ctrl+alt+arrows switches
# GNOME workspaces, ctrl+arrows moves by word. Scroll Lock does nothing in most guests.
DEFAULT_HOTKEYS: Mapping[str, str] = MappingProxyType(
    {"scrolllock+right": NEXT, "scrolllock+left": PREVIOUS, "scrolllock+down": OVERVIEW,
     "scrolllock+c": COPY, "scrolllock+v": PASTE}
)


@dataclass(frozen=True)
class Hotkey:
    """One parsed chord: each key is the set of codes that count as it."""

    spec: str
    prefix: tuple[frozenset[int], ...]
    final: frozenset[int]
    target: str

    @property
    def slots(self) -> tuple[frozenset[int], ...]:
        """Prefix keys then the final key."""
        return (*self.prefix, self.final)

    @property
    def codes(self) -> frozenset[int]:
        """Every code that can take part in this chord."""
        return frozenset().union(*self.slots)

    def _prefix_slots(self, held: Collection[int]) -> set[int] | None:
        """Indexes of the prefix keys the held codes stand for; None if one stands for none
        or two stand for the same prefix key."""
        used: set[int] = set()
        for code in held:
            index = next((i for i, slot in enumerate(self.prefix) if code in slot), None)
            if index is None or index in used:
                return None
            used.add(index)
        return used

    def completed_by(self, held: Collection[int], final: int) -> bool:
        """True if ``held`` is exactly the prefix (any order) and ``final`` the final key."""
        used = self._prefix_slots(held)
        return final in self.final and used is not None and len(used) == len(self.prefix)

    def could_begin(self, held: Collection[int]) -> bool:
        """True if ``held`` is some of the prefix keys, each at most once."""
        return bool(held) and self._prefix_slots(held) is not None


def parse_hotkey(spec: str, target: str) -> Hotkey:
    """Parse one config entry.

    Raises:
        InputError: a bad chord (see :func:`mux.input.keymap.parse_chord`) or an empty target.
    """
    slots = parse_chord(spec, generic_modifiers=True)
    if not target.strip():
        raise InputError(f"hotkey {spec!r} has an empty target")
    return Hotkey(spec=spec, prefix=slots[:-1], final=slots[-1], target=target)


def _embeds(small: Sequence[frozenset[int]], big: Sequence[frozenset[int]]) -> bool:
    """True if each key of ``small`` can stand for a different key of ``big``."""
    return any(
        all(a & b for a, b in zip(small, chosen, strict=True))
        for chosen in itertools.permutations(big, len(small))
    )


def _conflict(a: Hotkey, b: Hotkey) -> str | None:
    if (
        len(a.prefix) == len(b.prefix)
        and a.final & b.final
        and _embeds(a.prefix, b.prefix)
    ):
        return f"hotkeys {a.spec!r} and {b.spec!r} are completed by the same keys"
    for short, long in ((a, b), (b, a)):
        if len(short.slots) <= len(long.prefix) and _embeds(short.slots, long.prefix):
            return f"hotkey {short.spec!r} fires before {long.spec!r} can be completed"
    return None


def parse_hotkeys(
    hotkeys: Mapping[str, str], personas: Collection[str] | None = None
) -> tuple[Hotkey, ...]:
    """Parse a config's ``{chord: target}`` table.

    With ``personas``, a target must be one of them or of :data:`TARGETS` (``next``,
    ``previous``, ``overview``, ``copy``, ``paste``).

    Raises:
        InputError: listing every problem: unknown key names (with suggestions), empty
            chords or targets, a key named twice in a chord, chords that collide.
    """
    problems: list[str] = []
    parsed: list[Hotkey] = []
    for spec, target in hotkeys.items():
        try:
            hotkey = parse_hotkey(spec, target)
        except InputError as exc:
            problems.append(str(exc))
            continue
        if personas is not None and target not in {*personas, *TARGETS}:
            problems.append(
                f"hotkey {spec!r}: unknown target {target!r} (expected a persona name "
                f"({', '.join(sorted(personas))}) or one of {', '.join(map(repr, TARGETS))})"
            )
        problems.extend(msg for other in parsed if (msg := _conflict(other, hotkey)) is not None)
        parsed.append(hotkey)
    if problems:
        raise InputError("bad hotkeys:\n  " + "\n  ".join(problems))
    return tuple(parsed)


class HotkeyMatcher:
    """The parsed hotkey table, asked by the router about the keys it holds back."""

    def __init__(
        self, hotkeys: Mapping[str, str], personas: Collection[str] | None = None
    ) -> None:
        """Parse ``{chord: target}`` with :func:`parse_hotkeys`; raises its InputError."""
        self.hotkeys: tuple[Hotkey, ...] = parse_hotkeys(hotkeys, personas)
        self.codes: frozenset[int] = frozenset().union(*(h.codes for h in self.hotkeys))

    def completes(self, held: Collection[int], final: int) -> str | None:
        """The target of the chord that ``held`` plus ``final`` completes, if any."""
        if final not in self.codes:
            return None
        return next((h.target for h in self.hotkeys if h.completed_by(held, final)), None)

    def could_begin(self, held: Collection[int]) -> bool:
        """True if the held keys could be the start of some chord."""
        return any(h.could_begin(held) for h in self.hotkeys)
