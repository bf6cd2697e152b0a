"""The clipboard over MQTT: two buttons, a ``clipboard`` event, refusals, and never the text.

Pure: the command topics, the buttons' discovery configs (both modes) and the event text.
Services: the bridge against a real mosquitto and a stand-in ControlAPI (the same
stand-in the other frontend tests use, with the clipboard's two calls): a press is one
API call, a refusal one ``error`` and one ``refused`` event. Guests: two real console
personas with ``clipboard = true`` under a controller serving MQTT, a second VNC client
on each playing "the guest": text set on home's QEMU reaches work's after the panel's
copy, a switch and its paste; with ``allow = ["work -> home"]`` the paste is refused and
work's clipboard keeps its text (the positive control in the same test); the text is in
no MQTT message and no log.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from mux.app.api import ClipboardChanged
from mux.app.controller import Controller
from mux.cli import frontends
from mux.config import MqttSection, PersonaConfig
from mux.config.schema import ClipboardSection
from mux.errors import ClipboardRefused
from mux.frontends.mqtt import MqttBridge
from mux.frontends.mqtt_discovery import discovery_messages
from mux.frontends.mqtt_topics import Command, CommandError, clipboard_event_text, parse_command
from tests.conftest import READY_S, make_config, wait_until
from tests.frontends.test_frontends import StandIn
from tests.mqtt_helpers import Broker, Panel

NODE = "clipnode"
BASE = f"mux/{NODE}"
HA = "homeassistant"
SECRET = "hunter2: the clipboard's own text, never on MQTT"


# --- pure: topics, discovery, event text ---------------------------------------------------


@pytest.mark.pure
@pytest.mark.parametrize("payload", [b"PRESS", b"", b"\xff\xfe", b"anything at all"])
def test_the_two_clipboard_topics_take_any_payload(payload: bytes) -> None:
    for action in ("copy", "paste"):
        assert parse_command(f"mux/clipboard/{action}/set", payload, "mux", ["work", "home"]) == Command(
            "clipboard", "", action)


@pytest.mark.pure
def test_other_clipboard_topics_and_huge_payloads_are_refused() -> None:
    cut = parse_command("mux/clipboard/cut/set", b"PRESS", "mux", ["work"])
    assert isinstance(cut, CommandError) and "no such command topic" in cut.error
    assert "clipboard/copy/set, clipboard/paste/set" in cut.error  # the list names them
    bare = parse_command("mux/clipboard/set", b"PRESS", "mux", ["work"])
    assert isinstance(bare, CommandError)
    huge = parse_command("mux/clipboard/copy/set", b"x" * 2000, "mux", ["work"])
    assert isinstance(huge, CommandError) and "payload too large" in huge.error


@pytest.mark.pure
@pytest.mark.parametrize("mode", ["entities", "device"])
def test_the_buttons_are_discovered_in_both_modes(mode: str) -> None:
    messages = discovery_messages(HA, NODE, BASE, ["work", "home"], [], mode)
    if mode == "device":
        ((_, config),) = messages.items()
        buttons = {k: v for k, v in config["cmps"].items() if v["p"] == "button"}
    else:
        buttons = {topic.split("/")[3]: config for topic, config in messages.items()
                   if topic.startswith(f"{HA}/button/")}
    copy, paste = buttons["clipboard_copy"], buttons["clipboard_paste"]
    assert (copy["name"], copy["command_topic"]) == ("Clipboard copy", f"{BASE}/clipboard/copy/set")
    assert (paste["name"], paste["command_topic"]) == ("Clipboard paste", f"{BASE}/clipboard/paste/set")
    assert copy["payload_press"] == paste["payload_press"] == "PRESS"
    for button in (copy, paste):  # the node's, not a persona's: available whenever mux is
        assert button["availability"] == [{"topic": f"{BASE}/availability"}]
        assert parse_command(button["command_topic"], button["payload_press"].encode(), BASE, ["work"]) \
            == Command("clipboard", "", button["command_topic"].split("/")[-2])
    events = next(c for c in (config["cmps"].values() if mode == "device" else messages.values())
                  if c.get("state_topic") == f"{BASE}/event")
    assert "clipboard" in events["event_types"]


@pytest.mark.pure
def test_event_text_names_personas_and_counts_only() -> None:
    assert clipboard_event_text("copy", "home", "home", 42, None) == "copied 42 characters from home"
    assert clipboard_event_text("copy", "home", "home", 1, None) == "copied 1 character from home"
    pasted = clipboard_event_text("paste", "work", "home", 42, None)
    assert pasted == "pasted 42 characters from home into work"
    assert clipboard_event_text("paste", "work", "home", 0, "refused: home → work") == "refused: home → work"


# --- services: the bridge on a real broker, a stand-in controller ----------------------------


class ClipboardStandIn(StandIn):
    """The frontend tests' stand-in with a clipboard: copy takes home's text; a paste is
    refused while ``allow_paste`` is False (as the real one does, an event either way)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str]] = []
        self.allow_paste = False

    async def clipboard_copy(self, source: str) -> dict[str, Any]:
        self.calls.append(("copy", source))
        self.events.publish(ClipboardChanged("copy", "home", "home", len(SECRET), source))
        return {"action": "copy", "persona": "home", "chars": len(SECRET), "from": "home"}

    async def clipboard_paste(self, source: str) -> dict[str, Any]:
        self.calls.append(("paste", source))
        if not self.allow_paste:
            self.events.publish(ClipboardChanged("paste", "work", "home", 0, source, "refused: home → work"))
            raise ClipboardRefused("paste", "home → work")
        self.events.publish(ClipboardChanged("paste", "work", "home", len(SECRET), source))
        return {"action": "paste", "persona": "work", "chars": len(SECRET), "from": "home"}


