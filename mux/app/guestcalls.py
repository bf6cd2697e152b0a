"""The controller's requests that reach into a guest or read what guests said: ``exec`` and
``set_clock`` through a persona's guest agent (:mod:`mux.guest.ready`), and the tagged
serial log (:mod:`mux.app.taglog`). A mixin of :class:`~mux.app.controller.Controller`
(kept apart so the controller stays short); see :class:`~mux.app.api.ControlAPI` for
what each promises.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence
from typing import Any

from mux.app.taglog import TaggedLog
from mux.errors import PersonaError
from mux.guest.persona import Persona
from mux.guest.ready import Readiness
from mux.guest.state import RunState


class GuestCalls:
    """``exec``, ``set_clock`` and ``serial_lines``; the controller provides what is declared here."""

    taglog: TaggedLog

    def persona(self, name: str) -> Persona:
        raise NotImplementedError

    async def exec(self, persona: str, argv: Sequence[str], timeout: float = 60.0) -> dict[str, Any]:
        """Run ``argv`` in ``persona``'s guest through its agent; see
        :meth:`mux.app.api.ControlAPI.exec`. Raises UnknownPersona, PersonaError."""
        return dataclasses.asdict(await self._agent_of(persona).exec(argv, timeout))

    async def set_clock(self, persona: str, seconds: float, timeout: float = 60.0) -> None:
        """Set ``persona``'s guest clock through its agent; see
        :meth:`mux.app.api.ControlAPI.set_clock`. Raises UnknownPersona, PersonaError."""
        await self._agent_of(persona).set_time(seconds, timeout)

    def serial_lines(self, since: float | None = None, follow: bool = False) -> AsyncIterator[dict[str, Any]]:
        """Every persona's serial lines, tagged; see :meth:`mux.app.api.ControlAPI.serial_lines`."""
        return self.taglog.lines(since, follow)

    def _agent_of(self, name: str) -> Readiness:
        guest = self.persona(name)
        if guest.state not in (RunState.RUNNING, RunState.STARTING):
            raise PersonaError(f"persona {name!r} is {guest.state}: start it first")
        return guest.readiness
