"""The controller: the root of the ownership tree, and the seam between the parts.

``async with Controller(config, frontends=[...]) as ctl`` makes the private runtime
directory, builds the guest images it needs, runs the long-lived loops (the switcher,
the display, the input sources) in one TaskGroup, serves the frontends it was given
(the control socket, MQTT: ``mux.cli`` chooses them; the controller imports none), and
starts the personas (adopting kept guests, resuming saved ones: :mod:`mux.app.keep`).
Leaving the block stops the frontends, cancels the loops, stops (or saves) every guest
or leaves kept ones running, and removes the runtime directory, in that order.

The controller implements :class:`~mux.app.api.ControlAPI`, the only thing frontends
see. Changes (switches, run states, LEDs, device moves) are published as events on one
hub, :class:`~mux.app.events.Events` (:meth:`Controller.subscribe`).

Input enters through :meth:`Controller.input` whatever its source (evdev device,
scenario step, recording), for one seat (:mod:`mux.input.seats`; a config without
``[[seat]]`` has one): that seat's pure :class:`~mux.input.router.Router` decides which
persona gets what (:mod:`mux.app.routing` carries it out), and only the
:class:`~mux.app.switcher.Switcher` changes who is active where; it applies a switch to the
routers, the seat's screen and its LEDs as one step (see its module docstring for what
happens when a part fails). ``active`` is the first seat's active persona. A hotkey is a
switch, the overview, or an explicit clipboard copy or paste (:mod:`mux.app.clipboard`) on
its own seat: never keys for a guest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from mux.app.api import Frontend, Subscriber, Unsubscribe
from mux.app.attention import Attention
from mux.app.boots import resolve_boots
from mux.app.clipboard import Clipboard, ClipboardLink
from mux.app.devicecalls import DeviceCalls
from mux.app.events import DevicesChanged, Events, LedsChanged, ReadyChanged, StateChanged
from mux.app.guestcalls import GuestCalls
from mux.app.keep import Keeper
from mux.app.routing import InputRouting, seats_for
from mux.app.runtime import check_socket_paths, private_runtime_dir
from mux.app.seatcalls import SeatCalls, open_outputs
from mux.app.sound import Sound
from mux.app.statedir import remember_switches, remembered_active
from mux.app.switcher import Switcher, first_active, start_to_switch
from mux.app.taglog import TaggedLog
from mux.config import Config
from mux.config.schema import KeepGuests
from mux.config.seats import seats_of
from mux.devices.hotplug import DeviceEvent, Hotplug
from mux.display.display import Display
from mux.display.leds import Leds, leds_dict
from mux.errors import ClipboardRefused, MuxError, PersonaError, UnknownPersona
from mux.guest.accel import choose_accel
from mux.guest.cmdline import LaunchOptions
from mux.guest.persona import Persona
from mux.guest.state import RunState
from mux.input.events import InputEvent
from mux.input.hotkeys import COPY, OVERVIEW, PASTE
from mux.input.router import Router
from mux.input.sources import EvdevSource, discover

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


class Controller(GuestCalls, DeviceCalls, SeatCalls):
    """Runs a config's personas and routes input, switches and screenshots among them."""

    def __init__(self, config: Config, *, frontends: Sequence[Frontend] = (),
                 logs_dir: Path | None = None, progress: Progress = print, tablet: bool = False,
                 remember_active: bool = False, keep_guests: KeepGuests = "never",
                 restart_changed: bool = False, quick_boot: bool | None = None) -> None:
        self.config = config  # quick_boot: mux run's [mux] quick_boot (None: saved states untouched)
        self.keeper = Keeper(config, keep_guests, progress, restart_changed, logs_dir, quick_boot)
        self.tablet = tablet  # every persona gets an absolute pointer (usb-tablet): clicking steps
        self.frontends = list(frontends)
        self.logs_dir = logs_dir
        self.progress = progress
        self.events = Events()
        self.taglog = TaggedLog(logs_dir, {pc.name: pc.color for pc in config.personas})  # mux.app.taglog
        self.personas: dict[str, Persona] = {}
        self.seating = seats_for(config)  # who is active on which seat (mux.input.seats)
        self.runtime_dir = Path()
        self.input_sources: list[EvdevSource] = []
        # Devices: follow = "active" ones move before the input does (mux.devices.hotplug).
        self.hotplug = Hotplug.from_config(config, self.personas)
        self.hotplug.listeners.append(self._device_moved)
        self.display = Display(config.names, config.display, self.seating.seats)
        self.display.leds.listeners.append(self._leds_reported)
        self.sound = Sound(config, self.events)  # audio follows the active persona (mux.app.sound)
        self.attention = Attention(config, self.events, self.seating,  # mux.app.attention
                                   lambda: {seat: s.output for seat, s in self.display.screens.items()})
        self.routing = InputRouting(self.seating, self.personas, hotkey=self._hotkey,
                                    input_came=self.attention.input_came)  # mux.app.routing
        self.clipboard = Clipboard([p.name for p in config.personas if p.clipboard], config.clipboard.allow,
                                   self._clipboard_link, self.events, lambda text: self.output.notify(text))
        # The parts are looked up at each switch (not bound now), in the order they apply.
        self.switcher = Switcher(
            self.seating, self.events,
            prepare=lambda old, new: self.hotplug.follow_active(old, new),
            apply_input=lambda plan: self.routing.apply(plan),
            parts=[("display", lambda old, new, seat: self.display.switch(old, new, seat))],
            ready=lambda new: start_to_switch(self.persona(new), config.mux.start_on_switch),
            background=config.mux.background, personas=self.personas)  # [mux] background
        self._remembered = remembered_active(config.source) if remember_active else None
        if remember_active:
            remember_switches(self.events, config.source, self.seating.seats[0])
        self._stack = contextlib.AsyncExitStack()
        self._loops: list[asyncio.Task[None]] = []

    @property
    def active(self) -> str | None:
        """The first seat's active persona (the only seat without ``[[seat]]``), as the
        switcher (its one owner) has it."""
        return self.switcher.active

    @property
    def router(self) -> Router:
        """The first seat's router (read only: switches go through the switcher)."""
        return self.routing.router

    @property
    def names(self) -> tuple[str, ...]:  # the configured persona names, in config order
        return tuple(self.config.names)

    @property
    def guests_outlive_stop(self) -> bool:  # see mux.app.keep
        return self.keeper.kept and self.keeper.mode == "always"

    def subscribe(self, callback: Subscriber) -> Unsubscribe:
        """Hear of every event (:mod:`mux.app.events`) from now on; returns how to stop."""
        return self.events.subscribe(callback)

    # --- lifecycle ------------------------------------------------------------------

    async def __aenter__(self) -> Controller:
        try:
            await self._open()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        self.keeper.clean = kind is None or issubclass(kind, (KeyboardInterrupt, asyncio.CancelledError))
        await self._stack.aclose()

    async def _open(self) -> None:
        stack = self._stack
        self.runtime_dir = stack.enter_context(
            private_runtime_dir(self.config.mux.runtime_dir, keep=self.logs_dir))
        accel = choose_accel(self.config.mux.accel)
        self.progress(f"accelerator: {accel}")
        home = self.keeper.open() or self.runtime_dir  # where QEMU serves its sockets
        check_socket_paths(home, self.config.names)
        boots = await asyncio.to_thread(resolve_boots, self.config, self.keeper.adopting, self.progress)
        for pc in self.config.personas:
            persona = Persona(pc, home, accel, boots.get(pc.name),
                              LaunchOptions(tablet=True) if self.tablet else None, kept=self.keeper.kept)
            self.personas[pc.name] = persona
            self.hotplug.watch(persona)
            persona.listeners.append(self._state_changed)
            persona.readiness.listeners.append(lambda name, up: self.events.publish(ReadyChanged(name, up)))
        stack.enter_context(self.taglog.watching({n: p.serial for n, p in self.personas.items()}))
        stack.push_async_callback(self.keeper.close, self.personas)
        self._open_display()
        group = await stack.enter_async_context(asyncio.TaskGroup())
        stack.callback(self._cancel_loops)  # runs before the group waits for its tasks
        self._loops.append(group.create_task(self.switcher.run(), name="switcher"))
        self._loops.append(group.create_task(self.display.run(), name="display"))
        self._loops += await self.sound.open(self.personas, group)  # before any launch or switch
        attention = self.attention.run(self.personas, self.switch)  # requests on serial lines
        self._loops.append(group.create_task(attention, name="attention"))
        for frontend in self.frontends:  # closed first on exit, before the loops are cancelled
            await stack.enter_async_context(frontend.serve(self))
        taken = await self.keeper.adopt(self.personas)  # kept guests that run on: not started
        await self.start_personas([p.name for p in self.config.personas
                                   if p.autostart and p.name not in taken])
        for seat in seats_of(self.config):
            for spec in discover(list(seat.input)):
                source = EvdevSource(spec)
                self.input_sources.append(source)
                self.add_led_sink(source, seat.name)
                self._loops.append(group.create_task(self.routing.pump(source, seat.name),
                                                     name=f"input:{spec}"))

    def _open_display(self) -> None:
        """Each seat's output (a window routes its keys only when its seat grabs no device)."""
        outputs = open_outputs(self.config, self.display.backbuffer, self.input, self._overview_switch,
                               self.progress, self._stack)
        for seat in seats_of(self.config):
            if outputs[seat.name].kind == "window" and not seat.input:
                for name in self.seating.personas(seat.name):  # the window's mouse is an absolute pointer
                    self.personas[name].options = LaunchOptions(tablet=True)
        first, *others = outputs.items()
        self.display.attach(self.personas, self.runtime_dir, first[1], dict(others))

    # --- events: the parts' own callbacks, published on the one hub -------------------

    def _state_changed(self, persona: Persona) -> None:
        self.events.publish(StateChanged(persona.name, str(persona.state)))

    def _leds_reported(self, name: str, leds: Leds) -> None:
        self.events.publish(LedsChanged(name, leds.caps, leds.num, leds.scroll))

    def _device_moved(self, event: DeviceEvent) -> None:
        self.events.publish(DevicesChanged(event.device, event.source, event.target,
                                           event.persona, event.error))

    def _cancel_loops(self) -> None:
        for task in self._loops:
            task.cancel()

    async def start_personas(self, names: Iterable[str]) -> None:
        """Start personas concurrently; one that fails is reported, the others go on.

        A seat with no active persona gets one: for the first seat, the one active when mux
        last ran (if remembered), else ``[mux] active``, else the first running (config
        order); for the others, the first running one it may show that no seat shows.

        Raises:
            UnknownPersona: a name is not configured (nothing is started then).
        """
        personas = [self.persona(n) for n in names]
        names = [p.name for p in personas]
        results = await asyncio.gather(*(p.start() for p in personas), return_exceptions=True)
        for name, result in zip(names, results, strict=True):
            if isinstance(result, MuxError):
                log.error("%s", result)
            elif isinstance(result, BaseException):
                raise result
            else:
                self.progress(f"persona {name}: running, serial log {self.personas[name].serial.path}")
        for seat in self.seating.seats:  # each seat without a persona gets a free running one
            if self.seating.active(seat) is not None:
                continue
            running = [n for n in self.seating.personas(seat)
                       if self.personas[n].state == RunState.RUNNING and self.seating.seat_of(n) is None]
            first_seat = seat == self.seating.seats[0]
            first = first_active(running, self._remembered if first_seat else None,
                                 self.config.mux.active if first_seat else None)
            if first is not None:
                await self.switch(first, "startup", seat)

    async def start(self, persona: str) -> None:
        """Start ``persona`` (it becomes active if none is); nothing if it runs already.

        Raises:
            UnknownPersona: no such persona.  PersonaError: it did not start.
        """
        await self.start_personas([persona])
        state = self.persona(persona).state
        if state != RunState.RUNNING:
            raise PersonaError(f"persona {persona!r} did not start (state {state})")

    async def stop(self, persona: str) -> None:
        """Stop ``persona``'s guest (it stays active if it was). Raises UnknownPersona,
        PersonaError (QEMU could not be stopped)."""
        await self.persona(persona).stop()

    async def restart(self, persona: str) -> None:
        """Stop, then start ``persona``. Raises as :meth:`stop` and :meth:`start`."""
        await self.stop(persona)
        await self.start(persona)

    # --- switching and input --------------------------------------------------------

    async def switch(self, target: str, source: str, seat: str | None = None,
                     steal: bool | None = None) -> str:
        """Queue a switch of ``seat`` (None: the first) through the switcher and wait for it;
        returns the seat's new active persona. ``steal`` overrides ``[mux] steal``.

        Raises:
            UnknownPersona: no such persona.  SeatError: no such seat, or the seat refuses
            (it may not show the persona, or the persona is active on another seat).
            DeviceError: a device that follows the active persona could not move: the switch
            was not made.  SwitchIncomplete: the switch was made but a part of it failed (see
            :mod:`mux.app.switcher`).
        """
        return await self.switcher.request(target, source, seat, steal)

    async def _overview_switch(self, name: str, seat: str | None = None) -> None:
        """A click on a tile of a window's overview: like a hotkey, a refusal is logged."""
        try:
            await self.switch(name, "overview", seat)
        except MuxError as exc:
            log.error("overview: %s", exc)

    async def input(self, events: Iterable[InputEvent], seat: str | None = None) -> None:
        """Route events from any input source of ``seat`` (None: the first;
        :mod:`mux.app.routing`); a completed hotkey is carried out at once."""
        await self.routing.input(events, seat)

    async def _hotkey(self, target: str, seat: str | None = None) -> None:
        """A completed hotkey: the overview, a clipboard copy or paste, or a switch. A refusal
        is logged (a clipboard one is on the banner too), never raised into the input."""
        try:
            if target == OVERVIEW:
                self.output_of(seat).toggle_overview()
            elif target in (COPY, PASTE):
                await (self.clipboard_copy if target == COPY else self.clipboard_paste)("hotkey", seat)
            else:
                await self.switch(target, "hotkey", seat)
        except ClipboardRefused:
            pass  # the clipboard logged it and put it on the banner
        except MuxError as exc:  # e.g. a device kept the switch back
            log.error("hotkey: %s", exc)

    # --- the clipboard (mux.app.clipboard) --------------------------------------------

    async def clipboard_copy(self, source: str, seat: str | None = None) -> dict[str, Any]:
        """``seat``'s (None: the first's) active persona's clipboard into mux's own, for
        ``source`` (who asked): see :meth:`mux.app.clipboard.Clipboard.copy`. Raises
        ClipboardRefused (the banner's text), SeatError (no such seat)."""
        return await self.clipboard.copy(self.active_on(seat or self.seating.seats[0]), source)

    async def clipboard_paste(self, source: str, seat: str | None = None) -> dict[str, Any]:
        """mux's clipboard to ``seat``'s (None: the first's) active persona, for ``source``:
        see :meth:`mux.app.clipboard.Clipboard.paste`. Raises ClipboardRefused (the banner's
        text), SeatError (no such seat)."""
        return await self.clipboard.paste(self.active_on(seat or self.seating.seats[0]), source)

    def _clipboard_link(self, name: str) -> ClipboardLink | None:
        link = self.display.links.get(name)
        return link.rfb if link is not None and link.connected else None

    # --- output ---------------------------------------------------------------------

    async def screenshot(self, name: str) -> Image.Image:
        """The persona's latest back-buffered frame (a copy), refreshed by a screendump
        first if it is older than ``backbuffer_interval_s`` or there is none yet.

        Raises:
            UnknownPersona: no such persona.  StateError: it is not running and has no frame
            yet.  PersonaError: the screendump failed and there is no frame yet.
        """
        return await self.display.screenshot(self.persona(name).name)

    def leds(self, name: str) -> Leds | None:
        """The LEDs ``name``'s guest last set (None before its first report). Raises
        UnknownPersona."""
        return self.display.leds.persona(self.persona(name).name)

    def status(self) -> dict[str, Any]:
        """What ``mux ctl status`` prints (JSON-ready)."""
        personas = [p.status() for p in self.personas.values()]
        for entry in personas:
            entry["leds"] = leds_dict(self.display.leds.persona(entry["name"]))
            entry["audio"] = self.sound.state(entry["name"])
            entry["background"] = self.switcher.background_of(entry["name"])
        return {
            "active": self.active,
            "runtime_dir": str(self.runtime_dir),
            "personas": personas,
            "devices": self.hotplug.devices(),
            "physical_leds": leds_dict(self.physical_leds),
            "output": self.output.kind,
            "attention": self.attention.status(),
            "clipboard": self.clipboard.status(),  # {"chars", "from"}: never the text
            "seats": self.seat_status(),
        }

    def persona(self, name: str) -> Persona:
        """The persona called ``name``. Raises UnknownPersona: not configured (the message
        names the configured ones)."""
        persona = self.personas.get(name)
        if persona is None:
            raise UnknownPersona(name, self.config.names)
        return persona