def events_of(panel: Panel, event_type: str) -> list[dict[str, Any]]:
    heard = [json.loads(p) for p in panel.heard(f"{BASE}/event")]
    return [e for e in heard if e["event_type"] == event_type]


async def wait_events(panel: Panel, event_type: str, count: int) -> list[dict[str, Any]]:
    await panel.wait_for(f"{BASE}/event", lambda p: len(events_of(panel, event_type)) >= count)
    return events_of(panel, event_type)


@pytest.mark.services
async def test_buttons_call_the_api_and_a_refusal_is_an_error_and_events(broker: Broker) -> None:
    api = ClipboardStandIn()
    bridge = MqttBridge(MqttSection(url=broker.url, node_id=NODE))
    async with Panel(broker).connected() as panel, bridge.serve(api):
        await asyncio.wait_for(bridge.connected.wait(), 30)
        await panel.publish(f"{BASE}/clipboard/copy/set", "PRESS")
        (copied,) = await wait_events(panel, "clipboard", 1)
        assert copied == {"event_type": "clipboard", "persona": "home", "source": "mqtt",
                          "text": f"copied {len(SECRET)} characters from home"}
        assert api.calls == [("copy", "mqtt")]
        assert panel.heard(f"{BASE}/error") == []  # positive control for the refusal below

        await panel.publish(f"{BASE}/clipboard/paste/set", b"")  # any payload, even none
        error = json.loads(await panel.wait_for(f"{BASE}/error"))
        assert error == {"topic": f"{BASE}/clipboard/paste/set", "payload": "",
                         "error": "refused: home → work"}
        (refused,) = await wait_events(panel, "refused", 1)
        assert refused["source"] == "mqtt" and "refused: home → work" in refused["text"]
        clipboard = await wait_events(panel, "clipboard", 2)
        assert clipboard[1]["text"] == "refused: home → work"

        api.allow_paste = True
        await panel.publish(f"{BASE}/clipboard/paste/set", "PRESS")
        clipboard = await wait_events(panel, "clipboard", 3)
        assert clipboard[2]["text"] == f"pasted {len(SECRET)} characters from home into work"
        assert api.calls == [("copy", "mqtt"), ("paste", "mqtt"), ("paste", "mqtt")]
        assert len(panel.heard(f"{BASE}/error")) == 1
    assert not any(SECRET.encode() in payload for _, payload, _ in panel.messages)


