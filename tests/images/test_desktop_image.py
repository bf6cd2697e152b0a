"""The ``desktop`` image, for real: one persona booted under TCG by mux's own controller.

The image is built before the tests (tests/tiers.py; cached, needs root and mmdebstrap,
skipped otherwise). The persona comes from a config file naming only ``image = "desktop"``,
so the recipe's ``[persona]`` defaults (virtio GPU, agent, clipboard) are what boots. One
boot serves the module (the machine is slow: TCG on 2 shared cores); each test checks one
promise of the image:

- ``MUX-READY`` on the serial port once the X session is up, X answers ``xrandr`` through
  the agent (``mux-session``), twm and both halves of spice-vdagent run, and the
  ``debian`` image's key reporter still reports a key;
- the screen is the persona's colour with its name on it (OCR);
- ``mux-clipboard set`` then ``get`` round-trips text (empty before: the positive
  control is the text after);
- a VNC client's SetDesktopSize (RFB message 251) makes the session take the size:
  1024x768, then 1280x800, read back with ``xrandr`` in the guest.
"""

from __future__ import annotations

import asyncio
import re
import struct
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from mux import images
from mux.app.controller import Controller
from mux.cli import frontends
from mux.config.parse import load_config
from mux.guest.cmdline import vnc_path
from mux.guest.hardware import VDAGENT_PORT
from tests.conftest import make_config

pytestmark = [pytest.mark.heavy, pytest.mark.asyncio(loop_scope="module")]

#: Boot to MUX-READY under TCG: about 70 s on a quiet machine here; a busy one takes
#: several times that. Every wait of this module adds up to less than the tier's 1800 s.
READY_S = 600.0
EXEC_S = 120.0  # one command through the agent (X clients start slowly under TCG)
RESIZE_S = 120.0
COLOR = (0xC0, 0x30, 0x30)
SESSION, CLIPBOARD = "/usr/lib/mux/mux-session", "/usr/lib/mux/mux-clipboard"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def desktop(desktop_image: images.BuiltImage, tmp_path_factory: pytest.TempPathFactory
                  ) -> AsyncIterator[Controller]:
    """A controller running persona ``work`` (colour c03030) on the desktop image, at
    ``MUX-READY``."""
    tmp = tmp_path_factory.mktemp("desktop")
    (tmp / "mux.toml").write_text('[[persona]]\nname = "work"\ncolor = "c03030"\nimage = "desktop"\n')
    config = make_config(tmp, *load_config(tmp / "mux.toml").personas)
    controller = Controller(config, frontends=frontends(config), logs_dir=tmp / "logs",
                            progress=lambda m: None)
    async with controller as ctl:
        persona = ctl.persona("work")
        try:
            await persona.serial.wait_for(re.compile(r"MUX-READY work\r?\n"), READY_S, start=0)
        except TimeoutError:
            raise AssertionError(f"no MUX-READY in {READY_S} s; serial:\n{persona.serial.tail()}") from None
        yield ctl


async def run(ctl: Controller, *argv: str, stdin: bytes | None = None) -> tuple[int | None, bytes, bytes]:
    """``argv`` in the guest through its agent: (exit status, stdout, stderr)."""
    if stdin is None:
        result = await ctl.exec("work", argv, EXEC_S)
        return result["exitcode"], result["stdout"], result["stderr"]
    agent = ctl.persona("work").readiness._agent  # the controller's exec takes no stdin
    assert agent is not None
    done = await agent.exec(argv, EXEC_S, stdin=stdin)
    return done.exitcode, done.stdout, done.stderr


async def test_the_recipe_defaults_boot_an_x_session_with_its_agents(desktop: Controller) -> None:
    config = desktop.persona("work").config
    assert (config.vga, config.agent, config.clipboard, config.memory_mb) == ("virtio", True, True, 1024)
    code, out, err = await run(desktop, SESSION, "xrandr", "--current")
    assert code == 0, err
    assert re.search(rb"^Virtual-1 connected", out, re.M), out
    code, _, err = await run(desktop, SESSION)
    assert code == 2 and b"usage" in err
    code, out, err = await run(desktop, "/bin/sh", "-c", "pgrep -x twm; pgrep -x spice-vdagent;"
                               " pgrep -x spice-vdagentd; ls /dev/virtio-ports/")
    assert code == 0, (out, err)
    assert len(out.split(b"\n")) >= 4 and VDAGENT_PORT.encode() in out, out
    persona = desktop.persona("work")  # the debian image's reporters, under X
    mark = persona.serial.end
    for down in (True, False):
        key = {"down": down, "key": {"type": "qcode", "data": "a"}}
        await persona.send_input([{"type": "key", "data": key}])
    await persona.serial.wait_for(re.compile(r"MUX-KEY 30 1\r?\n(.*\n)*MUX-KEY 30 0\r?\n"), 60, mark)


