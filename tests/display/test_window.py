"""The window output: layout, banner, overview and keys under SDL's dummy driver; then a
real window on Xvfb with real guests (TCG), screenshotted from the X server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from mux.config import DisplaySection, PersonaConfig
from mux.display.backbuffer import BackBuffer, Frame, Pixels
from mux.display.layout import Rect, fit, overview_tiles, parse_color
from mux.display.window import BANNER_H, WindowOutput, linux_key, pygame, x11_window
from mux.input.events import ABS_X, ABS_Y, EV_ABS, EV_KEY, EV_REL, EV_SYN, REL_WHEEL, InputEvent
from mux.input.router import QEMU_ABS_MAX
from tests.conftest import READY_S

COLORS = {"work": "c03030", "home": "3060c0"}
WORK, HOME = parse_color("c03030"), parse_color("3060c0")
SYN = InputEvent(EV_SYN, 0, 0)


def solid(color: tuple[int, int, int], size: tuple[int, int] = (1024, 768)) -> Image.Image:
    return Image.new("RGB", size, color)


def near(pixel: Any, color: tuple[int, int, int], tolerance: int = 12) -> bool:
    return all(abs(int(p) - c) <= tolerance for p, c in zip(pixel[:3], color, strict=True))


@pytest.fixture
def dummy_window(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[WindowOutput, list[Any], list[str]]]:
    """A window under SDL's dummy driver, with recorded input and switches."""
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    typed: list[Any] = []
    picked: list[str] = []

    async def on_input(events: list[InputEvent]) -> None:
        typed.append(events)

    async def on_switch(name: str) -> None:
        picked.append(name)

    window = WindowOutput(COLORS, BackBuffer(list(COLORS)), on_input=on_input, on_switch=on_switch,
                          on_close=lambda: None)
    window.open()
    try:
        yield window, typed, picked
    finally:
        window.close()


def feed(window: WindowOutput, events: list[pygame.event.Event]) -> None:
    """Run the window's loop while these events arrive, then stop it."""

    async def scenario() -> None:
        task = asyncio.create_task(window.run())
        try:
            for event in events:
                pygame.event.post(event)
            await asyncio.sleep(0.1)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    asyncio.run(scenario())


def pixel(window: WindowOutput, x: int, y: int) -> tuple[int, int, int]:
    color = window.canvas.read().get_at((x, y))
    return color.r, color.g, color.b


# --- pure layout -----------------------------------------------------------------------


@pytest.mark.pure
def test_fit_keeps_the_aspect_ratio_and_centres() -> None:
    area = Rect(0, 32, 800, 800)
    rect = fit((1024, 768), area)
    assert rect.size == (800, 600) and rect.center == area.center
    assert fit((1024, 768), Rect(0, 0, 1024, 768)).size == (1024, 768)
    tiles = overview_tiles(3, Rect(0, 32, 1000, 700))
    assert len(tiles) == 3 and len({t.size for t in tiles}) == 1
    assert not any(a.colliderect(b) for i, a in enumerate(tiles) for b in tiles[i + 1:])


@given(st.tuples(*[st.integers(-50, 50)] * 2, *[st.integers(0, 60)] * 2),
       st.tuples(*[st.integers(-50, 50)] * 2, *[st.integers(0, 60)] * 2),
       st.integers(-20, 20), st.integers(-20, 20))
@pytest.mark.pure
def test_layout_rects_agree_with_pygame(a: tuple[int, int, int, int], b: tuple[int, int, int, int],
                                        dx: int, dy: int) -> None:
    """layout.Rect is pure, but what pygame draws with it must be where pygame would."""
    mine, theirs = Rect(*a), pygame.Rect(a)
    assert (mine.center, mine.right, mine.bottom, mine.topleft) == \
        (theirs.center, theirs.right, theirs.bottom, theirs.topleft)
    assert tuple(mine.inflate(dx, dy)) == tuple(theirs.inflate(dx, dy))
    assert tuple(mine.move(dx, dy)) == tuple(theirs.move(dx, dy))
    assert mine.collidepoint(dx, dy) == theirs.collidepoint(dx, dy)
    assert mine.colliderect(Rect(*b)) == theirs.colliderect(pygame.Rect(b))
    centred = pygame.Rect(0, 0, a[2], a[3])
    centred.center = (dx, dy)
    assert tuple(Rect(0, 0, a[2], a[3]).centred_at((dx, dy))) == tuple(centred)


