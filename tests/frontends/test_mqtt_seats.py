"""MQTT and Home Assistant per seat (issue 27): ``seat/<seat>/active`` and its ``/set``, a
select per seat, and nothing new at all for a config without ``[[seat]]`` tables.

The pure half drives :mod:`mux.frontends.mqtt_seats` and the discovery code with lists; the
live half runs a real Controller with two headless seats against a real mosquitto, as
tests/frontends/test_mqtt.py does for the single seat.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from mux.config import MqttSection, PersonaConfig
from mux.config.schema import SeatSection
from mux.frontends.mqtt_discovery import discovery_messages, entities, migration_plan
from mux.frontends.mqtt_seats import (
    SeatView,
    parse_seat_command,
    seat_state_messages,
    seat_views,
    stale_seat_state,
)
from mux.frontends.mqtt_topics import Command, CommandError, event_message
from tests.frontends.test_discovery import check_entity
from tests.mqtt_helpers import Broker, Panel

PERSONAS = ["work", "home", "lab"]
SEATS = [SeatView("one", "work", ("work", "home", "lab")), SeatView("two", "home", ("home", "lab"))]
HA = "homeassistant"
NODE = "deskpc"
BASE = f"mux/{NODE}"


# --- pure: commands, state, discovery ---------------------------------------------------------


@pytest.mark.parametrize(("topic", "payload", "words"), [
    ("mux/seat/two/active/set", b"garden", "unknown persona 'garden'"),
    ("mux/seat/two/active/set", b"work", "seat 'two' may not show persona 'work' (it may show: home, lab"),
    ("mux/seat/three/active/set", b"home", "unknown seat 'three' in topic (seats: one, two)"),
    ("mux/seat/two/active/set", b"", "empty payload"),
    ("mux/seat/two/active/set", b"  \n", "empty payload"),
    ("mux/seat/two/active/set", b"h" * 1025, "payload too large (1025 bytes; at most 1024)"),
    ("mux/seat/two/active/set", b"\xc3\x28", "not valid UTF-8"),
    ("mux/seat/two/set", b"home", "no such seat command topic (seat commands: seat/<seat>/active/set)"),
    ("mux/seat/two/active/extra/set", b"home", "no such seat command topic"),
])
@pytest.mark.pure
def test_bad_seat_commands_are_refused_with_a_reason(topic: str, payload: bytes, words: str) -> None:
    result = parse_seat_command(topic, payload, "mux", SEATS, PERSONAS)
    assert isinstance(result, CommandError), result
    assert words in result.error and result.topic == topic
    assert len(result.payload) <= 203  # the payload shown back is bounded too
    assert json.loads(result.to_json())["error"] == result.error


@pytest.mark.pure
def test_good_seat_commands_switch_one_seat() -> None:
    assert parse_seat_command("mux/seat/two/active/set", b"lab\n", "mux", SEATS, PERSONAS) == \
        Command("switch", "lab", seat="two")
    for walk in ("next", "previous"):
        assert parse_seat_command("mux/seat/one/active/set", walk.encode(), "mux", SEATS, PERSONAS) == \
            Command("switch", walk, seat="one")
    # the seat's own persona list decides, not the node's
    assert parse_seat_command("mux/seat/one/active/set", b"work", "mux", SEATS, PERSONAS) == \
        Command("switch", "work", seat="one")


@pytest.mark.pure
def test_seat_state_follows_each_seat_and_active_the_first() -> None:
    status = {"active": "work", "seats": [
        {"name": "one", "active": "work", "personas": ["work", "home", "lab"], "output": "headless"},
        {"name": "two", "active": None, "personas": ["home", "lab"], "output": "headless"}]}
    views = seat_views(status, True, PERSONAS)
    assert views == [SeatView("one", "work", ("work", "home", "lab")), SeatView("two", None, ("home", "lab"))]
    assert seat_state_messages("mux", views) == {
        "mux/active": "work", "mux/seat/one/active": "work", "mux/seat/two/active": "none"}
    robbed = [dataclasses.replace(views[0], active=None), views[1]]  # [mux] steal took one's persona
    assert seat_state_messages("mux", robbed)["mux/active"] == "none"
    # a seat without a persona list may show every persona
    assert seat_views({"seats": [{"name": "one", "active": None}]}, True, PERSONAS)[0].personas == \
        tuple(PERSONAS)
    implicit = {"active": "work", "seats": [{"name": "default", "active": "work", "personas": PERSONAS}]}
    assert seat_views(implicit, False, PERSONAS) == []
    assert seat_state_messages("mux", []) == {}


@pytest.mark.pure
def test_stale_seat_state_is_what_no_configured_seat_publishes() -> None:
    assert stale_seat_state("mux/seat/gone/active", "mux", SEATS)
    assert stale_seat_state("mux/seat/one/active", "mux", [])  # no [[seat]] now: every seat is gone
    assert not stale_seat_state("mux/seat/one/active", "mux", SEATS)
    assert not stale_seat_state("mux/seat/gone/active/set", "mux", SEATS)  # commands are not state
    assert not stale_seat_state("mux/persona/gone/state", "mux", SEATS)
    assert not stale_seat_state("other/seat/gone/active", "mux", SEATS)


@pytest.mark.pure
def test_a_select_per_seat_in_both_discovery_modes_and_none_without_seats() -> None:
    seats = {seat.name: seat.personas for seat in SEATS}
    plain = discovery_messages(HA, "desk", "mux", PERSONAS)
    with_seats = discovery_messages(HA, "desk", "mux", PERSONAS, seats=seats)
    assert entities("desk", "mux", PERSONAS) == entities("desk", "mux", PERSONAS, (), {})
    assert set(with_seats) - set(plain) == {f"{HA}/select/desk/seat_one_active/config",
                                            f"{HA}/select/desk/seat_two_active/config"}
    for name, personas in seats.items():
        topic = f"{HA}/select/desk/seat_{name}_active/config"
        config = with_seats[topic]
        check_entity("select", config, topic)  # only keys Home Assistant documents
        assert config["options"] == list(personas)
        assert (config["state_topic"], config["command_topic"]) == (f"mux/seat/{name}/active",
                                                                     f"mux/seat/{name}/active/set")
        assert config["unique_id"] == f"mux_desk_seat_{name}_active"
    unique_ids = [c["unique_id"] for c in with_seats.values()]
    assert len(set(unique_ids)) == len(unique_ids)
    (device,) = discovery_messages(HA, "desk", "mux", PERSONAS, mode="device", seats=seats).values()
    assert device["cmps"]["seat_two_active"]["p"] == "select"
    assert device["cmps"]["seat_two_active"]["options"] == ["home", "lab"]
    # a seat left the config: its select is cleared like a persona's entities
    retained = {t: json.dumps(c).encode() for t, c in with_seats.items()}
    fewer = discovery_messages(HA, "desk", "mux", PERSONAS, seats={"one": PERSONAS})
    _, clear = migration_plan(retained, fewer, HA, "desk")
    assert clear == [f"{HA}/select/desk/seat_two_active/config"]


@pytest.mark.pure
def test_switched_events_name_their_seat_only_with_seats() -> None:
    assert json.loads(event_message("switched", "lab", "mqtt", "t", "two")) == {
        "event_type": "switched", "persona": "lab", "source": "mqtt", "text": "t", "seat": "two"}
    assert "seat" not in json.loads(event_message("switched", "lab", "mqtt", "t"))


@pytest.mark.pure
def test_the_reference_documents_the_seat_topics_and_select() -> None:
    from mux.reference.mqtt import code_topics, topics
    from mux.reference.mqtt import entities as described

    assert code_topics()["seat/<seat>/active"] == "out"
    assert code_topics()["seat/<seat>/active/set"] == "in"
    assert {t for t, _, _ in topics()} >= {"seat/<seat>/active", "seat/<seat>/active/set"}
    (select,) = [e for e in described() if e["object_id"] == "seat_<seat>_active"]
    assert select["component"] == "select" and select["what"]


# --- live: a real Controller with two headless seats, a real mosquitto -----------------------


def mqtt_section(broker: Broker, **extra: Any) -> MqttSection:
    return MqttSection(url=broker.url, node_id=NODE, screenshot_interval_s=60.0, **extra)


TWO_SEATS = (SeatSection("one"), SeatSection("two", personas=("home", "lab")))


@asynccontextmanager
async def controller(tmp_path: Path, broker: Broker, *personas: PersonaConfig,
                     seats: tuple[SeatSection, ...] = TWO_SEATS, steal: bool = False,
                     **mqtt: Any) -> AsyncIterator[Any]:
    from mux.app.controller import Controller
    from mux.cli import frontends
    from tests.conftest import make_config

    config = make_config(tmp_path, *personas, seats=seats, mqtt=mqtt_section(broker, **mqtt))
    config = dataclasses.replace(config, mux=dataclasses.replace(config.mux, steal=steal))
    async with Controller(config, frontends=frontends(config), logs_dir=tmp_path / "logs",
                          progress=lambda m: None) as ctl:
        yield ctl


def heard_since(panel: Panel, mark: int, topic: str) -> list[bytes]:
    return [p for t, p, _ in panel.messages[mark:] if t == topic]


def errors_since(panel: Panel, mark: int) -> list[dict[str, Any]]:
    return [json.loads(p) for p in heard_since(panel, mark, f"{BASE}/error")]


async def wait_for_error(panel: Panel, mark: int, count: int) -> dict[str, Any]:
    await panel.wait_for(f"{BASE}/error", lambda p: len(errors_since(panel, mark)) >= count, timeout=30)
    return errors_since(panel, mark)[count - 1]


@pytest.mark.guests
async def test_seat_two_set_switches_seat_two_only_and_a_refusal_changes_nothing(
        tmp_path: Path, broker: Broker, console_image: Any) -> None:
    from tests.conftest import READY_S

    personas = [PersonaConfig("work"), PersonaConfig("home"), PersonaConfig("lab")]
    async with Panel(broker).connected() as panel, controller(tmp_path, broker, *personas) as ctl:
        for name in ("work", "home", "lab"):
            await ctl.persona(name).serial.wait_for(re.compile("MUX-READY"), READY_S)
        if ctl.active_on("two") is None:  # a seat showing none says so (Home Assistant: no option)
            await panel.wait_for(f"{BASE}/seat/two/active", lambda p: p == b"none")
        # whatever the start chose: seat one shows work, seat two home (the API, not MQTT)
        if ctl.active_on("one") != "work":
            await ctl.switch("work", "test", seat="one")
        if ctl.active_on("two") != "home":
            await ctl.switch("home", "test", seat="two")
        one, two, other = "work", "home", "lab"
        await panel.wait_for(f"{BASE}/seat/one/active", lambda p: p == b"work")
        await panel.wait_for(f"{BASE}/seat/two/active", lambda p: p == b"home")
        await panel.wait_for(f"{BASE}/active", lambda p: p == b"work")  # the first seat's

        mark = len(panel.messages)
        await panel.publish(f"{BASE}/seat/two/active/set", other)
        await panel.wait_for(f"{BASE}/seat/two/active", lambda p: p == other.encode(), timeout=60)
        assert (ctl.active_on("one"), ctl.active_on("two")) == (one, other)
        assert all(p == one.encode() for p in heard_since(panel, mark, f"{BASE}/seat/one/active"))
        assert all(p == one.encode() for p in heard_since(panel, mark, f"{BASE}/active"))

        def switched() -> list[dict[str, Any]]:
            events = [json.loads(p) for p in heard_since(panel, mark, f"{BASE}/event")]
            return [e for e in events if e["event_type"] == "switched"]

        await panel.wait_for(f"{BASE}/event", lambda p: bool(switched()))
        assert [(e["seat"], e["persona"], e["source"]) for e in switched()] == [("two", other, "mqtt")]
        async with Panel(broker).connected(f"{BASE}/seat/#") as late:  # what a panel coming later sees
            await late.wait_for(f"{BASE}/seat/two/active", lambda p: p == other.encode())
            await late.wait_for(f"{BASE}/seat/one/active", lambda p: p == one.encode())
            assert all(retain for _, _, retain in late.messages)

        # refused by the seat: seat one may show `other`, but seat two shows it now
        mark = len(panel.messages)
        await panel.publish(f"{BASE}/seat/one/active/set", other)
        error = await wait_for_error(panel, mark, 1)
        assert error["topic"] == f"{BASE}/seat/one/active/set" and error["payload"] == other
        assert "two" in error["error"], error  # names the seat that has it
        # refused by the parser: the seat may not show it; no such seat
        await panel.publish(f"{BASE}/seat/two/active/set", "work")
        assert "may not show persona 'work'" in (await wait_for_error(panel, mark, 2))["error"]
        await panel.publish(f"{BASE}/seat/three/active/set", "home")
        assert "unknown seat 'three'" in (await wait_for_error(panel, mark, 3))["error"]
        # positive control, in order after the refusals: a good command still switches seat two
        await panel.publish(f"{BASE}/seat/two/active/set", "next")
        await panel.wait_for(f"{BASE}/seat/two/active", lambda p: p == two.encode(), timeout=60)
        assert (ctl.active_on("one"), ctl.active_on("two")) == (one, two)
        assert heard_since(panel, mark, f"{BASE}/seat/two/active") == [two.encode()]  # nothing between
        assert all(p == one.encode() for p in heard_since(panel, mark, f"{BASE}/seat/one/active"))
        assert all(p == one.encode() for p in heard_since(panel, mark, f"{BASE}/active"))
        refused = [json.loads(p) for p in heard_since(panel, mark, f"{BASE}/event")]
        assert [e["event_type"] for e in refused].count("refused") == 3


@pytest.mark.guests
async def test_one_select_per_seat_and_a_seat_left_out_is_cleared(
        tmp_path: Path, broker: Broker, console_image: Any) -> None:
    idle = [PersonaConfig(name, autostart=False) for name in PERSONAS]
    selects = {seat: f"{HA}/select/{NODE}/seat_{seat}_active/config" for seat in ("one", "two")}
    async with Panel(broker).connected() as panel:
        for mode in ("entities", "device"):
            async with controller(tmp_path / mode, broker, *idle, discovery=mode):
                await panel.wait_for(f"{BASE}/availability", lambda p: p == b"online")
                await panel.wait_for(f"{BASE}/seat/two/active")  # none runs yet: `none` or a persona
                if mode == "entities":
                    configs = {s: json.loads(panel.latest[t]) for s, t in selects.items()}
                else:
                    device = json.loads(await panel.wait_for(f"{HA}/device/{NODE}/config", bool))
                    configs = {s: device["cmps"][f"seat_{s}_active"] for s in selects}
                    assert all(panel.latest[t] == b"" for t in selects.values())  # handed over, cleared
                assert configs["one"]["options"] == PERSONAS
                assert configs["two"]["options"] == ["home", "lab"]
                assert configs["two"]["command_topic"] == f"{BASE}/seat/two/active/set"
                assert configs["two"]["state_topic"] == f"{BASE}/seat/two/active"
            await panel.wait_for(f"{BASE}/availability", lambda p: p == b"offline")
        # the same node with seat one only: seat two's select and retained state go
        async with controller(tmp_path / "fewer", broker, *idle, seats=(SeatSection("one"),),
                              discovery="device"):
            await panel.wait_for(f"{BASE}/seat/two/active", lambda p: p == b"", timeout=30)
            device = json.loads(await panel.wait_for(
                f"{HA}/device/{NODE}/config", lambda p: b"seat_two_active" not in p and p != b""))
            assert "seat_one_active" in device["cmps"]
            assert panel.latest[f"{BASE}/seat/one/active"] != b""


@pytest.mark.guests
async def test_without_seats_nothing_about_seats_is_published(
        tmp_path: Path, broker: Broker, console_image: Any) -> None:
    from tests.conftest import READY_S

    async with Panel(broker).connected() as panel, \
            controller(tmp_path, broker, PersonaConfig("work"), PersonaConfig("home", autostart=False),
                       seats=()) as ctl:
        await ctl.persona("work").serial.wait_for(re.compile("MUX-READY"), READY_S)
        await panel.wait_for(f"{BASE}/active", lambda p: p == b"work")  # the positive control
        await panel.publish(f"{BASE}/seat/default/active/set", "home")  # what it always was: unknown
        error = json.loads(await panel.wait_for(f"{BASE}/error"))
        assert error["topic"] == f"{BASE}/seat/default/active/set"
        assert "no such command topic" in error["error"]
        assert ctl.active == "work"
        await panel.wait_for(f"{HA}/select/{NODE}/active/config")
        await asyncio.sleep(0.3)
        topics = {t for t, _, _ in panel.messages}
        assert [t for t in topics if "seat" in t] == [f"{BASE}/seat/default/active/set"]  # the panel's
        topics.discard(f"{BASE}/seat/default/active/set")
        assert not [t for t in topics if "seat" in t]  # no seat select either, nor any seat topic


@pytest.mark.guests
async def test_with_steal_the_seat_robbed_goes_back_and_both_seats_are_published(
        tmp_path: Path, broker: Broker, console_image: Any) -> None:
    from tests.conftest import READY_S

    personas = [PersonaConfig("work"), PersonaConfig("home"), PersonaConfig("lab")]
    async with Panel(broker).connected() as panel, \
            controller(tmp_path, broker, *personas, steal=True) as ctl:
        for name in ("work", "home", "lab"):
            await ctl.persona(name).serial.wait_for(re.compile("MUX-READY"), READY_S)
        if ctl.active_on("one") != "work":
            await ctl.switch("work", "test", seat="one")
        for name in ("home", "lab"):  # seat two shows lab, and showed home before
            if ctl.active_on("two") != name:
                await ctl.switch(name, "test", seat="two")
        await panel.wait_for(f"{BASE}/seat/two/active", lambda p: p == b"lab")
        mark = len(panel.messages)
        await panel.publish(f"{BASE}/seat/one/active/set", "lab")
        await panel.wait_for(f"{BASE}/seat/one/active", lambda p: p == b"lab", timeout=60)
        await panel.wait_for(f"{BASE}/seat/two/active", lambda p: p == b"home", timeout=60)
        await panel.wait_for(f"{BASE}/active", lambda p: p == b"lab")  # follows the first seat
        assert (ctl.active_on("one"), ctl.active_on("two")) == ("lab", "home")

        def switched() -> list[tuple[str, str, str]]:
            events = [json.loads(p) for p in heard_since(panel, mark, f"{BASE}/event")]
            return sorted((e["seat"], e["persona"], e["source"]) for e in events
                          if e["event_type"] == "switched")

        await panel.wait_for(f"{BASE}/event", lambda p: len(switched()) >= 2)
        assert switched()[0] == ("one", "lab", "mqtt") and switched()[1][:2] == ("two", "home")
        assert errors_since(panel, mark) == []
