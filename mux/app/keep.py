"""Guests that outlive their controller (``[mux] keep_guests``), and adopting them again.

Theory. With ``on-crash`` (the default of ``mux run``) or ``always``, a config's guests
live in a private directory of their own, ``$XDG_STATE_HOME/mux/guests/<hash>/`` (0700;
the hash is of the config file's absolute path), where QEMU serves its QMP, VNC and
serial sockets and writes its serial log and stderr, beside the record of what mux
started (:mod:`mux.guest.record`). The controller that runs the config is written in
the record too, so a second controller of the same config is refused and ``mux ps``
can say whether a guest is attached.

:class:`Keeper` is the controller's part. At start (:meth:`Keeper.adopt`) each recorded
guest that still runs is adopted if its command line's hash still matches the config
(no reboot: ``running`` at once); one whose config changed is reported and left
running untouched (its persona will not start) unless ``--restart-changed``; a dead
one is started afresh. Every change of a persona's run state rewrites the record. On a
clean stop (Ctrl-C, SIGTERM, ``mux down``) ``on-crash`` stops the guests and removes the
directory; ``always`` leaves them running. On an unclean exit (an exception through
the controller) both leave them; on SIGKILL or an out-of-memory kill nothing runs at
all, and the guests simply go on. With ``never`` (``mux replay``, ``mux bench``, and any
``Controller`` not told otherwise) guests live in the runtime directory and die with
the controller, even on SIGKILL (:mod:`mux.guest.process`).

:func:`kept_guests` and :func:`down` are ``mux ps`` and ``mux down``: a controller that
is attached is asked to stop as Ctrl-C would (SIGTERM to its recorded pid), then what
still runs is stopped over its QMP socket (ask, wait, quit, wait, kill).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from mux.app.statedir import state_dir
from mux.config import Config
from mux.config.schema import KeepGuests
from mux.errors import LaunchError, MuxError, PersonaError
from mux.guest import passt, process, quickboot, record
from mux.guest.persona import Persona
from mux.guest.record import GuestEntry, Record
from mux.guest.state import RunState

log = logging.getLogger(__name__)

DETACH_S = 60.0  # mux down: how long an attached controller may take to stop
SAVE_S = 300.0  # quick boot: how long one persona's save may take
RESUME_S = 120.0  # ... and its resume


def config_key(config: Config) -> str:
    """What identifies a config across runs: its file's absolute path (for a config that
    is not a file, its name and control socket)."""
    if isinstance(config.source, Path):
        return str(config.source.absolute())
    return f"<{config.source}> {config.mux.control_socket}"


def guests_root() -> Path:
    """Where every config's kept guests live (the state directory is made 0700).

    Raises:
        OSError: the state directory cannot be made.
    """
    return state_dir() / "guests"


def keep_dir(config: Config) -> Path:
    """The private directory of ``config``'s kept guests (not created here). Raises OSError."""
    return guests_root() / hashlib.sha256(config_key(config).encode()).hexdigest()[:12]


