"""Quick boot: a persona's whole machine saved at a clean stop, resumed at the next start.

Theory. ``mux run`` with ``[mux] quick_boot = true`` (the default) saves each running
persona when it stops cleanly, with the same QEMU migration to a file the scenario
snapshots use (:mod:`mux.guest.migration`): RAM and device state, the disk overlays, and
the UEFI variable store, into ``$XDG_STATE_HOME/mux/quickboot/<hash>/`` (the hash is of
the config's key, as the kept guests' directory's). The guest is paused for the save and
never runs again: QEMU is told to ``quit`` (no power-down: the saved machine is the
one that comes back). The next start of the same config resumes it instead of booting.

Checked, not assumed. Beside each state, ``<persona>.json`` (written last: a save cut
short leaves no manifest and is ignored) records the persona's fingerprint (its QEMU
command line, runtime directory blanked: any change of its config, image, devices or
accelerator changes it) and a mark of every file the machine reads: each disk, cdrom,
built-in disk image, block device file and the QEMU binary, as size and modification
time (and a SHA-256 for files up to :data:`HASH_MAX`). A start whose fingerprint or
marks differ boots afresh and says why; a saved state is removed once used or refused.

Writable disks. A disk without an overlay (``overlay = false``) or a writable block
device is the guest's own: RAM saved while the guest may still write it would not match
it. Such a persona is saved only when its guest agent freezes its file systems
(``guest-fsfreeze-freeze``); the disk is then marked after QEMU has quit, and the
resumed guest is thawed (``guest-fsfreeze-thaw``) once its agent answers. Without an
agent it is not saved (:meth:`QuickSave.save_quick` raises, and the stop says so).

:class:`QuickSave` is a mixin of :class:`~mux.guest.persona.Persona`; the controller's
part (which personas, the lines printed) is :class:`mux.app.keep.Keeper`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from mux.config import PersonaConfig
from mux.config.schema import state_home
from mux.devices.model import DeviceConfig
from mux.errors import MigrationError, PersonaError
from mux.guest import migration
from mux.guest.agent import AgentError
from mux.guest.cmdline import Boot
from mux.guest.hardware import ImageBoot, uefi_vars_path
from mux.guest.process import QUIT_S, GuestProcess
from mux.guest.qmp import QmpLink
from mux.guest.ready import Readiness
from mux.guest.state import RunState

log = logging.getLogger(__name__)

HASH_MAX = 16 << 20  #: files up to this size are marked by their SHA-256 too
FREEZE_S = 30.0  #: how long the guest agent may take to freeze (or thaw) the file systems
VARS = "vars"  #: the UEFI variable store's name among the saved files (``<persona>.vars.fd``)


def root() -> Path:
    """Where every config's saved states live: ``$XDG_STATE_HOME/mux/quickboot``."""
    return state_home() / "quickboot"


def config_dir(key: str) -> Path:
    """The directory of the config whose key (:func:`mux.app.keep.config_key`) is ``key``."""
    return root() / hashlib.sha256(key.encode()).hexdigest()[:12]


def fingerprint(argv: list[str], runtime_dir: Path) -> str:
    """A hash of a launch's command line with its runtime directory blanked."""
    blanked = [arg.replace(str(runtime_dir), "{runtime}") for arg in argv]
    return hashlib.sha256(json.dumps(blanked).encode()).hexdigest()


def mark(path: Path, kind: str) -> dict[str, Any]:
    """What a file is now: size, modification time, SHA-256 if small (None: missing)."""
    try:
        info = path.stat()
    except OSError:
        return {"path": str(path), "kind": kind, "size": None}
    digest = None
    if info.st_size <= HASH_MAX:
        with contextlib.suppress(OSError):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"path": str(path), "kind": kind, "size": info.st_size, "mtime_ns": info.st_mtime_ns,
            "sha256": digest}


def changed(marks: list[dict[str, Any]]) -> str | None:
    """Why the files ``marks`` describe are not what they were (None: unchanged)."""
    for then in marks:
        now = mark(Path(then["path"]), then["kind"])
        if now["size"] is None:
            return f"its {then['kind']} {then['path']} is gone"
        for field, what in (("size", "size"), ("mtime_ns", "modification time"), ("sha256", "contents")):
            if now.get(field) != then.get(field):
                return f"its {then['kind']} {then['path']} changed since it was saved ({what})"
    return None


