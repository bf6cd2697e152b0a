"""Input routing against real `console` guests: their MUX-KEY lines are the guest's own view."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from mux.config import InputSection, PersonaConfig
from mux.input.evemu import Recorded, read_recording, write_recording
from mux.input.events import EV_KEY, EV_SYN, InputEvent
from mux.scenario.runner import StepRunner
from tests.conftest import READY_S

pytestmark = pytest.mark.guests
DATA = Path(__file__).parent.parent / "data"


def guest_keys(text: str) -> list[tuple[int, int]]:
    return [(int(c), int(v)) for c, v in re.findall(r"MUX-KEY (\d+) (\d+)", text)]


async def booted(ctl: Any, *names: str) -> None:
    await asyncio.gather(*(ctl.persona(n).serial.wait_for(re.compile(f"MUX-READY {n}"), READY_S)
                           for n in names))


async def test_evemu_replay_gives_the_guest_the_recorded_key_sequence(controller: Any,
                                                                      tmp_path: Path) -> None:
    # A recorded session: the hand-written keyboard recording plus a typed word.
    recorded = read_recording(DATA / "keyboard.evemu")
    t = recorded[-1].time
    for code in (38, 24, 32, 18):  # l o g e
        for value in (1, 0):
            t += 0.05
            recorded += [Recorded(t, InputEvent(EV_KEY, code, value)), Recorded(t, InputEvent(EV_SYN, 0, 0))]
    path = tmp_path / "session.evemu"
    write_recording(recorded, path)
    expected = [(e.event.code, e.event.value) for e in recorded if e.event.type == EV_KEY]
    async with controller(PersonaConfig("work"), PersonaConfig("home")) as ctl:
        await booted(ctl, "work", "home")
        # With its timing: a PS/2 guest takes a repeat that comes sooner than half the
        # repeat delay after the press for a bouncing key, and ignores it (atkbd).
        await StepRunner(ctl).step_evemu({"path": path, "realtime": True})
        work = ctl.persona("work").serial
        await work.wait_for(re.compile("MUX-KEY 18 0"), 20)
        assert guest_keys(work.text) == expected
        assert guest_keys(ctl.persona("home").serial.text) == []


async def test_hotkey_switch_with_held_shift_releases_it_in_the_old_persona_only(controller: Any) -> None:
    hotkeys = {"ctrl+alt+f1": "work", "ctrl+alt+f2": "home"}
    async with controller(PersonaConfig("work"), PersonaConfig("home"),
                          input=InputSection(hotkeys=hotkeys)) as ctl:
        await booted(ctl, "work", "home")
        steps = StepRunner(ctl)
        await steps.step_hold({"key": "leftshift"})
        await steps.step_press({"keys": "ctrl+alt+f2"})
        assert ctl.active == "home"
        await steps.step_release({"key": "leftshift"})
        await ctl.persona("work").serial.wait_for(re.compile("MUX-KEY 42 0"), 10)
        await asyncio.sleep(1)
        assert guest_keys(ctl.persona("work").serial.text) == [(42, 1), (42, 0)]
        assert guest_keys(ctl.persona("home").serial.text) == []


async def test_caps_lock_turns_on_only_its_own_personas_led(controller: Any) -> None:
    async with controller(PersonaConfig("work"), PersonaConfig("home")) as ctl:
        await booted(ctl, "work", "home")
        await StepRunner(ctl).step_press({"keys": "capslock"})
        await ctl.persona("work").serial.wait_for(re.compile("MUX-LED caps=1"), 10)
        await asyncio.sleep(1)
        assert "caps=1" not in ctl.persona("home").serial.text
