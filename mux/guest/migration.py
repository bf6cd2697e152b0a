"""A guest's whole machine saved to a file and started again from it (QEMU migration).

Theory. The built-in guests boot their kernel directly and have no disk, so qcow2
internal snapshots (``savevm``) have nowhere to live. QEMU's migration stream needs no
disk: QMP ``migrate`` to ``exec:cat > FILE`` writes RAM and device state into a file
(QEMU 7.2 has no ``file:`` URI; 8.2 added it), and a QEMU started with the same machine
arguments plus ``-incoming defer`` (:mod:`mux.guest.cmdline`) reads it back with
``migrate-incoming exec:cat FILE``. The guest is paused while it is saved (one pass,
no dirty-page rounds) and resumed afterwards; the migration bandwidth cap is lifted
(7.2's default, 32 MiB/s, would make a save of a 256 MiB guest take seconds).
:class:`~mux.guest.persona.Persona` offers this as ``save_state(path)`` and
``start(restore_from=path)``.

Disks. The stream holds no disk contents, so a guest with a writable disk would come
back with RAM that does not match its disk. A disk under a throwaway qcow2 overlay
(the built-in ``debian`` image always, a user's disk with ``overlay = true``) is saved
with the state: once the migration has completed, QEMU has flushed and released its
images, and while the guest is still paused each overlay is copied beside the state
file (``NAME.state`` → ``NAME.image.qcow2`` / ``NAME.disk.qcow2``). A restore copies
them back to where the launch expects its overlays before QEMU starts (a resuming
launch keeps the overlay it finds: :func:`mux.guest.hardware.prepare`). The overlay
names its base (the user's image or the cached one) by absolute path; the base itself
is never written. A writable disk without an overlay cannot be saved:
:func:`unsaved_disk` says so.
"""

from __future__ import annotations

import asyncio
import shlex
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from mux.config import PersonaConfig
from mux.errors import MigrationError, PersonaError
from mux.guest.hardware import Boot, ImageBoot, overlay_path
from mux.guest.qmp import QmpLink

UNLIMITED = 1 << 40  # bytes per second: no migration bandwidth cap
POLL_S = 0.02


def disks(config: PersonaConfig, runtime_dir: Path, boot: Boot | None,
          frozen: bool = False) -> list[tuple[Path, str]]:
    """The persona's disks a snapshot holds: its throwaway overlays, as (where the launch
    keeps it, "image" or "disk"). ``frozen``: the guest's file systems are frozen, so a
    writable disk without an overlay may stay where it is (quick boot: :mod:`mux.guest.quickboot`).

    Raises:
        MigrationError: a writable disk without an overlay (:func:`unsaved_disk`), not ``frozen``.
    """
    if (why := unsaved_disk(config)) and not frozen:
        raise MigrationError(why)
    found = []
    if boot is not None and ImageBoot(*boot).disk is not None:  # a built-in disk image (debian)
        found.append((overlay_path(runtime_dir, config.name, "image"), "image"))
    if config.disk is not None and config.overlay:
        found.append((overlay_path(runtime_dir, config.name, "disk"), "disk"))
    return found


def unsaved_disk(config: PersonaConfig) -> str | None:
    """Why a snapshot cannot hold this persona's disk (None: it can)."""
    if config.disk is not None and not config.overlay:
        return (f"{config.name} has a disk without an overlay (overlay = false): the guest writes"
                " the image itself, which a snapshot cannot hold; set overlay = true")
    return None


def saved_overlay(state: Path, of: str) -> Path:
    """Where the overlay ``of`` ("image", "disk"; or "vars", a UEFI variable store) saved
    with the state file ``state`` is."""
    return state.with_name(f"{state.stem}.{of}.{'fd' if of == 'vars' else 'qcow2'}")


async def save(link: QmpLink, path: Path, timeout: float,
               disks: Sequence[tuple[Path, str]] = (), resume: bool = True) -> None:
    """Pause the guest, write its whole state to ``path`` and copy its overlays ``disks``
    (from :func:`disks`) beside it, resume it (on failure always; on success only with
    ``resume``: otherwise it stays paused, for a ``quit`` that must not let it run on).

    Raises:
        MigrationError: the migration failed or did not complete within ``timeout``, or
            an overlay could not be copied.
        PersonaError: QMP failed.
    """
    await link.execute("stop")
    saved = False
    try:
        await link.execute("migrate-set-parameters", {"max-bandwidth": UNLIMITED})
        await link.execute("migrate", {"uri": f"exec:cat > {shlex.quote(str(path))}"})
        await _done(link, timeout)
        for overlay, of in disks:  # flushed and released by the completed migration
            await _copy(overlay, saved_overlay(path, of))
        saved = True
    finally:
        if resume or not saved:
            await link.execute("cont")


async def put_back(path: Path, disks: Sequence[tuple[Path, str]]) -> None:
    """Before a launch that resumes ``path``: its saved overlays to where QEMU will open them.

    Raises:
        MigrationError: an overlay is missing from the snapshot or cannot be copied.
    """
    for overlay, of in disks:
        await _copy(saved_overlay(path, of), overlay)


async def _copy(source: Path, target: Path) -> None:
    try:
        await asyncio.to_thread(shutil.copyfile, source, target)
    except OSError as exc:
        raise MigrationError(f"disk overlay {source} -> {target}: {exc}") from exc


async def load(link: QmpLink, path: Path, timeout: float) -> None:
    """Feed ``path`` to a QEMU started with ``-incoming defer``, then let the guest run.

    Raises:
        MigrationError: the state did not load (wrong machine, truncated file, QMP
            failed) within ``timeout``.
    """
    try:
        await link.execute("migrate-incoming", {"uri": f"exec:cat {shlex.quote(str(path))}"})
        await _done(link, timeout)
        await link.execute("cont")
    except MigrationError:
        raise
    except PersonaError as exc:
        raise MigrationError(str(exc)) from exc


async def _done(link: QmpLink, timeout: float) -> None:
    """Wait for the migration (out or in) to complete.

    Raises:
        MigrationError: it failed or did not complete within ``timeout``.
        PersonaError: QMP failed.
    """
    deadline = time.monotonic() + timeout
    while True:
        info = await link.execute("query-migrate")
        status = info.get("status") if isinstance(info, dict) else None
        if status == "completed":
            return
        if status in ("failed", "cancelled"):
            raise MigrationError(f"persona {link.name!r}: migration {status}: {info.get('error-desc', '')}")
        if time.monotonic() > deadline:
            raise MigrationError(f"persona {link.name!r}: migration still {status} after {timeout:.0f}s")
        await asyncio.sleep(POLL_S)
