"""Many hosts, one panel: three ``mux run`` controllers (nodes a, b, c) on two mosquitto
brokers joined by a ``connection`` bridge (docs/guides/mqtt.md, "Many hosts, one panel").

A plain MQTT client on the central broker stands in for Home Assistant: it sees three
devices whose entities have distinct unique ids, each node's topics under ``mux/<node>``
(no ``base_topic`` set); ``mux ctl --mqtt`` and ``active/set`` switch b and only b; a
SIGKILL of b's controller marks only b offline (its own last will); a second controller
of node a is refused, naming the owner's host and pid, while a stale claim (b's, whose
owner died) does not block; ``mux ps --mqtt`` lists the three nodes.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from tests.conftest import READY_S
from tests.mqtt_helpers import MOSQUITTO, Broker, Panel

HA = "homeassistant"


@dataclass
class EdgeBroker(Broker):
    """A broker bridged to ``central`` with the guide's ``connection`` bridge."""

    central: Broker | None = None

    def start(self) -> None:
        assert self.central is not None
        conf = self.directory / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\npersistence false\nuser {getpass.getuser()}\n"
                        "allow_anonymous true\n"
                        f"connection central\naddress 127.0.0.1:{self.central.port}\n"
                        "topic mux/# both 1\ntopic homeassistant/# both 1\n")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.communicate()[1].decode()
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("the edge mosquitto did not start")


def node_config(tmp_path: Path, node: str, broker: Broker, personas: dict[str, bool]) -> Path:
    """A ``mux run`` config of node ``node`` (no ``base_topic``): persona -> autostart."""
    folder = tmp_path / f"{node}-{time.monotonic_ns()}"  # a controller's own control socket
    folder.mkdir()
    text = f'[mux]\naccel = "tcg"\nkeep_guests = "never"\ncontrol_socket = "{folder}/c.sock"\n'
    for name, autostart in personas.items():
        text += f'[[persona]]\nname = "{name}"\nautostart = {str(autostart).lower()}\n'
    text += f'[mqtt]\nurl = "{broker.url}"\nnode_id = "{node}"\nscreenshot_interval_s = 1\n'
    path = folder / f"mux-{node}.toml"
    path.write_text(text)
    return path


def run_node(config: Path) -> subprocess.Popen[bytes]:
    log = open(config.with_suffix(".log"), "ab")  # noqa: SIM115 - the process owns it
    return subprocess.Popen([sys.executable, "-m", "mux", "run", str(config)], stdout=log,
                            stderr=subprocess.STDOUT)


