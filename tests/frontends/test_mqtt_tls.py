"""MQTT over TLS against a real mosquitto: ``mqtts://`` and the ``tls_*`` keys work, and a
broker mux cannot trust is refused with an error that names it.

The certificates are made here with the openssl command line: a test CA, the broker's
certificate for 127.0.0.1 signed by it, a client certificate signed by it, and a second CA
that signed nothing. mosquitto serves TLS on a second listener; the panel (the test's
own client) stays on the plain one, so it sees what mux publishes over TLS.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mux.app.controller import Controller
from mux.config import MqttSection, PersonaConfig
from mux.frontends.mqtt import MqttBridge
from tests.conftest import READY_S, wait_until
from tests.mqtt_helpers import Broker, Panel, TlsListener

pytestmark = pytest.mark.guests

NODE = "tlsnode"
BASE = f"mux/{NODE}"  # no base_topic set: the node's own topics (docs/reference/mqtt.md)
HA = "homeassistant"


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def _make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN=mux test {name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return cert, key


def _issue(directory: Path, ca: tuple[Path, Path], name: str, extensions: str) -> tuple[Path, Path]:
    cert, key, csr = directory / f"{name}.pem", directory / f"{name}.key", directory / f"{name}.csr"
    ext = directory / f"{name}.ext"
    ext.write_text(extensions + "\nbasicConstraints=CA:FALSE\nsubjectKeyIdentifier=hash\n"
                   "authorityKeyIdentifier=keyid,issuer\n")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", key, "-out", csr, "-subj", f"/CN={name}")
    _openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
             "-out", cert, "-days", "2", "-extfile", ext)
    return cert, key


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    directory = tmp_path / "pki"
    directory.mkdir()
    ca = _make_ca(directory, "ca")
    server = _issue(directory, ca, "broker", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth")
    client = _issue(directory, ca, "mux", "extendedKeyUsage=clientAuth")
    other_ca, _ = _make_ca(directory, "other-ca")
    return Pki(ca[0], *server, *client, other_ca)


@contextmanager
def tls_broker(tmp_path: Path, pki: Pki, require_certificate: bool = False) -> Iterator[Broker]:
    directory = tmp_path / "broker"
    directory.mkdir()
    broker = Broker(directory, tls=TlsListener(pki.ca, pki.server_cert, pki.server_key,
                                               require_certificate=require_certificate))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def bridge(ctl: Controller) -> MqttBridge:
    (found,) = [f for f in ctl.frontends if isinstance(f, MqttBridge)]
    return found


def mqtt(url: str, **tls: Any) -> MqttSection:
    return MqttSection(url=url, node_id=NODE, **tls)


def idle(*names: str) -> list[PersonaConfig]:
    return [PersonaConfig(name, autostart=False) for name in names]


def refusals(caplog: pytest.LogCaptureFixture, url: str) -> list[str]:
    """The bridge's warnings about ``url`` (each failed connection attempt is one)."""
    return [r.getMessage() for r in caplog.records
            if r.name == "mux.frontends.mqtt" and r.levelno == logging.WARNING and url in r.getMessage()]


async def test_mqtts_with_the_ca_publishes_discovery_and_takes_commands(
        tmp_path: Path, pki: Pki, controller: Callable[..., Controller]) -> None:
    with tls_broker(tmp_path, pki) as broker:
        async with Panel(broker).connected() as panel, \
                controller(*idle("work", "home"), mqtt=mqtt(broker.tls_url, tls_ca=pki.ca)) as ctl:
            # mux was given only the TLS listener's port: all it says came over TLS
            await panel.wait_for(f"{BASE}/availability", lambda p: p == b"online", timeout=30)
            await asyncio.wait_for(bridge(ctl).connected.wait(), 30)
            select = json.loads(await panel.wait_for(f"{HA}/select/{NODE}/active/config"))
            assert select["command_topic"] == f"{BASE}/active/set"
            assert select["options"] == ["work", "home"]
            assert panel.latest[f"{BASE}/persona/home/state"] == b"stopped"
            # ... and it hears commands over TLS: a switch starts home (start_on_switch)
            await panel.publish(f"{BASE}/active/set", "home")
            await panel.wait_for(f"{BASE}/active", lambda p: p == b"home", timeout=READY_S)
            await panel.wait_for(f"{BASE}/persona/home/state", lambda p: p == b"running")
            assert ctl.active == "home"


async def test_a_broker_mux_cannot_trust_is_refused_naming_the_broker(
        tmp_path: Path, pki: Pki, controller: Callable[..., Controller],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="mux.frontends.mqtt")
    with tls_broker(tmp_path, pki) as broker:
        url = broker.tls_url
        async with Panel(broker).connected() as panel:
            # a CA that did not sign the broker's certificate; then no CA (the system's)
            for tls in ({"tls_ca": pki.other_ca}, {}):
                caplog.clear()
                async with controller(*idle("work"), mqtt=mqtt(url, **tls)) as ctl:
                    await wait_until(lambda: len(refusals(caplog, url)) >= 2, 60,
                                     f"two refused connections with {tls}")
                    assert not bridge(ctl).connected.is_set()
                warning = refusals(caplog, url)[0]
                assert "certificate verify failed" in warning, warning
                assert f"{BASE}/availability" not in panel.latest, tls
            # the control: the same broker and URL with the right CA
            async with controller(*idle("work"), mqtt=mqtt(url, tls_ca=pki.ca)) as ctl:
                await panel.wait_for(f"{BASE}/availability", lambda p: p == b"online", timeout=30)
                await asyncio.wait_for(bridge(ctl).connected.wait(), 30)


async def test_a_client_certificate_from_tls_cert_and_tls_key(
        tmp_path: Path, pki: Pki, controller: Callable[..., Controller],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="mux.frontends.mqtt")
    with tls_broker(tmp_path, pki, require_certificate=True) as broker:
        url = broker.tls_url
        async with Panel(broker).connected() as panel:
            async with controller(*idle("work"), mqtt=mqtt(url, tls_ca=pki.ca)) as ctl:
                await wait_until(lambda: len(refusals(caplog, url)) >= 2, 60,
                                 "two connections refused for want of a client certificate")
                assert not bridge(ctl).connected.is_set()
            assert f"{BASE}/availability" not in panel.latest
            async with controller(*idle("work"), mqtt=mqtt(url, tls_ca=pki.ca, tls_cert=pki.client_cert,
                                                            tls_key=pki.client_key)) as ctl:
                await panel.wait_for(f"{BASE}/availability", lambda p: p == b"online", timeout=30)
                await asyncio.wait_for(bridge(ctl).connected.wait(), 30)
                await panel.publish(f"{BASE}/active/set", "garden")  # commands reach it too
                error = json.loads(await panel.wait_for(f"{BASE}/error", timeout=30))
                assert error["topic"] == f"{BASE}/active/set" and "garden" in error["error"]