# --- guests: the panel moves text between two real QEMUs ------------------------------------


@asynccontextmanager
async def served(tmp_path: Path, broker: Broker, allow: tuple[str, ...] | None) -> AsyncIterator[Controller]:
    personas = [PersonaConfig(name, clipboard=True) for name in ("home", "work")]
    config = make_config(tmp_path, *personas, mqtt=MqttSection(url=broker.url, node_id=NODE),
                         clipboard=ClipboardSection(allow=allow))
    async with Controller(config, frontends=frontends(config), logs_dir=tmp_path / "logs",
                          progress=lambda m: None) as ctl:
        yield ctl


async def press(panel: Panel, action: str, count: int) -> dict[str, Any]:
    """Press a clipboard button; the ``count``-th clipboard event, which it caused."""
    await panel.publish(f"{BASE}/clipboard/{action}/set", "PRESS")
    return (await wait_events(panel, "clipboard", count))[count - 1]


@pytest.mark.guests
@pytest.mark.timeout(600)
async def test_the_panel_copies_between_real_guests_and_a_refused_paste_changes_nothing(
        tmp_path: Path, broker: Broker, console_image: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="mux")
    for allow, moves in ((None, True), (("work -> home",), False)):  # the first: the positive control
        directory = tmp_path / ("any" if moves else "work-to-home")
        directory.mkdir()
        await _copy_switch_paste(directory, broker, allow, moves)
    assert not any(SECRET in r.getMessage() for r in caplog.records)
    assert any("copied" in r.getMessage() for r in caplog.records)  # the log did hear of it


async def _copy_switch_paste(directory: Path, broker: Broker, allow: tuple[str, ...] | None,
                             moves: bool) -> None:
    """The panel copies home's text, switches to work and pastes: work's QEMU gets the text
    (``moves``) or keeps its own; the text is in no MQTT message and no log file."""
    async with Panel(broker).connected() as panel, served(directory, broker, allow) as ctl:
        for name in ("home", "work"):
            await ctl.persona(name).readiness.wait(READY_S)
        await ctl.switch("home", "test")
        async with ctl.persona("home").vnc_link() as home_guest, ctl.persona("work").vnc_link() as work_guest:
            before = "work's own text"
            work_guest.set_clipboard(before)
            home_guest.set_clipboard(SECRET)
            link = ctl.display.links["home"].rfb  # mux's own link hears of it from QEMU
            await wait_until(lambda: link.clipboard_available, 30, "home's text announced to mux")
            copied = await press(panel, "copy", 1)
            assert copied["text"] == f"copied {len(SECRET)} characters from home", copied
            await panel.publish(f"{BASE}/active/set", "work")
            await panel.wait_for(f"{BASE}/active", lambda p: p == b"work")
            pasted = await press(panel, "paste", 2)
            if moves:
                assert pasted["text"] == f"pasted {len(SECRET)} characters from home into work"
                async with asyncio.timeout(30):  # QEMU tells work's other client of the new owner
                    while await work_guest.clipboard_text(30) != SECRET:
                        await asyncio.sleep(0.05)
            else:
                assert pasted["text"] == "refused: home → work"
                error = json.loads(await panel.wait_for(f"{BASE}/error"))
                assert error["error"] == "refused: home → work"
                assert ctl.status()["clipboard"] == {"chars": len(SECRET), "from": "home"}  # copied
                # Still work's own: a paste would have made QEMU tell it of a new owner.
                assert await work_guest.clipboard_text(30) == before
    assert not any(SECRET.encode() in payload for _, payload, _ in panel.messages)
    logs = [p for p in (directory / "logs").rglob("*") if p.is_file()]
    assert logs and not any(SECRET.encode() in p.read_bytes() for p in logs)
