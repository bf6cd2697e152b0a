"""What a running persona is asked over QMP, mixed into :class:`~mux.guest.persona.Persona`.

Each call is a typed method, so what mux asks of QEMU is visible here; :meth:`execute` (a
raw command) is for tests and diagnosis, and a test checks that nothing outside
:mod:`mux.guest` calls it. A call on a persona that does not run raises
:class:`~mux.errors.StateError`; one QEMU refuses, :class:`~mux.errors.PersonaError`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mux.config import PersonaConfig
from mux.display.backbuffer import Frame
from mux.display.leds import Leds
from mux.errors import PersonaError, StateError
from mux.guest import cmdline, migration
from mux.guest.cmdline import Boot
from mux.guest.qmp import QmpLink
from mux.guest.record import HeldKeys
from mux.guest.rfb import RfbClient
from mux.guest.state import RunState


class GuestCommands:
    """The QMP calls of a running persona, mixed into :class:`~mux.guest.persona.Persona`."""

    name: str
    config: PersonaConfig
    runtime_dir: Path
    boot: Boot | None
    state: RunState
    kept: bool
    held: HeldKeys
    _qmp: QmpLink | None
    _vnc_path: Path

    def _require(self, *states: RunState) -> None:
        raise NotImplementedError

    async def _execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        if self._qmp is None:
            raise StateError(self.name, self.state, RunState.RUNNING)
        return await self._qmp.execute(command, arguments)

    async def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        """Run a raw QMP command on a running persona: for tests and diagnosis only.

        mux's own modules use the typed methods below, so what they ask of QEMU is
        visible here (a test checks that nothing outside :mod:`mux.guest` calls this).

        Raises:
            StateError: the persona is not running.
            PersonaError: QEMU refused the command or the connection broke.
        """
        self._require(RunState.RUNNING)
        return await self._execute(command, arguments)

    async def send_input(self, events: list[dict[str, Any]]) -> None:
        """One ``input-send-event`` batch (see :mod:`mux.input.router`). Raises StateError
        (not running), PersonaError (QEMU refused it)."""
        await self.execute("input-send-event", {"events": events})
        if self.kept:
            self.held.sent(events)

    async def keyboard(self) -> str:
        """The keyboard typed keys reach now, ``"ps2"`` or ``"virtio"`` (see
        :func:`~mux.guest.cmdline.keyboard_in_use`). Raises StateError when not running."""
        if self.config.keyboard != "virtio":
            return "ps2"
        with contextlib.suppress(PersonaError):
            status = await self.execute("x-query-virtio-status", {"path": cmdline.VIRTIO_KEYBOARD_PATH})
            return cmdline.keyboard_in_use(status)
        return "ps2"

    async def screendump(self, path: Path) -> Path:
        """Write the framebuffer to ``path`` as PPM (fast) and return it. Raises StateError
        (not running), PersonaError (QEMU failed the screendump)."""
        await self.execute("screendump", {"filename": str(path)})
        return path

    def vnc_link(self, on_leds: Callable[[Leds], None] | None = None,
                 on_frame: Callable[[Frame], None] | None = None) -> RfbClient:
        """A (not yet connected) client for this guest's VNC server: ``async with`` it
        while the persona runs to get its LED states and, when ``live``, its frames."""
        return RfbClient(self._vnc_path, on_leds=on_leds, on_frame=on_frame)

    async def save_state(self, path: Path, timeout: float) -> None:
        """Write the whole running machine (RAM, devices, disk overlays: :mod:`mux.guest.migration`)
        to ``path``; the guest pauses meanwhile and runs on. ``start(restore_from=path)`` resumes it.

        Raises:
            StateError: not running.  MigrationError: the state was not written within
                ``timeout``, or a disk without an overlay cannot be saved.  PersonaError: QMP failed.
        """
        self._require(RunState.RUNNING)
        assert self._qmp is not None
        await migration.save(self._qmp, path, timeout,
                             migration.disks(self.config, self.runtime_dir, self.boot))

    async def qemu_version(self) -> dict[str, Any]:
        """QEMU's version as QMP ``query-version`` gives it ({"major": 7, "minor": 2, ...}).
        Raises StateError (not running), PersonaError (QMP failed)."""
        info = await self.execute("query-version")
        version = info.get("qemu") if isinstance(info, dict) else None
        return version if isinstance(version, dict) else {}