@pytest.mark.pure
def test_sdl_scancodes_are_usb_usages_mapped_to_linux_codes() -> None:
    assert linux_key(4) == 30  # A
    assert linux_key(57) == 58  # Caps Lock
    assert linux_key(225) == 42  # left shift
    assert linux_key(pygame.KSCAN_RETURN) == 28
    assert linux_key(0) is None


# --- the window under SDL's dummy driver -----------------------------------------------


@pytest.mark.pure
def test_banner_is_drawn_outside_the_guest_area_and_guests_cannot_cover_it(
        dummy_window: tuple[WindowOutput, list[Any], list[str]]) -> None:
    window, _, _ = dummy_window
    # a guest that paints itself white, with a fake "home" banner at its own top
    fake = solid((255, 255, 255))
    fake.paste(HOME, (0, 0, 1024, 40))
    window.present("work", Frame(fake, 1.0, "vnc"))
    assert pixel(window, 2, 2) == WORK and pixel(window, 2, BANNER_H - 8) == WORK  # the real banner
    assert pixel(window, 2, BANNER_H + 5) == HOME  # the fake one lands below it, in the guest area
    assert pixel(window, 500, 500) == (255, 255, 255)
    assert window.canvas.window is not None and window.canvas.window.title == "mux: work"
    name, _, captured = window.current_frame() or ("", None, 0.0)
    assert name == "work" and captured == 1.0
    window.present("home", None)  # no picture yet: black, under home's banner, nothing of work
    assert pixel(window, 2, 2) == HOME and pixel(window, 500, 500) == (0, 0, 0)
    assert window.current_frame() is None


