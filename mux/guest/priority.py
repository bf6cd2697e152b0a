"""A persona's claim on the host's CPU: its QEMU threads' priority, or its guest paused.

``[mux] background`` says what the personas in the background get; who is in the
background is the switcher's to say (:mod:`mux.app.switcher`), and this module makes the
OS and QMP calls for it:

- ``low``: every thread of a background persona's QEMU (``/proc/PID/task``) gets nice 19
  (``setpriority`` on the thread id) and its vCPU threads (QMP ``query-cpus-fast``,
  ``thread-id``) ``SCHED_IDLE`` too: they run when no normal thread wants the CPU. The
  active persona's threads go back to ``SCHED_OTHER`` and the controller's own nice.
  Threads QEMU starts later inherit the priority of the thread that starts them.
- ``pause``: QMP ``stop``; ``cont`` when it becomes active, or when it is stopped (so that it
  can shut down in order).
- ``run``: nothing is changed.

Privilege (Linux: sched(7), setpriority(2); measured here as root and as ``nobody`` through
``setpriv``). Lowering is always allowed; raising back (nice 19 to 0, SCHED_IDLE to
SCHED_OTHER) needs CAP_SYS_NICE, or a *target thread's* ``RLIMIT_NICE`` of at least
``20 - nice`` (20 for nice 0): with the usual limit 0, ``nobody`` is refused both (EACCES,
EPERM). So before lowering a QEMU, mux raises its soft ``RLIMIT_NICE`` to the hard limit
(``prlimit``: allowed on one's own processes) and lowers it only if it may raise it back:
a persona that could never come back would, after a few switches, make the active persona
as slow as the rest. A refusal is logged once per persona and kind; nothing here fails a
switch.

cgroup v2 ``cpu.weight`` is not used: it needs a cgroup of mux's own to put each QEMU in
(the cpu controller cannot be enabled below a cgroup that holds processes, such as the
one mux runs in), which only a delegated subtree gives (``systemd-run --user -p
Delegate=yes``); nice and SCHED_IDLE work the same everywhere.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
from typing import Literal

from mux.errors import PersonaError, StateError
from mux.guest.persona import Persona
from mux.guest.state import RunState

log = logging.getLogger(__name__)

Mode = Literal["run", "low", "pause"]
#: The nice value of a background persona's threads.
NICE_LOW = 19
#: CAP_SYS_NICE's bit in /proc/self/status's CapEff.
CAP_SYS_NICE = 23


def thread_ids(pid: int) -> list[int]:
    """The ids of process ``pid``'s threads now (none if it is gone)."""
    try:
        return [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


def thread_priority(tid: int) -> tuple[int, int]:
    """(nice, scheduling policy) of thread ``tid``, from ``/proc/TID/stat`` (fields 19 and 41).

    Raises:
        OSError: no such thread.
    """
    with open(f"/proc/{tid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[16]), int(fields[38])


def _may_nice() -> bool:
    """Whether this process has CAP_SYS_NICE (root has, unless a container took it)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> CAP_SYS_NICE & 1)
    return False


def may_raise(pid: int, nice: int) -> bool:
    """Whether process ``pid``'s threads, once lowered, may be raised back to ``nice``;
    raises its soft ``RLIMIT_NICE`` to its hard limit to make it so if it can."""
    if _may_nice():
        return True
    need = 20 - nice
    try:
        soft, hard = resource.prlimit(pid, resource.RLIMIT_NICE)
        if hard != resource.RLIM_INFINITY and hard < need:
            return False
        if soft != resource.RLIM_INFINITY and soft < need:
            resource.prlimit(pid, resource.RLIMIT_NICE, (hard, hard))
    except OSError:
        return False
    return True


def set_threads(pid: int, low: bool, vcpus: set[int], nice: int) -> list[str]:
    """Lower (``low``) or raise back every thread of process ``pid``; threads already as
    asked are left alone. Returns the refusals, one line each (nothing is raised)."""
    refused: list[str] = []
    for tid in thread_ids(pid):
        try:
            now, policy = thread_priority(tid)
            if low:
                if now != NICE_LOW:
                    os.setpriority(os.PRIO_PROCESS, tid, NICE_LOW)
                if tid in vcpus and policy != os.SCHED_IDLE:
                    os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
            else:
                if policy == os.SCHED_IDLE:
                    os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
                if now != nice:
                    os.setpriority(os.PRIO_PROCESS, tid, nice)
        except (ProcessLookupError, FileNotFoundError):
            continue  # the thread ended meanwhile
        except OSError as exc:
            refused.append(f"thread {tid}: {exc.strerror or exc}")
    return refused


async def vcpu_threads(persona: Persona) -> set[int]:
    """The thread ids of ``persona``'s vCPUs (QMP ``query-cpus-fast``). Raises StateError
    (not running), PersonaError (QMP failed)."""
    cpus = await persona.execute("query-cpus-fast")
    return {int(cpu["thread-id"]) for cpu in cpus if isinstance(cpu, dict) and "thread-id" in cpu}


class Background:
    """Puts personas in the background (:meth:`apply` with ``active=False``) and brings them
    back, as ``[mux] background`` says; remembers what it did to which QEMU, so a call that
    changes nothing costs nothing."""

    def __init__(self, mode: Mode) -> None:
        self.mode = mode
        self.nice = os.getpriority(os.PRIO_PROCESS, 0)  # "normal": the controller's own
        self._applied: dict[str, tuple[int, bool]] = {}  # name -> (QEMU pid, in the background)
        self._told: set[tuple[str, str]] = set()
        self._vcpus: dict[int, set[int]] = {}  # QEMU pid -> its vCPU thread ids

    def _tell_once(self, name: str, kind: str, message: str) -> None:
        if (name, kind) not in self._told:
            self._told.add((name, kind))
            log.warning("%s: [mux] background = %r: %s", name, self.mode, message)

    async def apply(self, persona: Persona, active: bool) -> None:
        """Give ``persona`` the active persona's share (``active``) or the background's.
        Nothing for a persona that does not run; never raises but CancelledError."""
        pid = persona.pid
        if self.mode == "run" or pid is None or persona.state != RunState.RUNNING:
            return
        if self._applied.get(persona.name) == (pid, not active):
            return
        self._applied[persona.name] = (pid, not active)
        try:
            if self.mode == "pause":
                await persona.execute("cont" if active else "stop")
                return
            if active:  # a QEMU never lowered has nothing to change
                refused = set_threads(pid, False, set(), self.nice)
            elif may_raise(pid, self.nice):
                if pid not in self._vcpus:
                    self._vcpus = {pid: await vcpu_threads(persona)} | {
                        other: tids for other, tids in self._vcpus.items() if thread_ids(other)}
                refused = set_threads(pid, True, self._vcpus[pid], self.nice)
            else:
                self._tell_once(persona.name, "raise", "left at normal priority: mux could not raise it"
                                " back (that needs CAP_SYS_NICE, or a hard RLIMIT_NICE of 20: `ulimit -e`)")
                return
        except (PersonaError, StateError) as exc:
            self._tell_once(persona.name, "qmp", f"QMP refused: {exc}")
            return
        if refused:
            what = "normal" if active else "low"
            self._tell_once(persona.name, what, f"could not set {what} priority: {'; '.join(refused[:3])}")

    def share(self, persona: Persona) -> str | None:
        """What mux gave ``persona``'s QEMU as it runs now: ``"paused"`` or ``"low"`` when it
        sent it to the background, None when it has the active persona's share."""
        if self._applied.get(persona.name) != (persona.pid, True) or persona.pid is None:
            return None
        return "paused" if self.mode == "pause" else "low"

    async def stopping(self, persona: Persona) -> None:
        """``persona`` is being stopped: a paused guest is resumed so that it can shut down
        in order (QMP over the link the stop uses; it may be gone already)."""
        if self._applied.pop(persona.name, (0, False))[1] and self.mode == "pause":
            link = persona._qmp  # the persona is "stopping": its public execute() refuses
            if link is not None:
                with contextlib.suppress(PersonaError):
                    await link.execute("cont")
