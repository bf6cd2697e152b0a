"""The shipped scenarios, replayed as CI would: ``mux replay`` in a real process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

SCENARIOS = sorted((Path(__file__).parent.parent.parent / "scenarios").glob("*.yaml"))
SCHEMA = Path(__file__).parent.parent / "data" / "junit-10.xsd"
pytestmark = pytest.mark.guests


def replay(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mux", "replay", *args],
                          capture_output=True, text=True, timeout=900)


def valid_junit(path: Path) -> etree._ElementTree:
    schema = etree.XMLSchema(etree.parse(str(SCHEMA)))
    document = etree.parse(str(path))
    assert schema.validate(document), schema.error_log
    return document


@pytest.mark.timeout(900)
def test_shipped_scenarios_pass(tmp_path: Path, console_image: Any) -> None:
    names = {p.stem for p in SCENARIOS}
    assert {"two-personas-isolation", "hotkey-held-modifier", "caps-lock-led", "crash-and-restart",
            "palette-screensaver", "two-personas-resume"} <= names
    out = tmp_path / "out"
    result = replay(*map(str, SCENARIOS), "--artifacts", str(out), "--keep-going",
                    "--junit", str(tmp_path / "junit.xml"), "--snapshots", str(tmp_path / "snapshots"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(SCENARIOS)} passed, 0 failed" in result.stdout
    suites = valid_junit(tmp_path / "junit.xml").getroot().findall("testsuite")
    assert len(suites) == len(SCENARIOS) and all(s.get("failures") == "0" for s in suites)
    data = json.loads((out / "results.json").read_text())
    assert data["passed"] == len(SCENARIOS) and data["exit_code"] == 0
    for scenario in data["scenarios"]:
        assert (out / scenario["summary"]).stat().st_size > 0
        for log in scenario["serial_logs"].values():
            assert (out / log).is_file()
    by_name = {s["name"]: s for s in data["scenarios"]}
    resumed, cold = by_name["two personas resumed from a snapshot"], by_name["two personas stay apart"]
    assert resumed["from_snapshot"] == "two-consoles"
    # restored, not booted: the guests answer keys, yet never printed MUX-READY in this run
    # (how much sooner is a figure of `mux bench`: snapshot_speedup)
    work_log = (out / resumed["serial_logs"]["work"]).read_text()
    assert "resumed" in work_log and "MUX-READY" not in work_log
    assert "MUX-READY" in (out / cold["serial_logs"]["work"]).read_text()
    assert (out / resumed["artifacts"] / "screenshots" / "home-after-resume.png").is_file()


def test_failing_step_exits_1_naming_its_line(tmp_path: Path, console_image: Any) -> None:
    scenario = tmp_path / "fails.yaml"
    scenario.write_text(
        "name: fails\n"
        "config:\n  mux: {accel: tcg}\n  persona: [{name: work}, {name: home}]\n"
        "steps:\n"
        "  - wait_serial: {persona: work, match: MUX-READY, timeout: 120}\n"
        "  - wait_serial: {persona: work, match: never-printed, timeout: 1}\n")
    second = tmp_path / "second.yaml"
    second.write_text(scenario.read_text().replace("fails", "not run"))
    result = replay(str(scenario), str(second), "--artifacts", str(tmp_path / "out"),
                    "--junit", str(tmp_path / "junit.xml"))
    assert result.returncode == 1
    assert f"{scenario}:7:5: step 2 wait_serial failed" in result.stdout
    assert "0 passed, 1 failed, 1 skipped" in result.stdout
    out = tmp_path / "out" / "fails"
    assert (out / "work.serial.log").read_text().count("MUX-READY") == 1
    assert (out / "fail-step2-work.png").is_file() and (out / "fail-step2-home.png").is_file()
    root = valid_junit(tmp_path / "junit.xml").getroot()
    failure = root.find("testsuite/testcase/failure")
    assert failure is not None and failure.get("message", "").startswith(f"{scenario}:7:5:")
    assert "MUX-READY work" in (root.findtext("testsuite/testcase/system-out") or "")
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [s["status"] for s in data["scenarios"]] == ["failed", "skipped"]
    assert data["scenarios"][0]["steps"][1]["screenshots"] == ["fails/fail-step2-work.png",
                                                               "fails/fail-step2-home.png"]


def test_bad_files_exit_2_before_anything_boots(tmp_path: Path) -> None:
    scenario = tmp_path / "bad.yaml"
    scenario.write_text("name: bad\nconfig:\n  persona: [{name: work}]\nsteps:\n"
                        "  - assert_screen: {persona: work, needle: nowhere}\n"
                        "  - wait_still_screen: {persona: work, stilltime: soon}\n")
    result = replay(str(scenario), "--artifacts", str(tmp_path / "out"))
    assert result.returncode == 2
    assert f"{scenario}:5:" in result.stderr and "no needles directory" in result.stderr
    assert f"{scenario}:6:" in result.stderr and "stilltime must be" in result.stderr
    assert not (tmp_path / "out").exists()
