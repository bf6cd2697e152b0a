"""Times as people write them, for a guest's clock (``set_clock``, ``mux ctl clock``) and for
``mux logs --since``: pure parsing, no asyncio.

Theory. One rule for every absolute time mux reads: ISO 8601 (``2031-05-01``,
``2031-05-01T09:00:00``, ``2031-05-01 09:00:00.5``), where a time without an offset is
UTC (as the ``clock`` key's start date is: a guest's clock is not the host's time zone)
and one with an offset (``+02:00``, ``Z``) is honoured; a date alone is its midnight
UTC. A guest's clock may also be set to ``host`` (or ``now``): the host's current time,
the instant itself (a guest keeps UTC; its own time zone shows it). QEMU's guest agent
sets a Linux guest's clock only between 1970 and 2069 (:data:`GUEST_YEARS`).

``--since`` also takes a time relative to now: a number and a unit, ``30s``, ``10m``,
``2h``, ``1d``, or several of them, ``1h30m``.
"""

from __future__ import annotations

import datetime as dt
import re

GUEST_YEARS = (1970, 2069)  # what qemu-ga's guest-set-time accepts on a Linux guest
NOW_WORDS = ("host", "now")
_RELATIVE = re.compile(r"^(?:\d+(?:\.\d+)?[smhd])+$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class TimeError(ValueError):
    """A time that cannot be read; the message says what is accepted."""


def parse_iso(text: str) -> float:
    """An ISO 8601 date or date and time as seconds since the epoch (naive: UTC).

    Raises:
        TimeError: not ISO 8601.
    """
    value = text.strip()
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise TimeError(f"{text!r} is not an ISO 8601 time (e.g. 2031-05-01T09:00:00,"
                        " 2031-05-01T09:00:00+02:00 or 2031-05-01; without an offset it is UTC)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def parse_guest_time(text: str, now: float) -> float:
    """What ``set_clock`` and ``mux ctl clock`` set a guest's clock to, in seconds since the
    epoch: ``host``/``now`` is ``now``; anything else is ISO 8601 (:func:`parse_iso`).

    Raises:
        TimeError: not a time, or outside :data:`GUEST_YEARS`.
    """
    if text.strip().lower() in NOW_WORDS:
        return now
    seconds = parse_iso(text)
    year = dt.datetime.fromtimestamp(seconds, dt.UTC).year
    if not GUEST_YEARS[0] <= year <= GUEST_YEARS[1]:
        raise TimeError(f"{text!r}: a guest's clock can be set from {GUEST_YEARS[0]} to {GUEST_YEARS[1]}"
                        " (QEMU's guest agent refuses other years)")
    return seconds


def parse_since(text: str, now: float) -> float:
    """``--since``: ISO 8601 (:func:`parse_iso`) or relative to ``now`` (``30s``, ``10m``,
    ``2h``, ``1d``, ``1h30m``); seconds since the epoch.

    Raises:
        TimeError: neither.
    """
    value = text.strip().lower()
    if _RELATIVE.match(value):
        parts = re.findall(r"(\d+(?:\.\d+)?)([smhd])", value)
        return now - sum(float(n) * _UNIT_S[unit] for n, unit in parts)
    try:
        return parse_iso(text)
    except TimeError:
        raise TimeError(f"{text!r} is neither a time ago (30s, 10m, 2h, 1d, 1h30m) nor an ISO 8601"
                        " time (2031-05-01T09:00:00, UTC unless it has an offset)") from None


def utc_text(seconds: float) -> str:
    """``seconds`` since the epoch as ``2031-05-01T09:00:00Z`` (messages)."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
