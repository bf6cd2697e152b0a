"""Frontends against a stand-in ControlAPI: a MuxError is a refused command, a bug is not.

No guests, no broker: the control socket is real (a unix socket in tmp_path), the MQTT
bridge carries out commands without a connection (its refusals are then only logged).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from mux.app.api import ControlAPI, Event, Subscriber, Switched, Unsubscribe
from mux.app.events import Events
from mux.config import MqttSection
from mux.errors import ClipboardRefused, PersonaError, SeatError, UnknownPersona
from mux.frontends import control
from mux.frontends.mqtt import MqttBridge
from mux.frontends.mqtt_topics import Command


class StandIn:
    """A ControlAPI whose ``switch`` refuses ``garden`` (MuxError) and trips on ``bug``."""

    def __init__(self) -> None:
        self.events = Events()
        self.switched: list[str] = []

    @property
    def names(self) -> Sequence[str]:
        return ("work", "home")

    @property
    def active(self) -> str | None:
        return self.switched[-1] if self.switched else None

    @property
    def guests_outlive_stop(self) -> bool:
        return False

    def status(self) -> dict[str, Any]:
        return {"active": self.active, "personas": [
            {"name": n, "state": "stopped", "leds": None} for n in self.names], "devices": []}

    def devices(self, persona: str) -> list[dict[str, Any]]:
        return []

    @property
    def seats(self) -> Sequence[str]:
        return ("default",)

    @property
    def explicit_seats(self) -> bool:
        return False

    def active_on(self, seat: str) -> str | None:
        if seat != "default":
            raise SeatError(f"unknown seat {seat!r} (seats: default)")
        return self.active

    async def switch(self, target: str, source: str, seat: str | None = None) -> str:
        if target == "bug":
            raise KeyError("a bug in mux")
        if target not in self.names:
            raise UnknownPersona(target, self.names)
        self.switched.append(target)
        self.events.publish(Switched(None, target, source))
        return target

    async def start(self, persona: str) -> None: ...
    async def stop(self, persona: str) -> None: ...
    async def restart(self, persona: str) -> None: ...

    async def exec(self, persona: str, argv: Sequence[str], timeout: float = 60.0) -> dict[str, Any]:
        raise PersonaError(f"persona {persona!r}: the stand-in runs no guest")

    async def set_clock(self, persona: str, seconds: float, timeout: float = 60.0) -> None:
        raise PersonaError(f"persona {persona!r}: the stand-in runs no guest")

    def serial_lines(self, since: float | None = None, follow: bool = False) -> AsyncIterator[dict[str, Any]]:
        raise PersonaError("the stand-in runs no guest")

    async def attach(self, device: str, persona: str, timeout: float | None = None) -> dict[str, Any]:
        return {}

    async def detach(self, device: str, persona: str | None = None,
                     timeout: float | None = None) -> dict[str, Any]:
        return {}

    async def clipboard_copy(self, source: str) -> dict[str, Any]:
        raise ClipboardRefused("copy", "copy: no persona is active")

    async def clipboard_paste(self, source: str) -> dict[str, Any]:
        raise ClipboardRefused("paste", "paste: nothing copied yet")

    async def screenshot(self, persona: str) -> Image.Image:
        return Image.new("RGB", (4, 4))

    def subscribe(self, callback: Subscriber) -> Unsubscribe:
        return self.events.subscribe(callback)


@pytest.mark.pure
def test_the_stand_in_has_the_control_apis_shape() -> None:
    """The stand-in speaks for the controller only while it has the ControlAPI's members
    with their signatures, read from the Protocol in mux/app/api.py: a method added or
    changed there fails here, not as a puzzling frontend test."""
    members = {name for name in vars(ControlAPI) if not name.startswith("_")}
    assert {"names", "switch", "status", "subscribe", "screenshot"} <= members  # the Protocol was read
    for name in sorted(members):
        theirs, ours = vars(ControlAPI)[name], getattr(StandIn, name, None)
        assert ours is not None, f"the stand-in lacks ControlAPI.{name}"
        if isinstance(theirs, property):
            assert isinstance(ours, property), name
            continue
        assert inspect.signature(ours) == inspect.signature(theirs), name
        assert inspect.iscoroutinefunction(ours) == inspect.iscoroutinefunction(theirs), name


@pytest.mark.pure
async def test_control_socket_refuses_mux_errors_and_reports_bugs_as_bugs(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    api, sock = StandIn(), tmp_path / "control.sock"
    async with control.ControlServer(sock).serve(api):
        def ask(message: dict[str, Any]) -> dict[str, Any]:
            return control.request(sock, message)

        assert await asyncio.to_thread(ask, {"cmd": "switch", "persona": "home"}) == {
            "ok": True, "active": "home"}
        assert await asyncio.to_thread(ask, {"cmd": "switch", "persona": "garden"}) == {
            "ok": False, "error": "unknown persona 'garden' (personas: work, home)"}
        with caplog.at_level(logging.ERROR, logger="mux.frontends.control"):
            reply = await asyncio.to_thread(ask, {"cmd": "switch", "persona": "bug"})
        assert reply["ok"] is False and reply["error"].startswith("internal error in mux")
        assert any(r.exc_info and isinstance(r.exc_info[1], KeyError) for r in caplog.records)
        nonsense = await asyncio.to_thread(ask, {"cmd": "nonsense"})
        assert nonsense["ok"] is False and nonsense["error"].startswith("unknown command 'nonsense'")
        assert (await asyncio.to_thread(ask, {"cmd": "status"}))["status"]["active"] == "home"
    assert not sock.exists() or not control._answers(sock)


@pytest.mark.services
async def test_mqtt_commands_are_owned_tasks_and_a_bug_is_logged_not_refused(
        caplog: pytest.LogCaptureFixture) -> None:
    api = StandIn()
    bridge = MqttBridge(MqttSection(url="mqtt://127.0.0.1:1", node_id="t"))  # nobody listens
    heard: list[Event] = []
    api.subscribe(heard.append)
    with caplog.at_level(logging.WARNING, logger="mux.frontends.mqtt"):
        async with bridge.serve(api):
            for target in ("home", "garden", "bug"):  # as _on_message does for a good command
                bridge._spawn(bridge._carry_out(Command("switch", target), "mux/active/set",
                                                target.encode()), f"mqtt:switch:{target}")
            names = {t.get_name() for t in bridge._tasks}
            commands = [t for t in bridge._tasks if t.get_name() != "mqtt"]
            await asyncio.wait(commands)
            assert all(t.exception() is None for t in commands)  # nothing left to be lost
    assert names == {"mqtt", "mqtt:switch:home", "mqtt:switch:garden", "mqtt:switch:bug"}
    assert not bridge._tasks  # the connection loop too ended with serve()
    assert api.switched == ["home"] and heard == [Switched(None, "home", "mqtt")]
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert any("unknown persona 'garden'" in m for m in refusals)
    assert any("internal error in mux" in m for m in refusals)
    bugs = [r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], KeyError)]
    assert len(bugs) == 1 and bugs[0].levelno == logging.ERROR
