"""A rate limit for what a guest makes happen: at most N a second, the last one wins.

Theory. A persona is untrusted: its guest decides how often its LEDs, its resolution or
its readiness change, and each change costs mux work outside the guest (a write to the
physical keyboard, an MQTT message, a new framebuffer). :class:`Coalescer` lets at most
``rate`` values a second through: a value offered when the last one let through is at
least ``1 / rate`` seconds old goes at once (the leading edge); one offered sooner waits,
replacing any value already waiting (coalesced: counted in :attr:`Coalescer.dropped`),
and goes at :meth:`Coalescer.due` (the trailing edge). So the latest value always wins
and none is lost at the end of a burst: it goes within ``1 / rate`` seconds.

Pure (no asyncio, no clock): the caller passes ``now`` and arms its own timer for
:meth:`~Coalescer.due`; :mod:`mux.guest.paced` does that on the event loop.
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class Coalescer(Generic[T]):
    """At most ``rate`` values a second pass; the others are coalesced (the last wins)."""

    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, not {rate}")
        self.interval = 1.0 / rate
        self._last: float | None = None  # when the last value went
        self._pending: list[T] = []  # the value waiting for its turn (at most one)
        self.dropped = 0  # values replaced by a newer one before they went, in all
        self.burst = 0  # values offered while one waited, since the last trailing send

    @property
    def pending(self) -> bool:
        """A value is waiting for :meth:`due`."""
        return bool(self._pending)

    def due(self) -> float | None:
        """When the waiting value may go (None: none waits)."""
        if not self._pending or self._last is None:
            return None
        return self._last + self.interval

    def offer(self, value: T, now: float) -> list[T]:
        """Offer a new value at ``now``; returns what goes now (``[value]`` or ``[]``)."""
        if not self._pending and (self._last is None or now - self._last >= self.interval):
            self._last = now
            return [value]
        if self._pending:
            self.dropped += 1
        self.burst += 1
        self._pending = [value]
        return []

    def poll(self, now: float) -> list[T]:
        """What goes at ``now``: the waiting value once it is due, else ``[]``."""
        due = self.due()
        if due is None or now < due:
            return []
        value, self._pending = self._pending, []
        self._last = now
        return value

    def end_burst(self) -> int:
        """How many values the burst that just ended had to hold back; starts a new count."""
        count, self.burst = self.burst, 0
        return count
