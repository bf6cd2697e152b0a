"""``[[seat]]`` tables: checked, and the one implicit seat of a config without any.

A seat is one person's devices (:mod:`mux.input.seats` has the theory). A config without
``[[seat]]`` has exactly one, :data:`~mux.input.seats.DEFAULT_SEAT`, built from ``[input]``
and ``[display]`` (:func:`seats_of`): today's single-seat behaviour. With ``[[seat]]``
tables each seat names its own devices and output, so ``[input] devices`` and ``[display]
output``/``fullscreen`` are refused there (they would say the same thing twice);
``[input] hotkeys`` stays the default of a seat that sets none.
"""

from __future__ import annotations

from typing import Any

from mux.config.checks import Checker
from mux.config.schema import NAME_PATTERN, Config, SeatSection
from mux.input.hotkeys import TARGETS
from mux.sourcemap import Path_

#: The name of the implicit seat (the same as :data:`mux.input.seats.DEFAULT_SEAT`).
DEFAULT_SEAT = "default"

SEAT_KEYS = {"name", "input", "output", "display", "monitor", "hotkeys", "audio_sink", "personas"}
OUTPUTS = ("window", "fullscreen", "headless", "auto")


def parse_seats(c: Checker, data: Any, path: Path_, names: list[str], top: dict[str, Any],
                prefix: Path_) -> tuple[SeatSection, ...]:
    """The ``[[seat]]`` tables at ``path``; every problem goes to ``c``."""
    if data is None:
        return ()
    if not isinstance(data, list) or not data:
        c.fail(path, "seat must be a non-empty array of tables ([[seat]])")
        return ()
    for section, key in (("input", "devices"), ("display", "output"), ("display", "fullscreen")):
        if isinstance(top.get(section), dict) and key in top[section]:
            c.fail((*prefix, section, key), f"{section}.{key}: with [[seat]] tables each seat has its own "
                                            f"({'input' if section == 'input' else 'output'} = ...)")
    seats: list[SeatSection] = []
    claimed: dict[str, str] = {}  # an input device: the seat that grabs it
    for index, item in enumerate(data):
        p = (*path, index)
        t = c.table(item, p, SEAT_KEYS)
        if not t and not isinstance(item, dict):
            continue
        name = c.get(t, p, "name", str, "")
        if not NAME_PATTERN.match(name):
            c.fail((*p, "name"), f"seat name {name!r}: 1-32 of a-z, 0-9, '-', '_' (not first)")
        elif name in [s.name for s in seats]:
            c.fail((*p, "name"), f"seat name {name!r} is used twice")
        devices = _strings(c, t, p, "input")
        for device in devices:
            if device in claimed:
                c.fail((*p, "input"), f"input device {device!r} is already grabbed by seat "
                                      f"{claimed[device]!r}")
            claimed.setdefault(device, name)
        personas = _strings(c, t, p, "personas") if "personas" in t else None
        for persona in personas or ():
            if persona not in names:
                c.fail((*p, "personas"), f"seat {name!r}: unknown persona {persona!r} "
                                         f"(personas: {', '.join(names)})")
        if personas is not None and not personas:
            c.fail((*p, "personas"), f"seat {name!r} may show no persona (leave personas out for all)")
        hotkeys = c.get(t, p, "hotkeys", dict, None)
        if hotkeys is not None:
            _check_hotkeys(c, hotkeys, (*p, "hotkeys"), personas or names)
        seats.append(SeatSection(
            name=name, input=tuple(devices),
            output=c.choice(t, p, "output", OUTPUTS, "headless"),
            display=c.get(t, p, "display", str, None),
            monitor=c.get(t, p, "monitor", int, 0, lambda v: None if v >= 0 else "must be 0 or more"),
            hotkeys=hotkeys,
            audio_sink=c.get(t, p, "audio_sink", str, None),
            personas=tuple(personas) if personas is not None else None,
            location=c.locate(p),
        ))
    return tuple(seats)


def _strings(c: Checker, t: dict[str, Any], p: Path_, key: str) -> list[str]:
    values = c.get(t, p, key, list, [])
    if not all(isinstance(v, str) and v for v in values):
        c.fail((*p, key), f"{key} must be a list of non-empty strings")
        return []
    return list(values)


def _check_hotkeys(c: Checker, hotkeys: dict[str, Any], p: Path_, names: list[str]) -> None:
    from mux.errors import InputError
    from mux.input.hotkeys import parse_hotkeys

    for chord, target in hotkeys.items():
        if not isinstance(target, str) or target not in (*TARGETS, *names):
            c.fail((*p, chord), f"hotkey {chord!r} targets unknown persona {target!r}")
            return
    try:
        parse_hotkeys(hotkeys)
    except InputError as exc:
        c.fail(p, f"hotkeys: {exc}")


def seats_of(config: Config) -> tuple[SeatSection, ...]:
    """The config's seats: its ``[[seat]]`` tables, or the one implicit seat built from
    ``[input]`` and ``[display]`` (``output``, ``fullscreen``)."""
    if config.seats:
        return config.seats
    display = config.display
    output = "fullscreen" if display.fullscreen and display.output != "headless" else display.output
    return (SeatSection(name=DEFAULT_SEAT, input=config.input.devices, output=output,
                        hotkeys=config.input.hotkeys),)


def seat_hotkeys(config: Config, seat: SeatSection) -> dict[str, str] | None:
    """A seat's hotkeys: its own, else ``[input] hotkeys``, else None (the defaults)."""
    return seat.hotkeys if seat.hotkeys is not None else config.input.hotkeys