@pytest.mark.pure
def test_live_frames_upload_only_their_rectangles_and_show_the_right_picture(
        dummy_window: tuple[WindowOutput, list[Any], list[str]]) -> None:
    window, _, _ = dummy_window
    pixels = Pixels(1024, 768)
    red, green, blue = bytes((0, 0, 200, 0)), bytes((0, 200, 0, 0)), bytes((200, 0, 0, 0))  # B G R X

    def change(box: tuple[int, int, int, int], color: bytes) -> Frame:
        pixels.paste(box, color * (box[2] * box[3]))
        pixels.version += 1
        return Frame(pixels, float(pixels.version), "vnc", version=pixels.version, rects=(box,))

    def shown(x: int, y: int) -> tuple[int, int, int]:
        picture = window._guest_picture()
        assert picture is not None
        return pixel(window, picture.x + x * picture.width // 1024, picture.y + y * picture.height // 768)

    window.present("work", replace(change((0, 0, 1024, 768), red), rects=None))
    assert window.canvas.uploaded_pixels == 1024 * 768
    window.present("work", change((100, 200, 50, 40), green))
    assert window.canvas.uploaded_pixels == 1024 * 768 + 50 * 40  # only the changed rectangle
    assert shown(120, 220) == (0, 200, 0) and shown(10, 10) == (200, 0, 0) and shown(160, 220) == (200, 0, 0)
    # a change the window never saw (not presented): the next frame's rectangles are not
    # enough, so all of it goes up again, and both changes show
    change((0, 0, 10, 10), blue)
    window.present("work", change((500, 500, 8, 8), blue))
    assert window.canvas.uploaded_pixels == 2 * 1024 * 768 + 50 * 40
    assert shown(2, 2) == (0, 0, 200) and shown(503, 503) == (0, 0, 200) and shown(120, 220) == (0, 200, 0)
    # under the dummy driver (a retained software window) an unscaled picture's small
    # change redraws only its rectangle; the rest stays as it was drawn
    assert window.canvas.partial_draws == 1
    window.present("work", change((1000, 700, 24, 68), green))
    assert window.canvas.partial_draws == 2
    assert shown(1010, 750) == (0, 200, 0) and shown(503, 503) == (0, 0, 200)
    assert shown(10, 300) == (200, 0, 0)
    assert pixel(window, 2, 2) == WORK  # the banner too


@pytest.mark.pure
@pytest.mark.parametrize("window_size", [(1100, 800), (800, 632), (1024, 800)])
def test_a_live_framebuffer_is_drawn_where_it_fits_scaled_or_not_and_its_changes_follow(
        dummy_window: tuple[WindowOutput, list[Any], list[str]], window_size: tuple[int, int]) -> None:
    # letterboxed unscaled (rows narrower than the window's), scaled down, and exact
    window, _, _ = dummy_window
    assert window.canvas.window is not None
    window.canvas.window.size = window_size
    pixels = Pixels(1024, 768)
    left, right = bytes((0, 0, 200, 0)), bytes((200, 0, 0, 0))  # B G R X: red, blue
    pixels.paste((0, 0, 512, 768), left * (512 * 768))
    pixels.paste((512, 0, 512, 768), right * (512 * 768))
    pixels.version = 1
    window.present("work", Frame(pixels, 1.0, "vnc", version=1))
    picture = window._guest_picture()
    assert picture is not None and picture.width <= window_size[0]
    assert pixel(window, picture.x + 5, picture.y + 5) == (200, 0, 0)
    assert pixel(window, picture.right - 5, picture.bottom - 5) == (0, 0, 200)
    if picture.x > 0:  # the letterbox stays black
        assert pixel(window, picture.x - 2, picture.y + 5) == (0, 0, 0)
    pixels.paste((0, 700, 40, 68), bytes((0, 200, 0, 0)) * (40 * 68))  # green, bottom left
    pixels.version = 2
    window.present("work", Frame(pixels, 2.0, "vnc", version=2, rects=((0, 700, 40, 68),)))
    scale = picture.width / 1024
    assert pixel(window, picture.x + int(10 * scale), picture.y + int(750 * scale)) == (0, 200, 0)
    assert pixel(window, picture.x + int(100 * scale), picture.y + int(750 * scale)) == (200, 0, 0)
    assert pixel(window, 2, 2) == WORK


@pytest.mark.pure
def test_small_frames_are_scaled_to_fit(dummy_window: tuple[WindowOutput, list[Any], list[str]]) -> None:
    window, _, _ = dummy_window
    window.present("work", Frame(solid((10, 200, 10), (720, 400)), 1.0, "vnc"))
    width, height = window.canvas.size()
    assert pixel(window, width // 2, BANNER_H + (height - BANNER_H) // 2) == (10, 200, 10)
    assert pixel(window, 2, 2) == WORK


@pytest.mark.pure
def test_overview_shows_every_back_buffer_and_a_digit_switches(
        dummy_window: tuple[WindowOutput, list[Any], list[str]]) -> None:
    window, typed, picked = dummy_window
    window.backbuffer.put("work", Frame(solid((200, 200, 0)), 1.0, "screendump"))
    window.backbuffer.put("home", Frame(solid((0, 200, 200)), 1.0, "screendump"))
    window.present("work", window.backbuffer.get("work"))

    async def scenario() -> None:
        task = asyncio.create_task(window.run())
        try:
            for key, scancode in ((pygame.K_PAUSE, pygame.KSCAN_PAUSE),):
                pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key, scancode=scancode, mod=0))
            await asyncio.sleep(0.1)
            assert window.overview
            width, height = window.canvas.size()
            tiles = overview_tiles(2, Rect(0, BANNER_H, width, height - BANNER_H))
            assert near(pixel(window, *tiles[0].center), (200, 200, 0))
            assert near(pixel(window, *tiles[1].center), (0, 200, 200))
            assert pixel(window, 2, 2) == WORK  # the banner stays
            pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_a, scancode=4, mod=0))
            await asyncio.sleep(0.1)
            assert typed == []  # in the overview no key reaches a guest
            pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_2, scancode=31, mod=0))
            await asyncio.sleep(0.1)
            assert picked == ["home"] and not window.overview
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    asyncio.run(scenario())


