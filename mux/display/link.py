"""One persona's VNC link, kept up while the persona runs (:class:`DisplayLink`).

The theory (what the link carries, when it is live, how a live picture is kept whole) is
in :mod:`mux.display.display`, which owns one link per persona and is told, through
:class:`LinkOwner`, of the link's frames, LEDs and reconnections.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import replace
from typing import Protocol

from mux.display.backbuffer import Frame
from mux.display.leds import Leds
from mux.errors import RfbError
from mux.guest.persona import Persona
from mux.guest.state import RunState

log = logging.getLogger(__name__)

RECONNECT_MIN_S = 0.1
RECONNECT_MAX_S = 2.0
FULL_FRAME_S = 10.0
FULL_POLL_S = 30.0  # an inactive link asks for a whole frame this often (see keep_fresh)
_MAX_ASIDE = 32


class LinkOwner(Protocol):
    """What a link tells its display (:class:`mux.display.display.Display`)."""

    interval: float

    def guest_leds(self, name: str, leds: Leds) -> None: ...

    def live_frame(self, name: str, frame: Frame) -> None: ...

    def link_up(self, name: str) -> None: ...


class DisplayLink:
    """One persona's VNC link, kept up while the persona is running."""

    def __init__(self, persona: Persona, display: LinkOwner) -> None:
        self.persona = persona
        self.name = persona.name
        self._display = display
        self.rfb = persona.vnc_link(on_leds=self._on_leds, on_frame=self._on_frame)
        self.connected = False
        self.connections = 0  # how many times the link came up
        self.synced = False  # live frames are whole pictures
        self.last_live = 0.0  # time.monotonic() of the last live frame (or resync asked)
        self.resyncs = 0
        self._aside: list[Frame] = []
        self._resync_task: asyncio.Task[None] | None = None
        self._running = asyncio.Event()
        self._not_running = asyncio.Event()
        persona.listeners.append(self._state_changed)
        self._state_changed(persona)

    @property
    def live(self) -> bool:
        return self.rfb.live

    @property
    def follows(self) -> bool:
        """The back-buffer follows this link: it is up and has a whole picture (a synced
        live one for the active persona)."""
        return self.connected and self.rfb.complete and (self.synced or not self.rfb.live)

    @property
    def resyncing(self) -> bool:
        """Connected and live, waiting for the whole frame asked for at the switch (or
        the reconnection): the back-buffer keeps the link's last picture meanwhile."""
        task = self._resync_task
        return self.connected and task is not None and not task.done()

    def _state_changed(self, persona: Persona) -> None:
        running = persona.state == RunState.RUNNING
        (self._running.set if running else self._running.clear)()
        (self._not_running.clear if running else self._not_running.set)()

    async def run(self) -> None:
        """Connect whenever the persona runs; reconnect on a drop. Runs until cancelled."""
        backoff = RECONNECT_MIN_S
        failures = 0
        while True:
            await self._running.wait()
            try:
                async with self.rfb:
                    self.connected = True
                    self.connections += 1
                    backoff, failures = RECONNECT_MIN_S, 0
                    log.debug("%s: VNC link up (connection %d)", self.name, self.connections)
                    self._display.link_up(self.name)
                    if self.rfb.live:
                        self._resync()
                    await _first((self.rfb.closed(), self._not_running.wait(), self._poll()))
            except RfbError as exc:
                failures += 1
                if failures == 5 and self.persona.state == RunState.RUNNING:  # once per outage
                    log.warning("%s: no VNC link (%s); retrying", self.name, exc)
            finally:
                self.connected = False
                self.synced = False
                self._cancel_resync()
            if self.persona.state == RunState.RUNNING and not failures:
                log.info("%s: VNC link dropped; reconnecting", self.name)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RECONNECT_MAX_S)

    async def _poll(self) -> None:
        """While not live, ask for what changed once every back-buffer interval (a whole
        frame the first time and every :data:`FULL_POLL_S`). Runs until cancelled."""
        full_due = 0.0
        while True:
            if not self.rfb.live:
                full = not self.rfb.complete or time.monotonic() >= full_due
                self.rfb.request(incremental=not full)
                if full:
                    full_due = time.monotonic() + FULL_POLL_S
            await asyncio.sleep(self._display.interval)

    def set_live(self, on: bool) -> None:
        """Stream frames (active persona) or not; LEDs flow either way."""
        if on == self.rfb.live:
            return
        self.rfb.live = on
        if on:
            if self.connected:
                self._resync()
        else:
            self.synced = False
            self._cancel_resync()

    def keep_fresh(self, interval: float) -> None:
        """Ask for a whole frame if the live link has sent nothing for ``interval`` seconds.

        QEMU's VNC server has been seen (QEMU 7.2, after the guest's mode change at boot)
        to stop sending a region's changes as incremental updates while a whole-frame
        request gets them at once; silence is the symptom. One full frame per quiet
        interval heals that and costs little (a static screen only). The picture stays
        whole meanwhile (the link stays synced), so the back-buffer keeps following it.
        """
        if self._resync_task is None and time.monotonic() - self.last_live > interval:
            self.last_live = time.monotonic()
            self.rfb.request(incremental=False)

    def _resync(self) -> None:
        self._cancel_resync()
        self.synced = False
        self.resyncs += 1
        self.last_live = time.monotonic()
        self._aside.clear()
        self._resync_task = asyncio.get_running_loop().create_task(
            self._await_full_frame(), name=f"display-resync:{self.name}")

    def _cancel_resync(self) -> None:
        task, self._resync_task = self._resync_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        self._aside.clear()

    async def _await_full_frame(self) -> None:
        try:
            full = await self.rfb.frame(FULL_FRAME_S)
        except RfbError as exc:
            log.debug("%s: no full frame (%s); the next connection retries", self.name, exc)
            return
        aside, self._aside = self._aside, []
        self.synced = True
        self._resync_task = None
        if not any(frame is full for frame in aside):  # set aside and dropped (too many)
            log.debug("%s: full frame not found among %d set aside", self.name, len(aside))
            return
        self.last_live = time.monotonic()
        # The framebuffer is whole now: the newest frame, all of it (rects: everything).
        self._display.live_frame(self.name, replace(aside[-1], rects=None))

    def _on_leds(self, leds: Leds) -> None:
        self._display.guest_leds(self.name, leds)

    def _on_frame(self, frame: Frame) -> None:
        if not self.rfb.live:
            if self.rfb.complete:  # an inactive persona's change: its back-buffer
                self._display.live_frame(self.name, frame)
            return
        if self.synced:
            self.last_live = time.monotonic()
            self._display.live_frame(self.name, frame)
        elif len(self._aside) < _MAX_ASIDE:
            self._aside.append(frame)


async def _first(waits: tuple[Awaitable[object], ...]) -> None:
    """Wait until the first of these returns; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
