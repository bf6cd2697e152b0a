"""The test tiers (CONTRIBUTING.md): every test is ``pure``, ``services``, ``guests`` or ``heavy``.

- ``pure``: no process, no network; seconds. Held to it: a pure test that starts a
  process or connects an inet socket fails, naming what it tried.
- ``services``: mosquitto, Xvfb, PulseAudio, tesseract, mux's own command line; no guest.
- ``guests``: the built-in console and palette images under TCG.
- ``heavy``: the ``debian`` and ``desktop`` images, fresh machines, floods, many boots; root or network.

A test without exactly one tier is a collection error (a module's ``pytestmark`` or
the test's own mark, not both).
Each tier has its own timeout (a test's own ``timeout`` mark wins), and the guest
images the selected tests need are built before the first test starts, outside every
timeout, with their time printed.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

TIERS = ("pure", "services", "guests", "heavy")

#: Seconds per test, fixture set-up included (pytest-timeout), by tier: a net for hangs, not a
#: speed limit (a fuzz test under coverage on a loaded machine takes minutes).
TIMEOUT_S = {"pure": 300, "services": 600, "guests": 600, "heavy": 1800}

#: Fixtures that need a built image, and the image they need.
IMAGE_FIXTURES = {"console_image": "console", "controller": "console", "debian_image": "debian",
                  "desktop_image": "desktop"}


def pytest_configure(config: pytest.Config) -> None:
    for tier in TIERS:
        config.addinivalue_line("markers", f"{tier}: the {tier} test tier (tests/tiers.py)")


def tier_of(item: pytest.Item) -> str:
    names = sorted({mark.name for mark in item.iter_markers() if mark.name in TIERS})
    if len(names) != 1:
        raise pytest.UsageError(
            f"{item.nodeid}: a test needs exactly one tier mark of {', '.join(TIERS)}"
            f" (tests/tiers.py); it has {names or 'none'}")
    return names[0]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        tier = tier_of(item)
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(TIMEOUT_S[tier]))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build the images the selected tests need, before any test's timeout runs."""
    if session.config.option.collectonly:
        return
    needed = sorted({image for item in session.items
                     for fixture, image in IMAGE_FIXTURES.items()
                     if fixture in getattr(item, "fixturenames", ())})
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    for name in needed:
        started = time.monotonic()
        try:
            built = build_image(name)
        except Exception as exc:  # the fixture reports it again, in the tests that need it
            message = f"could not build the {name} image before the tests: {exc}"
        else:
            message = (f"{name} image ready in {time.monotonic() - started:.1f} s"
                       f" ({built})" if built else f"{name} image: cannot be built here")
        if reporter is not None:
            reporter.write_line(f"tiers: {message}")


def build_image(name: str) -> str:
    """Build ``name`` into the cache (the session fixtures then find it built)."""
    from mux import images

    if images.load_recipe(name).kind == "disk":  # debian, desktop: root and mmdebstrap
        from mux.errors import ImageError
        from mux.images import debian

        try:
            debian.check_host(name)
        except ImageError:
            return ""
    image = images.build(name, progress=lambda m: None)
    return str(image.disk or image.kernel)


class NotPure(AssertionError):
    """A ``pure`` test reached for a process or the network."""


@pytest.fixture(autouse=True)
def pure_means_pure(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
                    ) -> Iterator[None]:
    """In a ``pure`` test, starting a process or connecting an inet socket fails."""
    if request.node.get_closest_marker("pure") is None:
        yield
        return

    def no_process(self: Any, args: Any, *rest: Any, **kwargs: Any) -> None:
        raise NotPure(f"a pure test started a process: {args!r}; mark it services")

    real_connect = socket.socket.connect

    def no_network(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise NotPure(f"a pure test connected to {address!r}; mark it services")
        real_connect(self, address)

    monkeypatch.setattr(subprocess.Popen, "__init__", no_process)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    yield
