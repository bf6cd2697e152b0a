"""The screen and LED steps of a scenario (openQA's vocabulary), mixed into the runner.

Every screen step looks at :meth:`Controller.screenshot` (the persona's back-buffered
frame) and polls until its timeout: ``assert_screen`` and ``check_screen`` match
needles (:mod:`mux.needles.match`; matching runs in a worker thread so the event loop
keeps routing input), ``wait_screen_change`` and ``wait_still_screen`` compare whole
screens by PSNR as os-autoinst does. A step whose ``persona`` is left out looks at the
active persona of its ``seat`` (default: the first seat). A failed screen assertion
raises :class:`ScreenMismatch`, which carries the screen and the closest candidate
(where it came closest) so the runner can save a picture of the difference.

While waiting, needles are searched as os-autoinst searches them: within each area's
margin widened by 2% towards the whole screen, and over the whole screen when the
whole seconds left are a multiple of 5 and once more at the deadline; an unchanged
screen is not searched again at the same or a narrower width.

``assert_and_click`` and ``click_lastmatch`` click the winning needle's click point (or
the centre of its first match area) with an absolute pointer through the router, like
all input (:mod:`mux.scenario.input_steps`): the persona must be the active one of the
step's seat and have a ``usb-tablet`` (the runner gives one to every persona of a
scenario that clicks). ``assert_text`` and ``check_text`` (:mod:`mux.scenario.text_steps`)
are screen steps too.

``wait_screen_change`` compares against the screen as it was *before the previous
step* (the runner takes that reference when it sees a wait_screen_change coming), so a
change that the previous step caused at once is not missed.

``assert_led`` reads the LEDs the guest set (reported over VNC; when the controller has
no report yet, the guest's own ``MUX-LED`` serial line), or ``physical``: what mux last
wrote to the physical keyboards (of the step's ``seat``: each seat's show its persona's).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from pathlib import Path
from typing import Any

from PIL import Image

from mux.display.leds import Leds
from mux.errors import MuxError, StepFailed
from mux.input.events import ABS_X, ABS_Y, EV_ABS, EV_KEY, EV_SYN, InputEvent
from mux.input.router import QEMU_ABS_MAX
from mux.needles.match import NeedleMatch, NeedleUnsearchable, SearchResult, search
from mux.needles.model import Needle
from mux.scenario.model import MOUSE_BUTTONS
from mux.scenario.screens import psnr, similar, unchanged_fraction
from mux.scenario.text_steps import TextSteps

log = logging.getLogger(__name__)
SCREEN_POLL_S = 0.25
NARROW_SEARCH = 0.02  # os-autoinst's search ratio while waiting
WIDE_EVERY_S = 5  # ... and the whole screen when the seconds left are a multiple of this
LED_POLL_S = 0.05
CLICK_GAP_S = 0.05  # between the pointer's move, press and release
_SERIAL_LEDS = re.compile(r"MUX-LED caps=([01]) num=([01]) scroll=([01])")


class ScreenMismatch(StepFailed):
    """A screen assertion failed; carries the screen and the best needle match."""

    def __init__(self, message: str, persona: str, screen: Image.Image, match: NeedleMatch) -> None:
        super().__init__(message)
        self.persona = persona
        self.screen = screen
        self.match = match


class ScreenSteps(TextSteps):
    """``step_*`` methods for screens and LEDs; the runner provides what is declared here."""

    artifacts: Path
    message: str
    pictures: list[Path]
    reference: dict[str, Image.Image]
    last_match: tuple[str, NeedleMatch, tuple[int, int]] | None = None  # persona, winner, screen size

    async def press_keys(self, chord: str, seat: str | None = None) -> None:
        raise NotImplementedError


    async def look(self, name: str, needles: list[Needle],
                   timeout: float) -> tuple[NeedleMatch, Image.Image, str]:
        """Poll ``name``'s screen until one of ``needles`` matches or ``timeout`` passes,
        widening the search as os-autoinst does; returns the winner (or the closest
        candidate of the last search), that screen, and the needles the last search
        skipped (``"; skipped REASON"`` each; ``""`` for a winner), for a failure's
        message. A winner is kept for ``click_lastmatch``.

        Raises:
            StepFailed: no needle's picture could be read (a Git LFS pointer is named as
                such), or a needle has a match area without a size.
        """
        deadline = time.monotonic() + timeout
        last: tuple[bytes, float, SearchResult] | None = None
        warned: set[str] = set()
        while True:
            screen = await self.ctl.screenshot(name)
            left = deadline - time.monotonic()
            ratio = 1.0 if left <= 0 or int(left) % WIDE_EVERY_S == 0 else NARROW_SEARCH
            pixels = screen.tobytes()
            if last is not None and last[0] == pixels and last[1] >= ratio:
                result = last[2]
            else:
                try:
                    result = await asyncio.to_thread(search, screen, needles, 0.0, ratio)
                except NeedleUnsearchable as exc:
                    raise StepFailed(f"{name}: {exc}") from exc
                last = (pixels, ratio, result)
                for skipped in set(result.skipped) - warned:
                    log.warning("%s; needle skipped", skipped)
                    warned.add(skipped)
            closest = result.closest
            if closest is None:
                raise StepFailed(f"{name}: no needle could be matched ({'; '.join(result.skipped)})")
            if result.best is not None:
                self.last_match = (name, result.best, screen.size)
                return result.best, screen, ""
            if left <= 0:
                return closest, screen, "".join(f"; skipped {why}" for why in result.skipped)
            await asyncio.sleep(min(SCREEN_POLL_S, max(left, 0.01)))

    async def check(self, a: dict[str, Any]) -> bool:
        """check_screen's arguments (also ``if`` and ``until``): whether the needle matches."""
        name = self._persona(a)
        match, _, skipped = await self.look(name, a["_needles"], self.timeout(a["timeout"]))
        self.message = f"{name}: {match.describe()}{skipped}"
        return match.ok

    async def _assert_match(self, a: dict[str, Any]) -> tuple[str, NeedleMatch, Image.Image]:
        """Look for the step's needle until its timeout; (persona, match, screen).

        Raises:
            ScreenMismatch: it did not match in time.
        """
        name = self._persona(a)
        timeout = self.timeout(a["timeout"])
        match, screen, skipped = await self.look(name, a["_needles"], timeout)
        if not match.ok:
            message = f"{name}: {match.describe()} (looked for {timeout:.0f}s){skipped}"
            raise ScreenMismatch(message, name, screen, match)
        return name, match, screen

    async def step_assert_screen(self, a: dict[str, Any]) -> None:
        name, match, _ = await self._assert_match(a)
        self.message = f"{name}: {match.describe()}"

    async def step_check_screen(self, a: dict[str, Any]) -> None:
        await self.check(a)

    async def step_wait_screen_change(self, a: dict[str, Any]) -> None:
        name = self._persona(a)
        before = self.reference.pop(name, None) or await self.ctl.screenshot(name)
        timeout = self.timeout(a["timeout"])
        deadline = time.monotonic() + timeout
        while True:
            now = await self.ctl.screenshot(name)
            if not similar(before, now, a["similarity"]):
                self.message = f"{name}: changed ({_measure(before, now, a['similarity'])})"
                return
            if time.monotonic() >= deadline:
                raise StepFailed(f"{name}'s screen did not change within {timeout:.0f}s "
                                 f"({_measure(before, now, a['similarity'])})")
            await asyncio.sleep(SCREEN_POLL_S)

    async def step_wait_still_screen(self, a: dict[str, Any]) -> None:
        name = self._persona(a)
        timeout, stilltime = self.timeout(a["timeout"]), float(a["stilltime"])
        began = time.monotonic()
        last = await self.ctl.screenshot(name)
        still_since = began
        while True:
            now = time.monotonic()
            if now - still_since >= stilltime:
                self.message = f"{name}: still for {stilltime:g}s"
                return
            if now - began >= timeout:
                raise StepFailed(f"{name}'s screen did not stay still for {stilltime:g}s within "
                                 f"{timeout:.0f}s")
            await asyncio.sleep(SCREEN_POLL_S)
            screen = await self.ctl.screenshot(name)
            if not similar(last, screen, a["similarity"]):
                last, still_since = screen, time.monotonic()

    async def step_send_key_until_needlematch(self, a: dict[str, Any]) -> None:
        name = self._persona(a)
        timeout = self.timeout(a["timeout"])
        for pressed in range(a["tries"] + 1):
            match, screen, skipped = await self.look(name, a["_needles"], timeout)
            if match.ok:
                self.message = f"{name}: {match.describe()} after {pressed} x {a['key']}"
                return
            if pressed < a["tries"]:
                await self.press_keys(a["key"], a.get("seat"))
        message = f"{name}: {match.describe()} after {a['tries']} x {a['key']}{skipped}"
        raise ScreenMismatch(message, name, screen, match)

    async def step_assert_and_click(self, a: dict[str, Any]) -> None:
        name, match, screen = await self._assert_match(a)
        x, y = match.click_point()
        await self.click(name, x, y, screen.size, a["button"], a.get("seat"))
        self.message = f"{name}: {match.describe()}; clicked {a['button']} at +{x}+{y}"

    async def step_click_lastmatch(self, a: dict[str, Any]) -> None:
        if self.last_match is None:
            raise StepFailed("click_lastmatch: no needle has matched yet in this scenario")
        name, match, size = self.last_match
        x, y = match.click_point()
        await self.click(name, x, y, size, a["button"], a.get("seat"))
        self.message = f"{name}: clicked {a['button']} at +{x}+{y} (needle {match.needle.name})"

    async def click(self, name: str, x: int, y: int, size: tuple[int, int], button: str,
                    seat: str | None = None) -> None:
        """Move the absolute pointer to screen pixel (x, y) of ``name`` and click ``button``,
        as input from a tablet of ``seat`` (None: the first seat): through its router, so to
        its active persona.

        Raises:
            StepFailed: ``name`` is not the seat's active persona.
            SeatError: no such seat.
        """
        active = self.active_on(seat)
        if active != name:
            where = f" of seat {seat}" if seat is not None else ""
            raise StepFailed(f"cannot click on {name}: input goes to the active persona{where} "
                             f"({active}); switch to {name} first")
        width, height = size
        syn = InputEvent(EV_SYN, 0, 0)
        code = MOUSE_BUTTONS[button]
        await self.send([InputEvent(EV_ABS, ABS_X, round(x * QEMU_ABS_MAX / max(width - 1, 1))),
                         InputEvent(EV_ABS, ABS_Y, round(y * QEMU_ABS_MAX / max(height - 1, 1))), syn], seat)
        for down in (1, 0):
            await asyncio.sleep(CLICK_GAP_S)
            await self.send([InputEvent(EV_KEY, code, down), syn], seat)

    async def step_screenshot(self, a: dict[str, Any]) -> None:
        name = self._persona(a)
        screen = await self.ctl.screenshot(name)
        path = self.artifacts / "screenshots" / f"{a['name'] or name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        if a["name"] is None and path.exists():
            path = path.with_name(f"{name}-{time.strftime('%H%M%S')}-{len(self.pictures)}.png")
        await asyncio.to_thread(screen.save, path)
        self.pictures.append(path)
        self.message = str(path)

    async def step_assert_led(self, a: dict[str, Any]) -> None:
        target = a["persona"] or self._persona(a)
        seat = a.get("seat")
        wanted = {k: a[k] for k in ("caps", "num", "scroll") if a[k] is not None}
        timeout = self.timeout(a["timeout"])
        deadline = time.monotonic() + timeout
        while True:
            leds = self._leds(target, seat)
            if leds is not None and all(getattr(leds, k) == v for k, v in wanted.items()):
                self.message = f"{target}: {_show(leds)}"
                return
            if time.monotonic() >= deadline:
                shown = _show(leds) if leds else "not reported yet"
                expected = " ".join(f"{k}={int(v)}" for k, v in wanted.items())
                raise StepFailed(f"{target} LEDs are {shown}; expected {expected} (waited {timeout:g}s)")
            await asyncio.sleep(LED_POLL_S)

    async def failure_pictures(self, stem: str, exc: BaseException) -> list[Path]:
        """Save a screenshot of every persona that has a picture (``STEM-PERSONA.png``; a
        persona that is down gives its last back-buffered frame, if any) and, for a screen
        mismatch, the picture of the difference (``STEM-PERSONA-diff.png``).

        Raises:
            OSError: a picture could not be written.
        """
        from mux.scenario.screens import difference_picture

        saved = []
        for name in self.ctl.personas:
            try:
                screen = await self.ctl.screenshot(name)
            except MuxError:
                continue
            path = self.artifacts / f"{stem}-{name}.png"
            await asyncio.to_thread(screen.save, path)
            saved.append(path)
        if isinstance(exc, ScreenMismatch):
            path = self.artifacts / f"{stem}-{exc.persona}-diff.png"
            picture = await asyncio.to_thread(difference_picture, exc.screen, exc.match)
            await asyncio.to_thread(picture.save, path)
            saved.append(path)
        return saved

    def _leds(self, target: str, seat: str | None) -> Leds | None:
        if target == "physical":
            return self.ctl.physical_leds_of(seat)
        leds = self.ctl.leds(target)
        if leds is None:
            reports = _SERIAL_LEDS.findall(self.ctl.persona(target).serial.text)
            if reports:
                caps, num, scroll = (v == "1" for v in reports[-1])
                leds = Leds(caps=caps, num=num, scroll=scroll)
        return leds


def _show(leds: Leds) -> str:
    return f"caps={int(leds.caps)} num={int(leds.num)} scroll={int(leds.scroll)}"


def _measure(a: Image.Image, b: Image.Image, level: float) -> str:
    if level > 1:
        return f"PSNR {psnr(a, b):.1f} dB, changed below {level:g} dB"
    return f"{unchanged_fraction(a, b) * 100:.2f}% of pixels unchanged, changed below {level * 100:g}%"
