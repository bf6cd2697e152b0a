"""Config options of the controller, each from a real TOML file and on real console guests:
``[mux] start_on_switch`` (a switch to a stopped persona starts it, or is refused, from
``mux ctl switch`` and from a hotkey alike), ``[mux] active`` (the persona active after
start), and ``[input] devices`` (the controller grabs the listed evdev devices, routes
their keys to the active guest only and shows its LEDs on them).

There is no ``/dev/uinput`` here, so the physical keyboard is python-evdev's
``InputDevice`` replaced by a pipe (the seam of ``mux/input/evdev_io.py``): everything
above it, mux's own ``EvdevDevice`` included, is the real code.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import evdev
import pytest

from mux.app.controller import Controller
from mux.cli import frontends
from mux.config import load_config
from mux.guest.state import RunState
from mux.input.events import EV_KEY, EV_SYN, InputEvent
from tests.conftest import READY_S, SESSION_DIR, wait_until
from tests.input.test_input_routing import booted, guest_keys, guest_keys_but_caps_release

pytestmark = pytest.mark.guests

MUX = [sys.executable, "-m", "mux"]
KEY_A, KEY_B, KEY_CAPSLOCK, KEY_SCROLLLOCK, KEY_RIGHT = 30, 48, 58, 70, 106
KEY_LEFTCTRL, KEY_LEFTALT, KEY_F2, KEY_F3 = 29, 56, 60, 61
LED_CAPSL = 1
SYN = InputEvent(EV_SYN, 0, 0)


def controller_from(tmp_path: Path, mux_keys: str, rest: str) -> Controller:
    """A controller of the config file made of these ``[mux]`` keys and the rest, served as
    ``mux run`` serves it (control socket at ``tmp_path / "c.sock"``)."""
    path = tmp_path / "c.toml"
    path.write_text(f'[mux]\naccel = "tcg"\nruntime_dir = "{SESSION_DIR}"\nkeep_guests = "never"\n'
                    f'control_socket = "{tmp_path / "c.sock"}"\n{mux_keys}\n{rest}')
    config = load_config(path)
    return Controller(config, frontends=frontends(config), logs_dir=tmp_path / "logs",
                      progress=lambda m: None)


async def mux_ctl(tmp_path: Path, *args: str) -> tuple[int, str]:
    """``mux ctl --socket tmp_path/c.sock ARGS``, as a process; (exit code, stdout + stderr)."""
    proc = await asyncio.create_subprocess_exec(*MUX, "ctl", "--socket", str(tmp_path / "c.sock"), *args,
                                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 300)
    return proc.returncode or 0, out.decode()


def chord(*codes: int) -> list[InputEvent]:
    """Press the keys in order, then release them in reverse, a frame per edge."""
    down = [e for c in codes for e in (InputEvent(EV_KEY, c, 1), SYN)]
    return down + [e for c in reversed(codes) for e in (InputEvent(EV_KEY, c, 0), SYN)]


HOTKEYS = '[input]\nhotkeys = { "ctrl+alt+f2" = "home", "ctrl+alt+f3" = "garden" }\n'


async def test_start_on_switch_false_refuses_a_stopped_persona_from_ctl_and_from_a_hotkey(
        tmp_path: Path, console_image: Any, caplog: pytest.LogCaptureFixture) -> None:
    rest = (HOTKEYS + '[[persona]]\nname = "work"\n[[persona]]\nname = "home"\n'
            '[[persona]]\nname = "garden"\nautostart = false\n')
    async with controller_from(tmp_path, "start_on_switch = false", rest) as ctl:
        garden = ctl.persona("garden")
        assert ctl.active == "work" and garden.state == RunState.STOPPED
        code, said = await mux_ctl(tmp_path, "switch", "garden")
        assert code == 1 and "persona 'garden' is stopped, but this needs it running" in said, said
        assert ctl.active == "work" and garden.state == RunState.STOPPED

        with caplog.at_level(logging.ERROR, logger="mux.app.controller"):
            await ctl.input(chord(KEY_LEFTCTRL, KEY_LEFTALT, KEY_F3))
        refusals = [r.getMessage() for r in caplog.records if r.getMessage().startswith("hotkey: ")]
        assert len(refusals) == 1, refusals  # the hotkey's refusal is logged, as docs/guides/running.md says
        assert "persona 'garden' is stopped, but this needs it running" in refusals[0], refusals
        assert ctl.active == "work" and garden.state == RunState.STOPPED

        # The controls work here: a hotkey and ctl switch to running personas switch.
        await ctl.input(chord(KEY_LEFTCTRL, KEY_LEFTALT, KEY_F2))
        assert ctl.active == "home"
        code, said = await mux_ctl(tmp_path, "switch", "work")
        assert code == 0 and ctl.active == "work", said
        assert garden.state == RunState.STOPPED


async def test_start_on_switch_by_default_starts_a_stopped_persona_from_a_hotkey_and_from_ctl(
        tmp_path: Path, console_image: Any) -> None:
    rest = ('[input]\nhotkeys = { "ctrl+alt+f3" = "garden" }\n'
            '[[persona]]\nname = "work"\n[[persona]]\nname = "garden"\nautostart = false\n'
            '[[persona]]\nname = "lab"\nautostart = false\n')
    async with controller_from(tmp_path, "", rest) as ctl:
        assert ctl.config.mux.start_on_switch  # the documented default
        garden, lab = ctl.persona("garden"), ctl.persona("lab")

        def states() -> tuple[RunState, RunState]:
            return garden.state, lab.state

        assert ctl.active == "work" and states() == (RunState.STOPPED, RunState.STOPPED)
        await ctl.input(chord(KEY_LEFTCTRL, KEY_LEFTALT, KEY_F3))
        assert ctl.active == "garden" and states() == (RunState.RUNNING, RunState.STOPPED)
        code, said = await mux_ctl(tmp_path, "switch", "lab")
        assert code == 0, said
        assert ctl.active == "lab" and states() == (RunState.RUNNING, RunState.RUNNING)
        await garden.serial.wait_for(re.compile("MUX-READY garden"), READY_S)  # a real boot


async def test_mux_active_names_the_persona_active_after_start(tmp_path: Path, console_image: Any) -> None:
    rest = '[[persona]]\nname = "work"\n[[persona]]\nname = "home"\n'
    async with controller_from(tmp_path, 'active = "home"', rest) as ctl:
        # Both run, so without the key the first (work) would be active.
        assert all(p.state == RunState.RUNNING for p in ctl.personas.values())
        assert ctl.active == "home"
        code, said = await mux_ctl(tmp_path, "status")
        assert code == 0 and '"active": "home"' in said, said


# --- [input] devices --------------------------------------------------------------------


class PipeKeyboard:
    """Enough of ``evdev.InputDevice`` for mux's ``EvdevDevice``, with a pipe for the kernel:
    ``key(code, value)`` writes one event and its SYN_REPORT (3 bytes each: type, code,
    value) and keeps the kernel's key state; the calls mux makes are recorded."""

    name, phys = "Pipe Keyboard", "pipe/input0"

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd, self.writer = os.pipe()
        os.set_blocking(self.fd, False)
        self.calls: list[str] = []
        self.leds: dict[int, int] = {}
        self.held: set[int] = set()

    # the kernel side
    def key(self, code: int, value: int) -> None:
        (self.held.add if value else self.held.discard)(code)
        os.write(self.writer, bytes([EV_KEY, code, value, EV_SYN, 0, 0]))

    def tap(self, *codes: int) -> None:
        for code in codes:
            self.key(code, 1)
        for code in reversed(codes):
            self.key(code, 0)

    # what EvdevDevice uses
    def capabilities(self, absinfo: bool = True) -> dict[int, list[int]]:
        return {EV_KEY: list(range(1, 128))}  # every letter: a keyboard

    def read(self) -> Iterator[evdev.InputEvent]:
        data = os.read(self.fd, 3 * 64)  # BlockingIOError when there is nothing to read
        if not data:
            raise OSError(errno.ENODEV, "No such device")
        for i in range(0, len(data), 3):
            yield evdev.InputEvent(0, 0, data[i], data[i + 1], data[i + 2])

    def grab(self) -> None:
        self.calls.append("grab")

    def ungrab(self) -> None:
        self.calls.append("ungrab")

    def close(self) -> None:
        self.calls.append("close")

    def active_keys(self) -> list[int]:
        return sorted(self.held)

    def set_led(self, led: int, value: int) -> None:
        self.leds[led] = value


