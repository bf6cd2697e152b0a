"""One persona: a QEMU process, its QMP session, its serial log and its run state.

This is the only module that talks to QEMU. Its run state is an explicit enum; every
change goes through :meth:`Persona._set_state`, and commands that need a particular
state call :meth:`Persona._require`, which raises :class:`~mux.errors.StateError`
instead of doing nothing::

    stopped ──start──▶ starting ──QMP up──▶ running ──stop──▶ stopping ──▶ stopped
       ▲                  │                    │
       │                  └──── QEMU exits ────┴──▶ crashed ──restart policy──▶ starting

QMP and VNC listen only on unix sockets inside the controller's private runtime
directory. A supervisor task waits on the QEMU process, so a guest that dies on its own
is seen at once; the restart policy (``no``, ``on-failure``, ``always``) then applies with
a capped back-off. Stopping escalates as QEMU's own ``QEMUMachine`` does: ask the guest
(``system_powerdown``), wait, ``quit``, wait, kill.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from qemu.qmp import EventListener, QMPClient, QMPError

from mux.config import PersonaConfig
from mux.devices.model import (
    DeviceConfig,
    attach_commands,
    command_line,
    initial_devices,
    release_commands,
    unplug_command,
)
from mux.errors import DeviceError, DeviceTimeout, LaunchError, PersonaError, StateError
from mux.guest.accel import KVM_PROOF_S, AccelChoice
from mux.guest.serial import SerialLog
from mux.guest.state import RunState

log = logging.getLogger(__name__)

QEMU_BINARY = os.environ.get("MUX_QEMU", "qemu-system-x86_64")
QMP_CONNECT_S = 15.0
POWERDOWN_S = 2.0
QUIT_S = 3.0


class Persona:
    """A QEMU guest with a name; use ``async with`` so it is always stopped."""

    def __init__(self, config: PersonaConfig, runtime_dir: Path, accel: AccelChoice,
                 boot: tuple[Path, Path | None, str] | None = None) -> None:
        """``boot`` is (kernel, initrd, append) for a built-in image; else the config's own."""
        self.config = config
        self.name = config.name
        self.runtime_dir = runtime_dir
        self.accel = accel
        self.boot = boot
        self.tablet = False  # an absolute pointer, for a window that routes its mouse
        self.extra_args: list[str] = []  # appended to the next launch's argv (snapshot restore)
        self.state = RunState.STOPPED
        self.serial = SerialLog(runtime_dir / f"{self.name}.serial.log")
        self.qmp_path = runtime_dir / f"{self.name}.qmp"
        self.vnc_path = runtime_dir / f"{self.name}.vnc"
        self.listeners: list[Callable[[Persona], None]] = []
        self.restarts = 0
        self.exit_code: int | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._qmp: QMPClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._state_changed = asyncio.Condition()
        self._stop_requested = False
        # Devices: what this QEMU has (or gets at its next boot), its open block nodes, the
        # unplugs waiting for DEVICE_DELETED, and who hears of a release nobody waited for.
        self.devices: dict[str, DeviceConfig] = {d.id: d for d in initial_devices(config.devices)}
        self.device_released: list[Callable[[Persona, str], None]] = []
        self._nodes: set[str] = set()
        self._unplugs: dict[str, asyncio.Future[None]] = {}
        self._device_watch: asyncio.Task[None] | None = None

    # --- state ----------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc and self._proc.returncode is None else None

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

    def _spawn(self, coro: Any, what: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"persona:{self.name}:{what}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- lifecycle ------------------------------------------------------------------

    def argv(self) -> list[str]:
        pointer = ["-device", "usb-tablet,bus=xhci.0,id=tablet"] if self.tablet else []
        return qemu_argv(self.config, self.runtime_dir, self.accel, self.boot,
                         self.devices.values()) + pointer + self.extra_args

    async def start(self) -> None:
        """Launch QEMU and connect QMP; returns once the persona is running.

        Raises:
            StateError: the persona is not stopped or crashed.
            LaunchError: QEMU exited or QMP did not come up (exit code, argv, stderr).
        """
        self._require(RunState.STOPPED, RunState.CRASHED)
        self._stop_requested = False
        self._set_state(RunState.STARTING)
        try:
            try:
                await self._launch()
            except LaunchError as exc:
                if self.accel.proven:
                    raise
                log.warning("%s: QEMU would not start under KVM (%s); falling back to TCG",
                            self.name, exc.stderr.strip().splitlines()[-1:] or exc.returncode)
                await self._reap()
                self.accel = AccelChoice("tcg", "auto: KVM would not start", proven=True)
                await self._launch()
        except BaseException:
            await self._reap()
            self._set_state(RunState.CRASHED if self.restarts else RunState.STOPPED)
            raise
        self._set_state(RunState.RUNNING)
        if not self.accel.proven:
            self._spawn(self._prove_kvm(), "prove-kvm")

    async def _launch(self) -> None:
        qmp = QMPClient(self.name)
        self.qmp_path.unlink(missing_ok=True)
        await qmp.start_server(str(self.qmp_path))
        argv = self.argv()
        self._stderr_path().write_bytes(b"")
        with open(self._stderr_path(), "wb") as stderr:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                    stderr=stderr, start_new_session=True)
            except OSError as exc:
                await qmp.disconnect()
                raise LaunchError(self.name, None, argv, f"cannot run {argv[0]}: {exc}") from exc
        self._proc, self._qmp = proc, qmp
        self._spawn(self._read_serial(proc), "serial")
        accept = asyncio.ensure_future(qmp.accept())
        exited = asyncio.ensure_future(proc.wait())
        done, _ = await asyncio.wait({accept, exited}, timeout=QMP_CONNECT_S,
                                     return_when=asyncio.FIRST_COMPLETED)
        if accept not in done or accept.exception() is not None:
            # QEMU exited, or closed QMP before its greeting (it dies right after).
            accept.cancel()
            with contextlib.suppress(asyncio.CancelledError, QMPError, EOFError):
                await accept
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(exited, 5.0)
            exited.cancel()
            raise LaunchError(self.name, proc.returncode, argv, self._stderr())
        exited.cancel()
        self._watch_devices(qmp)
        self._spawn(self._supervise(proc), "supervise")

    def _stderr_path(self) -> Path:
        return self.runtime_dir / f"{self.name}.stderr"

    def _stderr(self) -> str:
        try:
            return self._stderr_path().read_text(errors="replace")
        except OSError:
            return ""

    async def _read_serial(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(65536):
            await self.serial.append(chunk.decode("utf-8", errors="replace"))

    async def _supervise(self, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        self.exit_code = code
        if self._proc is not proc or self._stop_requested:
            return
        await self._disconnect_qmp()
        failed = code != 0
        log.warning("%s: QEMU exited on its own (exit code %s)%s", self.name, code,
                    f"; stderr: {self._stderr().strip()}" if self._stderr().strip() else "")
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
            if self.serial.text.strip():
                self.accel = AccelChoice("kvm", "auto: proven by the first boot", proven=True)
                return
            await asyncio.sleep(0.2)
        log.warning("%s: no serial output under KVM in %.0fs; falling back to TCG", self.name, KVM_PROOF_S)
        self.accel = AccelChoice("tcg", "auto: KVM did not boot the guest in time", proven=True)
        await self.stop()
        await self.start()

    async def stop(self) -> None:
        """Stop the guest: powerdown, wait, quit, wait, kill. A stopped persona stays stopped."""
        self._stop_requested = True
        if self.state in (RunState.STOPPED, RunState.CRASHED) and not self.pid:
            self._set_state(RunState.STOPPED)
            return
        self._set_state(RunState.STOPPING)
        proc = self._proc
        for command, wait in (("system_powerdown", POWERDOWN_S), ("quit", QUIT_S)):
            if proc is None or proc.returncode is not None:
                break
            with contextlib.suppress(QMPError, OSError, PersonaError):
                await self._execute(command)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), wait)
        await self._reap()
        self._set_state(RunState.STOPPED)

    async def kill(self) -> None:
        """SIGKILL QEMU as a crash would (fault tests); the supervisor sees it die."""
        self._require(RunState.RUNNING, RunState.STARTING)
        if self._proc and self._proc.returncode is None:
            self._proc.send_signal(signal.SIGKILL)

    async def _reap(self) -> None:
        proc = self._proc
        if proc and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        await self._disconnect_qmp()
        self.qmp_path.unlink(missing_ok=True)
        self.vnc_path.unlink(missing_ok=True)

    async def _disconnect_qmp(self) -> None:
        qmp, self._qmp = self._qmp, None
        watch, self._device_watch = self._device_watch, None
        if watch is not None:
            watch.cancel()
        for waiter in self._unplugs.values():  # QEMU is gone, and so is every device it had
            if not waiter.done():
                waiter.set_result(None)
        if qmp is not None:
            # disconnect() re-raises whatever ended the session (EOFError when QEMU died).
            with contextlib.suppress(QMPError, OSError, EOFError):
                await qmp.disconnect()

    async def close(self) -> None:
        """Stop the guest, cancel every task, close the log."""
        await self.stop()
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.serial.close()

    async def __aenter__(self) -> Persona:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- commands -------------------------------------------------------------------

    async def _execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        if self._qmp is None:
            raise StateError(self.name, self.state, RunState.RUNNING)
        try:
            return await self._qmp.execute(command, arguments)
        except QMPError as exc:
            raise PersonaError(f"persona {self.name!r}: QMP {command} failed: {exc}") from exc

    async def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        """Run a QMP command on a running persona.

        Raises:
            StateError: the persona is not running.
            PersonaError: QEMU refused the command or the connection broke.
        """
        self._require(RunState.RUNNING)
        return await self._execute(command, arguments)

    async def send_input(self, events: list[dict[str, Any]]) -> None:
        """One ``input-send-event`` batch (see :mod:`mux.input.router`)."""
        await self.execute("input-send-event", {"events": events})

    async def screendump(self, path: Path) -> Path:
        """Write the framebuffer to ``path`` as PPM (fast) and return it."""
        await self.execute("screendump", {"filename": str(path)})
        return path

    def status(self) -> dict[str, Any]:
        return {"name": self.name, "state": str(self.state), "pid": self.pid,
                "accel": self.accel.accel, "restarts": self.restarts,
                "serial_log": str(self.serial.path), "devices": sorted(self.devices)}

    # --- devices (the model and the moves: mux.devices.model, mux.devices.hotplug) -------------------

    def _cold(self) -> bool:
        """No QEMU to talk to: device changes only apply to the next boot's command line."""
        return self.state in (RunState.STOPPED, RunState.CRASHED) and self._qmp is None

    async def attach_device(self, device: DeviceConfig) -> None:
        """Plug ``device`` in: ``blockdev-add`` + ``device_add`` when the guest runs; on the
        next boot's command line when it is stopped or crashed.

        Raises:
            StateError: the persona is starting or stopping.
            DeviceError: it is already attached here, or QEMU refused it (QEMU's reason is
                in the message); nothing of the device is left in this persona.
        """
        if device.id in self.devices:
            raise DeviceError(f"device {device.id!r} is already attached to persona {self.name!r}")
        if self._cold():
            self.devices[device.id] = device
            return
        self._require(RunState.RUNNING)
        added_node = False
        try:
            for command, args in attach_commands(device):
                if command == "blockdev-add" and device.node_name in self._nodes:
                    continue  # still open from a release whose blockdev-del failed
                await self.execute(command, args)
                if command == "blockdev-add":
                    self._nodes.add(device.node_name)
                    added_node = True
        except PersonaError as exc:
            if added_node:
                await self._release_node(device)
            raise DeviceError(f"cannot attach device {device.id!r} to persona {self.name!r}: {exc}") from exc
        self.devices[device.id] = device

    async def detach_device(self, device_id: str, timeout: float) -> DeviceConfig:
        """Unplug a device and wait until the guest has released it; returns it.

        ``device_del`` only asks: the device is gone when QEMU sends ``DEVICE_DELETED``
        (a USB unplug at once; a PCI one when the guest's ACPI ejects it). Then
        ``blockdev-del`` closes the file, so another persona may open it. A stopped or
        crashed persona just drops the device from its next command line, and a QEMU that
        exits while we wait has released it too.

        Raises:
            DeviceError: the device is not attached here, or QEMU refused ``device_del``.
            DeviceTimeout: no ``DEVICE_DELETED`` within ``timeout``; the device stays attached
                (QEMU keeps the request: if the guest completes it later, the
                ``device_released`` listeners are told).
            StateError: the persona is starting or stopping.
        """
        device = self.devices.get(device_id)
        if device is None:
            raise DeviceError(f"device {device_id!r} is not attached to persona {self.name!r}")
        if self._cold():
            del self.devices[device_id]
            return device
        self._require(RunState.RUNNING)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._unplugs[device_id] = waiter
        try:
            try:
                await self.execute(*unplug_command(device))
            except PersonaError as exc:
                raise DeviceError(f"cannot unplug device {device_id!r} from persona {self.name!r}: {exc}"
                                  ) from exc
            try:
                async with asyncio.timeout(timeout):
                    await waiter
            except TimeoutError:
                raise DeviceTimeout(
                    f"persona {self.name!r} did not release device {device_id!r} within {timeout:g}s "
                    "(no DEVICE_DELETED: its guest ignored the unplug request)") from None
        finally:
            self._unplugs.pop(device_id, None)
        self.devices.pop(device_id, None)
        await self._release_node(device)
        return device

    async def _release_node(self, device: DeviceConfig) -> None:
        """Close a device's block node; a failure is logged and the node kept for reuse."""
        if device.node_name not in self._nodes:
            return
        if self._qmp is not None:
            for command, args in release_commands(device):
                try:
                    await self._execute(command, args)
                except PersonaError as exc:
                    log.warning("%s: %s; node %s stays open", self.name, exc, device.node_name)
                    return
        self._nodes.discard(device.node_name)

    def _watch_devices(self, qmp: QMPClient) -> None:
        """Listen for DEVICE_DELETED for as long as this QMP session lasts."""
        self._nodes = {d.node_name for d in self.devices.values() if d.is_block}  # argv opened these
        listener = EventListener("DEVICE_DELETED")
        qmp.register_listener(listener)
        task = asyncio.get_running_loop().create_task(self._device_events(listener),
                                                      name=f"persona:{self.name}:devices")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._device_watch = task

    async def _device_events(self, listener: EventListener) -> None:
        async for event in listener:
            data = event.get("data")
            device_id = str(data.get("device", "")) if isinstance(data, dict) else ""
            waiter = self._unplugs.get(device_id)
            if waiter is not None:
                if not waiter.done():
                    waiter.set_result(None)
            elif device_id in self.devices:
                # A timed-out unplug that completed late, or a guest that ejected it itself.
                device = self.devices.pop(device_id)
                log.warning("%s: the guest released device %r with no unplug waiting; it is detached",
                            self.name, device_id)
                await self._release_node(device)
                for released in list(self.device_released):
                    released(self, device_id)


