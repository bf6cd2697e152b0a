"""The core input types: an evdev event and the Linux input-event-codes.h numbers it uses.

Plain data, no logic and no I/O: sources produce these, the router consumes them.
"""

from __future__ import annotations

from dataclasses import dataclass

# Linux input-event-codes.h numbers (evdev is deliberately not imported here).
EV_SYN, EV_KEY, EV_REL, EV_ABS = 0, 1, 2, 3
SYN_REPORT, SYN_DROPPED = 0, 3
KEY_RELEASE, KEY_PRESS, KEY_REPEAT = 0, 1, 2
REL_X, REL_Y, REL_HWHEEL, REL_WHEEL = 0, 1, 6, 8
ABS_X, ABS_Y = 0, 1


@dataclass(frozen=True)
class InputEvent:
    """One evdev event: ``type`` is an EV_* number, ``value`` 0/1/2 for keys."""

    type: int
    code: int
    value: int
