"""A switch is one step: when a part of it fails, status, routing and the display still agree.

The rule (mux.app.switcher): a device that cannot follow refuses the switch and nothing
changes; once the devices moved, every part (routing, display and LEDs) is applied even
if one raises, and the error is reported after. The pure tests drive the switcher with
stand-in parts; the slow ones make a real part fail on two console guests and check,
through the control socket and the guests' own MUX-KEY lines, who is active.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from mux.app.events import Event, Events, Switched
from mux.app.switcher import Switcher
from mux.config import PersonaConfig
from mux.errors import DeviceError, DisplayError, SwitchIncomplete
from mux.frontends import control
from mux.input.events import EV_KEY, EV_SYN, InputEvent
from tests.conftest import READY_S

KEY_A = 30

# --- the rule, with stand-in parts ------------------------------------------------------------


class Parts:
    """Records what each part was told; ``fail`` names a part that raises ``error``."""

    def __init__(self, fail: str | None = None, error: Exception | None = None) -> None:
        self.fail, self.error = fail, error
        self.applied: dict[str, str] = {}

    def part(self, name: str) -> Any:
        async def apply(old: str | None, new: str | None, *seat: str) -> None:
            self.applied[name] = str(new)
            if name == self.fail:
                assert self.error is not None
                raise self.error
        return apply


def switcher_with(parts: Parts, events: list[Event]) -> Switcher:
    hub = Events()
    hub.subscribe(events.append)
    return Switcher(["work", "home"], hub, prepare=parts.part("devices"),
                    parts=[("input", parts.part("input")), ("display", parts.part("display"))],
                    active="work")


async def run_switch(switcher: Switcher, target: str) -> None:
    loop = asyncio.create_task(switcher.run(), name="switcher")
    try:
        await switcher.request(target, "test")
    finally:
        loop.cancel()


@pytest.mark.pure
async def test_a_failing_part_completes_the_switch_and_reports_it() -> None:
    parts, events = Parts("input", DisplayError("no output")), list[Event]()
    switcher = switcher_with(parts, events)
    with pytest.raises(SwitchIncomplete, match=r"switched to 'home', but .*input: no output"):
        await run_switch(switcher, "home")
    assert parts.applied == {"devices": "home", "input": "home", "display": "home"}  # display too
    assert switcher.active == "home"
    assert events == [Switched("work", "home", "test")]


@pytest.mark.pure
async def test_a_bug_in_a_part_is_raised_as_itself_after_the_switch() -> None:
    parts, events = Parts("display", RuntimeError("bug")), list[Event]()
    switcher = switcher_with(parts, events)
    with pytest.raises(RuntimeError, match="bug"):
        await run_switch(switcher, "home")
    assert switcher.active == "home" and events == [Switched("work", "home", "test")]


@pytest.mark.pure
async def test_devices_that_cannot_follow_refuse_the_switch_and_nothing_changes() -> None:
    parts, events = Parts("devices", DeviceError("device 'stick' stays on work")), list[Event]()
    switcher = switcher_with(parts, events)
    with pytest.raises(DeviceError, match="stays on work"):
        await run_switch(switcher, "home")
    assert parts.applied == {"devices": "home"}  # no other part heard of it
    assert switcher.active == "work" and events == []


# --- real guests --------------------------------------------------------------------------------


def guest_keys(text: str) -> list[tuple[int, int]]:
    return [(int(c), int(v)) for c, v in re.findall(r"MUX-KEY (\d+) (\d+)", text)]


def display_shows(ctl: Any) -> set[str | None]:
    """Every place the display and LEDs keep the active persona (one element if they agree)."""
    presented = ctl.output._current  # HeadlessOutput: (name, frame) last presented
    return {ctl.display.active, ctl.display.leds.active, presented[0] if presented else None}


async def key_reaches(ctl: Any, name: str, other: str) -> None:
    """Type ``a``: ``name``'s guest sees its press and release, ``other``'s sees nothing."""
    target, bystander = ctl.persona(name).serial, ctl.persona(other).serial
    mark, other_mark = len(target.text), len(bystander.text)
    for value in (1, 0):
        await ctl.input([InputEvent(EV_KEY, KEY_A, value), InputEvent(EV_SYN, 0, 0)])
    await target.wait_for(re.compile(f"MUX-KEY {KEY_A} 0"), 20, start=mark)
    assert guest_keys(target.text[mark:]) == [(KEY_A, 1), (KEY_A, 0)]
    assert guest_keys(bystander.text[other_mark:]) == []  # checked after the positive one


async def ctl(sock: Path, cmd: str, persona: str | None = None) -> dict[str, Any]:
    """What ``mux ctl`` gets back, through the real control socket."""
    message = {"cmd": cmd} if persona is None else {"cmd": cmd, "persona": persona}
    reply: dict[str, Any] = await asyncio.to_thread(control.request, sock, message)
    return reply


@pytest.mark.guests
async def test_status_routing_and_display_agree_after_a_part_of_a_switch_fails(
        controller: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sock = tmp_path / "control.sock"
    async with controller(PersonaConfig("work"), PersonaConfig("home")) as mux:
        await asyncio.gather(*(mux.persona(n).serial.wait_for(re.compile(f"MUX-READY {n}"), READY_S)
                               for n in ("work", "home")))
        assert (await ctl(sock, "status"))["status"]["active"] == "work"

        # 1. The display fails halfway (home's picture is shown, its live link refuses):
        # the switch completes and the error is reported.
        def refuse(on: bool) -> None:
            raise DisplayError("home's VNC link refused to go live")

        monkeypatch.setattr(mux.display.links["home"], "set_live", refuse)
        reply = await ctl(sock, "switch", "home")
        assert reply["ok"] is False
        assert "switched to 'home'" in reply["error"] and "VNC link refused" in reply["error"]
        assert (await ctl(sock, "status"))["status"]["active"] == "home"
        assert mux.router.active == "home" and display_shows(mux) == {"home"}
        await key_reaches(mux, "home", "work")
        monkeypatch.undo()

        # 2. A device cannot follow: the switch is refused and everything stays on home.
        async def stuck(old: str | None, new: str) -> None:
            raise DeviceError("device 'stick' was not released by home; it stays there")

        monkeypatch.setattr(mux.hotplug, "follow_active", stuck)
        reply = await ctl(sock, "switch", "work")
        assert reply == {"ok": False, "error": "device 'stick' was not released by home; it stays there"}
        assert (await ctl(sock, "status"))["status"]["active"] == "home"
        assert mux.router.active == "home" and display_shows(mux) == {"home"}
        await key_reaches(mux, "home", "work")
        monkeypatch.undo()

        # 3. Nothing fails: everything moves to work together.
        assert await ctl(sock, "switch", "work") == {"ok": True, "active": "work"}
        assert (await ctl(sock, "status"))["status"]["active"] == "work"
        assert mux.router.active == "work" and display_shows(mux) == {"work"}
        await key_reaches(mux, "work", "home")
