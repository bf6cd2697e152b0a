"""Whether a persona's guest is ready for work, and the persona's guest agent session.

Theory. A running QEMU is not yet a guest that can take keys or commands: its kernel
boots, its shell starts. "Ready" says when it can, and is found out once per launch
by a task (:meth:`Readiness.watch`):

- a persona with ``agent = true`` is ready when its QEMU guest agent answers
  ``guest-sync-delimited`` (:mod:`mux.guest.agent`); the session then stays open for
  :meth:`Readiness.exec` and :meth:`Readiness.shutdown`;
- one booting a built-in image (with or without an agent) is ready at ``MUX-READY`` on its
  serial port (printed after the launch began: the images print it once the shell's prompt
  is on the screen, so typed keys follow the prompt; ``desktop`` once its X session is up,
  which comes after its agent answers);
- any other, and a machine resumed from a saved state or adopted from an earlier
  controller without an agent (they printed their ``MUX-READY`` long ago), at once.

Stopping or a crash makes it not ready again (:meth:`Readiness.reset`). Every change
is told to each of ``listeners`` (the controller publishes it as an event), at most
:data:`READY_RATE` a second: a guest that makes itself flip faster (crash, restart) is
coalesced, the last state told last (:mod:`mux.guest.paced`). :attr:`Readiness.ready`
and :meth:`Readiness.wait` follow at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from mux.errors import PersonaError
from mux.guest.agent import AgentError, ExecResult, GuestAgent
from mux.guest.paced import Paced
from mux.guest.serial import SerialLog

log = logging.getLogger(__name__)

MARKER = re.compile(r"MUX-READY")
FOREVER_S = 365 * 86400.0  # the marker watch ends with the launch, not by a timeout
AGENT_TRY_S = 60.0  # one connect-and-sync round; the watch repeats rounds until stopped
READY_RATE = 2.0  #: readiness changes told to listeners, per second at most (the last wins)


class Readiness:
    """One persona's readiness (``ready``) and its agent session (None without one)."""

    def __init__(self, name: str, serial: SerialLog, agent_socket: Path | None, marker: bool) -> None:
        """``marker``: the guest prints ``MUX-READY`` when ready (a built-in image)."""
        self.name = name
        self.serial = serial
        self.agent_socket = agent_socket
        self.marker = marker
        self.ready = False
        self.listeners: list[Callable[[str, bool], None]] = []  # told (name, ready) of every change
        self._event = asyncio.Event()
        self._agent: GuestAgent | None = None
        self._task: asyncio.Task[None] | None = None
        self._tell = Paced(READY_RATE, self._told, f"{name}: readiness changes")

    def _set(self, ready: bool) -> None:
        if ready == self.ready:
            return
        self.ready = ready
        if ready:
            self._event.set()
        else:
            self._event.clear()
        log.info("%s: %s", self.name, "ready" if ready else "not ready")
        self._tell(ready)

    def _told(self, ready: bool) -> None:
        for listener in list(self.listeners):
            listener(self.name, ready)

    def begin(self, since: int, booted: bool) -> None:
        """Watch for this launch's guest to become ready, in a task :meth:`reset` ends.

        ``since`` is the serial log's end when the launch began; ``booted`` is False for
        a resumed or adopted machine (no ``MUX-READY`` will come)."""
        self._task = asyncio.get_running_loop().create_task(self.watch(since, booted),
                                                            name=f"persona:{self.name}:ready")

    async def watch(self, since: int, booted: bool) -> None:
        """Wait until the guest is ready (see :meth:`begin`), then say so."""
        if self.agent_socket is not None:
            agent = GuestAgent(self.agent_socket, self.name)
            try:
                while True:
                    try:
                        await agent.connect(AGENT_TRY_S)
                        break
                    except AgentError as exc:
                        log.debug("%s", exc)
            except BaseException:
                await agent.close()
                raise
            self._agent = agent
        if self.marker and booted:
            await self.serial.wait_for(MARKER, FOREVER_S, start=since, move_cursor=False)
        self._set(True)

    async def reset(self) -> None:
        """Not ready (the guest stopped or crashed): the watch ends, the agent session closes."""
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        agent, self._agent = self._agent, None
        if agent is not None:
            await agent.close()
        self._set(False)

    async def wait(self, timeout: float) -> None:
        """Wait until ready. Raises TimeoutError."""
        async with asyncio.timeout(timeout):
            await self._event.wait()

    async def _session(self, timeout: float) -> GuestAgent:
        if self.agent_socket is None:
            raise PersonaError(f"persona {self.name!r} has no guest agent (set agent = true)")
        try:
            await self.wait(timeout)
        except TimeoutError:
            raise PersonaError(f"persona {self.name!r}: its guest agent did not answer within"
                               f" {timeout:.0f} s") from None
        if self._agent is None:
            raise PersonaError(f"persona {self.name!r} is not running")
        return self._agent

    async def exec(self, argv: Sequence[str], timeout: float) -> ExecResult:
        """Run ``argv`` in the guest through its agent (waiting for the agent first, within
        ``timeout``) and return its exit status and output.

        Raises:
            PersonaError: no agent, the agent did not answer, or it refused the command
                (an AgentError: no such program...) or the command ran out of time.
        """
        agent = await self._session(timeout)
        return await agent.exec(list(argv), timeout)

    async def set_time(self, seconds: float, timeout: float) -> None:
        """Set the guest's clock to ``seconds`` since the epoch through its agent
        (``guest-set-time``; qemu-ga then writes the RTC too), waiting for the agent first.

        Raises:
            PersonaError: no agent, it did not answer in ``timeout``, or it refused the time.
        """
        agent = await self._session(timeout)
        await agent.set_time(round(seconds * 1e9))

    async def shutdown(self) -> bool:
        """Ask the guest to power down through its agent; whether it was asked (False:
        no agent or it is not ready; the caller goes on with the next way)."""
        if self._agent is None:
            return False
        with contextlib.suppress(AgentError):
            await self._agent.shutdown()
            return True
        return False
