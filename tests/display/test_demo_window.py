"""``mux demo`` shows itself: a window when a display is reachable, headless when asked or
when there is none (one line says which); and the README's screenshot tool, on a real run.

Each test runs ``mux demo`` as a subprocess on a private Xvfb server and reads the X
screen back (python-xlib), as a person would look at it.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from PIL import Image

from tests.display.test_window import xvfb

pytestmark = pytest.mark.guests

REPO = Path(__file__).resolve().parents[2]
WORK, HOME = (0xC0, 0x30, 0x30), (0x30, 0x60, 0xC0)


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("screenshot_demo", REPO / "tools/screenshot_demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


shot_tool = _tool()


@contextmanager
def demo(*flags: str, display: str | None) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """``mux demo FLAGS`` running with (or without) ``DISPLAY``; its output goes to a file.
    Stopped with SIGINT (as Ctrl-C) at the end."""
    with tempfile.TemporaryDirectory(prefix="mux-demo-") as private:  # short: sockets live here
        env = {**os.environ, "XDG_RUNTIME_DIR": private, "XDG_STATE_HOME": os.path.join(private, "state")}
        for name in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"):
            env.pop(name, None)
        if display is not None:
            env["DISPLAY"] = display
        log = Path(private) / "demo.log"
        with log.open("w") as out:
            proc = subprocess.Popen([sys.executable, "-m", "mux", "demo", "--for", "900", *flags], env=env,
                                    stdout=out, stderr=subprocess.STDOUT, text=True, cwd=REPO)
        try:
            yield proc, log
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(120)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def wait_for(condition: Any, proc: subprocess.Popen[str], log: Path, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        if (value := condition()):
            return value
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{what}: not seen (mux demo exit code {proc.poll()}):\n{log.read_text()}")
        time.sleep(0.3)


def test_mux_demo_opens_its_window_and_headless_does_not(console_image: Any) -> None:
    with xvfb() as display:
        with demo(display=display) as (proc, log):
            def shows_work() -> bool:
                windows = shot_tool.mux_windows(display)
                return bool(windows) and shot_tool.shown_persona(shot_tool.screenshot(display),
                                                                  windows[0][2]) == "work"

            wait_for(shows_work, proc, log, 300, "the window showing work under its banner")
            assert shot_tool.mux_windows(display)[0][1] == "mux: work"  # the window's title
            assert f"output: window on DISPLAY={display}" in log.read_text()
        assert proc.returncode == 0
        with demo("--headless", display=display) as (proc, log):
            # the window would open before the personas start; they run, and it did not
            wait_for(lambda: "active work" in log.read_text(), proc, log, 300, "the demo running")
            assert shot_tool.mux_windows(display) == []  # the same check saw the window above
            assert 'output: headless (output = "headless")' in log.read_text()
        assert proc.returncode == 0


def test_mux_demo_without_a_display_says_it_runs_headless(console_image: Any) -> None:
    with demo(display=None) as (proc, log):
        wait_for(lambda: "active work" in log.read_text(), proc, log, 300, "the demo running")
        assert "output: headless (no DISPLAY or WAYLAND_DISPLAY)" in log.read_text()
        assert "output: window" not in log.read_text()


def test_the_screenshot_tool_saves_the_demo_window(console_image: Any, tmp_path: Path) -> None:
    """``tools/screenshot_demo.py`` (the README's picture; ``--desktop`` for the desktop
    demo) on the console demo: the PNG is the window, banner and persona."""
    out = tmp_path / "demo.png"
    result = subprocess.run([sys.executable, str(REPO / "tools/screenshot_demo.py"), "--out", str(out),
                             "--settle", "1", "--timeout", "300"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    image = Image.open(out).convert("RGB")
    assert image.size == (1024, 800)  # the window: 1024x768 under the 32-pixel banner
    assert image.getpixel((3, 3)) == WORK  # the banner, in work's colour
    assert shot_tool.near(image.getpixel((900, 700)), WORK, 20)  # work's own screen
    assert shot_tool.shown_persona(image, (0, 0, *image.size)) == "work"
