"""Snapshots: save a pair of running personas, restore them; the bench's measurement works.

How much sooner a restore is ready than a cold boot is a figure of ``mux bench``
(``snapshot_speedup``, target at least 5), not a timed assertion here: the machine is
shared and noisy.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from mux.bench.runner import bench_config
from mux.config import PersonaConfig
from mux.errors import MigrationError
from mux.guest.accel import AccelChoice
from mux.guest.cmdline import qemu_argv
from mux.guest.persona import Persona
from mux.guest.state import RunState
from mux.scenario.snapshot import measure_speedup, read_manifest
from tests.conftest import READY_S

pytestmark = pytest.mark.guests
TCG = AccelChoice("tcg", "test", proven=True)


async def test_snapshot_speedup_is_measured_from_a_real_save_and_restore(tmp_path: Path,
                                                                          console_image: Any) -> None:
    figures = await measure_speedup(bench_config(2), tmp_path)
    assert figures["snapshot_cold_boot_s"] > 0 and figures["snapshot_restore_s"] > 0, figures
    assert figures["snapshot_speedup"] == pytest.approx(
        figures["snapshot_cold_boot_s"] / figures["snapshot_restore_s"], rel=0.05)
    manifest = read_manifest(tmp_path, "bench")
    assert manifest is not None and set(manifest["personas"]) == {"work", "home"}
    assert all("{runtime}" in " ".join(p["fingerprint"]) for p in manifest["personas"].values())


async def test_a_persona_saves_its_machine_and_a_new_launch_resumes_it(tmp_path: Path,
                                                                       console_image: Any) -> None:
    """The guest-level API: ``save_state(file)``, then ``start(restore_from=file)`` runs the
    argv the dry-run builder gives (``-incoming defer`` included) and the guest goes on."""
    boot = (console_image.kernel, console_image.initrd, console_image.append)
    config = PersonaConfig("p")
    state = tmp_path / "p.state"
    async with Persona(config, tmp_path, TCG, boot) as first:
        await first.start()
        await first.serial.wait_for(re.compile("MUX-READY p"), READY_S)
        await first.save_state(state, 60)
        assert first.state == RunState.RUNNING and state.stat().st_size > 0
    async with Persona(config, tmp_path, TCG, boot) as second:
        await second.start(restore_from=state)
        assert second.state == RunState.RUNNING
        assert second.pid is not None
        launched = Path(f"/proc/{second.pid}/cmdline").read_bytes().rstrip(b"\0").decode().split("\0")
        assert launched == qemu_argv(config, tmp_path, TCG, boot, incoming=True)
        assert launched[-2:] == ["-incoming", "defer"]
        # The resumed guest still runs its reporter: a key reaches it (no MUX-READY: no boot).
        key_a = {"type": "qcode", "data": "a"}
        await second.send_input([{"type": "key", "data": {"down": down, "key": key_a}}
                                 for down in (True, False)])
        await second.serial.wait_for(re.compile("MUX-KEY 30 0"), 30)
        assert "MUX-READY" not in second.serial.text
    async with Persona(config, tmp_path, TCG, boot) as third:
        (tmp_path / "garbage.state").write_bytes(b"not a machine")
        with pytest.raises(MigrationError):
            await third.start(restore_from=tmp_path / "garbage.state", restore_timeout=30)
        assert third.state == RunState.STOPPED and third.pid is None
