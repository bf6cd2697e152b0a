"""The shipped scenarios, replayed as CI would: ``mux replay`` in a real process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SCENARIOS = sorted((Path(__file__).parent.parent / "scenarios").glob("*.yaml"))
pytestmark = pytest.mark.slow


def replay(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mux", "replay", *args],
                          capture_output=True, text=True, timeout=900)


def test_shipped_scenarios_pass(tmp_path: Path, console_image: Any) -> None:
    assert len(SCENARIOS) >= 5
    result = replay(*map(str, SCENARIOS), "--artifacts", str(tmp_path), "--keep-going")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(SCENARIOS)} passed, 0 failed" in result.stdout


def test_failing_step_exits_1_naming_its_line(tmp_path: Path, console_image: Any) -> None:
    scenario = tmp_path / "fails.yaml"
    scenario.write_text(
        "name: fails\n"
        "config:\n  mux: {accel: tcg}\n  persona: [{name: work}]\n"
        "steps:\n"
        "  - wait_serial: {persona: work, match: MUX-READY, timeout: 120}\n"
        "  - wait_serial: {persona: work, match: never-printed, timeout: 1}\n")
    result = replay(str(scenario), "--artifacts", str(tmp_path / "out"))
    assert result.returncode == 1
    assert f"{scenario}:7:5: step 2 wait_serial failed" in result.stdout
    assert (tmp_path / "out" / "fails" / "work.serial.log").read_text().count("MUX-READY") == 1
