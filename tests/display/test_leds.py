"""Keyboard LEDs: the pure LED router, and the Cellrox LED rule on real guests (TCG)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from mux.config import PersonaConfig
from mux.display.leds import LedRouter, Leds, leds_dict
from mux.errors import UnknownPersona
from mux.frontends import control
from tests.conftest import READY_S, wait_until

OFF = Leds(False, False, False)
CAPS = Leds(True, False, False)
NUM = Leds(False, True, False)


class RecordingSink:
    """Stands in for a physical keyboard: records every LED write."""

    def __init__(self) -> None:
        self.writes: list[Leds] = []

    def set_leds(self, caps: bool, num: bool, scroll: bool) -> None:
        self.writes.append(Leds(caps, num, scroll))

    @property
    def last(self) -> Leds | None:
        return self.writes[-1] if self.writes else None


# --- the pure router -------------------------------------------------------------------


@pytest.mark.pure
def test_active_changes_are_written_inactive_ones_kept_until_switch() -> None:
    router, sink = LedRouter(["a", "b"]), RecordingSink()
    router.add_sink(sink)
    router.switch("a")
    assert sink.writes == []  # "a" has not reported yet: nothing to show
    router.guest_set("a", CAPS)
    router.guest_set("b", NUM)  # inactive: kept, not written
    assert sink.writes == [CAPS]
    assert router.persona("b") == NUM and router.physical == CAPS
    router.switch("b")
    assert sink.writes == [CAPS, NUM]
    router.guest_set("a", OFF)  # inactive now
    assert sink.writes == [CAPS, NUM]
    router.switch("a")
    assert sink.writes == [CAPS, NUM, OFF]


@pytest.mark.pure
def test_a_sink_added_later_gets_the_physical_state_and_a_broken_sink_spoils_nothing() -> None:
    class Broken:
        def set_leds(self, caps: bool, num: bool, scroll: bool) -> None:
            raise OSError("unplugged")

    router = LedRouter(["a"])
    router.add_sink(Broken())
    router.switch("a")
    router.guest_set("a", NUM)
    late = RecordingSink()
    router.add_sink(late)
    assert late.writes == [NUM]
    router.guest_set("a", CAPS)
    assert late.writes == [NUM, CAPS]


@pytest.mark.pure
def test_unknown_persona_is_a_mux_error_and_status_form() -> None:
    router = LedRouter(["a"])
    with pytest.raises(UnknownPersona):
        router.persona("zz")
    with pytest.raises(UnknownPersona):
        router.guest_set("zz", OFF)
    assert leds_dict(NUM) == {"caps": False, "num": True, "scroll": False}
    assert leds_dict(None) is None


# --- real guests -----------------------------------------------------------------------


@pytest.mark.guests
async def test_physical_leds_follow_the_active_persona_only(controller: Any, tmp_path: Path) -> None:
    from mux.scenario.runner import StepRunner

    sink = RecordingSink()
    async with controller(PersonaConfig("a"), PersonaConfig("b", color="3060c0")) as ctl:
        ctl.add_led_sink(sink)
        a, b = ctl.persona("a"), ctl.persona("b")
        await asyncio.gather(a.serial.wait_for(re.compile("MUX-READY a"), READY_S),
                             b.serial.wait_for(re.compile("MUX-READY b"), READY_S))
        await wait_until(lambda: ctl.leds("a") is not None and ctl.leds("b") is not None, 10,
                         "both guests' first LED report")
        runner = StepRunner(ctl)
        assert ctl.active == "a"

        # caps lock typed into A lights the physical caps LED
        await runner.step_press({"keys": "capslock"})
        await wait_until(lambda: sink.last == CAPS, 10, "the physical caps LED on")
        assert ctl.physical_leds == CAPS == ctl.leds("a")
        # switching to B shows B's state, switching back A's again, at once
        await ctl.switch("b", "test")
        assert sink.last == OFF and ctl.physical_leds == OFF
        await ctl.switch("a", "test")
        assert sink.last == CAPS
        await runner.step_press({"keys": "capslock"})  # off again, so the text types as written
        await wait_until(lambda: sink.last == OFF, 10, "the physical caps LED off")

        # A sets its num LED three seconds after we have switched away: kept, not shown
        await runner.step_type({"text": "sleep 3; echo 1 > /sys/class/leds/input0::numlock/brightness\n"})
        await ctl.switch("b", "test")
        switched = len(sink.writes)
        assert sink.last == OFF
        await wait_until(lambda: ctl.leds("a") == NUM, 20, "A's num LED on (its guest's report)")
        await a.serial.wait_for(re.compile("MUX-LED caps=0 num=1 scroll=0"), 5)  # the guest agrees
        await asyncio.sleep(0.5)
        assert all(not leds.num for leds in sink.writes[switched:]), sink.writes[switched:]
        assert ctl.physical_leds == OFF
        reply = await asyncio.to_thread(control.request, tmp_path / "control.sock", {"cmd": "status"})
        status = reply["status"]  # what `mux ctl status` prints
        assert {p["name"]: p["leds"] for p in status["personas"]} == {
            "a": {"caps": False, "num": True, "scroll": False},
            "b": {"caps": False, "num": False, "scroll": False}}
        assert status["physical_leds"] == {"caps": False, "num": False, "scroll": False}
        # ... and shown once A is active again
        await ctl.switch("a", "test")
        assert sink.last == NUM and ctl.physical_leds == NUM
