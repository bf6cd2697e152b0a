"""Two seats on real console guests, seen from the guests: each seat's keyboard reaches only
the persona active on that seat (``MUX-KEY`` lines), its hotkeys switch only that seat, the
LEDs a persona sets reach only its seat's keyboard, each seat's window (on its own Xvfb)
shows its own persona, and a persona is active on one seat at a time (a switch to a persona
shown elsewhere is refused, or with steal moves it).

The keyboards are python-evdev's ``InputDevice`` replaced by a pipe (the evdev seam, as in
``test_controller_options``): everything above it is mux's real code.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import evdev
import pytest

from mux.display.seat_window import SeatWindowOutput
from mux.errors import SeatError
from tests.app.test_controller_options import LED_CAPSL, PipeKeyboard, controller_from
from tests.conftest import wait_until
from tests.display.test_seat_window import shows
from tests.display.test_window import xvfb
from tests.input.test_input_routing import booted, guest_keys, guest_keys_but_caps_release

pytestmark = pytest.mark.guests

KEY_A, KEY_B, KEY_C, KEY_CAPSLOCK, KEY_SCROLLLOCK, KEY_RIGHT = 30, 48, 46, 58, 70, 106
KEY_LEFTCTRL, KEY_LEFTALT, KEY_F5 = 29, 56, 63
RED, BLUE, GREEN = (0xc0, 0x30, 0x30), (0x30, 0x60, 0xc0), (0x30, 0xa0, 0x40)
ONE, TWO = "/dev/input/by-id/usb-Seat_One-event-kbd", "/dev/input/by-id/usb-Seat_Two-event-kbd"

SEATS = f"""
[[persona]]
name = "work"
[[persona]]
name = "home"
[[persona]]
name = "lab"
[[seat]]
name = "one"
input = ["{ONE}"]
[[seat]]
name = "two"
input = ["{TWO}"]
personas = ["home", "lab"]
hotkeys = {{ "ctrl+alt+f5" = "next" }}
"""


@pytest.fixture
def keyboards(monkeypatch: pytest.MonkeyPatch) -> Any:
    opened: dict[str, PipeKeyboard] = {}

    def open_device(path: str) -> PipeKeyboard:
        opened[path] = PipeKeyboard(path)
        return opened[path]

    monkeypatch.setattr(evdev, "InputDevice", open_device)
    yield opened
    for keyboard in opened.values():
        os.close(keyboard.fd)
        os.close(keyboard.writer)


@pytest.fixture
def displays() -> Iterator[tuple[str, str]]:
    with xvfb() as first, xvfb() as second:
        yield first, second


async def test_each_seat_types_into_its_own_persona_and_sees_its_own_leds(
        tmp_path: Path, console_image: Any, keyboards: dict[str, PipeKeyboard]) -> None:
    async with controller_from(tmp_path, "", SEATS) as ctl:
        await booted(ctl, "work", "home", "lab")
        await wait_until(lambda: len(ctl.input_sources) == 2 and all(s.grabbed for s in ctl.input_sources),
                         30, "both keyboards grabbed")
        one, two = keyboards[ONE], keyboards[TWO]
        assert (ctl.active_on("one"), ctl.active_on("two")) == ("work", "home")  # each its first free one
        assert [s["active"] for s in ctl.status()["seats"]] == ["work", "home"]
        work, home, lab = (ctl.persona(n).serial for n in ("work", "home", "lab"))

        one.tap(KEY_A)
        two.tap(KEY_B)
        await work.wait_for(re.compile(f"MUX-KEY {KEY_A} 0"), 30)
        await home.wait_for(re.compile(f"MUX-KEY {KEY_B} 0"), 30)

        # LEDs: work turns caps lock on; seat one's keyboard shows it, seat two's does not.
        one.tap(KEY_CAPSLOCK)
        await work.wait_for(re.compile("MUX-LED caps=1"), 30)
        await wait_until(lambda: one.leds.get(LED_CAPSL) == 1, 30, "caps lock lit on seat one's keyboard")
        assert two.leds.get(LED_CAPSL) != 1  # written at the same moment as seat one's
        two.tap(KEY_CAPSLOCK)  # the positive control: home's own caps lock reaches seat two
        await home.wait_for(re.compile("MUX-LED caps=1"), 30)
        await wait_until(lambda: two.leds.get(LED_CAPSL) == 1, 30, "caps lock lit on seat two's keyboard")

        # Seat two's own hotkey switches seat two only (next of home among home, lab: lab);
        # seat one's are the defaults ([[seat]] hotkeys replace them for seat two only).
        two.tap(KEY_LEFTCTRL, KEY_LEFTALT, KEY_F5)
        await wait_until(lambda: ctl.active_on("two") == "lab", 30, "seat two's hotkey switch")
        assert ctl.active_on("one") == "work"
        one.tap(KEY_SCROLLLOCK, KEY_RIGHT)  # seat one's default next skips lab (on seat two): home
        await wait_until(lambda: ctl.active_on("one") == "home", 30, "seat one's hotkey switch")
        one.tap(KEY_SCROLLLOCK, KEY_RIGHT)  # and round to work again
        await wait_until(lambda: ctl.active_on("one") == "work", 30, "seat one's second hotkey switch")
        assert ctl.active_on("two") == "lab"
        two.tap(KEY_C)
        one.tap(KEY_C)
        await lab.wait_for(re.compile(f"MUX-KEY {KEY_C} 0"), 30)
        await work.wait_for(re.compile(f"MUX-KEY {KEY_C} 0"), 30)

        assert guest_keys_but_caps_release(work.text) == [(KEY_A, 1), (KEY_A, 0), (KEY_CAPSLOCK, 1),
                                                          (KEY_C, 1), (KEY_C, 0)]
        assert guest_keys_but_caps_release(home.text) == [(KEY_B, 1), (KEY_B, 0), (KEY_CAPSLOCK, 1)]
        assert guest_keys(lab.text) == [(KEY_C, 1), (KEY_C, 0)]  # no chord, nothing of seat one's


async def test_a_persona_is_active_on_one_seat_and_steal_moves_it(tmp_path: Path, console_image: Any,
                                                                  keyboards: dict[str, PipeKeyboard]) -> None:
    async with controller_from(tmp_path, "", SEATS) as ctl:
        await booted(ctl, "work", "home", "lab")
        assert (ctl.active_on("one"), ctl.active_on("two")) == ("work", "home")
        with pytest.raises(SeatError, match="persona 'home' is active on seat 'two'"):
            await ctl.switch("home", "test", "one")
        assert (ctl.active_on("one"), ctl.active_on("two")) == ("work", "home")  # nothing changed
        with pytest.raises(SeatError, match="seat 'two' may not show persona 'work'"):
            await ctl.switch("work", "test", "two")
        assert await ctl.switch("lab", "test", "two") == "lab"  # the positive control
        assert await ctl.switch("home", "test", "one") == "home"  # free now
        assert (ctl.active_on("one"), ctl.active_on("two")) == ("home", "lab")

        assert await ctl.switch("lab", "test", "one", steal=True) == "lab"
        # seat two goes back to the persona it showed before that is free: home
        assert (ctl.active_on("one"), ctl.active_on("two")) == ("lab", "home")
        assert ctl.display.screens["one"].active == "lab" and ctl.display.screens["two"].active == "home"
        frame = ctl.display.screens["two"].output.current_frame()
        assert frame is None or frame[0] == "home"


async def test_two_keyboards_and_two_windows_each_seat_sees_and_types_into_its_own(
        tmp_path: Path, console_image: Any, keyboards: dict[str, PipeKeyboard],
        displays: tuple[str, str]) -> None:
    """The issue's acceptance, whole: each seat its own keyboard (the evdev seam) and its own
    window on its own X display (Xvfb), read back from the X servers."""
    first, second = displays
    colours = '[[persona]]\nname = "work"\ncolor = "c03030"\n[[persona]]\nname = "home"\ncolor = "3060c0"\n' \
              '[[persona]]\nname = "lab"\ncolor = "30a040"\n'
    config = colours + "[[seat]]" + SEATS.split("[[seat]]", 1)[1]
    for device, display in ((ONE, first), (TWO, second)):
        config = config.replace(f'input = ["{device}"]',
                                f'input = ["{device}"]\noutput = "window"\ndisplay = "{display}"')
    async with controller_from(tmp_path, "", config) as ctl:
        await booted(ctl, "work", "home", "lab")
        await wait_until(lambda: len(ctl.input_sources) == 2 and all(s.grabbed for s in ctl.input_sources),
                         30, "both keyboards grabbed")
        one, two = keyboards[ONE], keyboards[TWO]
        window_one, window_two = (ctl.output_of(seat) for seat in ("one", "two"))
        assert isinstance(window_one, SeatWindowOutput) and isinstance(window_two, SeatWindowOutput)
        await shows(first, window_one.window_id, RED, RED, "mux: one: work")
        await shows(second, window_two.window_id, BLUE, BLUE, "mux: two: home")

        one.tap(KEY_A)
        two.tap(KEY_B)
        work, home, lab = (ctl.persona(n).serial for n in ("work", "home", "lab"))
        await work.wait_for(re.compile(f"MUX-KEY {KEY_A} 0"), 30)
        await home.wait_for(re.compile(f"MUX-KEY {KEY_B} 0"), 30)
        one.tap(KEY_CAPSLOCK)  # work's caps lock: on seat one's keyboard only
        await wait_until(lambda: one.leds.get(LED_CAPSL) == 1, 60, "caps lock lit on seat one's keyboard")
        assert two.leds.get(LED_CAPSL) != 1

        two.tap(KEY_LEFTCTRL, KEY_LEFTALT, KEY_F5)  # seat two: next -> lab; seat one's window stays
        await shows(second, window_two.window_id, GREEN, GREEN, "mux: two: lab")
        await shows(first, window_one.window_id, RED, RED, "mux: one: work")
        two.tap(KEY_C)
        await lab.wait_for(re.compile(f"MUX-KEY {KEY_C} 0"), 30)
        assert guest_keys_but_caps_release(work.text) == [(KEY_A, 1), (KEY_A, 0), (KEY_CAPSLOCK, 1)]
        assert guest_keys(home.text) == [(KEY_B, 1), (KEY_B, 0)]
        assert guest_keys(lab.text) == [(KEY_C, 1), (KEY_C, 0)]
