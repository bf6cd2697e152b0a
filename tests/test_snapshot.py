"""Snapshots: a restored pair of personas is ready at least 5x sooner than a cold boot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mux.bench import bench_config
from mux.snapshot import measure_speedup, read_manifest

pytestmark = pytest.mark.slow


async def test_snapshot_speedup_at_least_5x(tmp_path: Path, console_image: Any) -> None:
    figures = await measure_speedup(bench_config(2), tmp_path)
    assert figures["snapshot_speedup"] >= 5, figures
    manifest = read_manifest(tmp_path, "bench")
    assert manifest is not None and set(manifest["personas"]) == {"work", "home"}
    assert all("{runtime}" in " ".join(p["fingerprint"]) for p in manifest["personas"].values())
