"""Clicking and reading text on a real console guest, through ``mux replay``: the guest
reports the click (MUX-PTR) at the needle's click point, in its own pixels; typed text
is read back by tesseract, and a regex that is not on the screen fails quoting what was
read."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.guests
NEEDLES = Path(__file__).parent.parent.parent / "scenarios" / "needles"

SCENARIO = """\
name: click and read
config:
  mux: {accel: tcg}
  persona: [{name: work, image: console}]
steps:
  - wait_serial: {persona: work, match: MUX-READY, timeout: 120}
  # the usb-tablet is bound (usbhid loads after MUX-READY)
  - wait_serial: {persona: work, match: "MUX-UEVENT bind usb bus/usb/001/002", timeout: 60}
  - assert_and_click: {persona: work, needle: work-prompt-click, timeout: 30}
  - wait_serial: {persona: work, match: "MUX-PTR 10 81 1", timeout: 30}
  - wait_serial: {persona: work, match: "MUX-PTR 10 81 0", timeout: 30}
  - click_lastmatch: right
  - wait_serial: {persona: work, match: "MUX-PTR 10 81 2", timeout: 30}
  - type: needle-marker
  - assert_text: {persona: work, text: "needle-marker", timeout: 30}
  - check_text: {persona: work, text: "elsewhere", area: {xpos: 0, ypos: 700, width: 1024, height: 68}}
  - assert_text: {persona: work, text: "no-such-text-[0-9]+", timeout: 2}
"""


def test_click_at_the_click_point_and_read_typed_text(tmp_path: Path, console_image: Any) -> None:
    needles = tmp_path / "needles"
    needles.mkdir()
    data = json.loads((NEEDLES / "work-prompt.json").read_text())
    data["tags"] = ["work-prompt-click"]
    data["area"][0]["click_point"] = {"xpos": 10, "ypos": 5}  # the match area is at +0+76
    (needles / "work-prompt-click.json").write_text(json.dumps(data))
    shutil.copy(NEEDLES / "work-prompt.png", needles / "work-prompt-click.png")
    scenario = tmp_path / "click.yaml"
    scenario.write_text(SCENARIO)
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "mux", "replay", str(scenario), "--artifacts", str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stdout + result.stderr
    steps = json.loads((out / "results.json").read_text())["scenarios"][0]["steps"]
    assert [s["status"] for s in steps] == ["passed"] * 10 + ["failed"], result.stdout
    assert "clicked left at +10+81" in steps[2]["message"]
    failure = steps[-1]["message"]
    assert "no text matching 'no-such-text-[0-9]+'" in failure
    assert "needle-marker" in failure.split("read:")[1]


async def test_ctl_text_prints_the_screen(tmp_path: Path, controller: Any) -> None:
    import asyncio
    import re

    from mux.config import PersonaConfig
    from mux.scenario.runner import StepRunner
    from tests.conftest import READY_S

    async with controller(PersonaConfig("work")) as ctl:
        await ctl.persona("work").serial.wait_for(re.compile("MUX-READY"), READY_S)
        await StepRunner(ctl).step_type({"text": "needle-marker"})

        async def ctl_text(*more: str) -> str:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "mux", "ctl", "--socket", str(tmp_path / "control.sock"), "text",
                "work", *more, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            stdout, stderr = await asyncio.wait_for(proc.communicate(), 120)
            assert proc.returncode == 0, stderr.decode()
            return stdout.decode()

        for _ in range(20):  # the typed text reaches the screen a little later
            whole = await ctl_text()
            if "needle-marker" in whole:
                break
            await asyncio.sleep(0.5)
        assert "needle-marker" in whole and "BusyBox" in whole
        corner = await ctl_text("--area", "0,600,1024,168")
        assert "needle-marker" not in corner and "BusyBox" not in corner