def mux(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mux", *args], capture_output=True, text=True, timeout=600)


def devices(panel: Panel) -> dict[str, set[str]]:
    """Home Assistant's view: device identifier -> the unique ids of its entities."""
    found: dict[str, set[str]] = {}
    for topic, payload in panel.latest.items():
        if topic.startswith(f"{HA}/") and topic.endswith("/config") and payload:
            config = json.loads(payload)
            found.setdefault(config["device"]["identifiers"][0], set()).add(config["unique_id"])
    return found


def select_states_valid(panel: Panel) -> int:
    """Every select's retained state is one of its options (Home Assistant's rule); how many."""
    checked = 0
    for topic, payload in panel.latest.items():
        if topic.startswith(f"{HA}/select/") and payload:
            config = json.loads(payload)
            state = panel.latest.get(config["state_topic"])
            if state is not None:
                assert state.decode() in config["options"] and state.lower() != b"none", (topic, state)
                checked += 1
    return checked


async def answers(panel: Panel, node: str) -> None:
    """Positive control: ``node``'s controller hears its own topics (a bad switch earns an error)."""
    before = len(panel.heard(f"mux/{node}/error"))
    await panel.publish(f"mux/{node}/active/set", "garden")
    await panel.wait_for(f"mux/{node}/error", lambda p: len(panel.heard(f"mux/{node}/error")) > before)


@pytest.mark.guests
async def test_three_nodes_on_bridged_brokers_keep_apart(tmp_path: Path, console_image: Any) -> None:
    central = Broker(tmp_path / "central-broker")
    (tmp_path / "central-broker").mkdir()
    central.start()
    edge = EdgeBroker(tmp_path / "edge-broker", central=central)
    (tmp_path / "edge-broker").mkdir()
    edge.start()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        async with Panel(central).connected() as panel, aiomqtt.Client("127.0.0.1", edge.port) as probe:
            async with asyncio.timeout(30):  # the bridge is up: a message on the edge reaches the centre
                while not panel.heard("mux/probe/edge"):
                    await probe.publish("mux/probe/edge", "1", qos=1)
                    await asyncio.sleep(0.2)
            configs = {"a": node_config(tmp_path, "a", central, {"work": False}),
                       "b": node_config(tmp_path, "b", edge, {"work": True, "home": True}),
                       "c": node_config(tmp_path, "c", central, {"work": False})}
            procs = {node: run_node(config) for node, config in configs.items()}
            for node in "abc":
                await panel.wait_for(f"mux/{node}/availability", lambda p: p == b"online", timeout=READY_S)
            for name in ("work", "home"):
                await panel.wait_for(f"mux/b/persona/{name}/state", lambda p: p == b"running",
                                     timeout=READY_S)
            await panel.wait_for("mux/b/active", lambda p: p == b"work", timeout=READY_S)

            # Home Assistant's view: three devices, every unique id distinct, "work" on each
            await asyncio.sleep(1)  # the last discovery configs cross the bridge
            seen = devices(panel)
            assert set(seen) == {"mux_a", "mux_b", "mux_c"}
            assert sum(len(ids) for ids in seen.values()) == len(set().union(*seen.values()))
            assert {"mux_a_work_state", "mux_b_work_state", "mux_c_work_state"} <= set().union(*seen.values())
            assert select_states_valid(panel) == 1  # b's active (a and c have none yet: nothing retained)

            # mux ctl over the broker switches b and prints its new status
            done = await asyncio.to_thread(mux, "ctl", "--mqtt", central.url, "--node", "b", "switch", "home")
            assert done.returncode == 0, done.stderr
            status = json.loads(done.stdout)
            assert (status["node"], status["active"], status["availability"]) == ("b", "home", "online")
            states = {p["name"]: p["state"] for p in status["personas"]}
            assert states == {"work": "running", "home": "running"}
            assert panel.latest["mux/b/active"] == b"home"

            # the panel's active/set on b switches b only
            await panel.publish("mux/b/active/set", "work")
            await panel.wait_for("mux/b/active", lambda p: p == b"work")
            for node in "ac":
                await answers(panel, node)  # they hear their own topics...
                assert panel.heard(f"mux/{node}/active") == []  # ...and were switched by nothing
                assert not [e for e in panel.heard(f"mux/{node}/event") if b'"switched"' in e]
            switched = [json.loads(e) for e in panel.heard("mux/b/event") if b'"switched"' in e]
            assert [(e["persona"], e["source"]) for e in switched if e["source"] == "mqtt"] == [
                ("home", "mqtt"), ("work", "mqtt")]
            assert select_states_valid(panel) == 1

            # mux ps --mqtt: every node, with its host and pid
            listed = await asyncio.to_thread(mux, "ps", "--mqtt", central.url)
            assert listed.returncode == 0, listed.stderr
            rows = {line.split()[0]: line.split() for line in listed.stdout.splitlines()[1:]}
            for node in "abc":
                assert rows[node][1:2] == ["online"] and rows[node][3] == str(procs[node].pid), listed.stdout
                assert rows[node][2] == socket.gethostname() and rows[node][4] == f"mux/{node}"

            # SIGKILL of b: its last will marks b offline, and only b
            procs["b"].send_signal(signal.SIGKILL)
            procs["b"].wait(30)
            await panel.wait_for("mux/b/availability", lambda p: p == b"offline", timeout=60)
            for node in "ac":
                await answers(panel, node)
                assert panel.heard(f"mux/{node}/availability") == [b"online"]

            # a second controller of node a, on the other broker, is refused and names the owner
            second = await asyncio.to_thread(
                mux, "run", str(node_config(tmp_path, "a", edge, {"work": False})))
            assert second.returncode == 1, second.stdout + second.stderr
            assert "'a' is already served" in second.stderr and f"pid {procs['a'].pid}" in second.stderr
            assert socket.gethostname() in second.stderr
            await answers(panel, "a")
            assert panel.heard("mux/a/availability") == [b"online"]
            assert json.loads(panel.latest["mux/a/claim"])["pid"] == procs["a"].pid

            # b's claim is stale (its last will fired): a new controller of b starts
            assert json.loads(panel.latest["mux/b/claim"])["pid"] == procs["b"].pid
            procs["b2"] = run_node(node_config(tmp_path, "b", edge, {"work": False, "home": False}))
            await panel.wait_for("mux/b/claim", lambda p: bool(p) and json.loads(p)["pid"] == procs["b2"].pid,
                                 timeout=READY_S)
            await panel.wait_for("mux/b/availability", lambda p: p == b"online")
            await answers(panel, "b")
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        edge.stop()
        central.stop()
        for log in sorted(tmp_path.glob("*/*.log")):
            print(f"--- {log.name}\n{log.read_text()[-3000:]}")
