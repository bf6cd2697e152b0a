"""Snapshots: every persona's whole machine saved to files, so a scenario can start
where another one left off instead of booting (seconds under TCG; a snapshot loads in
a fraction of one).

Theory. Each running persona writes its machine (RAM and device state) to a file with
:meth:`Persona.save_state <mux.guest.persona.Persona.save_state>` and a later run starts
it from that file with ``Persona.start(restore_from=FILE)`` (QEMU migration to and from
a file: :mod:`mux.guest.migration`). The guest is paused while it is saved and resumed
afterwards, so a scenario goes on after ``snapshot``.

On disk: ``DIR/NAME/manifest.json`` and ``DIR/NAME/<persona>.state``, with the
persona's disk overlays beside it (``<persona>.image.qcow2``, ``<persona>.disk.qcow2``:
a persona with the ``debian`` image or a disk with ``overlay = true``; a disk with
``overlay = false`` cannot be saved, and ``save`` says so). The manifest has
the QEMU version, the active persona (and each seat's: ``seats``, restored seat by seat),
each saved persona's fingerprint (its QEMU
command line with the runtime directory blanked: a snapshot only loads into the same
machine), and the config as the scenario wrote it, so a later run's ``from_snapshot``
scenario may leave its config out. A snapshot is written to a temporary directory and
renamed into place, so a crash never leaves half of one.

A restored guest's serial log starts empty: what it printed before belongs to the
scenario that saved it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from mux import images
from mux.app.controller import Controller
from mux.config import Config, parse_config
from mux.errors import ConfigError, Location, MigrationError, SnapshotError
from mux.guest import migration
from mux.guest.persona import Persona
from mux.guest.state import RunState

MANIFEST = "manifest.json"


def default_dir() -> Path:
    """``$MUX_SNAPSHOT_DIR``, else ``snapshots`` beside the guest image cache."""
    if env := os.environ.get("MUX_SNAPSHOT_DIR"):
        return Path(env).expanduser()
    return images.cache_root().parent / "snapshots"


def fingerprint(persona: Persona) -> list[str]:
    """The persona's QEMU command line (of a boot, not a restore) without its runtime directory."""
    return [arg.replace(str(persona.runtime_dir), "{runtime}") for arg in persona.argv()]


