#!/usr/bin/env python3
"""Screenshot ``mux demo``'s window from a real run: the README's picture.

    tools/screenshot_demo.py --desktop                  docs/images/desktop-demo.png
    tools/screenshot_demo.py --out /tmp/demo.png        the console demo

It starts an Xvfb server of its own, runs ``mux demo --window`` on it (with ``--desktop``
the desktop personas, built on demand), waits until the window shows the active persona
(the banner in its colour and that colour in the guest's picture), optionally resizes
the window first (``--size``: the guest area, e.g. 1280x800; a desktop guest follows it),
lets the picture settle, and saves the window's pixels, read back from the X server.
Exit code 0 with the file written; 1 (saying why) when the window never showed a persona.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image
from Xlib import X
from Xlib.display import Display

REPO = Path(__file__).resolve().parent.parent
BANNER_H = 32  # mux.display.canvas.BANNER_H
COLORS = {"work": (0xC0, 0x30, 0x30), "home": (0x30, 0x60, 0xC0)}  # the demo's personas


@contextmanager
def xvfb(size: str = "1600x1200") -> Iterator[str]:
    """An Xvfb server on a free display number (it tells which: -displayfd).

    Raises:
        RuntimeError: Xvfb is missing or did not start.
    """
    if shutil.which("Xvfb") is None:
        raise RuntimeError("Xvfb is missing (Debian: apt install xvfb)")
    read, write = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", f"{size}x24",
                             "-nolisten", "tcp"], pass_fds=(write,), stderr=subprocess.DEVNULL)
    os.close(write)
    try:
        with os.fdopen(read) as pipe:
            number = pipe.readline().strip()
        if not number:
            raise RuntimeError(f"Xvfb did not start (exit code {proc.poll()})")
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(10)


def mux_windows(display_name: str) -> list[tuple[int, str, tuple[int, int, int, int]]]:
    """Every mapped top-level X window whose title begins with "mux": (id, title, x, y, w, h)."""
    display = Display(display_name)
    try:
        root = display.screen().root
        net_wm_name = display.intern_atom("_NET_WM_NAME")
        found = []
        for window in root.query_tree().children:
            prop = window.get_full_property(net_wm_name, 0)  # SDL sets this one (WM_NAME is empty)
            raw = prop.value if prop is not None else window.get_wm_name()
            title = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw or "")
            if not title.startswith("mux"):
                continue
            if window.get_attributes().map_state != X.IsViewable:
                continue
            geometry = window.get_geometry()
            origin = window.translate_coords(root, 0, 0)
            found.append((window.id, title, (-origin.x, -origin.y, geometry.width, geometry.height)))
        return found
    finally:
        display.close()


def screenshot(display_name: str) -> Image.Image:
    """The whole X screen (GetImage on the root window)."""
    display = Display(display_name)
    try:
        root = display.screen().root
        geometry = root.get_geometry()
        raw = root.get_image(0, 0, geometry.width, geometry.height, X.ZPixmap, 0xFFFFFFFF)
        return Image.frombytes("RGB", (geometry.width, geometry.height), raw.data, "raw", "BGRX")
    finally:
        display.close()


def near(pixel: object, color: tuple[int, int, int], tolerance: int = 12) -> bool:
    """Whether an RGB(A) pixel is within ``tolerance`` of ``color`` in each channel."""
    return isinstance(pixel, tuple) and all(abs(int(p) - c) <= tolerance
                                            for p, c in zip(pixel[:3], color, strict=True))


def shown_persona(shot: Image.Image, box: tuple[int, int, int, int]) -> str | None:
    """The demo persona the window in ``box`` shows: its banner in the persona's colour and
    that colour somewhere in the guest's picture; None if none is."""
    x, y, width, height = box
    banner = shot.getpixel((x + 3, y + 3))
    for name, color in COLORS.items():
        if not near(banner, color, 0):
            continue
        grid = [(x + width * i // 8, y + BANNER_H + (height - BANNER_H) * j // 8)
                for i in range(1, 8) for j in range(1, 8)]
        if any(near(shot.getpixel(p), color, 20) for p in grid):
            return name
    return None


def resize(display_name: str, window_id: int, width: int, height: int) -> None:
    """Resize an X window (as a person or a window manager would)."""
    display = Display(display_name)
    try:
        display.create_resource_object("window", window_id).configure(width=width, height=height)
        display.sync()
    finally:
        display.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--desktop", action="store_true", help="the desktop demo (mux demo --desktop)")
    parser.add_argument("--out", type=Path, default=REPO / "docs/images/desktop-demo.png",
                        help="where to write the PNG (default: docs/images/desktop-demo.png)")
    parser.add_argument("--size", metavar="WxH", help="resize the window's guest area to this first")
    parser.add_argument("--settle", type=float, default=5.0, metavar="SECONDS",
                        help="how long to let the picture settle once a persona shows (default 5)")
    parser.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS",
                        help="give up when no persona shows within this (default 600)")
    args = parser.parse_args(argv)
    size = tuple(int(n) for n in args.size.lower().split("x")) if args.size else None
    if size is not None and len(size) != 2:
        parser.error(f"--size: not WxH: {args.size!r}")
    with tempfile.TemporaryDirectory(prefix="mux-shot-") as private, xvfb() as display_name:
        env = {**os.environ, "DISPLAY": display_name, "XDG_RUNTIME_DIR": private,
               "XDG_STATE_HOME": os.path.join(private, "state"), "PYTHONPATH": str(REPO)}
        for name in ("WAYLAND_DISPLAY", "SDL_VIDEODRIVER"):
            env.pop(name, None)
        command = [sys.executable, "-m", "mux", "demo", "--window", "--for", str(args.timeout + 120)]
        demo = subprocess.Popen(command + (["--desktop"] if args.desktop else []), env=env)
        try:
            return _shoot(display_name, demo, args.out, size, args.settle, args.timeout)
        finally:
            if demo.poll() is None:
                demo.send_signal(signal.SIGINT)
                try:
                    demo.wait(120)
                except subprocess.TimeoutExpired:
                    demo.kill()
                    demo.wait()


def _shoot(display_name: str, demo: subprocess.Popen[bytes], out: Path, size: tuple[int, ...] | None,
           settle: float, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    resized = size is None
    while time.monotonic() < deadline:
        if demo.poll() is not None:
            print(f"screenshot_demo: mux demo ended (exit code {demo.returncode})", file=sys.stderr)
            return 1
        windows = mux_windows(display_name)
        if windows and not resized and size is not None:
            resize(display_name, windows[0][0], size[0], size[1] + BANNER_H)
            resized = True
        if windows and shown_persona(screenshot(display_name), windows[0][2]):
            time.sleep(settle)
            _, title, (x, y, width, height) = mux_windows(display_name)[0]
            out.parent.mkdir(parents=True, exist_ok=True)
            screenshot(display_name).crop((x, y, x + width, y + height)).save(out)
            print(f"screenshot_demo: {out} ({width}x{height}, {title})")
            return 0
        time.sleep(0.5)
    print(f"screenshot_demo: no persona shown in {timeout:.0f} s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
