"""Key names, QMP key values and typed text: the pure edge between people and QEMU.

Everything inside mux names a key by its Linux evdev code (``KEY_A`` = 30), because that
is what the physical keyboard reports. People write names (``"leftshift"``, ``"f6"``, the
Linux name without ``KEY_``, lower case; buttons keep their prefix, ``"btn_left"``), and
QEMU wants a QMP ``KeyValue``: ``{"type": "qcode", "data": "a"}`` when its ``QKeyCode``
enum has the key, else nothing. QMP also takes ``{"type": "number", "data": qnum}``, but
``input-send-event`` maps a number back to a qcode before any device sees it, so a key
with no qcode arrives as ``unmapped`` whatever its number (see ``tools/gen_keymap.py``):
numbers add nothing, and ``qmp_key`` returns None for such keys so the router can say so.

Two ideas of a modifier live here. To *send* a key, ``"ctrl"`` must be one real key, so it
means the left one (``leftctrl``). To *match* a hotkey, ``"ctrl"`` means either side:
``parse_chord(spec, generic_modifiers=True)`` returns each key of the chord as the set of
codes that count as it.

``text_to_chords`` types text on a US layout: one chord (modifiers first) per character.
The tables come from ``mux/input/keycodes.py``, generated from QEMU's keycodemapdb. No I/O.
"""

from __future__ import annotations

import difflib
from typing import Literal, overload

from mux.errors import InputError, UnknownKeyError
from mux.input.keycodes import LINUX_NAME_BY_CODE, LINUX_NAMES, QCODE_BY_LINUX

QmpKeyValue = dict[str, str]
"""A QMP ``KeyValue``: ``{"type": "qcode", "data": "a"}``."""

# Generic modifier name -> (left code, right code).
GENERIC_MODIFIERS: dict[str, tuple[int, int]] = {
    "ctrl": (LINUX_NAMES["leftctrl"], LINUX_NAMES["rightctrl"]),
    "alt": (LINUX_NAMES["leftalt"], LINUX_NAMES["rightalt"]),
    "shift": (LINUX_NAMES["leftshift"], LINUX_NAMES["rightshift"]),
    "meta": (LINUX_NAMES["leftmeta"], LINUX_NAMES["rightmeta"]),
}

_SHIFT = LINUX_NAMES["leftshift"]
_UNSHIFTED = "`1234567890-=qwertyuiop[]\\asdfghjkl;'zxcvbnm,./"
_SHIFTED = '~!@#$%^&*()_+QWERTYUIOP{}|ASDFGHJKL:"ZXCVBNM<>?'
_US_KEYS = [
    "grave", *"1234567890", "minus", "equal", *"qwertyuiop", "leftbrace", "rightbrace",
    "backslash", *"asdfghjkl", "semicolon", "apostrophe", *"zxcvbnm", "comma", "dot", "slash",
]  # fmt: skip
_US_CHORDS: dict[str, tuple[int, ...]] = {
    " ": (LINUX_NAMES["space"],),
    "\n": (LINUX_NAMES["enter"],),
    "\t": (LINUX_NAMES["tab"],),
    **{ch: (LINUX_NAMES[key],) for ch, key in zip(_UNSHIFTED, _US_KEYS, strict=True)},
    **{ch: (_SHIFT, LINUX_NAMES[key]) for ch, key in zip(_SHIFTED, _US_KEYS, strict=True)},
}


def _unknown_key(name: str, chord: str | None = None) -> UnknownKeyError:
    """The error for an unknown key name, with up to three close names as suggestions."""
    candidates = [*LINUX_NAMES, *GENERIC_MODIFIERS]
    return UnknownKeyError(name, difflib.get_close_matches(name.lower(), candidates, n=3), chord)


def _normalise(name: str) -> str:
    name = name.strip().lower()
    return name[4:] if name.startswith("key_") else name