@pytest.mark.pure
def test_keys_typed_into_the_window_are_routed_and_released_on_focus_loss(
        dummy_window: tuple[WindowOutput, list[Any], list[str]]) -> None:
    window, typed, _ = dummy_window

    feed(window, [
        pygame.event.Event(pygame.KEYDOWN, key=pygame.K_LSHIFT, scancode=225, mod=0),
        pygame.event.Event(pygame.KEYDOWN, key=pygame.K_a, scancode=4, mod=0),
        pygame.event.Event(pygame.KEYUP, key=pygame.K_a, scancode=4, mod=0),
        pygame.event.Event(pygame.WINDOWFOCUSLOST),
        pygame.event.Event(pygame.KEYUP, key=pygame.K_LSHIFT, scancode=225, mod=0),
    ])
    assert typed == [
        [InputEvent(EV_KEY, 42, 1), SYN], [InputEvent(EV_KEY, 30, 1), SYN], [InputEvent(EV_KEY, 30, 0), SYN],
        [InputEvent(EV_KEY, 42, 0), SYN],  # focus lost: shift released once, its later key-up ignored
    ]


@pytest.mark.pure
def test_the_mouse_in_the_window_is_an_absolute_pointer_in_the_guest(
        dummy_window: tuple[WindowOutput, list[Any], list[str]]) -> None:
    window, typed, _ = dummy_window
    window.present("work", Frame(Image.new("RGB", (1024, 768), "red"), time.monotonic(), "test"))
    picture = window._guest_picture()
    assert picture is not None

    corner = (picture.right - 1, picture.bottom - 1)
    feed(window, [
        pygame.event.Event(pygame.MOUSEMOTION, pos=picture.topleft, rel=(0, 0), buttons=(0, 0, 0)),
        pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=corner, button=3),
        pygame.event.Event(pygame.MOUSEBUTTONUP, pos=corner, button=3),
        pygame.event.Event(pygame.MOUSEWHEEL, x=0, y=-1),
        pygame.event.Event(pygame.MOUSEMOTION, pos=(5, 5), rel=(0, 0), buttons=(0, 0, 0)),  # banner
    ])
    top_left = [InputEvent(EV_ABS, ABS_X, 0), InputEvent(EV_ABS, ABS_Y, 0), SYN]
    bottom_right = [InputEvent(EV_ABS, ABS_X, QEMU_ABS_MAX), InputEvent(EV_ABS, ABS_Y, QEMU_ABS_MAX)]
    assert typed == [top_left, [*bottom_right, InputEvent(EV_KEY, 0x111, 1), SYN],
                     [*bottom_right, InputEvent(EV_KEY, 0x111, 0), SYN],
                     [InputEvent(EV_REL, REL_WHEEL, -1), SYN]]


