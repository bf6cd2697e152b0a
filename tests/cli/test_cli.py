"""The command line, run as a user would: a real process, real signals, real files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

MUX = [sys.executable, "-m", "mux"]


def mux(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MUX, *args], capture_output=True, text=True, timeout=300, **kwargs)


@pytest.mark.services
def test_bad_config_exits_2_with_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[mux]\naccel = "tcg"\n\n[[persona]]\nname = "w"\nmemroy_mb = 3\n')
    result = mux("run", str(config))
    assert result.returncode == 2
    assert f"{config}:6" in result.stderr and "memroy_mb" in result.stderr


@pytest.mark.services
def test_bad_scenario_exits_2_before_booting(tmp_path: Path) -> None:
    scenario = tmp_path / "bad.yaml"
    scenario.write_text("name: x\nconfig:\n  persona: [{name: a}]\nsteps:\n  - switch: b\n  - wait: 3\n")
    result = mux("replay", str(scenario), "--artifacts", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert f"{scenario}:5:" in result.stderr and "unknown persona 'b'" in result.stderr
    assert f"{scenario}:6:" in result.stderr and "unknown step 'wait'" in result.stderr
    assert "accelerator" not in result.stdout  # nothing booted


@pytest.mark.services
def test_yaml_syntax_error_exits_2(tmp_path: Path) -> None:
    scenario = tmp_path / "broken.yaml"
    scenario.write_text("name: x\nsteps:\n  - switch: {persona: a\n")
    result = mux("replay", str(scenario))
    assert result.returncode == 2
    assert f"{scenario}:" in result.stderr and "YAML syntax error" in result.stderr


@pytest.mark.services
def test_dry_run_prints_command_lines_without_booting(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[mux]\naccel = "tcg"\n[[persona]]\nname = "a"\n[[persona]]\nname = "b"\n')
    result = mux("run", str(config), "--dry-run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["a", "b"]
    assert all("accel=tcg" in line and "tcp" not in line for line in lines)


@pytest.mark.services
def test_ctl_without_controller_is_a_clear_error(tmp_path: Path) -> None:
    result = mux("ctl", "--socket", str(tmp_path / "none.sock"), "status")
    assert result.returncode == 1
    assert "no controller answers" in result.stderr


@pytest.mark.guests
def test_run_under_sigterm_leaves_nothing_behind(tmp_path: Path, console_image: Any) -> None:
    base = tmp_path / "rt"
    base.mkdir()
    config = tmp_path / "c.toml"
    sock = tmp_path / "ctl" / "control.sock"
    config.write_text(f'[mux]\naccel = "tcg"\nruntime_dir = "{base}"\ncontrol_socket = "{sock}"\n'
                      '[[persona]]\nname = "work"\n[[persona]]\nname = "home"\n')
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    proc = subprocess.Popen([*MUX, "run", str(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    try:
        status = _wait_for_status(sock, proc)
        pids = [p["pid"] for p in status["personas"]]
        assert all(pids) and status["active"] == "work"
        runtime = Path(status["runtime_dir"])
        assert runtime.parent == base and runtime.exists()
        switched = mux("ctl", "--socket", str(sock), "switch", "home")
        assert switched.returncode == 0 and switched.stdout.strip() == "home"
        shot = tmp_path / "home.png"
        assert mux("ctl", "--socket", str(sock), "screenshot", "home", str(shot)).returncode == 0
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, output
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists(), f"QEMU {pid} survived"
    assert not runtime.exists()
    assert list(base.iterdir()) == []
    assert list((tmp_path / "state" / "mux" / "logs").glob("*/work.serial.log"))


def _wait_for_status(sock: Path, proc: subprocess.Popen[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        result = mux("ctl", "--socket", str(sock), "status")
        if result.returncode == 0:
            status: dict[str, Any] = json.loads(result.stdout)
            if all(p["state"] == "running" for p in status["personas"]):
                return status
        time.sleep(0.5)
    raise AssertionError("controller did not come up")