class Keeper:
    """A controller's kept guests: their directory, the record, adoption, the exit."""

    def __init__(self, config: Config, mode: KeepGuests, progress: Callable[[str], None],
                 restart_changed: bool = False, logs_dir: Path | None = None,
                 quick_boot: bool | None = None) -> None:
        """``logs_dir``: where the serial logs are copied when the directory is removed.
        ``quick_boot``: None leaves saved states alone (replay, bench); True resumes and
        saves them (``mux run``); False removes them (``quick_boot = false``)."""
        self.config = config
        self.quick_boot = quick_boot
        self.saved_dir = quickboot.config_dir(config_key(config))
        self._saved = quickboot.saved(self.saved_dir, tidy=True) if quick_boot else []
        self.logs_dir = logs_dir
        self.mode = mode
        self.progress = progress
        self.restart_changed = restart_changed
        self.clean = False  # set by the controller's exit: a clean stop or not
        self.directory: Path | None = None
        self._record = Record(config=config_key(config), control_socket=str(config.mux.control_socket))
        self._previous: dict[str, GuestEntry] = {}
        self._hashes: dict[str, str] = {}
        self._devices = [d for pc in config.personas for d in pc.devices]  # any may be hot-plugged

    @property
    def kept(self) -> bool:
        return self.mode != "never"

    @property
    def adopting(self) -> bool:
        """Whether guests that still run are recorded: then the built images they booted
        are looked up in the cache alone (no apt look-up, which takes seconds)."""
        return bool(self._previous) or bool(self._saved)  # (saved states: quick boot too)

    def open(self) -> Path | None:
        """Make the directory (0700) and claim the record; None when guests are not kept.

        Raises:
            PersonaError: another controller runs this config, or the directory cannot
                be made.
        """
        if not self.kept:
            return None
        try:
            directory = keep_dir(self.config)
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            directory.chmod(0o700)
        except OSError as exc:
            raise PersonaError(f"cannot make the kept guests' directory: {exc}") from exc
        old = record.load(directory)
        if old is not None and old.attached() and old.controller_pid != os.getpid():
            raise PersonaError(f"{self._record.config} is run by another mux (pid {old.controller_pid});"
                               " mux down stops it")
        self._previous = {n: e for n, e in (old.guests if old else {}).items() if e.alive()}
        _kill_unrecorded(directory, [e.pid for e in self._previous.values()], self._previous)
        self._record.guests = dict(self._previous)
        self._record.controller_pid = os.getpid()
        self._record.controller_ticks = record.start_ticks(os.getpid())
        self.directory = directory
        self._save()
        return directory

    async def adopt(self, personas: Mapping[str, Persona]) -> set[str]:
        """Adopt the recorded guests that still run and still match the config; returns
        the personas that must not be started (adopted, or an older guest left running)."""
        for name, each in personas.items():
            self._hashes[name] = record.argv_hash(each.argv())
            each.listeners.append(self._persona_changed)
        taken: set[str] = set()
        for name, entry in self._previous.items():
            persona = personas.get(name)
            if persona is not None and entry.argv_hash == self._hashes[name]:
                try:
                    await persona.adopt(entry.pid, entry.ticks, self._devices)
                except (LaunchError, OSError) as exc:
                    log.warning("%s: could not adopt QEMU pid %d (%s); starting it afresh",
                                name, entry.pid, exc)
                    await self._stop(name, entry)
                    continue
                self.progress(f"persona {name}: adopted its running guest (pid {entry.pid},"
                              f" up {record.uptime_s(entry.ticks):.0f} s)")
                taken.add(name)
            elif self.restart_changed:
                self.progress(f"persona {name}: its config changed; stopping its old guest (pid {entry.pid})")
                await self._stop(name, entry)
            else:
                why = "is no longer in the config" if persona is None else "was started from an older config"
                self.progress(f"persona {name}: its running guest (pid {entry.pid}) {why}; left running"
                              " (mux run --restart-changed restarts it, mux down stops it)")
                if persona is not None:
                    persona.hold_off = (f"its guest from an older config (pid {entry.pid}) still runs;"
                                        " mux run --restart-changed or mux down")
                    taken.add(name)
        return taken | await self._resume(personas, taken)

    async def _resume(self, personas: Mapping[str, Persona], taken: set[str]) -> set[str]:
        """Quick boot: resume the saved personas whose config and disks are unchanged (each
        saved state is removed, used or not); returns those now running."""
        directory = self.saved_dir
        if self.quick_boot is False and (names := quickboot.saved(directory)):
            self.progress(f"quick_boot = false: removing the saved states of {', '.join(names)}")
            for name in names:
                quickboot.remove(directory, name)
        resuming = []
        for name in self._saved:
            persona = personas.get(name)
            why = ("is no longer in the config" if persona is None
                   else "its guest runs already" if name in taken else persona.check_quick(directory))
            if persona is None or why:
                self.progress(f"persona {name}: boots afresh, not from its saved state: {why}")
                quickboot.remove(directory, name)
            else:
                resuming.append(persona)
        began = time.monotonic()
        sizes = {p.name: quickboot.size(directory, p.name) for p in resuming}
        results = await asyncio.gather(*(p.resume_quick(directory, RESUME_S) for p in resuming),
                                       return_exceptions=True)
        resumed = set()
        for persona, result in zip(resuming, results, strict=True):
            if isinstance(result, MuxError):
                self.progress(f"persona {persona.name}: boots afresh: its saved state did not load"
                              f" ({result})")
            elif isinstance(result, BaseException):
                raise result
            else:
                resumed.add(persona.name)
                self.progress(f"persona {persona.name}: quick boot: resumed its saved state"
                              f" ({quickboot.mib(sizes[persona.name])} in {time.monotonic() - began:.1f} s)")
        return resumed

    async def _save_states(self, personas: Mapping[str, Persona]) -> None:
        """Quick boot at a clean stop: save every running persona (stopping it); one that
        cannot be saved is said so in one line, and stopped as usual."""
        running = [p for p in personas.values() if p.state == RunState.RUNNING and not p.hold_off]

        async def save(persona: Persona) -> None:
            self.progress(f"saving {persona.name} ({persona.config.memory_mb} MiB)...")
            try:
                saved = await persona.save_quick(self.saved_dir, config_key(self.config), SAVE_S)
            except (MuxError, OSError) as exc:
                self.progress(f"persona {persona.name}: not saved, it boots afresh next time: {exc}")
            else:
                self.progress(f"saved {persona.name} for quick boot ({quickboot.mib(saved)})")

        await asyncio.gather(*(save(p) for p in running))

    async def _stop(self, name: str, entry: GuestEntry) -> None:
        assert self.directory is not None
        await process.stop_kept(name, self.directory, entry.pid, entry.ticks)
        self._record.guests.pop(name, None)
        self._save()

    def _persona_changed(self, persona: Persona) -> None:
        if not self.kept or persona.hold_off:
            return
        pid = persona.pid
        ticks = record.start_ticks(pid) if pid else None
        if persona.state == RunState.RUNNING and pid and ticks is not None:
            entry = GuestEntry(persona.name, pid, ticks, self._hashes[persona.name])
            self._record.guests[persona.name] = entry
        elif pid is None:
            self._record.guests.pop(persona.name, None)
        self._save()

    def _save(self) -> None:
        if self.directory is not None:
            try:
                record.save(self.directory, self._record)
            except OSError as exc:
                log.warning("could not write the kept guests' record: %s", exc)

    async def close(self, personas: Mapping[str, Persona]) -> None:
        """The controller's exit: stop every guest, or leave them running (see the module
        docstring); a failure to stop one is logged."""
        leave = self.kept and (self.mode == "always" or not self.clean)
        if self.quick_boot and self.clean and not leave:
            await self._save_states(personas)
        closing = [p.leave_running() if leave and p.pid else p.close() for p in personas.values()]
        for result in await asyncio.gather(*closing, return_exceptions=True):
            if isinstance(result, BaseException):
                log.error("stopping a persona failed: %r", result)
        if self.directory is None:
            return
        self._record.controller_pid = self._record.controller_ticks = None
        if any(entry.alive() for entry in self._record.guests.values()):
            self._save()
            names = ", ".join(sorted(self._record.guests))
            self.progress(f"guests left running: {names} (in {self.directory}; mux run adopts them,"
                          " mux down stops them)")
        else:
            if self.logs_dir is not None:
                with contextlib.suppress(OSError):
                    self.logs_dir.mkdir(parents=True, exist_ok=True)
                    for log_file in self.directory.glob("*.serial.log"):
                        shutil.copy2(log_file, self.logs_dir / log_file.name)
            shutil.rmtree(self.directory, ignore_errors=True)


