"""What a node publishes is what Home Assistant accepts, and each node has its own topics (pure).

Home Assistant's MQTT select (docs/guides/mqtt.md, "What Home Assistant accepts") takes a
state only if it is one of the select's options; the payload ``none``, in any case, clears
the selection, and an empty one is logged as an error. :func:`ha_select_state` is that
rule, and every select state mux can retain is checked against it. The topics of a node
are under ``mux/<node_id>`` unless ``base_topic`` is set (then exactly it), whatever the
config file says or leaves out; a claim counts only while its node is ``online``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mux.config import load_config
from mux.frontends.mqtt_client import claim_holder, claim_message
from mux.frontends.mqtt_discovery import discovery_messages, entities, topic_base
from mux.frontends.mqtt_topics import Command, parse_command, state_messages

pytestmark = pytest.mark.pure

PERSONAS = ["work", "home"]


def ha_select_state(payload: str, options: list[str]) -> str:
    """What Home Assistant 2024.3's MQTT select makes of a state payload: ``"ok"``,
    ``"cleared"`` (``none`` in any case) or ``"error"`` (not an option, empty included)."""
    if payload.lower() == "none":
        return "cleared"
    return "ok" if payload in options else "error"


def test_the_rule_itself_tells_the_three_outcomes_apart() -> None:
    options = ["work", "home", "detached"]
    assert ha_select_state("work", options) == "ok"
    assert ha_select_state("", options) == "error"
    assert ha_select_state("garden", options) == "error"
    assert ha_select_state("None", options) == "cleared"


@pytest.mark.parametrize("active", [None, "work", "home"])
@pytest.mark.parametrize("owner", [None, "work", "home"])
def test_every_retained_select_state_is_one_of_its_options(active: str | None, owner: str | None) -> None:
    base = "mux/desk"
    selects = [e for e in entities("desk", base, PERSONAS, ["stick"]) if e.component == "select"]
    assert {e.object_id for e in selects} == {"active", "device_stick"}
    states = state_messages(base, active, {p: "running" for p in PERSONAS}, {p: None for p in PERSONAS},
                            owners={"stick": owner})
    checked = 0
    for select in selects:
        payload = states.get(select.config["state_topic"])
        if payload is None:
            continue
        assert ha_select_state(payload, select.config["options"]) == "ok", (select.object_id, payload)
        checked += 1
    # before a persona is active, nothing is published for the active select (not an empty state)
    assert f"{base}/active" not in states if active is None else states[f"{base}/active"] == active
    assert checked == (1 if active is None else 2)


def test_the_device_select_says_detached_and_still_takes_none() -> None:
    found = entities("desk", "mux/desk", PERSONAS, ["stick"])
    (select,) = [e for e in found if e.object_id == "device_stick"]
    assert select.config["options"] == ["work", "home", "detached"]
    for word in (b"detached", b"none"):
        command = parse_command("mux/desk/device/stick/set", word, "mux/desk", PERSONAS, ["stick"])
        assert command == Command("device", "", "detach", "stick")
    moved = parse_command("mux/desk/device/stick/set", b"home", "mux/desk", PERSONAS, ["stick"])
    assert moved == Command("device", "home", "attach", "stick")


@pytest.mark.parametrize(("node", "base_topic", "base"), [
    ("desk", None, "mux/desk"),
    ("desk.lan", None, "mux/desk_lan"),  # made safe as in discovery topics
    ("desk", "mux", "mux"),  # set: kept exactly, for existing panels
    ("desk", "home/pcs/", "home/pcs"),
])
def test_topics_live_under_mux_node_unless_base_topic_is_set(node: str, base_topic: str | None,
                                                             base: str) -> None:
    assert topic_base(node, base_topic) == base
    configs = discovery_messages("homeassistant", node, topic_base(node, base_topic), PERSONAS)
    active = configs[f"homeassistant/select/{node.replace('.', '_')}/active/config"]
    assert active["state_topic"] == f"{base}/active"
    assert active["unique_id"] == f"mux_{node.replace('.', '_')}_active"  # the same whatever the base


def test_a_config_without_base_topic_is_told_from_one_that_sets_it(tmp_path: Path) -> None:
    common = '[[persona]]\nname = "work"\n[mqtt]\nurl = "mqtt://broker.lan:1883"\nnode_id = "desk"\n'
    unset, kept = tmp_path / "unset.toml", tmp_path / "kept.toml"
    unset.write_text(common)
    kept.write_text(common + 'base_topic = "mux"\n')
    unset_mqtt, kept_mqtt = load_config(unset).mqtt, load_config(kept).mqtt
    assert unset_mqtt is not None and kept_mqtt is not None
    assert (unset_mqtt.base_topic, kept_mqtt.base_topic) == (None, "mux")
    assert topic_base(unset_mqtt.node_id, unset_mqtt.base_topic) == "mux/desk"
    assert topic_base(kept_mqtt.node_id, kept_mqtt.base_topic) == "mux"


def test_a_claim_counts_only_while_its_node_is_online() -> None:
    claim = claim_message("mux-desk-1").encode()
    holder = claim_holder(claim, b"online")
    assert holder is not None and holder["client"] == "mux-desk-1" and isinstance(holder["pid"], int)
    assert set(json.loads(claim)) == {"host", "pid", "client", "since"}
    assert claim_holder(claim, b"offline") is None  # the owner's last will fired, or it stopped
    assert claim_holder(claim, None) is None
    assert claim_holder(b"", b"online") is None  # cleared by a clean stop
