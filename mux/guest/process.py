"""One QEMU process: started by this controller, or adopted from one that is gone.

Theory. QEMU is the *server* on every socket of its guest (QMP, VNC, serial: see
:mod:`mux.guest.cmdline`), so any later controller can reach it. It starts paused
(``-S``); the persona connects QMP and the serial socket, then lets it run, so no
serial output is missed. Its stdout is unused, its stderr goes to a file (a failed
launch says why), and it runs in its own session, so a terminal's Ctrl-C or hang-up
reaches the controller only.

Whether it outlives the controller is chosen at launch. A kept guest simply survives
(it is reparented to init). A guest that must die with the controller even on SIGKILL
gets ``PR_SET_PDEATHSIG(SIGKILL)`` in the child before ``exec``. Linux sends that
signal when the *thread* that forked the child exits, not the process: asyncio forks in
the event loop's thread, which in mux is the main thread and lives as long as the
controller. If the controller died between the fork and the ``prctl``, the child sees
a new parent and kills itself.

:class:`GuestProcess` is the same face for both: a child (``asyncio`` subprocess, exit
code known) or an adopted pid (watched through a pidfd; its exit code is unknown).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import ctypes
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from mux.errors import LaunchError, PersonaError
from mux.guest.cmdline import qmp_path
from mux.guest.qmp import QmpLink
from mux.guest.record import same_process
from mux.guest.serial import SerialLog

log = logging.getLogger(__name__)

POWERDOWN_S = 2.0  # stopping: how long the guest may take to power down when asked
AGENT_SHUTDOWN_S = 20.0  # ... when its guest agent was asked (a real system shuts down in order)
QUIT_S = 3.0  # ... and QEMU to quit when told
PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)
_prctl = _libc.prctl


class GuestProcess:
    """A running QEMU: ``pid``, :meth:`wait`, :meth:`kill`; ``exited`` once it is gone."""

    def __init__(self, pid: int, child: asyncio.subprocess.Process | None = None) -> None:
        self.pid = pid
        self._child = child
        self._gone = asyncio.Event()
        self.exit_code: int | None = None  # None while it runs, and for an adopted one
        if child is None:
            fd = os.pidfd_open(pid)
            loop = asyncio.get_running_loop()

            def readable() -> None:
                loop.remove_reader(fd)
                os.close(fd)
                self._gone.set()

            loop.add_reader(fd, readable)

    @property
    def exited(self) -> bool:
        if self._child is not None:
            return self._child.returncode is not None
        return self._gone.is_set()

    async def wait(self) -> int | None:
        """Wait until QEMU is gone; its exit code (None if adopted: not ours to reap)."""
        if self._child is not None:
            self.exit_code = await self._child.wait()
        else:
            await self._gone.wait()
        return self.exit_code

    def kill(self) -> None:
        """SIGKILL it (nothing if it is gone)."""
        if not self.exited:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


def _die_with(parent: int) -> Callable[[], None]:
    def preexec() -> None:  # runs in the child between fork and exec: no allocation-heavy work
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


async def spawn(name: str, argv: list[str], stderr_path: Path, *, die_with_controller: bool) -> GuestProcess:
    """Start QEMU with its stderr written to ``stderr_path``.

    ``die_with_controller``: SIGKILL it when the controller dies, however it dies.

    Raises:
        LaunchError: the binary cannot be run.
    """
    with open(stderr_path, "wb") as stderr:
        try:
            child = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr, start_new_session=True,
                preexec_fn=_die_with(os.getpid()) if die_with_controller else None)
        except OSError as exc:
            raise LaunchError(name, None, argv, f"cannot run {argv[0]}: {exc}") from exc
    return GuestProcess(child.pid, child)


def adopt(name: str, pid: int, ticks: int) -> GuestProcess:
    """Watch a QEMU a previous controller started.

    Raises:
        LaunchError: that process is gone (or the pid is now another process).
    """
    try:
        if same_process(pid, ticks):
            return GuestProcess(pid)
    except OSError:
        pass
    raise LaunchError(name, None, [], f"the guest (pid {pid}) is gone")


async def connect_qmp(name: str, proc: GuestProcess, qmp: QmpLink, argv: list[str],
                      stderr_path: Path, timeout: float) -> None:
    """Connect to QEMU's QMP socket once it listens, retrying until ``timeout``.

    Raises:
        LaunchError: QEMU exited or QMP did not come up within ``timeout`` (exit code,
            argv and stderr in the error).
    """
    deadline = time.monotonic() + timeout
    while True:
        if proc.exited:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 5.0)
            raise LaunchError(name, proc.exit_code, argv, stderr_text(stderr_path))
        try:
            await qmp.connect()
            return
        except OSError:
            if time.monotonic() > deadline:
                why = stderr_text(stderr_path) or f"QMP did not come up in {timeout:.0f}s"
                raise LaunchError(name, proc.exit_code, argv, why) from None
            await asyncio.sleep(0.02)


async def shut_down(proc: GuestProcess, execute: Callable[[str], Awaitable[Any]],
                    ask_agent: Callable[[], Awaitable[bool]] | None = None) -> None:
    """Stop QEMU as its own ``QEMUMachine`` does: ask the guest (``system_powerdown``),
    wait, ``quit``, wait, kill; each step is logged. ``execute`` runs a QMP command; its
    failures are ignored, and a command QEMU does not answer counts against its wait.
    ``ask_agent`` first asks the guest agent for ``guest-shutdown`` (True: it was asked),
    then waits :data:`AGENT_SHUTDOWN_S` before the rest."""
    if ask_agent is not None and not proc.exited and await ask_agent():
        log.info("QEMU pid %d: asked its guest agent for guest-shutdown; waiting up to %g s",
                 proc.pid, AGENT_SHUTDOWN_S)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), AGENT_SHUTDOWN_S)
    for command, wait in (("system_powerdown", POWERDOWN_S), ("quit", QUIT_S)):
        if proc.exited:
            break
        log.info("QEMU pid %d: %s; waiting up to %g s", proc.pid, command, wait)
        # The wait bounds the command too: a hung QEMU (stopped, deadlocked) never answers.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                with contextlib.suppress(OSError, PersonaError):
                    await execute(command)
                await proc.wait()
    if not proc.exited:
        log.warning("QEMU pid %d did not exit when told: killed", proc.pid)
    proc.kill()
    await proc.wait()


async def stop_kept(name: str, directory: Path, pid: int, ticks: int) -> None:
    """Stop a kept guest no controller is attached to (``mux down``, ``--restart-changed``):
    over its QMP socket in ``directory`` with :func:`shut_down`'s escalation; killed if
    QMP does not answer. Nothing if it is gone already."""
    try:
        proc = adopt(name, pid, ticks)
    except LaunchError:
        return
    qmp = QmpLink(name, qmp_path(directory, name))
    try:
        await connect_qmp(name, proc, qmp, [], directory / f"{name}.stderr", QUIT_S)
    except LaunchError:
        proc.kill()
        await proc.wait()
        return
    try:
        await shut_down(proc, qmp.execute)
    finally:
        await qmp.close()


async def pump_serial(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, log: SerialLog) -> None:
    """Read QEMU's serial socket into ``log`` until QEMU closes it (its own ``logfile=``
    keeps the file; this feeds the waits). A character split between two reads is decoded
    whole."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    try:
        while chunk := await reader.read(65536):
            await log.append(decoder.decode(chunk))
    except OSError:
        pass
    finally:
        writer.close()


def stderr_text(path: Path) -> str:
    """What QEMU wrote to its stderr file ("" when there is none)."""
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""