def qemu_argv(config: PersonaConfig, runtime_dir: Path, accel: AccelChoice,
              boot: tuple[Path, Path | None, str] | None,
              devices: Iterable[DeviceConfig] | None = None) -> list[str]:
    """QEMU's command line for a persona (pure: no process, no files).

    ``boot`` is (kernel, initrd, append) of a built-in image; None uses the config's own.
    ``devices`` are those the guest has from boot (``-blockdev``/``-device``); None means
    the config's initial ones (its devices that do not follow the active persona).
    QMP connects out to the controller's socket; VNC listens on a unix socket. Both are
    in the private runtime directory.
    """
    kernel, initrd, append = boot or (config.kernel, config.initrd, config.append)
    argv = [
        QEMU_BINARY, "-name", config.name, "-nodefaults", "-no-user-config",
        "-machine", f"pc,accel={accel.accel}", "-m", str(config.memory_mb),
        "-vga", "std", "-display", "none", "-vnc", f"unix:{runtime_dir / f'{config.name}.vnc'}",
        "-qmp", f"unix:{runtime_dir / f'{config.name}.qmp'}",
        "-serial", "stdio", "-device", "qemu-xhci,id=xhci",
    ]
    if kernel:
        argv += ["-kernel", str(kernel)]
        if initrd:
            argv += ["-initrd", str(initrd)]
        argv += ["-append", f"{append} mux.persona={config.name} mux.color={config.color}".strip()]
    if config.disk:
        fmt = "qcow2" if config.disk.suffix == ".qcow2" else "raw"
        argv += ["-drive", f"file={config.disk},if=virtio,format={fmt}"]
    argv += command_line(initial_devices(config.devices) if devices is None else devices)
    return argv

