"""``mux ctl --mqtt URL --node NODE``: a controller steered over a real mosquitto from a script
(docs/guides/mqtt.md, "mux ctl over the broker").

Each request goes through the topics a panel uses and prints the node's status once its
retained state shows the request carried out: start, restart and stop of a real guest,
the last published screenshot saved as PNG, a refused request's reason, and a clear error
(exit code 1) for a node that is not online or does not answer, and for a request only
the control socket carries; the broker's user and
password work as options or from ``MUX_MQTT_PASSWORD``, and a wrong one is an error;
``mux ps --mqtt`` lists a node known by its retained availability, with its claim's host and pid.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from mux.config import MqttSection, PersonaConfig
from tests.conftest import READY_S
from tests.mqtt_helpers import Broker, Panel

BASE = "home/pcs"  # an explicit base_topic: kept exactly, so --base-topic names it


def mux(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mux", *args], capture_output=True, text=True, timeout=600,
                          env=env)


async def ctl(broker: Broker, *request: str, node: str = "desk", extra: tuple[str, ...] = ()
              ) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(mux, "ctl", "--mqtt", broker.url, "--node", node, "--base-topic", BASE,
                                   *extra, *request)


@pytest.mark.guests
async def test_start_screenshot_restart_and_stop_over_the_broker(
        tmp_path: Path, broker: Broker, controller: Any) -> None:
    mqtt = MqttSection(url=broker.url, node_id="desk", base_topic=BASE, screenshot_interval_s=1.0)
    async with Panel(broker).connected() as panel, controller(PersonaConfig("work", autostart=False),
                                                              mqtt=mqtt) as ctl_:
        await panel.wait_for(f"{BASE}/availability", lambda p: p == b"online")
        status = json.loads((await ctl(broker, "status")).stdout)
        assert (status["availability"], status["active"]) == ("online", None)
        (work,) = status["personas"]
        assert (work["name"], work["state"], work["ready"], work["devices"]) == ("work", "stopped", False, [])

        started = await ctl(broker, "start", "work")
        assert started.returncode == 0, started.stderr
        assert json.loads(started.stdout)["personas"][0]["state"] == "running"
        assert str(ctl_.persona("work").state) == "running"

        await panel.wait_for(f"{BASE}/persona/work/screenshot", timeout=READY_S)
        shot = await ctl(broker, "screenshot", "work", str(tmp_path / "work.png"))
        assert shot.returncode == 0, shot.stderr
        with Image.open(tmp_path / "work.png") as picture:
            published = Image.open(io.BytesIO(panel.latest[f"{BASE}/persona/work/screenshot"]))
            assert (picture.format, picture.size) == ("PNG", published.size)

        before = len(panel.heard(f"{BASE}/persona/work/state"))
        restarted = await ctl(broker, "restart", "work")
        assert restarted.returncode == 0, restarted.stderr
        states = panel.heard(f"{BASE}/persona/work/state")[before:]
        assert states[-1] == b"running" and any(s != b"running" for s in states), states

        stopped = await ctl(broker, "stop", "work")
        assert stopped.returncode == 0, stopped.stderr
        assert json.loads(stopped.stdout)["personas"][0]["state"] == "stopped"
        assert str(ctl_.persona("work").state) == "stopped"

        refused = await ctl(broker, "start", "garden")
        assert refused.returncode == 1
        assert "refused" in refused.stderr and "unknown persona 'garden'" in refused.stderr


@pytest.mark.services
async def test_a_node_that_is_not_online_or_does_not_answer_is_a_clear_error(broker: Broker) -> None:
    missing = await ctl(broker, "switch", "work", node="ghost")
    assert missing.returncode == 1
    said = f"node 'ghost' is not online on {broker.url} ({BASE}/availability: nothing retained)"
    assert said in missing.stderr
    unknown = await ctl(broker, "status", node="ghost")
    assert unknown.returncode == 0 and json.loads(unknown.stdout)["availability"] == "unknown"

    async with Panel(broker).connected() as panel:  # a node that says online but answers nothing
        await panel.publish(f"{BASE}/availability", "online", retain=True)
        silent = await ctl(broker, "switch", "work", node="ghost", extra=("--timeout", "2"))
        assert silent.returncode == 1
        assert "node 'ghost' did not answer within 2 s" in silent.stderr
        assert panel.heard(f"{BASE}/active/set") == [b"work"]  # the request did go out

    # requests the broker does not carry, and --mqtt without --node, are refused by name
    for request in (("text", "work"), ("attach", "stick", "work"), ("exec", "work", "--", "true")):
        socket_only = await ctl(broker, *request)
        assert socket_only.returncode == 1
        assert f"mux ctl {request[0]} works only over the control socket" in socket_only.stderr
    no_node = await asyncio.to_thread(mux, "ctl", "--mqtt", broker.url, "status")
    assert no_node.returncode == 1 and "needs --node NODE" in no_node.stderr


@pytest.mark.services
async def test_the_brokers_user_and_password_are_the_boundary(tmp_path: Path, broker: Broker) -> None:
    broker.stop()
    broker.users = {"mux": "secret"}
    broker.start()
    async with Panel(broker, username="mux", password="secret").connected() as panel:
        await panel.publish(f"{BASE}/availability", "online", retain=True)
        by_option = await ctl(broker, "status", extra=("--username", "mux", "--password", "secret"))
        assert by_option.returncode == 0 and json.loads(by_option.stdout)["availability"] == "online"
        by_env = await asyncio.to_thread(
            mux, "ctl", "--mqtt", broker.url, "--node", "desk", "--base-topic", BASE, "--username", "mux",
            "status", env={**os.environ, "MUX_MQTT_PASSWORD": "secret"})
        assert by_env.returncode == 0 and json.loads(by_env.stdout)["availability"] == "online"
        wrong = await ctl(broker, "status", extra=("--username", "mux", "--password", "wrong"))
        assert wrong.returncode == 1 and f"MQTT broker {broker.url}" in wrong.stderr
        # mux ps reads the same way: a node known by its availability under mux/, with its claim
        await panel.publish("mux/lab/availability", "online", retain=True)
        await panel.publish("mux/lab/claim", json.dumps({"host": "labhost", "pid": 4242, "client": "x",
                                                         "since": "2031-05-01T09:00:00+00:00"}), retain=True)
        listed = await asyncio.to_thread(mux, "ps", "--mqtt", broker.url, "--username", "mux",
                                         "--password", "secret")
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.splitlines()[1].split() == ["lab", "online", "labhost", "4242", "mux/lab"]
        refused = await asyncio.to_thread(mux, "ps", "--mqtt", broker.url)
        assert refused.returncode == 1 and f"MQTT broker {broker.url}" in refused.stderr
