"""The controller: the root of the ownership tree, and the seam between the parts.

``async with Controller(config) as ctl`` makes the private runtime directory, builds
the guest images it needs, starts the personas, and runs the long-lived loops (the
switcher, the control socket) in one TaskGroup. Leaving the block cancels the loops,
stops every guest, and removes the runtime directory, in that order.

Input enters through :meth:`Controller.input` whatever its source (evdev device,
scenario step, recording): the pure :class:`~mux.input.router.Router` decides which persona
gets what, and only the switcher changes who is active.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from PIL import Image

from mux import images
from mux.app.runtime import private_runtime_dir
from mux.app.switcher import Switcher
from mux.config import Config
from mux.devices.hotplug import DeviceListener, Hotplug
from mux.display.display import Display
from mux.display.leds import Leds, LedSink, leds_dict
from mux.display.output import Output, open_output
from mux.errors import MuxError, PersonaError
from mux.guest.accel import choose_accel
from mux.guest.cmdline import LaunchOptions
from mux.guest.persona import Persona
from mux.guest.state import RunState
from mux.input.events import InputEvent
from mux.input.hotkeys import OVERVIEW
from mux.input.router import Router, Send, SwitchRequest, Unmapped
from mux.input.sources import EvdevSource, InputSource, discover

if TYPE_CHECKING:
    from mux.frontends.mqtt import MqttBridge

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
SwitchHook = Callable[[str | None, str], Awaitable[None]]


class Controller:
    """Runs a config's personas and routes input, switches and screenshots among them."""

    def __init__(self, config: Config, *, control_socket: Path | None = None,
                 logs_dir: Path | None = None, progress: Progress = print) -> None:
        self.config = config
        self.control_socket = control_socket
        self.logs_dir = logs_dir
        self.progress = progress
        self.personas: dict[str, Persona] = {}
        self.router = Router(config.names, **_router_options(config))
        self.switcher = Switcher(config.names, self._apply_switch)
        self.runtime_dir = Path()
        self._route_lock = asyncio.Lock()
        self.input_sources: list[EvdevSource] = []
        self.mqtt: MqttBridge | None = None
        self.before_switch: list[SwitchHook] = []
        self.after_switch: list[SwitchHook] = []
        # Devices: follow = "active" ones move before the input does (mux.devices.hotplug).
        self.hotplug = Hotplug.from_config(config, self.personas)
        self.before_switch.append(self.hotplug.follow_active)
        self.device_listeners: list[DeviceListener] = self.hotplug.listeners
        self.display = Display(config.names, config.display)
        self._unmapped_reported: set[int] = set()
        self._stack = contextlib.AsyncExitStack()
        self._loops: list[asyncio.Task[None]] = []

    @property
    def active(self) -> str | None:
        return self.switcher.active

    # --- lifecycle ------------------------------------------------------------------

    async def __aenter__(self) -> Controller:
        try:
            await self._open()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def _open(self) -> None:
        stack = self._stack
        self.runtime_dir = stack.enter_context(
            private_runtime_dir(self.config.mux.runtime_dir, keep=self.logs_dir))
        accel = choose_accel(self.config.mux.accel)
        self.progress(f"accelerator: {accel}")
        boots = await asyncio.to_thread(self._resolve_boots)
        for pc in self.config.personas:
            persona = Persona(pc, self.runtime_dir, accel, boots.get(pc.name))
            self.personas[pc.name] = persona
            self.hotplug.watch(persona)
        stack.push_async_callback(self._close_personas)
        self._open_display()
        group = await stack.enter_async_context(asyncio.TaskGroup())
        stack.callback(self._cancel_loops)  # runs before the group waits for its tasks
        self._loops.append(group.create_task(self.switcher.run(), name="switcher"))
        self._loops.append(group.create_task(self.display.run(), name="display"))
        socket_path = self.control_socket or self.runtime_dir / "control.sock"
        from mux.frontends.control import serve_control

        server = await serve_control(self, socket_path)
        stack.push_async_callback(_close_server, server)
        self.control_path = socket_path
        await self.start_personas([p.name for p in self.config.personas if p.autostart])
        if self.config.mqtt is not None:
            from mux.frontends.mqtt import MqttBridge

            self.mqtt = MqttBridge(self, self.config.mqtt)
            self.switcher.listeners.append(self.mqtt.notify)
            self.device_listeners.append(self.mqtt.notify)
            self.display.leds.listeners.append(self.mqtt.notify)
            for persona in self.personas.values():
                persona.listeners.append(self.mqtt.notify)
            self._loops.append(group.create_task(self.mqtt.run(), name="mqtt"))
        for spec in discover(list(self.config.input.devices)):
            source = EvdevSource(spec)
            self.input_sources.append(source)
            self.add_led_sink(source)
            self._loops.append(group.create_task(self._pump(source), name=f"input:{spec}"))

    def _open_display(self) -> None:
        """The output (a window routes its keys only when no [input] devices are set)."""
        colors = {pc.name: pc.color for pc in self.config.personas}
        output = open_output(self.config.display, colors, self.display.backbuffer,
                             on_input=None if self.config.input.devices else self.input,
                             on_switch=lambda name: self.switch(name, "overview"))
        self._stack.callback(output.close)
        if output.kind == "window" and not self.config.input.devices:
            for persona in self.personas.values():
                persona.options = LaunchOptions(tablet=True)  # the window's mouse is an absolute pointer
        self.display.attach(self.personas, self.runtime_dir, output)
        self.after_switch.append(self.display.switch)

    async def _pump(self, source: InputSource) -> None:
        """Feed one input source's frames to the router until cancelled."""
        batches = cast(AsyncGenerator[list[InputEvent], None], source.batches())
        async with contextlib.aclosing(batches) as frames:
            async for frame in frames:
                await self.input(frame)

    async def _close_personas(self) -> None:
        """Stop every guest at once: each may wait seconds for its guest to power down."""
        results = await asyncio.gather(*(p.close() for p in self.personas.values()),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                log.error("stopping a persona failed: %r", result)

    def _cancel_loops(self) -> None:
        for task in self._loops:
            task.cancel()

    def _resolve_boots(self) -> dict[str, tuple[Path, Path | None, str]]:
        boots: dict[str, tuple[Path, Path | None, str]] = {}
        for pc in self.config.personas:
            if pc.image is not None:
                built = images.find_built(pc.image)
                if built is None:
                    self.progress(f"building guest image {pc.image!r} (first run only)")
                    built = images.build(pc.image, progress=self.progress)
                boots[pc.name] = (built.kernel, built.initrd, built.append)
        return boots

    async def start_personas(self, names: Iterable[str]) -> None:
        """Start personas concurrently; one that fails is reported, the others go on.

        The first persona that starts becomes active if none is.
        """
        names = list(names)
        results = await asyncio.gather(*(self.personas[n].start() for n in names),
                                       return_exceptions=True)
        for name, result in zip(names, results, strict=True):
            if isinstance(result, MuxError):
                log.error("%s", result)
            elif isinstance(result, BaseException):
                raise result
            else:
                self.progress(f"persona {name}: running, serial log {self.personas[name].serial.path}")
        if self.active is None:
            running = [n for n in self.config.names if self.personas[n].state == RunState.RUNNING]
            if running:
                await self.switch(running[0], "startup")

    # --- switching and input --------------------------------------------------------

    async def switch(self, target: str, source: str) -> str:
        """Queue a switch through the switcher and wait for it; returns the new active name.

        Raises:
            ValueError: no such persona.
        """
        return await self.switcher.request(target, source)

    async def _apply_switch(self, old: str | None, new: str) -> None:
        """The switch itself, in order: ``before_switch`` hooks (which may refuse by
        raising, e.g. a device the old guest has not released yet), input (the old
        persona's held keys released, new input routed to the new one), then
        ``after_switch`` hooks (display, LEDs, MQTT)."""
        for hook in self.before_switch:
            await hook(old, new)
        async with self._route_lock:
            actions = self.router.switch(new)
            await self._dispatch(actions)
        for hook in self.after_switch:
            await hook(old, new)

    async def input(self, events: Iterable[InputEvent]) -> None:
        """Route events from any input source; a completed hotkey switches at once."""
        for event in events:
            async with self._route_lock:
                actions = self.router.feed(event)
                await self._dispatch(actions)
            for action in actions:
                if isinstance(action, SwitchRequest) and action.target == OVERVIEW:
                    self.output.toggle_overview()
                elif isinstance(action, SwitchRequest):
                    try:
                        await self.switch(action.target, "hotkey")
                    except (ValueError, MuxError) as exc:  # MuxError: a device kept the switch back
                        log.error("hotkey: %s", exc)

    async def _dispatch(self, actions: list[Any]) -> None:
        for action in actions:
            if isinstance(action, Send):
                persona = self.personas[action.persona]
                if persona.state != RunState.RUNNING:
                    log.debug("%s is %s; dropped %d input events", persona.name, persona.state,
                              len(action.events))
                    continue
                try:
                    await persona.send_input(action.events)
                except PersonaError as exc:
                    log.warning("%s", exc)
            elif isinstance(action, Unmapped) and action.code not in self._unmapped_reported:
                self._unmapped_reported.add(action.code)
                log.warning("key code %d has no QEMU key code; it is not sent", action.code)

    # --- output ---------------------------------------------------------------------

    async def screenshot(self, name: str) -> Image.Image:
        """The persona's latest back-buffered frame (a copy), refreshed by a screendump
        first if it is older than ``backbuffer_interval_s`` or there is none yet.

        Raises:
            KeyError: no such persona.  StateError: it is not running and has no frame
            yet.  PersonaError: the screendump failed and there is no frame yet.
        """
        return await self.display.screenshot(self.persona(name).name)

    @property
    def output(self) -> Output:
        """The current output (``HeadlessOutput`` or ``WindowOutput``)."""
        return self.display.output

    def leds(self, name: str) -> Leds | None:
        """The LEDs ``name``'s guest last set (None before its first report).

        Raises:
            KeyError: no such persona.
        """
        return self.display.leds.persona(name)

    @property
    def physical_leds(self) -> Leds | None:
        """What mux last wrote to the physical keyboards (LED sinks); None before any write."""
        return self.display.leds.physical

    def add_led_sink(self, sink: LedSink) -> None:
        """Show the active persona's LEDs on ``sink`` too (``set_leds(caps, num, scroll)``)."""
        self.display.leds.add_sink(sink)

    def status(self) -> dict[str, Any]:
        personas = [p.status() for p in self.personas.values()]
        for entry in personas:
            entry["leds"] = leds_dict(self.display.leds.persona(entry["name"]))
        return {
            "active": self.active,
            "runtime_dir": str(self.runtime_dir),
            "personas": personas,
            "devices": self.hotplug.devices(),
            "physical_leds": leds_dict(self.physical_leds),
            "output": self.output.kind,
        }

    # --- devices (mux.devices.hotplug) --------------------------------------------------------

    async def attach(self, device: str, persona: str, timeout: float | None = None) -> dict[str, Any]:
        """Move ``device`` to ``persona`` (QMP hotplug if it runs); returns the device's status.

        Raises:
            DeviceError: unknown device or persona, or the move failed; the message says where
                the device is now (where it was, unless even putting it back failed).
            DeviceTimeout: the guest holding it did not release it; it stays there.
        """
        return await self.hotplug.attach(device, persona, timeout)

    async def detach(self, device: str, persona: str | None = None,
                     timeout: float | None = None) -> dict[str, Any]:
        """Unplug ``device`` from its persona (which must be ``persona`` if given).

        Raises:
            DeviceError: unknown device, attached elsewhere, or QEMU refused the unplug.
            DeviceTimeout: the guest did not release it; it stays attached.
        """
        return await self.hotplug.detach(device, persona, timeout)

    def devices(self, persona: str) -> list[dict[str, Any]]:
        """The devices ``persona`` holds now, as JSON-ready dicts. Raises KeyError if unknown."""
        return self.hotplug.devices(self.persona(persona).name)

    def persona(self, name: str) -> Persona:
        """Raises KeyError naming the configured personas."""
        try:
            return self.personas[name]
        except KeyError:
            raise KeyError(f"unknown persona {name!r} (personas: {', '.join(self.personas)})") from None


async def _close_server(server: asyncio.AbstractServer) -> None:
    server.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(server.wait_closed(), 2)


def _router_options(config: Config) -> dict[str, Any]:
    options: dict[str, Any] = {"autorepeat": config.input.autorepeat}
    if config.input.hotkeys is not None:
        options["hotkeys"] = config.input.hotkeys
    return options

