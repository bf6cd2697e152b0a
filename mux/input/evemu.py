"""Input recordings in the ``evemu-record`` text format: parse, frame, write. No I/O but files.

An evemu recording is a device description followed by the events read from it::

    # EVEMU 1.3
    N: AT Translated Set 2 keyboard
    I: 0011 0001 0001 ab41
    B: 00 0b 00 00 00 00 00 00 00
    E: 0.000001 0001 001e 0001	# EV_KEY / KEY_A 1
    E: 0.000001 0000 0000 0000	# ------------ SYN_REPORT (0) ----------

``#`` starts a comment, on its own line or after data (except on ``N:``, where ``#`` may
be part of the name). Description lines (``N: I: P: B: A: L: S:``) are accepted and
ignored: mux replays events, it does not create devices. An event line is
``E: <sec>.<usec> <type hex> <code hex> <value decimal>``; the microseconds are always
six digits, as evemu writes them (``0.5`` would be ambiguous, so it is refused).

Events come in frames ended by ``SYN_REPORT``, as the kernel delivers them; a frame is
the unit a replay sends and waits between. Events after the last ``SYN_REPORT`` (a
recording cut off mid-frame) are dropped by :func:`frames`: half a frame is not input.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from mux.errors import ConfigError, Location
from mux.input.events import EV_SYN, SYN_REPORT, InputEvent

DESCRIPTION_PREFIXES = ("N:", "I:", "P:", "B:", "A:", "L:", "S:")
_EVENT = re.compile(r"E:\s+(\d+)\.(\d{6})\s+([0-9a-fA-F]{1,4})\s+([0-9a-fA-F]{1,4})\s+(-?\d+)")
_INT32 = range(-(2**31), 2**31)


class Recorded(NamedTuple):
    """One event of a recording and its time in seconds (evemu starts near 0)."""

    time: float
    event: InputEvent


def parse_recording(text: str, file: Path | str = "<recording>") -> list[Recorded]:
    """The events of an evemu recording, in file order.

    Raises ConfigError naming ``file:line`` for a line that is neither a comment, a
    description line nor a well-formed event line.
    """
    events: list[Recorded] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#") or line.startswith(DESCRIPTION_PREFIXES):
            continue
        data = line.split("#", 1)[0].strip()
        match = _EVENT.fullmatch(data)
        if match is None:
            raise ConfigError.one(
                Location(file, number),
                f"not an evemu line: {line!r} (expected 'E: <sec>.<usec, 6 digits> <type hex> "
                "<code hex> <value>', a description line N:/I:/P:/B:/A:/L:/S:, or a # comment)",
            )
        sec, usec, type_, code, value = match.groups()
        if int(value) not in _INT32:
            raise ConfigError.one(Location(file, number), f"event value {value} does not fit in 32 bits")
        event = InputEvent(int(type_, 16), int(code, 16), int(value))
        events.append(Recorded((int(sec) * 1_000_000 + int(usec)) / 1_000_000, event))
    return events


def read_recording(path: Path | str) -> list[Recorded]:
    """Parse the evemu recording at ``path``.

    Raises ConfigError for a bad line (``path:line``) or an unreadable file (``path``).
    """
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ConfigError.one(Location(path), f"cannot read the recording: {exc.strerror}") from exc
    return parse_recording(text, path)


def frames(events: Iterable[Recorded]) -> list[list[Recorded]]:
    """Split events into ``SYN_REPORT``-terminated frames; an unfinished last frame is dropped."""
    done: list[list[Recorded]] = []
    frame: list[Recorded] = []
    for recorded in events:
        frame.append(recorded)
        if recorded.event.type == EV_SYN and recorded.event.code == SYN_REPORT:
            done.append(frame)
            frame = []
    return done


def format_recording(events: Iterable[Recorded], name: str = "mux recording") -> str:
    """An evemu recording of ``events``, with a minimal description (name and a zero id)."""
    lines = ["# EVEMU 1.3", f"# Input device name: {name!r}", f"N: {name}", "I: 0000 0000 0000 0000"]
    for time, event in events:
        micros = round(time * 1_000_000)
        lines.append(
            f"E: {micros // 1_000_000}.{micros % 1_000_000:06d} "
            f"{event.type:04x} {event.code:04x} {event.value:04d}"
        )
    return "\n".join(lines) + "\n"


def write_recording(events: Iterable[Recorded], path: Path | str, name: str = "mux recording") -> None:
    """Write ``events`` as an evemu recording to ``path``. Raises OSError if it cannot."""
    Path(path).write_text(format_recording(events, name), encoding="utf-8")
