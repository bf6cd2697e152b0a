"""Snapshots of personas with disks (mux/guest/migration.py, mux/scenario/snapshot.py).

A persona whose disk is under an overlay (``overlay = true``) is saved with its overlay
and restored with it: a marker the guest wrote to its disk before the snapshot is read
back by the guest in a new run started from the snapshot, while a fresh boot of the
same config does not see it and the user's image is never written. A disk without an
overlay is refused with a clear error.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from mux.config import PersonaConfig
from mux.errors import MigrationError
from mux.guest import migration
from mux.guest.hardware import ImageBoot
from mux.scenario.parse import load_scenario
from mux.scenario.runner import load_all, run_scenario

# --- fast ------------------------------------------------------------------------------


@pytest.mark.pure
def test_which_disks_a_snapshot_holds(tmp_path: Path) -> None:
    disk = tmp_path / "data.img"
    overlaid = PersonaConfig("work", image="console", disk=disk, overlay=True)
    assert migration.disks(overlaid, tmp_path, None) == [(tmp_path / "work.disk.qcow2", "disk")]
    debian = PersonaConfig("deb", image="debian")
    boot = ImageBoot(None, None, "", tmp_path / "debian.qcow2")
    assert migration.disks(debian, tmp_path, boot) == [(tmp_path / "deb.image.qcow2", "image")]
    assert migration.disks(PersonaConfig("plain"), tmp_path, (Path("k"), None, "")) == []
    with pytest.raises(MigrationError, match=r"work has a disk without an overlay \(overlay = false\)"):
        migration.disks(PersonaConfig("work", image="console", disk=disk, overlay=False), tmp_path, None)
    assert migration.saved_overlay(tmp_path / "work.state", "disk") == tmp_path / "work.disk.qcow2"


# --- slow: real guests -----------------------------------------------------------------

WRITE = ("while [ ! -b /dev/vda ]; do sleep 0.1; done; echo MARK-$((6*7)) | dd of=/dev/vda conv=fsync"
         " 2>/dev/null; echo WROTE-$((6*7)) >/dev/ttyS0\n")
# The guest's page cache is dropped first: the marker must come from the disk itself.
READ = ("while [ ! -b /dev/vda ]; do sleep 0.1; done; echo 3 >/proc/sys/vm/drop_caches;"
        " echo READ-$(dd if=/dev/vda bs=7 count=1 2>/dev/null | tr -dc A-Z0-9-) >/dev/ttyS0\n")


def scenario(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(body)
    return path


def config(disk: Path, overlay: bool) -> str:
    return (f"config:\n  persona:\n    - {{name: work, image: console, disk: '{disk}',"
            f" overlay: {'true' if overlay else 'false'}}}\n")


@pytest.mark.guests
async def test_a_snapshot_holds_the_overlaid_disk(tmp_path: Path, console_image: Any) -> None:
    disk = tmp_path / "data.img"
    disk.write_bytes(bytes(1 << 20))
    base_sha = hashlib.sha256(disk.read_bytes()).hexdigest()
    store, artifacts = tmp_path / "snapshots", tmp_path / "artifacts"
    save = scenario(tmp_path, "save", "name: save\n" + config(disk, True) + "snapshot: disk\nsteps:\n"
                    "  - wait_serial: {persona: work, match: MUX-READY, timeout: 300}\n"
                    f"  - type: {{text: {json.dumps(WRITE)}, rate: 10}}\n"
                    "  - wait_serial: {persona: work, match: WROTE-42, timeout: 120}\n")
    result = await run_scenario(load_scenario(save), artifacts, out=lambda m: None, snapshots=store)
    assert result.passed, result.error
    assert (store / "disk" / "work.state").is_file() and (store / "disk" / "work.disk.qcow2").is_file()

    restored = scenario(tmp_path, "restored", "name: restored\nfrom_snapshot: disk\nsteps:\n"
                        f"  - type: {{text: {json.dumps(READ)}, rate: 10}}\n"
                        "  - wait_serial: {persona: work, match: READ-MARK-42, timeout: 120}\n")
    (loaded,) = load_all([restored], store)
    result = await run_scenario(loaded, artifacts, out=lambda m: None, snapshots=store)
    assert result.passed, f"{result.error}\n{result.serial_tails}"

    fresh = scenario(tmp_path, "fresh", "name: fresh\n" + config(disk, True) + "steps:\n"
                     "  - wait_serial: {persona: work, match: MUX-READY, timeout: 300}\n"
                     f"  - type: {{text: {json.dumps(READ)}, rate: 10}}\n"
                     "  - wait_serial: {persona: work, match: 'READ-\\S*', timeout: 120}\n"
                     "  - assert_no_serial: {persona: work, match: MARK-42}\n")
    result = await run_scenario(load_scenario(fresh), artifacts, out=lambda m: None, snapshots=store)
    assert result.passed, result.error  # a fresh boot of the same config has a fresh overlay
    assert hashlib.sha256(disk.read_bytes()).hexdigest() == base_sha  # the user's image: never written

    refused = scenario(tmp_path, "refused", "name: refused\n" + config(disk, False) + "snapshot: nodisk\n"
                       "steps:\n  - wait_serial: {persona: work, match: MUX-READY, timeout: 300}\n")
    result = await run_scenario(load_scenario(refused), artifacts, out=lambda m: None, snapshots=store)
    assert not result.passed and "overlay = false" in result.error, result.error
    assert not (store / "nodisk").exists()