def read_manifest(base: Path, name: str) -> dict[str, Any] | None:
    """The manifest of snapshot ``name`` under ``base``, or None if there is none (or it is unreadable)."""
    try:
        data = json.loads((base / name / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def saved_config(base: Path, name: str) -> Config | None:
    """The config snapshot ``name`` was saved with, or None (no snapshot, or no usable config)."""
    manifest = read_manifest(base, name)
    if not manifest or manifest.get("config") is None:
        return None
    source = Path(str(manifest.get("source", base / name / MANIFEST)))
    try:
        # a scenario's config: its disks are under overlays unless it says otherwise
        return parse_config(manifest["config"], lambda _path: Location(source), source, overlay=True)
    except ConfigError:
        return None


async def save(ctl: Controller, base: Path, name: str, config_data: Any, source: Path,
               timeout: float = 60.0) -> Path:
    """Save every running persona as snapshot ``name`` under ``base``; returns its directory.

    Raises:
        SnapshotError: no persona is running, one has a disk without an overlay (the guest
            writes the user's image, which a snapshot cannot hold: a restore would pair
            old RAM with a newer disk), or QEMU could not write a state.
        PersonaError: QMP failed.
    """
    running = [p for p in ctl.personas.values() if p.state == RunState.RUNNING]
    if not running:
        raise SnapshotError(f"snapshot {name!r}: no persona is running")
    if unsaved := [why for p in running if (why := migration.unsaved_disk(p.config))]:
        raise SnapshotError(f"snapshot {name!r}: {'; '.join(unsaved)}")
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=base))
    try:
        try:
            await asyncio.gather(*(p.save_state(tmp / f"{p.name}.state", timeout) for p in running))
        except MigrationError as exc:
            raise SnapshotError(f"snapshot {name!r}: {exc}") from exc
        version = await running[0].qemu_version()
        manifest = {
            "name": name, "saved_at": time.time(), "qemu": version, "active": ctl.active,
            "seats": {seat: ctl.active_on(seat) for seat in ctl.seats},
            "personas": {p.name: {"state": f"{p.name}.state", "fingerprint": fingerprint(p)}
                         for p in running},
            "config": config_data, "source": str(source),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        final = base / name
        old = base / f".{name}-old-{os.getpid()}"
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check(ctl: Controller, base: Path, name: str) -> dict[str, Any]:
    """The manifest of snapshot ``name``, checked against the controller's personas.

    Raises:
        SnapshotError: there is no such snapshot, or it was saved from other machines.
    """
    manifest = read_manifest(base, name)
    if manifest is None:
        raise SnapshotError(f"no snapshot {name!r} in {base} (the scenario that saves it did not pass?)")
    for persona_name, entry in manifest.get("personas", {}).items():
        if persona_name not in ctl.personas:
            raise SnapshotError(f"snapshot {name!r} has persona {persona_name!r}, which is not configured")
        if entry.get("fingerprint") != fingerprint(ctl.personas[persona_name]):
            raise SnapshotError(f"snapshot {name!r} was saved from another machine for {persona_name!r}"
                                " (image, config or QEMU changed): run the scenario that saves it again")
    return manifest


async def restore(ctl: Controller, base: Path, name: str, timeout: float = 60.0) -> None:
    """Start the snapshot's personas from their saved state (the others stay stopped).

    The controller must have been opened with no persona started (``autostart`` off).

    Raises:
        SnapshotError: no such snapshot, another machine's, or a state did not load.
        PersonaError: QEMU did not start or QMP failed.
    """
    manifest = check(ctl, base, name)
    saved = manifest.get("personas", {})
    personas = [ctl.personas[n] for n in saved]
    try:
        await asyncio.gather(*(p.start(restore_from=base / name / saved[p.name]["state"],
                                       restore_timeout=timeout) for p in personas))
    except MigrationError as exc:
        raise SnapshotError(f"snapshot {name!r} did not load: {exc}") from exc
    active = manifest.get("active")
    if isinstance(active, str) and active in saved:
        await ctl.switch(active, "snapshot")
    elif ctl.active is None and personas:
        await ctl.switch(personas[0].name, "snapshot")
    shown = manifest.get("seats")
    shown = shown if isinstance(shown, dict) else {}
    for seat in ctl.seats[1:]:
        # the other seats, in order; steal: a seat set already never shows a later one's persona
        if isinstance(persona := shown.get(seat), str) and persona in saved:
            await ctl.switch(persona, "snapshot", seat, steal=True)


async def measure_speedup(config: Config, store: Path, rounds: int = 1) -> dict[str, Any]:
    """``snapshot_speedup``: how much sooner a scenario from a snapshot is ready than one
    that cold-boots. Cold: from the controller's start until every persona has printed
    ``MUX-READY``. Restored: from the controller's start until every persona runs its
    saved state again, and then a key typed into the active one must reach its guest.
    Rounds interleave (cold, restored, cold, ...); medians are reported.

    Raises:
        SnapshotError, PersonaError: a guest did not boot, save or load.
        TimeoutError: a guest did not report in time.
    """
    from statistics import median

    from mux.input.events import EV_KEY, EV_SYN, InputEvent

    ready = re.compile(r"MUX-READY")
    quiet = lambda message: None  # noqa: E731
    no_autostart = dataclasses.replace(config, personas=tuple(
        dataclasses.replace(p, autostart=False) for p in config.personas))
    cold: list[float] = []
    warm: list[float] = []
    for _ in range(rounds):
        began = time.monotonic()
        async with Controller(config, progress=quiet) as ctl:
            await asyncio.gather(*(p.serial.wait_for(ready, 120) for p in ctl.personas.values()))
            cold.append(time.monotonic() - began)
            await save(ctl, store, "bench", None, Path("<bench>"))
        began = time.monotonic()
        async with Controller(no_autostart, progress=quiet) as ctl:
            await restore(ctl, store, "bench")
            warm.append(time.monotonic() - began)
            assert ctl.active is not None
            await ctl.input([InputEvent(EV_KEY, 30, 1), InputEvent(EV_SYN, 0, 0),
                             InputEvent(EV_KEY, 30, 0), InputEvent(EV_SYN, 0, 0)])
            await ctl.persona(ctl.active).serial.wait_for(re.compile("MUX-KEY 30 0"), 30)
    return {"snapshot_cold_boot_s": round(median(cold), 3), "snapshot_restore_s": round(median(warm), 3),
            "snapshot_speedup": round(median(cold) / median(warm), 1)}
