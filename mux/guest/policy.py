"""A persona's restart policy: what happens when its QEMU exits on its own.

A supervisor task (:meth:`RestartPolicy._supervise`) waits on the QEMU process, so a
guest that dies on its own is seen at once: the persona becomes ``crashed`` (exit code
not 0, or unknown for an adopted guest, which is not our child) or ``stopped``, and its
policy (``no``, ``on-failure``, ``always``) may start it again after a capped back-off
(0.2 s doubling up to 20 s). Under KVM that is not yet proven on this machine, a guest
that prints nothing in time is started again under TCG. :class:`RestartPolicy` is a
mixin of :class:`~mux.guest.persona.Persona`, which provides what it declares.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from mux.config import PersonaConfig
from mux.errors import PersonaError
from mux.guest import process
from mux.guest.accel import KVM_PROOF_S, AccelChoice
from mux.guest.process import GuestProcess
from mux.guest.serial import SerialLog
from mux.guest.state import RunState

log = logging.getLogger("mux.guest.persona")


class RestartPolicy:
    """Supervision and restarts, mixed into :class:`~mux.guest.persona.Persona`."""

    name: str
    config: PersonaConfig
    state: RunState
    accel: AccelChoice
    serial: SerialLog
    restarts: int
    exit_code: int | None
    _proc: GuestProcess | None
    _stop_requested: bool
    _stderr_path: Path

    def _spawn(self, coro: Coroutine[Any, Any, None], what: str) -> asyncio.Task[None]:
        raise NotImplementedError

    def _set_state(self, state: RunState) -> None:
        raise NotImplementedError

    async def _disconnect_qmp(self) -> None:
        raise NotImplementedError

    async def start(self, restore_from: Path | None = None, restore_timeout: float = 60.0) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def _supervise(self, proc: GuestProcess) -> None:
        code = await proc.wait()
        self.exit_code = code
        if self._proc is not proc or self._stop_requested:
            return
        await self._disconnect_qmp()
        failed = code != 0
        stderr = process.stderr_text(self._stderr_path).strip()
        log.warning("%s: QEMU exited on its own (exit code %s)%s", self.name,
                    "unknown: adopted" if code is None else code,
                    f"; stderr: {stderr}" if stderr else "")
        self._set_state(RunState.CRASHED if failed else RunState.STOPPED)
        policy = self.config.restart
        if policy == "always" or (policy == "on-failure" and failed):
            await self._restart_after_backoff()

    async def _restart_after_backoff(self) -> None:
        delay = min(0.2 * 2 ** min(self.restarts, 7), 20.0)
        self.restarts += 1
        await asyncio.sleep(delay)
        if self._stop_requested or self.state not in (RunState.CRASHED, RunState.STOPPED):
            return
        log.info("%s: restarting (restart %d, policy %s)", self.name, self.restarts, self.config.restart)
        try:
            await self.start()
        except PersonaError as exc:
            log.error("%s: restart failed: %s", self.name, exc)
            self._spawn(self._restart_after_backoff(), "restart")

    async def _prove_kvm(self) -> None:
        """Under unproven KVM, fall back to TCG if the guest prints nothing in time."""
        started = time.monotonic()
        while time.monotonic() - started < KVM_PROOF_S:
            if self.serial.printed():
                self.accel = AccelChoice("kvm", "auto: proven by the first boot", proven=True)
                return
            await asyncio.sleep(0.2)
        log.warning("%s: no serial output under KVM in %.0fs; falling back to TCG", self.name, KVM_PROOF_S)
        self.accel = AccelChoice("tcg", "auto: KVM did not boot the guest in time", proven=True)
        await self.stop()
        await self.start()