@pytest.mark.pure
def test_fullscreen_takes_the_whole_screen_under_the_banner(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    window = WindowOutput(COLORS, BackBuffer(list(COLORS)), fullscreen=True)
    window.open()
    try:
        width, height = window.canvas.size()
        assert (width, height) == pygame.display.get_desktop_sizes()[0]
        window.present("home", Frame(solid((10, 200, 10)), 1.0, "vnc"))
        assert pixel(window, 2, 2) == HOME
        assert near(pixel(window, width // 2, BANNER_H + (height - BANNER_H) // 2), (10, 200, 10))
    finally:
        window.close()


@pytest.mark.pure
def test_closing_the_window_asks_mux_to_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    closed: list[bool] = []
    window = WindowOutput(COLORS, BackBuffer(list(COLORS)), on_close=lambda: closed.append(True))
    window.open()

    async def scenario() -> None:
        task = asyncio.create_task(window.run())
        pygame.event.post(pygame.event.Event(pygame.QUIT))
        await asyncio.sleep(0.1)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    try:
        asyncio.run(scenario())
    finally:
        window.close()
    assert closed == [True]
    window.close()  # twice is fine


@pytest.mark.pure
def test_window_without_a_display_is_a_display_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from mux.display.output import open_output
    from mux.errors import DisplayError

    monkeypatch.setenv("SDL_VIDEODRIVER", "no-such-driver")

    async def switch(name: str) -> None:
        pass

    with pytest.raises(DisplayError):
        open_output(DisplaySection(output="window"), COLORS, BackBuffer(list(COLORS)),
                    on_input=None, on_switch=switch)
    auto = open_output(DisplaySection(output="auto"), COLORS, BackBuffer(list(COLORS)),
                       on_input=None, on_switch=switch)
    assert auto.kind == "headless"


# --- a real window on Xvfb -------------------------------------------------------------


@contextlib.contextmanager
def xvfb() -> Iterator[str]:
    """An Xvfb server on a free display number (it picks one and tells us: -displayfd)."""
    if shutil.which("Xvfb") is None:
        pytest.fail("Xvfb is missing: run ./bootstrap test (it installs Debian's xvfb)")
    read, write = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x1024x24",
                             "-nolisten", "tcp"], pass_fds=(write,), stderr=subprocess.DEVNULL)
    os.close(write)
    try:
        with os.fdopen(read) as pipe:
            number = pipe.readline().strip()
        if not number:
            raise AssertionError(f"Xvfb did not start (exit code {proc.poll()})")
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(10)


def x_screenshot(display_name: str) -> Image.Image:
    """The whole X screen, read back from the server (GetImage on the root window)."""
    from Xlib import X
    from Xlib.display import Display

    display = Display(display_name)
    try:
        root = display.screen().root
        geometry = root.get_geometry()
        raw = root.get_image(0, 0, geometry.width, geometry.height, X.ZPixmap, 0xFFFFFFFF)
        return Image.frombytes("RGB", (geometry.width, geometry.height), raw.data, "raw", "BGRX")
    finally:
        display.close()


def x_window_origin_and_type(display_name: str, window_id: int, keycodes: list[int]) -> tuple[int, int]:
    """Where the SDL window is on the screen; then focus it and type ``keycodes`` (XTEST)."""
    from Xlib import X
    from Xlib.display import Display
    from Xlib.ext import xtest

    display = Display(display_name)
    try:
        window = display.create_resource_object("window", window_id)
        origin = window.translate_coords(display.screen().root, 0, 0)
        window.set_input_focus(X.RevertToParent, X.CurrentTime)
        display.sync()
        for keycode in keycodes:
            xtest.fake_input(display, X.KeyPress, keycode)
            xtest.fake_input(display, X.KeyRelease, keycode)
        display.sync()
        return -origin.x, -origin.y
    finally:
        display.close()


@pytest.mark.guests
async def test_real_window_on_xvfb_shows_the_active_persona_under_its_banner(
        controller: Any, x_display: str) -> None:
    async with controller(PersonaConfig("work", color="c03030"), PersonaConfig("home", color="3060c0"),
                          display=DisplaySection(output="window")) as ctl:
        assert ctl.output.kind == "window" and ctl.status()["output"] == "window"
        await asyncio.gather(*(ctl.persona(n).serial.wait_for(re.compile(f"MUX-READY {n}"), READY_S)
                               for n in ("work", "home")))
        handles = x11_window(ctl.output.canvas.window)
        assert handles is not None  # the X window, from SDL_GetWindowWMInfo
        window_id = handles[1]

        async def screen_shows(color: tuple[int, int, int], timeout: float) -> Image.Image:
            deadline = time.monotonic() + timeout
            while True:
                x, y = x_window_origin_and_type(x_display, window_id, [])
                shot = x_screenshot(x_display)
                banner, guest = shot.getpixel((x + 3, y + 3)), shot.getpixel((x + 1000, y + BANNER_H + 740))
                strip = shot.crop((x, y, x + 1024, y + BANNER_H - 2))
                edge = shot.crop((x, y + BANNER_H - 2, x + 1024, y + BANNER_H))  # the banner's black edge
                if (near(banner, color, 0) and near(guest, color) and edge.getcolors() == [(2048, (0, 0, 0))]
                        and (255, 255, 255) in {c for _, c in strip.getcolors(1 << 20) or []}):  # its text
                    return shot
                if time.monotonic() > deadline:
                    shot.save(f"/tmp/mux-window-{os.getpid()}.png")
                    raise AssertionError(f"the X screen shows banner {banner} and guest {guest}, not {color}")
                await asyncio.sleep(0.2)

        await screen_shows(WORK, 60)
        await ctl.switch("home", "test")
        await screen_shows(HOME, 60)
        # keys typed into the window reach the active persona (X keycode 38 is 'a')
        x_window_origin_and_type(x_display, window_id, [38])
        await ctl.persona("home").serial.wait_for(re.compile("MUX-KEY 30 1"), 30)
        await ctl.persona("home").serial.wait_for(re.compile("MUX-KEY 30 0"), 30)
        # ... and only it: work, active again, reports the next 'a' typed into the window,
        # and nothing before it (its reporter works; home's key would have come first)
        await ctl.switch("work", "test")
        x_window_origin_and_type(x_display, window_id, [38])
        await ctl.persona("work").serial.wait_for(re.compile("MUX-KEY 30 0"), 30)
        work_keys = re.findall(r"MUX-KEY 30 [01]", ctl.persona("work").serial.text)
        assert work_keys == ["MUX-KEY 30 1", "MUX-KEY 30 0"]
    assert not ctl.output.canvas.is_open  # closed with the controller


@pytest.mark.guests
async def test_the_overview_hotkey_works_from_any_input_source(tmp_path: Any,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               console_image: Any) -> None:
    """A grabbed keyboard's keys never reach the window, so the overview has a hotkey too."""
    from mux.app.controller import Controller
    from mux.input.events import SYN_REPORT
    from tests.conftest import make_config

    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    config = make_config(tmp_path, PersonaConfig("work", autostart=False),
                         PersonaConfig("home", autostart=False), display=DisplaySection(output="window"))
    syn = InputEvent(EV_SYN, SYN_REPORT, 0)
    chord = [InputEvent(EV_KEY, 70, 1), syn, InputEvent(EV_KEY, 108, 1), syn,  # scrolllock+down
             InputEvent(EV_KEY, 108, 0), syn, InputEvent(EV_KEY, 70, 0), syn]
    async with Controller(config, progress=lambda m: None) as ctl:
        assert ctl.output.kind == "window" and not ctl.output.overview  # type: ignore[attr-defined]
        await ctl.input(chord)
        assert ctl.output.overview  # type: ignore[attr-defined]
        assert ctl.router.held("work") == frozenset() and ctl.active is None
        await ctl.input(chord)
        assert not ctl.output.overview  # type: ignore[attr-defined]


@pytest.mark.pure
def test_a_switch_draws_once_with_the_new_personas_leds(
        dummy_window: tuple[WindowOutput, list[Any], list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    from mux.display.leds import Leds

    window, _, _ = dummy_window
    window.present("work", Frame(solid((255, 255, 255)), 1.0, "vnc"))
    caps = Leds(caps=True, num=False, scroll=False)
    drawn: list[tuple[str | None, Leds | None]] = []
    real_show = window.canvas.show
    monkeypatch.setattr(window.canvas, "show", lambda name, frame, leds, *a, **k: (
        drawn.append((name, leds)), real_show(name, frame, leds, *a, **k)))
    # the display's order at a switch: the new persona's LEDs, then its frame
    window.show_leds("home", caps)
    assert drawn == []  # not the persona shown: nothing drawn yet
    window.present("home", Frame(solid((0, 255, 0)), 2.0, "vnc"))
    assert drawn == [("home", caps)]  # one draw, frame and LEDs together
    assert pixel(window, 2, 2) == HOME and pixel(window, 500, 500) == (0, 255, 0)
    window.show_leds("home", None)  # a change while shown draws at once
    assert drawn[-1] == ("home", None)
    window.present("work", Frame(solid((255, 255, 255)), 3.0, "vnc"))
    assert drawn[-1] == ("work", None)  # no LEDs were told for work: none shown
