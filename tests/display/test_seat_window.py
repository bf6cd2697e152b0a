"""A seat's window in its own process: the wire and the outbox (pure), then real window
processes on two Xvfb displays, read back from the X servers and typed into with xdotool."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from mux.config import SeatSection
from mux.display.backbuffer import BackBuffer, Frame, Pixels
from mux.display.leds import Leds
from mux.display.output import HeadlessOutput
from mux.display.seat_window import SeatWindowOutput, open_seat_output
from mux.display.window_outbox import MAX_PENDING, Outbox
from mux.display.window_pipe import (
    MAX_RECTS,
    PREFIX,
    WireError,
    apply_frame,
    encode,
    events_of,
    frame_message,
    header,
    lengths,
    read_image,
)
from mux.errors import DisplayError
from mux.input.events import EV_KEY, EV_SYN, InputEvent
from tests.conftest import wait_until
from tests.display.test_window import near, x_screenshot, xvfb

COLORS = {"work": "c03030", "home": "3060c0", "lab": "30a040"}
SEAT_ONE = SeatSection(name="one", output="window")
SEAT_TWO = SeatSection(name="two", output="window", personas=("home", "lab"))
BANNER_H = 32  # mux.display.canvas.BANNER_H (not imported: that would load pygame here)


def live(width: int = 64, height: int = 48, fill: bytes = bytes((10, 20, 30, 0))) -> Pixels:
    pixels = Pixels(width, height)
    pixels.data[:] = fill * (width * height)
    return pixels


def change(pixels: Pixels, box: tuple[int, int, int, int], fill: bytes) -> Frame:
    """Paint ``box`` of ``pixels`` (a VNC link's update) and return the frame announcing it."""
    pixels.paste(box, fill * (box[2] * box[3]))
    pixels.version += 1
    return Frame(pixels, float(pixels.version), "vnc", version=pixels.version, rects=(box,))


# --- the wire and the outbox (pure) -----------------------------------------------------


@pytest.mark.pure
def test_a_message_is_length_prefixed_json_and_a_raw_payload() -> None:
    pieces = encode({"type": "present", "name": "work"}, b"\x01\x02\x03")
    raw = b"".join(bytes(p) for p in pieces)
    head, body = lengths(raw[:PREFIX.size], 3)
    assert body == 3 and header(raw[PREFIX.size:PREFIX.size + head]) == {"type": "present", "name": "work"}
    assert raw[-3:] == b"\x01\x02\x03"
    with pytest.raises(WireError, match="payload"):
        lengths(raw[:PREFIX.size], 2)  # more than the reader allows
    with pytest.raises(WireError, match="header"):
        lengths(PREFIX.pack(1 << 20, 0), 0)
    with pytest.raises(WireError, match="JSON"):
        header(b"{not json")
    with pytest.raises(WireError, match="type"):
        header(b"[1, 2]")
    assert events_of({"events": [[1, 30, 1], [0, 0, 0]]}) == [(1, 30, 1), (0, 0, 0)]
    for bad in ([], [[1, 30]], [[1, "a", 1]], [[1, 30, True]], [[0, 0, 0]] * 257):
        with pytest.raises(WireError, match="events"):
            events_of({"events": bad})


@pytest.mark.pure
def test_frames_cross_as_raw_pixels_whole_or_their_changed_rectangles() -> None:
    parent = live()
    head, payload = frame_message("present", "work", Frame(parent, 1.0, "vnc", version=0), None)
    assert head["mode"] == "BGRX" and head["size"] == [64, 48] and len(payload) == 64 * 48 * 4
    child, rects = apply_frame(head, payload, None)
    assert isinstance(child, Pixels) and rects is None and child.data == parent.data
    frame = change(parent, (5, 6, 7, 8), bytes((200, 0, 0, 0)))
    head, payload = frame_message("present", "work", frame, list(frame.rects or ()))
    assert len(payload) == 7 * 8 * 4  # only the rectangle travels
    again, rects = apply_frame(head, payload, child)
    assert again is child and rects == [(5, 6, 7, 8)] and child.data == parent.data and child.version == 2
    image = Image.new("RGB", (20, 10), (1, 2, 3))
    head, payload = frame_message("backbuffer", "home", Frame(image, 2.0, "screendump"), None)
    assert head["mode"] == "RGB" and read_image(head, payload).tobytes() == image.tobytes()
    # what a broken sender could say is refused, naming what is wrong
    with pytest.raises(WireError, match="bytes"):
        read_image(head, payload[:-1])
    with pytest.raises(WireError, match="size"):
        read_image({**head, "size": [0, 10]}, payload)
    with pytest.raises(WireError, match="does not fit"):
        apply_frame({**head, "mode": "BGRX", "size": [64, 48], "rects": [[60, 0, 8, 1]]}, bytes(32), child)
    with pytest.raises(WireError, match="does not have"):
        apply_frame({**head, "mode": "BGRX", "size": [64, 48], "rects": [[0, 0, 1, 1]]}, bytes(4), None)


@pytest.mark.pure
def test_the_outbox_keeps_only_the_newest_frame_and_gathers_its_changes() -> None:
    outbox = Outbox()
    for index in range(100):  # the window is behind: a hundred whole frames become one
        outbox.present("work", Frame(Image.new("RGB", (8, 8), (index, 0, 0)), float(index), "screendump"))
    assert outbox.waiting() == ["present"]
    head, payload = outbox.take() or ({}, b"")
    assert read_image(head, payload).getpixel((0, 0)) == (99, 0, 0)
    # a live framebuffer: the first goes whole, later ones as the changes the window lacks,
    # gathered over the frames it missed
    parent = live()
    outbox.present("work", Frame(parent, 1.0, "vnc", version=0))
    head, payload = outbox.take() or ({}, b"")
    child, _ = apply_frame(head, payload, None)
    assert isinstance(child, Pixels)
    outbox.present("work", change(parent, (0, 0, 4, 4), bytes((1, 1, 1, 0))))
    # nothing taken between these two:
    outbox.present("work", change(parent, (30, 30, 5, 5), bytes((2, 2, 2, 0))))
    head, payload = outbox.take() or ({}, b"")
    assert head["rects"] == [[0, 0, 4, 4], [30, 30, 5, 5]]
    apply_frame(head, payload, child)
    assert child.data == parent.data
    # a version the window never got (taken by nobody: frame 4 was replaced by another
    # persona's) breaks the chain: the whole framebuffer goes again
    outbox.present("work", change(parent, (1, 1, 1, 1), bytes((3, 3, 3, 0))))
    outbox.present("home", None)
    assert outbox.waiting() == ["present"]
    head, _ = outbox.take() or ({}, b"")
    assert head == {"type": "present", "name": "home", "frame": False}
    outbox.present("work", change(parent, (2, 2, 1, 1), bytes((4, 4, 4, 0))))
    head, payload = outbox.take() or ({}, b"")
    assert head["rects"] is None and len(payload) == 64 * 48 * 4
    many = [change(parent, (i % 60, 0, 1, 1), bytes((5, 5, 5, 0))) for i in range(MAX_RECTS + 1)]
    for frame in many:
        outbox.present("work", frame)
    head, _ = outbox.take() or ({}, b"")
    assert head["rects"] is None  # too many rectangles: the whole frame is cheaper


@pytest.mark.pure
def test_the_outbox_keeps_small_messages_in_order_and_bounded() -> None:
    outbox = Outbox()
    outbox.message({"type": "leds", "name": "home", "leds": [True, False, False]})
    outbox.present("home", Frame(Image.new("RGB", (4, 4)), 1.0, "screendump"))
    outbox.message({"type": "attention", "requests": [["lab", "one"]]})
    outbox.message({"type": "attention", "requests": [["lab", "one"], ["work", "two"]]})
    assert outbox.waiting() == ["leds", "present", "attention"]  # the newest attention, in place
    for index in range(MAX_PENDING + 10):
        outbox.message({"type": "notice", "text": str(index)})
    kinds = outbox.waiting()
    assert kinds.count("notice") + kinds.count("leds") + kinds.count("attention") == MAX_PENDING
    assert outbox.dropped == 12 and "attention" in kinds and "leds" not in kinds
    taken = [outbox.take() for _ in range(len(outbox))]
    assert [h["type"] for h, _ in filter(None, taken)][:2] == ["present", "attention"]
    assert outbox.take() is None


@pytest.mark.pure
def test_a_headless_seat_opens_no_window_and_auto_without_a_display_is_headless(
        monkeypatch: pytest.MonkeyPatch) -> None:
    lines: list[str] = []

    async def switch(name: str) -> None:
        pass

    output = open_seat_output(SeatSection(name="two", output="headless"), COLORS, BackBuffer(list(COLORS)),
                              on_input=None, on_switch=switch, progress=lines.append)
    assert isinstance(output, HeadlessOutput)
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"):
        monkeypatch.delenv(name, raising=False)
    output = open_seat_output(SeatSection(name="three", output="auto"), COLORS, BackBuffer(list(COLORS)),
                              on_input=None, on_switch=switch, progress=lines.append)
    assert isinstance(output, HeadlessOutput)
    assert lines == ['output (seat two): headless (output = "headless")',
                     "output (seat three): headless (no display set, and no DISPLAY or WAYLAND_DISPLAY)"]


# --- real window processes on Xvfb ------------------------------------------------------


def window_children() -> list[int]:
    """This process's children that are seat window processes."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == os.getpid() and b"mux.display.window_child" in cmdline:
                found.append(int(entry.name))
    return found


@pytest.fixture
def two_displays() -> Iterator[tuple[str, str]]:
    with xvfb() as first, xvfb() as second:
        yield first, second


class Seat:
    """A seat window with recorded input, picks and resizes."""

    def __init__(self, seat: SeatSection, backbuffer: BackBuffer) -> None:
        self.typed: list[list[InputEvent]] = []
        self.picked: list[str] = []
        self.closed: list[bool] = []
        self.output = SeatWindowOutput(seat, COLORS, backbuffer, on_input=self._input, on_switch=self._switch,
                                       on_close=lambda: self.closed.append(True))

    async def _input(self, events: list[InputEvent]) -> None:
        self.typed.append(events)

    async def _switch(self, name: str) -> None:
        self.picked.append(name)
        self.output.present(name, self.output.backbuffer.get(name))


@contextlib.asynccontextmanager
async def running(*seats: Seat) -> AsyncIterator[None]:
    """The seats' windows open, their loops running; closed (and checked gone) after."""
    tasks: list[asyncio.Task[None]] = []
    try:
        for seat in seats:
            seat.output.open()
            tasks.append(asyncio.create_task(seat.output.run()))
        yield
    finally:
        for seat in seats:
            seat.output.close()
        for task in tasks:
            await asyncio.wait_for(task, 30)  # close() ends the child: run() returns by itself
    assert window_children() == []


def xdotool(display: str, *args: str) -> str:
    if shutil.which("xdotool") is None:
        pytest.fail("xdotool is missing: run ./bootstrap test (it installs Debian's xdotool)")
    return subprocess.run(["xdotool", *args], capture_output=True, text=True, timeout=30, check=True,
                          env={**os.environ, "DISPLAY": display}).stdout


def window_origin(display: str, window: int) -> tuple[int, int]:
    out = xdotool(display, "getwindowgeometry", "--shell", str(window))
    values = dict(line.split("=", 1) for line in out.split())
    return int(values["X"]), int(values["Y"])


async def shows(display: str, window: int | None, banner: tuple[int, int, int], guest: tuple[int, int, int],
                title: str) -> None:
    """Wait until the X screen shows the window with this banner colour over this guest colour."""
    assert window is not None

    def seen() -> bool:
        x, y = window_origin(display, window)
        shot = x_screenshot(display)
        return (near(shot.getpixel((x + 3, y + 3)), banner, 0)
                and near(shot.getpixel((x + 300, y + 300)), guest)
                and xdotool(display, "getwindowname", str(window)).strip() == title)

    await wait_until(seen, 60, f"{display} to show {title} ({banner} over {guest})")


async def show_work(seat: Seat, display: str) -> None:
    """Seat ``seat`` shows work (a yellow picture) on ``display``, seen on the X screen."""
    seat.output.present("work", Frame(Image.new("RGB", (1024, 768), (250, 250, 0)), 1.0, "screendump"))
    title = f"mux: {seat.output.seat.name}: work"
    await shows(display, seat.output.window_id, (0xc0, 0x30, 0x30), (250, 250, 0), title)


@pytest.mark.services
async def test_two_seats_each_show_their_own_persona_on_their_own_display(
        two_displays: tuple[str, str]) -> None:
    first, second = two_displays
    backbuffer = BackBuffer(list(COLORS))
    one = Seat(SeatSection(name="one", output="window", display=first), backbuffer)
    two = Seat(SeatSection(name="two", output="window", display=second, personas=("home", "lab")), backbuffer)
    async with running(one, two):
        assert one.output.kind == two.output.kind == "window" and one.output.guest_area_size() is not None
        one.output.present("work", Frame(Image.new("RGB", (1024, 768), (250, 250, 0)), 1.0, "screendump"))
        pixels = live(1024, 768, bytes((250, 0, 250, 0)))  # B G R X: a live framebuffer, (250, 0, 250)
        pixels.version = 1
        two.output.present("home", Frame(pixels, 1.0, "vnc", version=1))
        await shows(first, one.output.window_id, (0xc0, 0x30, 0x30), (250, 250, 0), "mux: one: work")
        await shows(second, two.output.window_id, (0x30, 0x60, 0xc0), (250, 0, 250), "mux: two: home")
        # a live change travels as its rectangle and shows; the other display is unchanged
        frame = change(pixels, (0, 0, 1024, 400), bytes((0, 250, 0, 0)))
        two.output.present("home", frame)
        await shows(second, two.output.window_id, (0x30, 0x60, 0xc0), (0, 250, 0), "mux: two: home")
        await shows(first, one.output.window_id, (0xc0, 0x30, 0x30), (250, 250, 0), "mux: one: work")
        name, image, _ = two.output.current_frame() or ("", Image.new("RGB", (1, 1)), 0.0)
        assert name == "home" and image.getpixel((0, 0)) == (0, 250, 0)  # from the parent's record
        two.output.show_leds("home", Leds(caps=True, num=False, scroll=False))
        two.output.notify("copied 3 characters")
        two.output.show_attention([("lab", "done")])
        two.output.present("lab", None)  # no picture yet: black under lab's banner
        await shows(second, two.output.window_id, (0x30, 0xa0, 0x40), (0, 0, 0), "mux: two: lab")


@pytest.mark.services
async def test_overview_pick_and_typed_keys_come_back_from_the_window_process(
        two_displays: tuple[str, str]) -> None:
    _, second = two_displays
    backbuffer = BackBuffer(list(COLORS))
    backbuffer.put("home", Frame(Image.new("RGB", (1024, 768), (0, 200, 200)), 1.0, "screendump"))
    backbuffer.put("lab", Frame(Image.new("RGB", (1024, 768), (200, 200, 0)), 1.0, "screendump"))
    backbuffer.put("work", Frame(Image.new("RGB", (1024, 768), (120, 40, 60)), 1.0, "screendump"))
    two = Seat(SeatSection(name="two", output="window", display=second, personas=("home", "lab")), backbuffer)
    async with running(two):
        window = two.output.window_id
        assert window is not None
        two.output.present("home", backbuffer.get("home"))
        await shows(second, window, (0x30, 0x60, 0xc0), (0, 200, 200), "mux: two: home")
        xdotool(second, "windowfocus", "--sync", str(window))
        xdotool(second, "key", "--window", str(window), "a")
        syn = InputEvent(EV_SYN, 0, 0)
        await wait_until(lambda: len(two.typed) >= 2, 60, "the typed 'a' to come back")
        assert two.typed[:2] == [[InputEvent(EV_KEY, 30, 1), syn], [InputEvent(EV_KEY, 30, 0), syn]]
        # Pause in the window asks for the overview: the back-buffer goes first, so its
        # tiles show the seat's two personas (and not work, which this seat may not show)
        xdotool(second, "key", "--window", str(window), "Pause")
        await wait_until(lambda: two.output.overview, 60, "the overview to be asked for")
        x, y = window_origin(second, window)

        def tiles_shown() -> bool:
            shot = x_screenshot(second).crop((x, y + BANNER_H, x + 900, y + 700))
            colors = [c for _, c in shot.getcolors(1 << 20) or []]  # (smoothscale: 200 may be 198)

            def has(color: tuple[int, int, int]) -> bool:
                return any(near(c, color) for c in colors)

            return has((0, 200, 200)) and has((200, 200, 0)) and not has((120, 40, 60))

        await wait_until(tiles_shown, 60, "the overview's tiles")
        typed = len(two.typed)
        xdotool(second, "key", "--window", str(window), "2")  # lab's tile
        await wait_until(lambda: two.picked == ["lab"], 60, "the overview pick")
        assert len(two.typed) == typed and not two.output.overview  # the digit reached no guest
        await shows(second, window, (0x30, 0xa0, 0x40), (200, 200, 0), "mux: two: lab")
        # the parent's own toggle (the overview hotkey) works too, and back
        two.output.toggle_overview()
        await wait_until(tiles_shown, 60, "the overview's tiles, toggled by mux")
        two.output.toggle_overview()
        await shows(second, window, (0x30, 0xa0, 0x40), (200, 200, 0), "mux: two: lab")


@pytest.mark.services
async def test_a_window_process_that_dies_is_logged_once_and_the_seat_goes_headless(
        two_displays: tuple[str, str], caplog: pytest.LogCaptureFixture) -> None:
    first, _ = two_displays
    one = Seat(SeatSection(name="one", output="window", display=first), BackBuffer(list(COLORS)))
    caplog.set_level(logging.WARNING, "mux.display.seat_window")
    async with running(one):
        await show_work(one, first)
        [child] = window_children()
        os.kill(child, signal.SIGKILL)
        await wait_until(lambda: one.output.kind == "headless", 60, "the seat to go headless")
        for _ in range(3):  # the display goes on presenting: no exception, nothing logged again
            one.output.present("work", Frame(Image.new("RGB", (1024, 768), (0, 0, 250)), 2.0, "screendump"))
            one.output.notify("still here")
            one.output.toggle_overview()
        assert one.output.guest_area_size() is None
        frame = one.output.current_frame()
        assert frame is not None and frame[1].getpixel((0, 0)) == (0, 0, 250)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "seat one" in warnings[0] and "exit code -9" in warnings[0], warnings


def close_by_hand(display_name: str, window: int) -> None:
    """What a window manager's close button sends: WM_DELETE_WINDOW, as a client message."""
    from Xlib import X
    from Xlib.display import Display
    from Xlib.protocol import event

    display = Display(display_name)
    try:
        target = display.create_resource_object("window", window)
        delete = display.intern_atom("WM_DELETE_WINDOW")
        message = event.ClientMessage(window=target, client_type=display.intern_atom("WM_PROTOCOLS"),
                                      data=(32, [delete, X.CurrentTime, 0, 0, 0]))
        target.send_event(message, event_mask=X.NoEventMask)
        display.sync()
    finally:
        display.close()


@pytest.mark.services
async def test_a_seats_window_closed_by_hand_asks_mux_to_stop(
        two_displays: tuple[str, str], caplog: pytest.LogCaptureFixture) -> None:
    first, _ = two_displays
    one = Seat(SeatSection(name="one", output="window", display=first), BackBuffer(list(COLORS)))
    caplog.set_level(logging.INFO, "mux.display.seat_window")
    async with running(one):
        await show_work(one, first)
        assert one.closed == []
        assert one.output.window_id is not None
        close_by_hand(first, one.output.window_id)
        await wait_until(lambda: one.closed == [True], 30, "the seat's window to report its closing")
    said = [r.getMessage() for r in caplog.records]
    assert "output (seat one): window closed: stopping mux" in said, said


@pytest.mark.services
async def test_a_window_that_cannot_open_is_an_error_or_with_auto_headless(tmp_path: Path) -> None:
    lines: list[str] = []

    async def switch(name: str) -> None:
        pass

    nowhere = ":4242"  # no X server there
    assert not Path("/tmp/.X11-unix/X4242").exists()
    refused = r"seat 'two': no window on DISPLAY=:4242: cannot open a window with x11"  # the child's reason
    with pytest.raises(DisplayError, match=refused):
        open_seat_output(SeatSection(name="two", output="window", display=nowhere), COLORS,
                         BackBuffer(list(COLORS)), on_input=None, on_switch=switch, progress=lines.append)
    output = open_seat_output(SeatSection(name="two", output="auto", display=nowhere), COLORS,
                              BackBuffer(list(COLORS)), on_input=None, on_switch=switch,
                              progress=lines.append)
    assert isinstance(output, HeadlessOutput)
    assert len(lines) == 1 and lines[0].startswith("output (seat two): headless (could not open a window on "
                                                   "DISPLAY=:4242: ")
    assert window_children() == []


@pytest.mark.services
async def test_open_seat_output_says_where_the_window_is(two_displays: tuple[str, str]) -> None:
    first, _ = two_displays
    lines: list[str] = []

    async def switch(name: str) -> None:
        pass

    output = open_seat_output(SeatSection(name="one", output="fullscreen", display=first), COLORS,
                              BackBuffer(list(COLORS)), on_input=None, on_switch=switch,
                              progress=lines.append)
    try:
        assert isinstance(output, SeatWindowOutput)
        assert output.guest_area_size() == (1280, 1024 - BANNER_H)  # the whole Xvfb screen, under the banner
        assert lines == [f"output (seat one): full screen (monitor 0) on DISPLAY={first}"]
    finally:
        output.close()
    assert window_children() == []
    with pytest.raises(DisplayError, match="no monitor 3"):
        open_seat_output(SeatSection(name="one", output="fullscreen", display=first, monitor=3), COLORS,
                         BackBuffer(list(COLORS)), on_input=None, on_switch=switch, progress=lines.append)
    assert window_children() == []



@pytest.mark.guests
async def test_a_controller_with_two_seats_shows_each_seats_persona_on_its_display_and_routes_its_keys(
        tmp_path: Path, console_image: Any, two_displays: tuple[str, str]) -> None:
    from tests.app.test_controller_options import controller_from
    from tests.input.test_input_routing import booted, guest_keys

    first, second = two_displays
    seats = f"""
[[persona]]
name = "work"
color = "c03030"
[[persona]]
name = "home"
color = "3060c0"
[[persona]]
name = "lab"
color = "30a040"
[[seat]]
name = "one"
output = "window"
display = "{first}"
[[seat]]
name = "two"
output = "window"
display = "{second}"
personas = ["home", "lab"]
"""
    async with controller_from(tmp_path, "", seats) as ctl:
        await booted(ctl, "work", "home", "lab")
        assert (ctl.active_on("one"), ctl.active_on("two")) == ("work", "home")
        assert [s["output"] for s in ctl.status()["seats"]] == ["window", "window"]
        one, two = (ctl.display.screens[name].output for name in ("one", "two"))
        assert isinstance(one, SeatWindowOutput) and isinstance(two, SeatWindowOutput)
        # the console guest paints its screen in its persona's colour
        await shows(first, one.window_id, (0xc0, 0x30, 0x30), (0xc0, 0x30, 0x30), "mux: one: work")
        await shows(second, two.window_id, (0x30, 0x60, 0xc0), (0x30, 0x60, 0xc0), "mux: two: home")
        work, home = ctl.persona("work").serial, ctl.persona("home").serial
        for display, window in ((second, two.window_id), (first, one.window_id)):
            xdotool(display, "windowfocus", "--sync", str(window))
            xdotool(display, "key", "--window", str(window), "a" if display == second else "b")
        await home.wait_for(re.compile("MUX-KEY 30 0"), 60)
        await work.wait_for(re.compile("MUX-KEY 48 0"), 60)
        assert guest_keys(home.text) == [(30, 1), (30, 0)]  # seat two's window: home only
        assert guest_keys(work.text) == [(48, 1), (48, 0)]  # seat one's window: work only
        await ctl.switch("lab", "test", "two")
        await shows(second, two.window_id, (0x30, 0xa0, 0x40), (0x30, 0xa0, 0x40), "mux: two: lab")
        await shows(first, one.window_id, (0xc0, 0x30, 0x30), (0xc0, 0x30, 0x30), "mux: one: work")
    assert window_children() == []
