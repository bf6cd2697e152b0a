"""Shared fixtures: built guest images, controllers on real QEMU guests (TCG)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mux import images
from mux.app.controller import Controller
from mux.cli import frontends
from mux.config import Config, MuxSection, PersonaConfig
from tests.mqtt_helpers import MOSQUITTO, Broker

pytest_plugins = ["tests.tiers"]

READY_S = 120.0

#: This test session's own directory: runtime directories and the state directory (kept
#: guests) default to it, here and in every ``mux`` the tests start, so every QEMU the
#: session starts has it in its command line (its socket paths) and none of another
#: session's (another engineer's run on the same machine) does.
SESSION_DIR = Path(tempfile.mkdtemp(prefix="muxt-", dir="/tmp"))
os.environ["XDG_RUNTIME_DIR"] = str(SESSION_DIR)
os.environ["XDG_STATE_HOME"] = str(SESSION_DIR / "state")


def session_qemus(markers: list[str]) -> dict[int, str]:
    """The QEMU processes whose command line names one of ``markers`` (pid: command line)."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "qemu-system" in cmdline and any(marker in cmdline for marker in markers):
            found[int(entry.name)] = cmdline
    return found


@pytest.fixture(scope="session", autouse=True)
def no_qemu_left_behind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Fail the run if a QEMU this session started still runs at its end (then kill it).

    Only this session's QEMUs count: their command lines name the session directory or
    pytest's base temporary directory. One still exiting gets 5 s to go.
    """
    yield
    markers = [str(SESSION_DIR), str(tmp_path_factory.getbasetemp())]
    deadline = time.monotonic() + 5
    while (left := session_qemus(markers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(SESSION_DIR, ignore_errors=True)
    assert not left, f"the tests left {len(left)} QEMU process(es) running: {left}"


async def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


def pytest_report_header() -> str:
    return f"guest image cache: {images.cache_root()}"


@pytest.fixture(scope="session")
def console_image() -> images.BuiltImage:
    """The built `console` image (built once; skipped only where QEMU is missing)."""
    if shutil.which("qemu-system-x86_64") is None:
        pytest.fail("qemu-system-x86_64 is missing: run ./bootstrap test")
    return images.build("console", progress=lambda m: None)


@pytest.fixture(scope="session")
def debian_image() -> images.BuiltImage:
    """The built `debian` image (built once, minutes; skipped where it cannot be built here)."""
    from mux.errors import ImageError
    from mux.images import debian

    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 is missing")
    try:
        debian.check_host()
    except ImageError as exc:
        pytest.skip(f"cannot build the debian image here: {exc}")
    image = images.build("debian", progress=lambda m: None)
    assert image.disk is not None
    return image


@pytest.fixture(scope="session")
def desktop_image() -> images.BuiltImage:
    """The built `desktop` image (built once, minutes; skipped where it cannot be built here)."""
    from mux.errors import ImageError
    from mux.images import debian

    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 is missing")
    try:
        debian.check_host("desktop")
    except ImageError as exc:
        pytest.skip(f"cannot build the desktop image here: {exc}")
    image = images.build("desktop", progress=lambda m: None)
    assert image.disk is not None
    return image


@pytest.fixture
def x_display(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An Xvfb server of the test's own, with SDL's x11 driver on it (real windows)."""
    from tests.display.test_window import xvfb

    with xvfb() as name:
        monkeypatch.setenv("DISPLAY", name)
        monkeypatch.setenv("SDL_VIDEODRIVER", "x11")
        yield name


def make_config(tmp_path: Path, *personas: PersonaConfig, **sections: Any) -> Config:
    return Config(mux=MuxSection(accel="tcg", runtime_dir=SESSION_DIR, keep_guests="never",
                                 control_socket=tmp_path / "control.sock"),
                  personas=personas, **sections)


@pytest.fixture
async def controller(tmp_path: Path, console_image: images.BuiltImage
                     ) -> AsyncIterator[Callable[..., Any]]:
    """Factory: ``async with controller(PersonaConfig(...), ...) as ctl``, served as
    ``mux run`` serves it (control socket at ``tmp_path / "control.sock"``, MQTT if set)."""

    def factory(*personas: PersonaConfig, **sections: Any) -> Controller:
        config = make_config(tmp_path, *personas, **sections)
        return Controller(config, frontends=frontends(config), logs_dir=tmp_path / "logs",
                          progress=lambda m: None)

    yield factory


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A real mosquitto on a free loopback port (anonymous; set ``users`` and restart for auth)."""
    if not Path(MOSQUITTO).exists():
        pytest.fail("mosquitto is missing: run ./bootstrap test")
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()