async def test_the_screen_shows_the_persona_colour_and_name(desktop: Controller) -> None:
    from mux.needles.ocr import TextReader

    screen = (await desktop.screenshot("work")).convert("RGB")
    raw = screen.tobytes()
    pixels = Counter(zip(raw[0::3], raw[1::3], raw[2::3], strict=True))
    (rgb, count), top = pixels.most_common(1)[0], pixels.most_common(3)
    assert all(abs(a - b) < 8 for a, b in zip(rgb, COLOR, strict=True)), top
    assert count > 0.4 * screen.width * screen.height, top  # the root window around the xterm
    text = await asyncio.to_thread(TextReader().text, screen, None)
    assert re.search(r"persona work", text), text


async def test_the_clipboard_helper_round_trips_text(desktop: Controller) -> None:
    assert await run(desktop, CLIPBOARD, "get") == (0, b"", b"")  # nobody owns it yet
    text = "héllo from mux\nsecond line\n"
    code, _, err = await run(desktop, CLIPBOARD, "set", stdin=text.encode())
    assert code == 0, err
    assert await run(desktop, CLIPBOARD, "get") == (0, text.encode(), b"")
    assert (await run(desktop, CLIPBOARD, "set", "as an argument"))[0] == 0
    assert await run(desktop, CLIPBOARD, "get") == (0, b"as an argument", b"")
    code, _, err = await run(desktop, CLIPBOARD, "paste")
    assert code == 2 and b"usage" in err


async def set_desktop_size(path: Path, width: int, height: int) -> int:
    """Ask QEMU's VNC server at ``path`` for a ``width`` x ``height`` desktop (RFB
    SetDesktopSize, after SetEncodings with ExtendedDesktopSize, -308); the status QEMU
    answers in its ExtendedDesktopSize rectangle (4: forwarded to the guest)."""
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        assert (await reader.readexactly(12)).startswith(b"RFB 003.")
        writer.write(b"RFB 003.008\n")
        assert 1 in await reader.readexactly((await reader.readexactly(1))[0])
        writer.write(b"\x01")  # security None
        assert struct.unpack(">I", await reader.readexactly(4))[0] == 0
        writer.write(b"\x01")  # ClientInit: shared, the controller's own client stays
        await reader.readexactly(20)  # size, pixel format
        await reader.readexactly(struct.unpack(">I", await reader.readexactly(4))[0])  # name
        writer.write(struct.pack(">BxHi", 2, 1, -308))
        writer.write(struct.pack(">BxHHBx", 251, width, height, 1)
                     + struct.pack(">IHHHHI", 0, 0, 0, width, height, 0))
        await writer.drain()
        while True:  # skip anything else until the ExtendedDesktopSize answer
            kind = (await reader.readexactly(1))[0]
            assert kind == 0, f"unexpected server message {kind}"
            _, rects = struct.unpack(">BH", await reader.readexactly(3))
            for _ in range(rects):
                _x, status, w, h, encoding = struct.unpack(">HHHHi", await reader.readexactly(12))
                if encoding == -308:
                    return status
                raise AssertionError(f"unexpected rectangle encoding {encoding} ({w}x{h})")
    finally:
        writer.close()


async def test_the_session_takes_the_size_a_vnc_client_asks_for(desktop: Controller) -> None:
    persona = desktop.persona("work")
    vnc = vnc_path(persona.runtime_dir, "work")
    for width, height in ((1024, 768), (1280, 800)):
        assert await set_desktop_size(vnc, width, height) == 4  # QEMU forwarded it
        wanted = f"current {width} x {height},".encode()
        deadline = time.monotonic() + RESIZE_S
        while wanted not in (out := (await run(desktop, SESSION, "xrandr", "--current"))[1]):
            assert time.monotonic() < deadline, f"no {wanted!r} in {RESIZE_S} s: {out!r}"
            await asyncio.sleep(1)