def key_code(name: str) -> int:
    """The Linux code of a key name: ``"leftshift"`` -> 42, ``"ctrl"`` -> leftctrl (29).

    Case is ignored and a ``KEY_`` prefix is allowed. Generic modifiers (``ctrl``, ``alt``,
    ``shift``, ``meta``) mean the left key.

    Raises:
        UnknownKeyError: any other name; the message suggests close matches.
    """
    norm = _normalise(name)
    if norm in GENERIC_MODIFIERS:
        return GENERIC_MODIFIERS[norm][0]
    try:
        return LINUX_NAMES[norm]
    except KeyError:
        raise _unknown_key(name) from None


def key_name(code: int) -> str:
    """The preferred name of a Linux code (``42`` -> ``"leftshift"``), for messages."""
    return LINUX_NAME_BY_CODE.get(code, f"code {code}")


def qmp_key(code: int) -> QmpKeyValue | None:
    """The QMP ``KeyValue`` for a Linux key code, or None if QEMU cannot express it.

    Always a qcode: a ``number`` key without a qcode reaches the guest as ``unmapped``
    (``NUMBER_BY_LINUX`` in :mod:`mux.input.keycodes` lists those keys' numbers anyway).
    """
    if (qcode := QCODE_BY_LINUX.get(code)) is not None:
        return {"type": "qcode", "data": qcode}
    return None


def text_to_chords(text: str) -> list[tuple[int, ...]]:
    """One chord per character for typing ``text`` on a US layout.

    ``"A"`` -> ``(leftshift, a)``; ``"\\n"`` -> ``(enter,)``; ``"\\t"`` -> ``(tab,)``.
    Raises:
        InputError: naming the first character (and its position) that a US keyboard
            cannot type.
    """
    chords = []
    for index, char in enumerate(text):
        try:
            chords.append(_US_CHORDS[char])
        except KeyError:
            raise InputError(
                f"cannot type {char!r} (U+{ord(char):04X}, position {index}) on a US keyboard"
            ) from None
    return chords


@overload
def parse_chord(spec: str, generic_modifiers: Literal[False] = False) -> tuple[int, ...]: ...
@overload
def parse_chord(spec: str, generic_modifiers: Literal[True]) -> tuple[frozenset[int], ...]: ...
@overload
def parse_chord(
    spec: str, generic_modifiers: bool
) -> tuple[int, ...] | tuple[frozenset[int], ...]: ...
def parse_chord(
    spec: str, generic_modifiers: bool = False
) -> tuple[int, ...] | tuple[frozenset[int], ...]:
    """Parse ``"ctrl+alt+f1"`` into its keys, in the order written (the last is the final key).

    With ``generic_modifiers=False`` (for sending) each key is one code and ``ctrl`` is
    leftctrl. With ``generic_modifiers=True`` (for matching) each key is the set of codes
    that count as it: ``ctrl`` is {leftctrl, rightctrl}, ``leftctrl`` is {leftctrl}.

    Raises:
        InputError: the chord is empty, has an empty part (a stray ``+``) or names the
            same key twice (``ctrl+leftctrl+a`` counts).
        UnknownKeyError: an unknown key name (an :class:`~mux.errors.InputError` too).
    """
    parts = [_normalise(part) for part in spec.split("+")]
    if not spec.strip():
        raise InputError("empty chord: expected key names joined by '+', e.g. 'ctrl+alt+f1'")
    if "" in parts:
        raise InputError(f"chord {spec!r} has an empty key name (a stray '+'?)")
    slots: list[frozenset[int]] = []
    for part in parts:
        try:
            codes = frozenset(
                GENERIC_MODIFIERS[part] if generic_modifiers and part in GENERIC_MODIFIERS
                else (key_code(part),)
            )  # fmt: skip
        except UnknownKeyError:
            raise _unknown_key(part, chord=spec) from None
        if any(codes & seen for seen in slots):
            raise InputError(f"chord {spec!r} names the key {part!r} twice")
        slots.append(codes)
    if generic_modifiers:
        return tuple(slots)
    return tuple(next(iter(codes)) for codes in slots)
