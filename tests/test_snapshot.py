"""Snapshots: save a pair of running personas, restore them; the bench's measurement works.

How much sooner a restore is ready than a cold boot is a figure of ``mux bench``
(``snapshot_speedup``, target at least 5), not a timed assertion here: the machine is
shared and noisy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mux.bench.runner import bench_config
from mux.scenario.snapshot import measure_speedup, read_manifest

pytestmark = pytest.mark.slow


async def test_snapshot_speedup_is_measured_from_a_real_save_and_restore(tmp_path: Path,
                                                                          console_image: Any) -> None:
    figures = await measure_speedup(bench_config(2), tmp_path)
    assert figures["snapshot_cold_boot_s"] > 0 and figures["snapshot_restore_s"] > 0, figures
    assert figures["snapshot_speedup"] == pytest.approx(
        figures["snapshot_cold_boot_s"] / figures["snapshot_restore_s"], rel=0.05)
    manifest = read_manifest(tmp_path, "bench")
    assert manifest is not None and set(manifest["personas"]) == {"work", "home"}
    assert all("{runtime}" in " ".join(p["fingerprint"]) for p in manifest["personas"].values())
