"""Screen steps against a screen source the test controls: the search widens as
os-autoinst's does, clicks land on the click point as absolute pointer events through
the controller's input, text is read with tesseract (re-reading only what changed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from mux.errors import StepFailed
from mux.input.events import ABS_X, ABS_Y, EV_ABS, EV_KEY, InputEvent
from mux.input.router import QEMU_ABS_MAX
from mux.needles.loader import load_needle
from mux.needles.model import Needle
from mux.scenario import screen_steps
from mux.scenario.screen_steps import ScreenMismatch, ScreenSteps
from mux.scenario.screens import difference_picture

pytestmark = pytest.mark.pure


class FakeController:
    """What the screen steps use of a controller: screenshots, the active persona, input."""

    def __init__(self, screen: Image.Image) -> None:
        self.screen = screen
        self.active = "work"
        self.personas = {"work": None}
        self.inputs: list[list[InputEvent]] = []

    async def screenshot(self, name: str) -> Image.Image:
        return self.screen.copy()

    async def input(self, events: list[InputEvent]) -> None:
        self.inputs.append(list(events))


class Steps(ScreenSteps):
    def __init__(self, ctl: FakeController, artifacts: Path) -> None:
        self.ctl = ctl  # type: ignore[assignment]
        self.artifacts = artifacts
        self.message = ""
        self.pictures = []
        self.reference = {}

    def timeout(self, seconds: float) -> float:
        return float(seconds)


def dialog_screen(x: int, y: int) -> Image.Image:
    image = Image.new("RGB", (1024, 768), (30, 60, 90))
    draw = ImageDraw.Draw(image)
    draw.rectangle((x, y, x + 269, y + 149), fill=(220, 220, 220))
    draw.rectangle((x, y, x + 269, y + 21), fill=(40, 80, 200))
    draw.text((x + 8, y + 5), "Install", fill=(255, 255, 255))
    draw.rectangle((x + 180, y + 112, x + 259, y + 139), fill=(90, 150, 90))
    draw.text((x + 196, y + 120), "OK", fill=(255, 255, 255))
    return image


@pytest.fixture
def needle(tmp_path: Path) -> Needle:
    dialog_screen(100, 200).save(tmp_path / "dialog.png")
    (tmp_path / "dialog.json").write_text(json.dumps({"tags": ["dialog"], "area": [
        {"xpos": 100, "ypos": 200, "width": 270, "height": 150, "type": "match"},
        {"xpos": 280, "ypos": 312, "width": 80, "height": 28, "type": "match", "click_point": "center"}]}))
    return load_needle(tmp_path / "dialog.json")


@pytest.fixture
def ratios(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The search ratio of every search the steps make."""
    seen: list[float] = []
    real = screen_steps.search

    def spy(screen: Any, needles: Any, threshold: float, ratio: float) -> Any:
        seen.append(ratio)
        return real(screen, needles, threshold, ratio)

    monkeypatch.setattr(screen_steps, "search", spy)
    return seen


async def test_assert_screen_finds_an_area_moved_300px_once_the_search_is_whole(
        tmp_path: Path, needle: Needle, ratios: list[float]) -> None:
    steps = Steps(FakeController(dialog_screen(400, 200)), tmp_path)
    await steps.step_assert_screen({"persona": "work", "_needles": [needle], "timeout": 6.6})
    # narrow searches (margin 50 widened by 2%) fail; the whole-screen one at 5 s left finds it
    assert ratios[0] == 0.02 and ratios[-1] == 1.0 and 0.02 in ratios
    assert ratios.count(0.02) == 1, "an unchanged screen is not searched again as narrowly"
    assert "closest at +400+200" in steps.message and "did not" not in steps.message


