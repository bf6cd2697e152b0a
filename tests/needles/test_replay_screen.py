"""Screen assertions against real guests: a needle from the right persona matches, one
taken from the other persona fails with a picture of the difference; a needle captured
from a live persona with ``mux needle capture`` holds that persona's screen (its colour),
so it matches it and not the other persona's."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from mux.config import PersonaConfig
from mux.needles.needles import load_needle, match_needle
from tests.conftest import READY_S

pytestmark = pytest.mark.guests
NEEDLES = Path(__file__).parent.parent.parent / "scenarios" / "needles"

SCENARIO = """\
name: {name}
config:
  mux: {{accel: tcg}}
  persona: [{{name: work, image: console}}, {{name: home, image: console}}]
steps:
  - wait_serial: {{persona: work, match: MUX-READY, timeout: 120}}
  - assert_screen: {{persona: work, needle: {needle}, timeout: 20}}
"""


def test_needle_from_the_other_persona_fails_and_shows_the_difference(tmp_path: Path,
                                                                      console_image: Any) -> None:
    shutil.copytree(NEEDLES, tmp_path / "needles")
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(SCENARIO.format(name="right needle", needle="work-prompt"))
    bad.write_text(SCENARIO.format(name="other persona's needle", needle="home-prompt").replace(
        "timeout: 20", "timeout: 2"))
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "mux", "replay", str(good), str(bad), "--keep-going",
                             "--artifacts", str(out)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 passed, 1 failed" in result.stdout
    assert f"{bad}:7:5: step 2 assert_screen failed: work: needle home-prompt did not match" in result.stdout
    data = json.loads((out / "results.json").read_text())
    assert [s["status"] for s in data["scenarios"]] == ["passed", "failed"]
    pictures = data["scenarios"][1]["steps"][1]["screenshots"]
    where = out / "other-persona-s-needle"
    diff = where / "fail-step2-work-diff.png"
    assert str(diff.relative_to(out)) in pictures
    with Image.open(diff) as picture, Image.open(where / "fail-step2-work.png") as shot:
        # three panels; the differences panel has the prompt (where work != home) in red
        assert picture.width == 3 * shot.width + 20
        left = 2 * (shot.width + 10)
        panel = picture.convert("RGB").crop((left, 24, left + shot.width, 24 + shot.height))
        red = [panel.getpixel((x, y)) == (255, 0, 0) for x in range(0, 88) for y in range(76, 96)]
        assert sum(red) > 20
        assert panel.getpixel((600, 600)) != (255, 0, 0)


async def test_needle_capture_from_a_live_persona(tmp_path: Path, controller: Any) -> None:
    work, home = PersonaConfig("work", color="c03030"), PersonaConfig("home", color="30c030")
    async with controller(work, home) as ctl:
        await asyncio.gather(*(ctl.persona(n).serial.wait_for(re.compile(f"MUX-READY {n}"), READY_S)
                               for n in ("work", "home")))
        # MUX-READY may come before the back-buffer's newest frame shows the painted screen
        for _ in range(120):
            if _near((await ctl.screenshot("work")).convert("RGB").getpixel((1000, 740)), (0xC0, 0x30, 0x30)):
                break
            await asyncio.sleep(0.5)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mux", "needle", "capture", "--socket", str(tmp_path / "control.sock"),
            "work", str(tmp_path / "needles" / "work-now"), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, stderr.decode()
        work_screen, home_screen = await ctl.screenshot("work"), await ctl.screenshot("home")
    assert stdout.decode().strip() == str(tmp_path / "needles" / "work-now.json")
    needle = load_needle(tmp_path / "needles" / "work-now.json")
    assert needle.tags == ("work-now",) and needle.size == (1024, 768)
    (area,) = needle.areas
    assert (area.xpos, area.ypos, area.width, area.height, area.type) == (0, 0, 1024, 768, "match")
    # the picture is work's screen: its colour, c03030, as a 16-bit framebuffer shows it
    with Image.open(tmp_path / "needles" / "work-now.png") as png:
        assert png.size == (1024, 768)
        corner = png.convert("RGB").getpixel((1000, 740))
    assert _near(corner, (0xC0, 0x30, 0x30)), corner
    # ... so it matches work's screen, and not home's: another colour (one grey images
    # tell apart, unlike c03030 and 3060c0) and another name in the prompt
    assert match_needle(work_screen, needle).ok
    assert not match_needle(home_screen, needle).ok


def _near(pixel: Any, want: tuple[int, int, int]) -> bool:
    """Whether an RGB pixel is ``want`` as a 16-bit framebuffer shows it."""
    return all(abs(got - w) < 8 for got, w in zip(pixel, want, strict=True))