async def test_input_devices_are_grabbed_and_route_keys_to_the_active_guest_only(
        tmp_path: Path, console_image: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[PipeKeyboard] = []

    def open_device(path: str) -> PipeKeyboard:
        opened.append(PipeKeyboard(path))
        return opened[-1]

    monkeypatch.setattr(evdev, "InputDevice", open_device)
    path = "/dev/input/by-id/usb-Pipe_Keyboard-event-kbd"
    rest = f'[input]\ndevices = ["{path}"]\n[[persona]]\nname = "work"\n[[persona]]\nname = "home"\n'
    async with controller_from(tmp_path, "", rest) as ctl:
        await booted(ctl, "work", "home")
        await wait_until(lambda: bool(ctl.input_sources) and ctl.input_sources[0].grabbed, 30,
                         "the keyboard grabbed")
        keyboard = opened[-1]
        assert keyboard.path == path and keyboard.calls == ["grab"]
        work, home = ctl.persona("work").serial, ctl.persona("home").serial
        assert ctl.active == "work"

        keyboard.tap(KEY_A)
        await work.wait_for(re.compile(f"MUX-KEY {KEY_A} 0"), 30)
        keyboard.tap(KEY_CAPSLOCK)  # the guest turns its LED on; mux shows it on the keyboard
        await work.wait_for(re.compile("MUX-LED caps=1"), 30)
        await wait_until(lambda: keyboard.leds.get(LED_CAPSL) == 1, 30, "caps lock lit on the keyboard")

        keyboard.tap(KEY_SCROLLLOCK, KEY_RIGHT)  # the default hotkey: next persona
        await wait_until(lambda: ctl.active == "home", 30, "the hotkey's switch to home")
        await wait_until(lambda: keyboard.leds.get(LED_CAPSL) == 0, 30, "home's caps lock (off) shown")
        keyboard.tap(KEY_B)
        await home.wait_for(re.compile(f"MUX-KEY {KEY_B} 0"), 30)  # the bystander was alive

        assert guest_keys_but_caps_release(work.text) == [(KEY_A, 1), (KEY_A, 0), (KEY_CAPSLOCK, 1)]
        assert guest_keys(home.text) == [(KEY_B, 1), (KEY_B, 0)]  # no chord, nothing of work's
    assert keyboard.calls == ["grab", "ungrab", "close"]  # let go on exit
    os.close(keyboard.fd)
    os.close(keyboard.writer)