async def test_a_failed_assertion_shows_the_closest_candidate_where_it_was_found(
        tmp_path: Path, needle: Needle, ratios: list[float]) -> None:
    screen = dialog_screen(400, 200)
    ImageDraw.Draw(screen).rectangle((410, 230, 560, 300), fill=(0, 0, 0))  # the dialog changed too
    steps = Steps(FakeController(screen), tmp_path)
    with pytest.raises(ScreenMismatch) as caught:
        await steps.step_assert_screen({"persona": "work", "_needles": [needle], "timeout": 0.3})
    assert ratios[-1] == 1.0, "a last search over the whole screen at the deadline"
    first = caught.value.match.areas[0]
    assert not first.ok and (first.x, first.y) == (400, 200), caught.value.match.describe()
    picture = np.asarray(difference_picture(screen, caught.value.match))
    # the differences panel marks the changed part of the dialog where it was found
    panel = picture[24:, 2 * (1024 + 10):]
    assert (panel[250, 450] == (255, 0, 0)).all() and not (panel[250, 150] == (255, 0, 0)).all()


async def test_assert_and_click_clicks_the_click_point_with_an_absolute_pointer(
        tmp_path: Path, needle: Needle) -> None:
    ctl = FakeController(dialog_screen(130, 180))
    steps = Steps(ctl, tmp_path)
    await steps.step_assert_and_click({"persona": "work", "_needles": [needle], "button": "left",
                                       "timeout": 1})
    x, y = 130 + 180 + 40, 180 + 112 + 14  # the OK button's centre, where it was found
    move, press, release = ctl.inputs
    assert move[:2] == [InputEvent(EV_ABS, ABS_X, round(x * QEMU_ABS_MAX / 1023)),
                        InputEvent(EV_ABS, ABS_Y, round(y * QEMU_ABS_MAX / 767))]
    assert press[0] == InputEvent(EV_KEY, 0x110, 1) and release[0] == InputEvent(EV_KEY, 0x110, 0)
    assert f"clicked left at +{x}+{y}" in steps.message
    await steps.step_click_lastmatch({"button": "right"})
    assert ctl.inputs[4][0] == InputEvent(EV_KEY, 0x111, 1)
    ctl.active = "home"
    with pytest.raises(StepFailed, match="input goes to the active persona"):
        await steps.step_click_lastmatch({"button": "left"})


async def test_click_lastmatch_needs_a_match_first(tmp_path: Path) -> None:
    with pytest.raises(StepFailed, match="no needle has matched yet"):
        await Steps(FakeController(dialog_screen(0, 0)), tmp_path).step_click_lastmatch({"button": "left"})


def console(lines: list[str]) -> Image.Image:
    image = Image.new("RGB", (1024, 768), (192, 48, 48))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=18)
    for row, line in enumerate(lines):
        draw.text((8, 8 + row * 24), line, fill=(255, 255, 255), font=font)
    return image


async def test_assert_text_reads_the_screen_and_quotes_it_when_it_fails(tmp_path: Path) -> None:
    ctl = FakeController(console(["work:/root# echo needle-marker", "needle-marker"]))
    steps = Steps(ctl, tmp_path)
    await steps.step_assert_text({"persona": "work", "text": r"^needle-marker$", "area": None, "timeout": 0})
    with pytest.raises(StepFailed, match=r"no text matching 'ready: \\\\d\+'.*read: .*echo needle-marker"):
        await steps.step_assert_text({"persona": "work", "text": r"ready: \d+", "area": None, "timeout": 0})
    await steps.step_check_text({"persona": "work", "text": "nowhere", "area": None, "timeout": 0})
    assert steps.message.startswith("work: no 'nowhere'")
    # an area limits what is read
    await steps.step_check_text({"persona": "work", "text": "echo", "timeout": 0,
                                 "area": {"xpos": 0, "ypos": 30, "width": 1024, "height": 30}})
    assert steps.message.startswith("work: no 'echo'")


async def test_only_the_bands_that_changed_are_read_again(tmp_path: Path) -> None:
    lines = [f"line {n}: nothing new" for n in range(20)]
    ctl = FakeController(console(lines))
    steps = Steps(ctl, tmp_path)
    await steps.step_check_text({"persona": "work", "text": "done", "area": None, "timeout": 0})
    assert steps.text_reader is not None
    first = steps.text_reader.reads
    assert first > 2
    ctl.screen = console([*lines[:19], "line 19: done"])
    await steps.step_check_text({"persona": "work", "text": "done", "area": None, "timeout": 0})
    assert steps.message == "work: found 'done'"
    assert steps.text_reader.reads == first + 1