@dataclass(frozen=True)
class KeptGuest:
    """One guest mux owns, as ``mux ps`` lists it."""

    config: str
    persona: str
    pid: int
    uptime_s: float
    attached: bool
    directory: Path


def kept_guests() -> list[KeptGuest]:
    """Every kept guest that still runs, of every config."""
    found: list[KeptGuest] = []
    root = guests_root()
    for directory in sorted(root.iterdir()) if root.is_dir() else []:
        rec = record.load(directory)
        for entry in (rec.guests.values() if rec else ()):
            if entry.alive():
                assert rec is not None
                found.append(KeptGuest(rec.config, entry.persona, entry.pid, record.uptime_s(entry.ticks),
                                       rec.attached(), directory))
    return found


async def down(directory: Path, progress: Callable[[str], None]) -> int:
    """Stop a config's kept guests (and its controller, if one is attached) and remove
    their directory; returns how many guests were stopped here.

    Raises:
        PersonaError: the attached controller did not stop within :data:`DETACH_S`.
    """
    rec = record.load(directory)
    if rec is not None and rec.attached():
        assert rec.controller_pid is not None
        progress(f"{rec.config}: asking its controller (pid {rec.controller_pid}) to stop")
        with contextlib.suppress(ProcessLookupError):
            os.kill(rec.controller_pid, signal.SIGTERM)
        deadline = time.monotonic() + DETACH_S
        while rec.attached():
            if time.monotonic() > deadline:
                raise PersonaError(f"the controller (pid {rec.controller_pid}) did not stop"
                                   f" in {DETACH_S:.0f} s")
            await asyncio.sleep(0.1)
        rec = record.load(directory)
    stopped = 0
    for entry in (rec.guests.values() if rec else ()):
        if entry.alive():
            progress(f"{rec.config if rec else directory}: stopping {entry.persona} (pid {entry.pid})")
            await process.stop_kept(entry.persona, directory, entry.pid, entry.ticks)
            stopped += 1
    _kill_unrecorded(directory, [])
    shutil.rmtree(directory, ignore_errors=True)
    return stopped


def _kill_unrecorded(directory: Path, recorded: list[int], personas: Iterable[str] = ()) -> None:
    """Kill the QEMUs of ``directory`` that no record names (their controller died while
    starting them: they never ran for the user, and would hold its sockets' names), and
    the passts of ``directory`` but those of the recorded ``personas`` (a kept guest's runs
    with it; one whose QEMU never connected would wait forever)."""
    for pid in record.unrecorded_qemus(directory, recorded):
        log.warning("killing QEMU pid %d of %s: started, never recorded as running", pid, directory)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    passt.kill(passt.strays(directory, personas))
