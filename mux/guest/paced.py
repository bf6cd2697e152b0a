"""A :class:`~mux.guest.ratelimit.Coalescer` on the event loop: calls ``deliver`` with at
most ``rate`` values a second, the latest one last, and logs each burst it held back.

The trailing value is delivered by a timer (``loop.call_at``), so a burst's final value
arrives within ``1 / rate`` seconds of the burst's end even if nothing else happens.
Outside a running event loop (plain synchronous code) values go through at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Generic, TypeVar

from mux.guest.ratelimit import Coalescer

log = logging.getLogger(__name__)

T = TypeVar("T")


class Paced(Generic[T]):
    """``paced(value)``: deliver ``value`` now or, coalesced, at the next allowed time."""

    def __init__(self, rate: float, deliver: Callable[[T], None], what: str) -> None:
        """``what`` names the values in the log line of a burst (``"deb: LED changes"``)."""
        self.limit: Coalescer[T] = Coalescer(rate)
        self.rate = rate
        self.deliver = deliver
        self.what = what
        self._timer: asyncio.TimerHandle | None = None

    @property
    def pending(self) -> bool:
        """A value waits for its turn (a burst is being coalesced)."""
        return self.limit.pending

    @property
    def dropped(self) -> int:
        """Values coalesced away (never delivered) so far."""
        return self.limit.dropped

    def __call__(self, value: T) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.deliver(value)
            return
        for now in self.limit.offer(value, loop.time()):
            self.deliver(now)
        due = self.limit.due()
        if due is not None and self._timer is None:
            self._timer = loop.call_at(due, self._fire)

    def _fire(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        for value in self.limit.poll(loop.time()):
            held = self.limit.end_burst()
            log.info("%s: %d in a burst, more than %g a second: coalesced, the last applied"
                     " (%d dropped in all)", self.what, held + 1, self.rate, self.limit.dropped)
            self.deliver(value)
        due = self.limit.due()
        if due is not None:  # not due yet (the loop's clock is coarse): try again then
            self._timer = loop.call_at(due, self._fire)

    def cancel(self) -> None:
        """Drop the waiting value and its timer (the owner is going away)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.limit.poll(float("inf"))
        self.limit.end_burst()
