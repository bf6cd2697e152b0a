"""The explicit clipboard (mux.app.clipboard) between two real `console` guests.

QEMU's clipboard is one per QEMU, shared by every VNC client of it (and its vdagent): a
second :class:`~mux.guest.rfb.RfbClient` on a persona's VNC socket plays "the guest",
setting and reading that QEMU's clipboard. mux's own links must be up before the guest
copies: QEMU tells a client of a change only as it happens.

The hotkeys are fed as key events through ``Controller.input``; that none of their keys
reached a guest is read from the guests' own MUX-KEY reports, bracketed by positive
controls (a tap of ``x`` before and after, which each guest does report).
"""

from __future__ import annotations

import asyncio
import logging
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from mux.app.events import ClipboardChanged, Event
from mux.config import PersonaConfig
from mux.config.schema import ClipboardSection
from mux.frontends import control
from mux.input.events import EV_KEY, EV_SYN, InputEvent
from mux.input.keymap import key_code
from tests.conftest import READY_S, wait_until

pytestmark = pytest.mark.guests

TEXT = "mux clipboard: Grüße, ✓ 42"  # never to be found in a log, a status or an event
WORK_TEXT = "work's own words"
KEY_X = key_code("x")
CONTROL = [(KEY_X, 1), (KEY_X, 0)]
SYN = InputEvent(EV_SYN, 0, 0)


def chord(*names: str) -> list[InputEvent]:
    """Press the keys in order, then release them in reverse, a frame per edge."""
    codes = [key_code(n) for n in names]
    edges = [(c, 1) for c in codes] + [(c, 0) for c in reversed(codes)]
    return [e for c, v in edges for e in (InputEvent(EV_KEY, c, v), SYN)]


COPY, PASTE = chord("scrolllock", "c"), chord("scrolllock", "v")
NEXT, PREVIOUS = chord("scrolllock", "right"), chord("scrolllock", "left")


def guest_keys(text: str) -> list[tuple[int, int]]:
    return [(int(c), int(v)) for c, v in re.findall(r"MUX-KEY (\d+) (\d+)", text)]


async def ready(ctl: Any, *names: str) -> None:
    """The guests have booted and mux's VNC links to them are up."""
    await asyncio.gather(*(ctl.persona(n).serial.wait_for(re.compile(f"MUX-READY {n}"), READY_S)
                           for n in names))
    await wait_until(lambda: all(ctl.display.links[n].connected for n in names), 60, "mux's VNC links")


async def tap_in(ctl: Any, name: str) -> None:
    """Make ``name`` active and tap ``x``: returns once its guest has reported the release."""
    await ctl.switch(name, "test")
    serial = ctl.persona(name).serial
    mark = serial.end
    await ctl.input([InputEvent(EV_KEY, KEY_X, 1), SYN, InputEvent(EV_KEY, KEY_X, 0), SYN])
    await serial.wait_for(re.compile(f"MUX-KEY {KEY_X} 0"), 30, start=mark)


def announced(ctl: Any, name: str) -> bool:
    return bool(ctl.display.links[name].rfb.clipboard_available)


async def clipboard_becomes(guest: Any, text: str, timeout: float = 30) -> None:
    """Wait until the guest's VNC client reads ``text`` on its QEMU's clipboard (until QEMU's
    notice of a new owner comes, a client that set the clipboard reads its own text)."""
    deadline = time.monotonic() + timeout
    while (got := await guest.clipboard_text(timeout) if guest.clipboard_available else None) != text:
        if time.monotonic() > deadline:
            raise AssertionError(f"the clipboard never read {text!r} (last: {got!r})")
        await asyncio.sleep(0.02)


def everything_written(logs: Path) -> str:
    files = sorted(p for p in logs.rglob("*") if p.is_file())
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in files)


