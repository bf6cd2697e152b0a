r"""One persona: a QEMU process, its run state, its supervisor and restart policy.

:mod:`mux.guest` is the only package that talks to QEMU, and this class is its face:
the command line comes from :mod:`mux.guest.cmdline`, commands (:mod:`mux.guest.commands`)
go over the QMP seam (:mod:`mux.guest.qmp`), devices are plugged by :mod:`mux.guest.plug`, the VNC link is
:mod:`mux.guest.rfb` and whole-machine snapshots are :mod:`mux.guest.migration`. Its
run state is an explicit enum; every change goes through :meth:`Persona._set_state`, and
commands that need a particular state call :meth:`Persona._require`, which raises
:class:`~mux.errors.StateError` instead of doing nothing::

    stopped ──start──▶ starting ──QMP up──▶ running ──stop──▶ stopping ──▶ stopped
       ▲                  │                    │
       │                  └──── QEMU exits ────┴──▶ crashed ──restart policy──▶ starting

QEMU serves QMP, VNC and its serial port on unix sockets in a private directory (the
runtime directory, or with ``kept`` a directory that outlives the controller); a kept
guest survives the controller and a later one :meth:`Persona.adopt`\ s it: ``running``
at once, no reboot, the keys the dead controller held released. A guest that is not
kept dies with the controller, even on SIGKILL (:mod:`mux.guest.process`). A supervisor
sees a guest die on its own at once; its restart policy applies (:mod:`mux.guest.policy`).
Stopping escalates as QEMU's ``QEMUMachine`` does: ask the guest (``system_powerdown``),
wait, ``quit``, wait, kill. A launch from a saved state (``start(restore_from=FILE)``; quick
boot: :mod:`mux.guest.quickboot`) is ``starting`` until it loaded; a restart boots afresh.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any

from mux.config import PersonaConfig
from mux.devices.model import DeviceConfig, initial_devices
from mux.errors import LaunchError, PersonaError, StateError
from mux.guest import hardware, migration, process
from mux.guest.accel import AccelChoice
from mux.guest.cmdline import Boot, LaunchOptions, qemu_argv, qmp_path, serial_log_path, serial_path, vnc_path
from mux.guest.commands import GuestCommands
from mux.guest.plug import GuestDevices
from mux.guest.policy import RestartPolicy
from mux.guest.qmp import QmpLink
from mux.guest.quickboot import QuickSave
from mux.guest.ready import Readiness
from mux.guest.record import HeldKeys
from mux.guest.serial import SerialLog
from mux.guest.state import RunState

log = logging.getLogger(__name__)

QMP_CONNECT_S = 15.0
RESTORE_S = 60.0


class Persona(GuestCommands, RestartPolicy, QuickSave):
    """A QEMU guest with a name; use ``async with`` so it is always stopped."""

    def __init__(self, config: PersonaConfig, runtime_dir: Path, accel: AccelChoice,
                 boot: Boot | None = None, options: LaunchOptions | None = None, *,
                 kept: bool = False) -> None:
        """``boot`` is (kernel, initrd, append) for a built-in image; else the config's own.

        ``kept``: QEMU outlives the controller (and records the keys it holds, so a later
        controller can release them); otherwise it dies with the controller.

        ``options`` (tablet, extra arguments) shape every launch's command line; they
        may be replaced as a whole while the persona is stopped, and apply from its next
        launch.
        """
        self.config = config
        self.name = config.name
        self.runtime_dir = runtime_dir
        self.accel = accel
        self.boot = boot
        self.options = options or LaunchOptions()
        self.state = RunState.STOPPED
        self.kept, self.serial = kept, SerialLog(serial_log_path(runtime_dir, self.name), own_file=False)
        self.held = HeldKeys(runtime_dir / f"{self.name}.held")
        self.hold_off: str | None = None  # why this persona must not start (an older guest runs)
        self._serial_path = serial_path(runtime_dir, self.name)
        self._qmp_path, self._vnc_path = qmp_path(runtime_dir, self.name), vnc_path(runtime_dir, self.name)
        self._stderr_path = runtime_dir / f"{self.name}.stderr"
        self.agent_socket = hardware.agent_path(runtime_dir, self.name) if config.agent else None
        # Ready for work: its agent answers, a built-in image printed MUX-READY (mux.guest.ready).
        self.readiness = Readiness(self.name, self.serial, self.agent_socket, config.image is not None)
        self.listeners: list[Callable[[Persona], None]] = []
        self.restarts = 0
        self.exit_code: int | None = None
        self._proc: process.GuestProcess | None = None
        self._qmp: QmpLink | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._state_changed = asyncio.Condition()
        self._stop_requested = False
        # Devices: what this QEMU has (or gets at its next boot); who hears of a release
        # nobody waited for (called with this persona and the device id).
        self._plugs = GuestDevices(self.name, initial_devices(config.devices), self._spawn,
                                   cold=self._cold, require_running=lambda: self._require(RunState.RUNNING),
                                   released=self._device_released)
        self.devices = self._plugs.devices
        self.device_released: list[Callable[[Persona, str], None]] = []

    # --- state ----------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc and not self._proc.exited else None

    def _require(self, *states: RunState) -> None:
        if self.state not in states:
            raise StateError(self.name, self.state, " or ".join(states))

    def _set_state(self, state: RunState) -> None:
        if state == self.state:
            return
        log.info("%s: %s -> %s", self.name, self.state, state)
        self.state = state
        for listener in list(self.listeners):
            listener(self)
        self._spawn(self._notify(), "notify")

    async def _notify(self) -> None:
        async with self._state_changed:
            self._state_changed.notify_all()

    async def wait_state(self, state: RunState, timeout: float) -> None:
        """Raises TimeoutError if the persona is not in ``state`` within ``timeout``."""
        async with asyncio.timeout(timeout), self._state_changed:
            await self._state_changed.wait_for(lambda: self.state == state)

    def _spawn(self, coro: Coroutine[Any, Any, None], what: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=f"persona:{self.name}:{what}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- lifecycle ------------------------------------------------------------------

    def argv(self, *, incoming: bool = False) -> list[str]:
        """The command line of this persona's next launch (``incoming``: one that resumes
        a saved state); built by :func:`mux.guest.cmdline.qemu_argv`, as ``--dry-run``'s."""
        return qemu_argv(self.config, self.runtime_dir, self.accel, self.boot, self.devices.values(),
                         self.options, incoming=incoming)

    async def start(self, restore_from: Path | None = None, restore_timeout: float = RESTORE_S) -> None:
        """Launch QEMU and connect QMP; returns once the persona is running.

        With ``restore_from`` (a file :meth:`save_state` wrote, from the same command
        line), the guest resumes that saved machine instead of booting; this launch only.

        Raises:
            StateError: the persona is not stopped or crashed.
            LaunchError: QEMU exited or QMP did not come up (exit code, argv, stderr).
            MigrationError: the saved state did not load within ``restore_timeout`` (the
                persona is stopped again).
        """
        self._require(RunState.STOPPED, RunState.CRASHED)
        if self.hold_off:
            raise PersonaError(f"persona {self.name!r}: {self.hold_off}")
        self._stop_requested, since = False, self.serial.end
        self._set_state(RunState.STARTING)
        try:
            if restore_from is not None:  # the disk overlays saved with the state
                await migration.put_back(restore_from,  # (a writable disk stays where it is)
                                         migration.disks(self.config, self.runtime_dir, self.boot, True))
            try:
                await self._launch(incoming=restore_from is not None)
            except LaunchError as exc:
                if self.accel.proven:
                    raise
                log.warning("%s: QEMU would not start under KVM (%s); falling back to TCG",
                            self.name, exc.stderr.strip().splitlines()[-1:] or exc.returncode)
                await self._reap()
                self.accel = AccelChoice("tcg", "auto: KVM would not start", proven=True)
                await self._launch(incoming=restore_from is not None)
            if restore_from is not None:
                assert self._qmp is not None
                await migration.load(self._qmp, restore_from, restore_timeout)
        except BaseException:
            await self._reap()
            self._set_state(RunState.CRASHED if self.restarts else RunState.STOPPED)
            raise
        self._set_state(RunState.RUNNING)
        self.readiness.begin(since, booted=restore_from is None)
        if not self.accel.proven:
            self._spawn(self._prove_kvm(), "prove-kvm")

    async def _launch(self, incoming: bool) -> None:
        argv = self.argv(incoming=incoming)
        await hardware.prepare(self.config, self.runtime_dir, self.boot, resuming=incoming, kept=self.kept)
        for path in (self._qmp_path, self._serial_path, self._vnc_path):
            path.unlink(missing_ok=True)  # a dead guest's: connect only to this one's
        self._proc = proc = await process.spawn(self.name, argv, self._stderr_path,
                                                die_with_controller=not self.kept)
        await self._connect(proc, argv, QMP_CONNECT_S)
        if not incoming:  # started paused (-S) so that serial output from the start is read
            await self._execute("cont")

    async def _connect(self, proc: process.GuestProcess, argv: list[str], timeout: float) -> None:
        qmp = QmpLink(self.name, self._qmp_path)
        await process.connect_qmp(self.name, proc, qmp, argv, self._stderr_path, timeout)
        self._qmp = qmp
        try:
            reader, writer = await asyncio.open_unix_connection(self._serial_path)
        except OSError as exc:
            raise LaunchError(self.name, None, argv, f"serial port {self._serial_path}: {exc}") from exc
        self._spawn(process.pump_serial(reader, writer, self.serial), "serial")
        self._plugs.session_began(qmp)
        self._spawn(self._supervise(proc), "supervise")

    async def adopt(self, pid: int, ticks: int, hotplugged: Iterable[DeviceConfig] = ()) -> None:
        """Take over the QEMU (``pid`` started at ``ticks``) a previous controller started:
        connect, release its held keys, ``running`` at once, unplug ``hotplugged`` strays.
        Raises StateError (not stopped or crashed), LaunchError (that QEMU is gone, or its
        QMP or serial port does not answer)."""
        self._require(RunState.STOPPED, RunState.CRASHED)
        self._stop_requested = False
        self._proc = proc = process.adopt(self.name, pid, ticks)
        try:
            await self._connect(proc, [], process.QUIT_S)
            if releases := self.held.take_releases():
                log.info("%s: releasing %d keys the previous controller held", self.name, len(releases))
                await self._execute("input-send-event", {"events": releases})
            status = await self._execute("query-status")
            if isinstance(status, dict) and not status.get("running"):
                await self._execute("cont")  # left paused (e.g. mid-launch) by the dead controller
        except BaseException:
            await self.leave_running()
            raise
        self.accel = AccelChoice(self.accel.accel, "adopted", proven=True)
        self._set_state(RunState.RUNNING)
        self.readiness.begin(self.serial.end, booted=False)
        await self._plugs.release_strays(hotplugged, 10.0)  # the model has them unplugged

    async def leave_running(self) -> None:
        """Let go of a kept guest without stopping it: QMP and the serial port are closed,
        tasks cancelled; QEMU runs on and a later controller may :meth:`adopt` it."""
        self._stop_requested, self._proc = True, None
        await self._disconnect_qmp()
        await self._cancel_tasks()

    async def stop(self) -> None:
        """Stop the guest: its agent's guest-shutdown (if ready), wait, powerdown, wait, quit,
        wait, kill. A stopped persona stays stopped."""
        self._stop_requested = True
        if self.state in (RunState.STOPPED, RunState.CRASHED) and not self.pid:
            self._set_state(RunState.STOPPED)
            return
        self._set_state(RunState.STOPPING)
        if self._proc is not None:
            await process.shut_down(self._proc, self._execute, self.readiness.shutdown)
        await self._reap()
        self._set_state(RunState.STOPPED)

    async def kill(self) -> None:
        """SIGKILL QEMU as a crash would (fault tests); the supervisor sees it die."""
        self._require(RunState.RUNNING, RunState.STARTING)
        if self._proc:
            self._proc.kill()

    async def _reap(self) -> None:
        proc = self._proc
        if proc:
            proc.kill()
            await proc.wait()
        hardware.release(self.config, self.runtime_dir)  # its passt (a QEMU that never connected)
        await self._disconnect_qmp()
        for path in (self._qmp_path, self._serial_path, self._vnc_path, self.held.path):
            path.unlink(missing_ok=True)

    async def _disconnect_qmp(self) -> None:
        qmp, self._qmp = self._qmp, None
        await self.readiness.reset()
        self._plugs.session_ended()
        if qmp is not None:
            await qmp.close()

    async def close(self) -> None:
        """Stop the guest, cancel every task, close the log."""
        await self.stop()
        await self._cancel_tasks()

    async def _cancel_tasks(self) -> None:
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.serial.close()

    async def __aenter__(self) -> Persona:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def status(self) -> dict[str, Any]:
        return {"name": self.name, "state": str(self.state), "ready": self.readiness.ready, "pid": self.pid,
                "accel": self.accel.accel, "restarts": self.restarts,
                "serial_log": str(self.serial.path), "devices": sorted(self.devices)}

    # --- devices (the model: mux.devices.model; QMP moves: mux.guest.plug) ---------------

    def _cold(self) -> bool:
        """No QEMU to talk to: device changes only apply to the next boot's command line."""
        return self.state in (RunState.STOPPED, RunState.CRASHED) and self._qmp is None

    def _device_released(self, device_id: str) -> None:
        for released in list(self.device_released):
            released(self, device_id)

    async def attach_device(self, device: DeviceConfig) -> None:
        """Plug ``device`` in now, or into the next boot when stopped or crashed.

        Raises:
            StateError: starting or stopping.  DeviceError: already attached here, or QEMU
                refused it (see :meth:`mux.guest.plug.GuestDevices.attach`).
        """
        await self._plugs.attach(device)

    async def detach_device(self, device_id: str, timeout: float) -> DeviceConfig:
        """Unplug a device and wait until the guest has released it; returns it.

        Raises:
            StateError: starting or stopping.  DeviceError: not attached here, or QEMU
                refused the unplug.  DeviceTimeout: the guest did not release it in time
                (see :meth:`mux.guest.plug.GuestDevices.detach`).
        """
        return await self._plugs.detach(device_id, timeout)
