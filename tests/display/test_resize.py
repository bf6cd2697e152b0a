"""The guest follows the window (issue 25): a resized window asks the active persona that
follows it for its guest area, spaced and last-wins; a persona is asked when it becomes
active; headless never asks. And the banner's notices (Output.notify).

The pure tests drive a window under SDL's dummy driver and the sizer with recorded links;
the guests test resizes a real window on Xvfb and checks the request reached QEMU through
the persona's real VNC link.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image

from mux.config import DisplaySection, PersonaConfig
from mux.display.backbuffer import BackBuffer, Frame
from mux.display.output import HeadlessOutput
from mux.display.resize import MIN_SIDE, GuestSizer, SizeRequest, guest_size
from mux.display.window import BANNER_H, NOTICE_S, WindowOutput, pygame, x11_window
from tests.conftest import READY_S

COLORS = {"work": "c03030", "home": "3060c0"}


class RecordedLink:
    """A VNC link that records the sizes it is asked for (and takes them at once)."""

    def __init__(self, size: tuple[int, int] = (1024, 768)) -> None:
        self.size = size
        self.asked: list[tuple[tuple[int, int], float]] = []

    def set_desktop_size(self, width: int, height: int) -> None:
        self.asked.append(((width, height), time.monotonic()))
        self.size = (width, height)


@pytest.fixture
def window(monkeypatch: pytest.MonkeyPatch) -> Iterator[WindowOutput]:
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    output = WindowOutput(COLORS, BackBuffer(list(COLORS)), on_close=lambda: None)
    output.open()
    try:
        yield output
    finally:
        output.close()


def banner(window: WindowOutput) -> Image.Image:
    surface = window.canvas.read()
    width = window.canvas.size()[0]
    return Image.frombytes("RGB", (width, BANNER_H), pygame.image.tobytes(
        surface.subsurface((0, 0, width, BANNER_H)), "RGB"))


@pytest.mark.pure
def test_a_notice_shows_in_the_banner_for_a_few_seconds(window: WindowOutput) -> None:
    window.present("work", Frame(Image.new("RGB", (1024, 768), (192, 48, 48)), 1.0, "vnc"))
    plain = banner(window)
    window.notify("copied 42 characters from home")
    shown = banner(window)
    middle = (120, 0, 700, BANNER_H - 2)  # between the persona's name and the LEDs
    assert plain.crop(middle).getcolors() == [(580 * 30, (192, 48, 48))]  # nothing there before
    assert (255, 255, 255) in {c for _, c in shown.crop(middle).getcolors(1 << 16) or []}  # its text
    window.expire_notice(time.monotonic())  # not due yet: it stays
    assert banner(window).tobytes() == shown.tobytes()
    window.expire_notice(time.monotonic() + NOTICE_S)
    assert banner(window).tobytes() == plain.tobytes()  # gone, the banner as it was
    assert window.canvas.notice is None


@pytest.mark.pure
def test_notices_are_one_bounded_line() -> None:
    output = HeadlessOutput()
    output.notify("copied 3 characters from work")
    assert output.notices == ["copied 3 characters from work"] and output.guest_area_size() is None


@pytest.mark.pure
def test_the_window_loop_takes_the_notice_down(window: WindowOutput, monkeypatch: pytest.MonkeyPatch) -> None:
    import mux.display.window as window_module

    monkeypatch.setattr(window_module, "NOTICE_S", 0.2)
    window.notify("pasted into work\nsecond line")
    assert window.canvas.notice == "pasted into work second line"

    async def scenario() -> None:
        task = asyncio.create_task(window.run())
        try:
            while window.canvas.notice is not None:  # the loop's own check takes it down
                await asyncio.sleep(0.05)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    asyncio.run(scenario())


@pytest.mark.pure
def test_sizes_are_bounded() -> None:
    assert guest_size((1280, 800)) == (1280, 800)
    assert guest_size((10, 0)) == (MIN_SIDE, MIN_SIDE)
    assert guest_size((100_000, 600)) == (8192, 600)


@pytest.mark.pure
def test_a_resized_window_asks_the_active_following_persona_spaced_and_last_wins(
        window: WindowOutput) -> None:
    links = {"work": RecordedLink(), "home": RecordedLink()}
    active = ["work"]
    sizer = GuestSizer(links.get, lambda: active[0], window.guest_area_size, interval=0.5)
    sizer.follow = frozenset({"work", "home"})
    window.on_resize = sizer.resized
    assert window.canvas.window is not None

    async def scenario() -> None:
        loops = [asyncio.create_task(window.run()), asyncio.create_task(sizer.run())]
        try:
            for width in (800, 900, 1000, 1100, 1280):  # a window dragged by its corner
                window.canvas.window.size = (width, 800 + BANNER_H)
                await asyncio.sleep(0.02)
            while not links["work"].asked or links["work"].asked[-1][0] != (1280, 800):
                await asyncio.sleep(0.05)
            # home becomes active: it is asked for the window's size then
            active[0] = "home"
            sizer.activated("home")
            while not links["home"].asked:
                await asyncio.sleep(0.05)
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)

    asyncio.run(scenario())
    asked = links["work"].asked
    assert asked[0][0] == (800, 800)  # the first at once
    assert asked[-1][0] == (1280, 800) and len(asked) < 5  # the last wins; the ones between are dropped
    assert all(b[1] - a[1] >= 0.45 for a, b in itertools.pairwise(asked))  # spaced
    assert [size for size, _ in links["home"].asked] == [(1280, 800)]
    assert sizer.sent[-1] == SizeRequest("home", (1280, 800))


@pytest.mark.pure
def test_only_following_personas_with_a_window_are_asked() -> None:
    links = {"work": RecordedLink(), "home": RecordedLink()}
    active = ["home"]
    area: list[tuple[int, int] | None] = [None]  # headless: no size
    sizer = GuestSizer(links.get, lambda: active[0], lambda: area[0], interval=0.01)
    sizer.follow = frozenset({"work"})

    async def scenario() -> None:
        loop = asyncio.create_task(sizer.run())
        try:
            sizer.resized((1280, 800))  # home is active and does not follow
            active[0] = "work"
            sizer.activated("work")  # work follows, but headless has no size
            await asyncio.sleep(0.1)
            area[0] = (640, 480)
            sizer.activated("work")  # the positive control: with a window it is asked
            while not links["work"].asked:
                await asyncio.sleep(0.01)
            sizer.activated("work")  # already that size: not asked again
            active[0] = "home"
            sizer.want("work", (800, 600))  # no longer active when due: dropped
            await asyncio.sleep(0.1)
        finally:
            loop.cancel()
            await asyncio.gather(loop, return_exceptions=True)

    asyncio.run(scenario())
    assert [size for size, _ in links["work"].asked] == [(640, 480)]
    assert links["home"].asked == []


@pytest.mark.guests
async def test_resizing_a_real_window_asks_the_active_virtio_persona_through_qemu(
        controller: Any, x_display: str) -> None:
    work = PersonaConfig("work", color="c03030", vga="virtio")
    home = PersonaConfig("home", color="3060c0", vga="virtio")
    async with controller(work, home, display=DisplaySection(output="window", resize_guest=True)) as ctl:
        await asyncio.gather(*(ctl.persona(n).serial.wait_for(re.compile(f"MUX-READY {n}"), READY_S)
                               for n in ("work", "home")))
        assert ctl.display.sizer.follow == {"work", "home"}
        handles = x11_window(ctl.output.canvas.window)
        assert handles is not None
        if shutil.which("xdotool"):  # resized from outside, as a window manager does
            subprocess.run(["xdotool", "windowsize", str(handles[1]), "1280", str(800 + BANNER_H)],
                           check=True, env={"DISPLAY": x_display, "PATH": "/usr/bin:/bin"})
        else:
            ctl.output.canvas.window.size = (1280, 800 + BANNER_H)
        deadline = time.monotonic() + 60
        while ("work", (1280, 800)) not in [(r.persona, r.size) for r in ctl.display.sizer.sent]:
            assert time.monotonic() < deadline, f"work was not asked: {ctl.display.sizer.sent}"
            await asyncio.sleep(0.1)
        assert all(r.persona == "work" for r in ctl.display.sizer.sent)  # home is in the background
        # QEMU got it: it answered (status 4, "forwarded" to virtio-gpu, which takes size hints)
        while ctl.display.links["work"].rfb.size_reply is None:
            assert time.monotonic() < deadline, "QEMU never answered work's SetDesktopSize"
            await asyncio.sleep(0.1)
        assert ctl.display.links["work"].rfb.size_reply.status == 4
        assert ctl.display.links["home"].rfb.size_reply is None  # asked nothing yet
        await ctl.switch("home", "test")
        while ("home", (1280, 800)) not in [(r.persona, r.size) for r in ctl.display.sizer.sent]:
            assert time.monotonic() < deadline, f"home was not asked: {ctl.display.sizer.sent}"
            await asyncio.sleep(0.1)
        while ctl.display.links["home"].rfb.size_reply is None:
            assert time.monotonic() < deadline, "QEMU never answered home's SetDesktopSize"
            await asyncio.sleep(0.1)
        assert ctl.display.links["home"].rfb.size_reply.status == 4


@pytest.mark.heavy
async def test_a_desktop_persona_takes_the_size_of_the_resized_window(
        desktop_image: Any, tmp_path: Any, x_display: str) -> None:
    """Issue 25's acceptance: the window resized to 1280x800 (below the banner) makes the
    active desktop persona report 1280x800 (xrandr in the guest) and the live picture has
    that size, drawn unscaled. The persona follows the window by its recipe's default."""
    from mux.app.controller import Controller
    from mux.cli import frontends
    from mux.config.parse import load_config
    from tests.conftest import make_config

    (tmp_path / "mux.toml").write_text('[[persona]]\nname = "work"\ncolor = "c03030"\nimage = "desktop"\n')
    config = make_config(tmp_path, *load_config(tmp_path / "mux.toml").personas,
                         display=DisplaySection(output="window"))
    async with Controller(config, frontends=frontends(config), logs_dir=tmp_path / "logs",
                          progress=lambda m: None) as ctl:
        await ctl.persona("work").serial.wait_for(re.compile(r"MUX-READY work\r?\n"), 600, start=0)
        assert ctl.display.sizer.follow == {"work"}  # resize_guest from the desktop recipe
        handles = x11_window(ctl.output.canvas.window)
        assert handles is not None
        subprocess.run(["xdotool", "windowsize", str(handles[1]), "1280", str(800 + BANNER_H)],
                       check=True, env={"DISPLAY": x_display, "PATH": "/usr/bin:/bin"})
        deadline = time.monotonic() + 300
        xrandr = b""
        while b"current 1280 x 800," not in xrandr:
            assert time.monotonic() < deadline, f"the guest did not take 1280x800: {xrandr!r}"
            await asyncio.sleep(1)
            result = await ctl.exec("work", ["/usr/lib/mux/mux-session", "xrandr", "--current"], 120)
            xrandr = result["stdout"]
        while (shown := ctl.output.current_frame()) is None or shown[1].size != (1280, 800):
            assert time.monotonic() < deadline, f"the live picture is not 1280x800: {shown}"
            await asyncio.sleep(0.5)
        frame = ctl.display.backbuffer.get("work")
        picture = ctl.output.canvas.guest_picture(frame)
        assert picture is not None and picture.size == (1280, 800)  # unscaled: it fills the area