async def test_text_copied_in_home_by_hotkey_is_pasted_into_work_and_no_hotkey_key_reaches_a_guest(
        controller: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    events: list[Event] = []
    personas = PersonaConfig("home", clipboard=True), PersonaConfig("work", clipboard=True)
    async with controller(*personas) as ctl:
        ctl.subscribe(events.append)
        await ready(ctl, "home", "work")
        async with ctl.persona("home").vnc_link() as home_guest, ctl.persona("work").vnc_link() as work_guest:
            await tap_in(ctl, "work")  # positive controls, before: each guest reports a tap
            await tap_in(ctl, "home")
            home_guest.set_clipboard(TEXT)
            await wait_until(lambda: announced(ctl, "home"), 30, "home's clipboard announced to mux")
            assert not work_guest.clipboard_available  # nothing reaches work by itself
            await ctl.input(COPY)
            assert ctl.status()["clipboard"] == {"chars": len(TEXT), "from": "home"}
            await ctl.input(NEXT)
            assert ctl.active == "work"
            assert not work_guest.clipboard_available  # a copy and a switch move nothing either
            await ctl.input(PASTE)
            await clipboard_becomes(work_guest, TEXT)
            assert ctl.output.notices[-2:] == [f"copied {len(TEXT)} characters from home",
                                               f"pasted {len(TEXT)} characters from home into work"]
            # Positive controls, after: a hotkey's key sent to a guest would be in its report
            # before this tap.
            await tap_in(ctl, "work")
            await tap_in(ctl, "home")
            assert guest_keys(ctl.persona("work").serial.text) == CONTROL * 2
            assert guest_keys(ctl.persona("home").serial.text) == CONTROL * 2
        status = repr(ctl.status())
    clipboard_events = [e for e in events if isinstance(e, ClipboardChanged)]
    assert clipboard_events == [ClipboardChanged("copy", "home", "home", len(TEXT), "hotkey"),
                                ClipboardChanged("paste", "work", "home", len(TEXT), "hotkey")]
    written = everything_written(tmp_path / "logs")
    assert "MUX-READY home" in written  # the tagged log was written (what is searched is there)
    assert f"copied {len(TEXT)} characters from home" in caplog.text  # the log says what moved
    for where in (written, caplog.text, status, repr(events)):
        assert "Grüße" not in where


async def test_a_direction_not_allowed_is_refused_by_hotkey_and_ctl_and_work_keeps_its_clipboard(
        controller: Any, tmp_path: Path) -> None:
    async with controller(PersonaConfig("home", clipboard=True), PersonaConfig("work", clipboard=True),
                          clipboard=ClipboardSection(allow=("work -> home",))) as ctl:
        await ready(ctl, "home", "work")
        async with ctl.persona("home").vnc_link() as home_guest, ctl.persona("work").vnc_link() as work_guest:
            await ctl.switch("home", "test")
            work_guest.set_clipboard(WORK_TEXT)
            home_guest.set_clipboard(TEXT)
            await wait_until(lambda: announced(ctl, "home") and announced(ctl, "work"), 30,
                             "both clipboards announced to mux")
            await ctl.input(COPY)
            await ctl.input(NEXT)
            await ctl.input(PASTE)  # home -> work: refused
            assert ctl.active == "work" and ctl.output.notices[-1] == "refused: home → work"
            sock = str(tmp_path / "control.sock")
            ctl_paste = await asyncio.to_thread(
                subprocess.run, [sys.executable, "-m", "mux", "ctl", "--socket", sock, "clipboard", "paste"],
                capture_output=True, text=True)
            assert ctl_paste.returncode == 1 and "refused: home → work" in ctl_paste.stderr
            bad = {"cmd": "clipboard", "action": "cut"}
            reply = await asyncio.to_thread(control.request, Path(sock), bad)
            assert reply == {"ok": False, "error": "clipboard: action is \"copy\" or \"paste\", not 'cut'"}
            # Positive control, by the same keys the other way: work's clipboard, as mux reads
            # it now, is still work's own (a paste that went through would have made it home's
            # text), and work -> home is allowed.
            await ctl.input(COPY)
            assert ctl.status()["clipboard"] == {"chars": len(WORK_TEXT), "from": "work"}
            await ctl.input(PREVIOUS)
            await ctl.input(PASTE)
            assert ctl.output.notices[-1] == f"pasted {len(WORK_TEXT)} characters from work into home"
            await clipboard_becomes(home_guest, WORK_TEXT)
            ctl_copy = await asyncio.to_thread(
                subprocess.run, [sys.executable, "-m", "mux", "ctl", "--socket", sock, "clipboard", "copy"],
                capture_output=True, text=True)
            assert ctl_copy.returncode == 0, ctl_copy.stderr
            assert ctl_copy.stdout.strip() == f"copied {len(WORK_TEXT)} characters from home"
