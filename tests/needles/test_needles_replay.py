"""A needle directory with broken needles in it still serves its good needles: a real
replay passes, with one warning per broken file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.needles.test_needles import needle_repository

pytestmark = pytest.mark.guests


def test_replay_passes_with_one_warning_per_broken_needle(tmp_path: Path, console_image: Any) -> None:
    scenario = needle_repository(tmp_path)
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "mux", "replay", str(scenario), "--artifacts", str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("mux: warning:")]
    assert len(warnings) == 3, warnings
    for name in ("broken.json", "no-picture.json", "string-match.json"):
        assert sum(name in line for line in warnings) == 1, (name, warnings)
    steps = json.loads((out / "results.json").read_text())["scenarios"][0]["steps"]
    assert [s["status"] for s in steps] == ["passed"] * 3
    assert "needle string-match matched" in steps[1]["message"]
