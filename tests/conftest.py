"""Shared fixtures: built guest images, controllers on real QEMU guests (TCG)."""

from __future__ import annotations

import asyncio
import shutil
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

READY_S = 120.0


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


def make_config(tmp_path: Path, *personas: PersonaConfig, **sections: Any) -> Config:
    return Config(mux=MuxSection(accel="tcg", runtime_dir=Path("/tmp"),
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
