"""The switcher: the one owner of "who is active".

Every switch request (hotkey, control socket, scenario step, MQTT) is put on one queue
and applied by one consumer, in order, so two sources can never interleave half a
switch. Applying a switch is the controller's business (release held keys, repaint,
write LEDs); the switcher only orders the requests, resolves ``next``/``previous``
against the state at the moment the request is applied, and tells each caller the
outcome through a future.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

ApplySwitch = Callable[[str | None, str], Awaitable[None]]


@dataclass
class _Request:
    target: str
    source: str
    done: asyncio.Future[str] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Switcher:
    """Orders switch requests; ``apply(old, new)`` does the work of each."""

    def __init__(self, names: Sequence[str], apply: ApplySwitch, active: str | None = None) -> None:
        self.names = list(names)
        self.active = active
        self._apply = apply
        self._queue: asyncio.Queue[_Request] = asyncio.Queue()
        self.listeners: list[Callable[[str], None]] = []

    def resolve(self, target: str) -> str:
        """Persona name for ``target`` (a name, ``next`` or ``previous``).

        Raises:
            ValueError: no such persona.
        """
        if target in ("next", "previous"):
            if self.active is None:
                return self.names[0]
            step = 1 if target == "next" else -1
            return self.names[(self.names.index(self.active) + step) % len(self.names)]
        if target not in self.names:
            raise ValueError(f"unknown persona {target!r} (personas: {', '.join(self.names)})")
        return target

    async def request(self, target: str, source: str) -> str:
        """Queue a switch and wait until it is applied; returns the new active persona.

        Raises:
            ValueError: unknown persona (checked before queueing, and again when applied).
        """
        if target not in ("next", "previous"):
            self.resolve(target)
        request = _Request(target, source)
        await self._queue.put(request)
        return await request.done

    async def run(self) -> None:
        """The single consumer; runs until cancelled."""
        while True:
            request = await self._queue.get()
            try:
                new = self.resolve(request.target)
                old = self.active
                if new != old:
                    await self._apply(old, new)
                    self.active = new
                    log.info("switched %s -> %s (%s)", old, new, request.source)
                    for listener in list(self.listeners):
                        listener(new)
                if not request.done.done():
                    request.done.set_result(new)
            except asyncio.CancelledError:
                request.done.cancel()
                raise
            except Exception as exc:  # the caller gets it; the switcher goes on
                if not request.done.done():
                    request.done.set_exception(exc)