def manifest_path(directory: Path, name: str) -> Path:
    return directory / f"{name}.json"


def read_manifest(directory: Path, name: str) -> dict[str, Any] | None:
    """Persona ``name``'s saved-state manifest (None: none, or unreadable)."""
    try:
        data = json.loads(manifest_path(directory, name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def files(directory: Path, name: str) -> list[Path]:
    """Every file of persona ``name``'s saved state (state, overlays, variables, manifest)."""
    return sorted(directory.glob(f"{name}.*")) if directory.is_dir() else []


def size(directory: Path, name: str) -> int:
    """Bytes on disk of persona ``name``'s saved state."""
    return sum(path.stat().st_size for path in files(directory, name) if path.is_file())


def remove(directory: Path, name: str) -> None:
    """Remove persona ``name``'s saved state, and the directory once it is empty."""
    for path in files(directory, name):
        path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        directory.rmdir()


def saved(directory: Path, tidy: bool = False) -> list[str]:
    """The personas with a complete saved state in ``directory``; with ``tidy``, files a
    save cut short left (no manifest) are removed."""
    if not directory.is_dir():
        return []
    names = sorted(path.stem for path in directory.glob("*.json"))
    for path in list(directory.iterdir()) if tidy else []:
        if path.name.split(".", 1)[0] not in names:
            path.unlink(missing_ok=True)
    return names


def listing() -> list[tuple[str, str, int]]:
    """Every saved state of every config, as (config, persona, bytes): ``mux ps``."""
    found = []
    for directory in sorted(root().iterdir()) if root().is_dir() else []:
        for name in saved(directory):
            manifest = read_manifest(directory, name) or {}
            found.append((str(manifest.get("config", directory)), name, size(directory, name)))
    return found


def mib(count: int) -> str:
    return f"{count / (1 << 20):.1f} MiB"


class QuickSave:
    """Saving for quick boot and resuming, mixed into :class:`~mux.guest.persona.Persona`."""

    name: str
    config: PersonaConfig
    runtime_dir: Path
    boot: Boot | None
    state: RunState
    readiness: Readiness
    agent_socket: Path | None
    devices: dict[str, DeviceConfig]
    _qmp: QmpLink | None
    _proc: GuestProcess | None
    _stop_requested: bool

    def argv(self, *, incoming: bool = False) -> list[str]:
        raise NotImplementedError

    def _require(self, *states: RunState) -> None:
        raise NotImplementedError

    def _set_state(self, state: RunState) -> None:
        raise NotImplementedError

    async def _reap(self) -> None:
        raise NotImplementedError

    async def _execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        raise NotImplementedError

    async def start(self, restore_from: Path | None = None, restore_timeout: float = 60.0) -> None:
        raise NotImplementedError

    # --- what the machine is made of -------------------------------------------------

    def _image_boot(self) -> ImageBoot:
        return ImageBoot(*self.boot) if self.boot else ImageBoot(self.config.kernel)

    def watched_files(self) -> list[tuple[Path, str]]:
        """Every file the machine reads, as (path, what it is): checked at the next start."""
        c = self.config
        found = [(path, kind) for path, kind in ((self._image_boot().disk, "built-in disk image"),
                                                 (c.disk, "disk"), (c.cdrom, "cdrom")) if path]
        found += [(d.file, f"device {d.id}") for d in self.devices.values() if d.is_block and d.file]
        argv = self.argv()
        if qemu := shutil.which(argv[0]):
            found.append((Path(qemu), "QEMU binary"))
        return found

    def writable_files(self) -> list[Path]:
        """The disks the guest writes itself (no overlay), which only a freeze keeps in step."""
        found = [self.config.disk] if self.config.disk is not None and not self.config.overlay else []
        return found + [d.file for d in self.devices.values() if d.is_block and d.file and not d.readonly]

    def _vars(self) -> list[tuple[Path, str]]:
        uefi = self.config.firmware == "uefi"
        return [(uefi_vars_path(self.config, self._image_boot()), VARS)] if uefi else []

    # --- saving ---------------------------------------------------------------------

    async def save_quick(self, directory: Path, config_key: str, timeout: float) -> int:
        """Save the running machine into ``directory`` and quit QEMU (the persona is then
        stopped); returns the saved state's size in bytes.

        Raises:
            MigrationError: it cannot be saved (a writable disk its agent could not freeze,
                a device QEMU cannot migrate, a full disk...): the guest runs on.
            PersonaError: QMP failed.
        """
        self._require(RunState.RUNNING)
        writable = self.writable_files()
        if writable:
            if self.agent_socket is None:
                raise MigrationError(f"its disk {writable[0]} is writable (overlay = false) and it has"
                                     " no guest agent (agent = true) to freeze its file systems")
            try:
                await self._agent_call("guest-fsfreeze-freeze")
            except (PersonaError, AgentError) as exc:
                raise MigrationError(f"its disk {writable[0]} is writable (overlay = false) and its guest"
                                     f" agent could not freeze its file systems: {exc}") from exc
        remove(directory, self.name)
        for each in (state_home(), root(), directory):  # 0700: it says what the user runs
            each.mkdir(mode=0o700, parents=True, exist_ok=True)
        state = directory / f"{self.name}.state"
        disks = migration.disks(self.config, self.runtime_dir, self.boot, frozen=bool(writable))
        fingerprinted = fingerprint(self.argv(), self.runtime_dir)
        try:
            assert self._qmp is not None
            await migration.save(self._qmp, state, timeout, [*disks, *self._vars()], resume=False)
        except BaseException:
            remove(directory, self.name)
            if writable:
                with contextlib.suppress(PersonaError, AgentError):
                    await self._agent_call("guest-fsfreeze-thaw")
            raise
        await self._quit()
        manifest = {"persona": self.name, "config": config_key, "saved_at": time.time(),
                    "fingerprint": fingerprinted, "frozen": bool(writable),
                    "marks": [mark(path, kind) for path, kind in self.watched_files()]}
        tmp = manifest_path(directory, self.name).with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        tmp.replace(manifest_path(directory, self.name))
        return size(directory, self.name)

    async def _quit(self) -> None:
        """QEMU, paused after a save, told to quit (killed if it does not): it never runs on."""
        self._stop_requested = True
        self._set_state(RunState.STOPPING)
        proc = self._proc
        with contextlib.suppress(TimeoutError, PersonaError, OSError):
            async with asyncio.timeout(QUIT_S):
                await self._execute("quit")
                if proc is not None:
                    await proc.wait()
        await self._reap()
        self._set_state(RunState.STOPPED)

    async def _agent_call(self, command: str) -> None:
        agent = await self.readiness._session(FREEZE_S)  # the persona's own agent session
        await agent.execute(command, timeout=FREEZE_S)

    # --- resuming -------------------------------------------------------------------

    def check_quick(self, directory: Path) -> str | None:
        """Why this persona's saved state in ``directory`` must not be resumed (None: it may).
        Raises nothing: an unreadable manifest is a reason."""
        manifest = read_manifest(directory, self.name)
        if manifest is None:
            return "its saved state is unreadable"
        if manifest.get("fingerprint") != fingerprint(self.argv(), self.runtime_dir):
            return "its config (or image, devices, accelerator) changed since it was saved"
        return changed(list(manifest.get("marks", [])))

    async def resume_quick(self, directory: Path, timeout: float) -> None:
        """Start from the saved state in ``directory`` (checked first with :meth:`check_quick`);
        a guest saved frozen is thawed once its agent answers. The saved state is removed,
        whether it loaded or not.

        Raises:
            MigrationError: it did not load (the persona is stopped: boot it afresh).
            PersonaError, LaunchError: QEMU did not start.
        """
        state = directory / f"{self.name}.state"
        frozen = bool((read_manifest(directory, self.name) or {}).get("frozen"))
        try:
            for target, of in self._vars():  # before the launch, which keeps the store it finds
                await asyncio.to_thread(shutil.copyfile, migration.saved_overlay(state, of), target)
            await self.start(restore_from=state, restore_timeout=timeout)
        except OSError as exc:
            raise MigrationError(f"its saved UEFI variable store: {exc}") from exc
        finally:
            remove(directory, self.name)
        if frozen:
            try:
                await self._agent_call("guest-fsfreeze-thaw")
            except (PersonaError, AgentError) as exc:
                log.error("%s: resumed, but its file systems could not be thawed: %s", self.name, exc)
