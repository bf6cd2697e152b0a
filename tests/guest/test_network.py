"""``network = "user"`` without a way to the host: passt (``--no-map-gw``) instead of QEMU's
slirp, whose 10.0.2.2 is the host's 127.0.0.1. Real console guests under TCG connect
(busybox ``wget``) to listeners on the host that count their connections; ``host_access
= true`` (slirp) is the positive control. Then: no passt outlives its persona, and a kept
guest's passt lives on with it and is found again on adoption. Fast checks of the config."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mux.config import PersonaConfig, load_config
from mux.config.schema import Forward
from mux.errors import ConfigError
from mux.guest import hardware, passt
from mux.guest.accel import AccelChoice
from mux.guest.cmdline import qemu_argv
from mux.guest.state import RunState
from mux.scenario.runner import StepRunner
from tests.app.test_keep_guests import Run, all_running, mux, wait_for
from tests.conftest import READY_S, SESSION_DIR, session_qemus, wait_until

TCG = AccelChoice("tcg", "test", proven=True)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def host_address() -> str | None:
    """The host's address on its default route's interface (None: no default route)."""
    for line in Path("/proc/net/route").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == "00000000":
            gateway = socket.inet_ntoa(int(fields[2], 16).to_bytes(4, "little"))
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.connect((gateway, 9))
                return str(s.getsockname()[0])
    return None


class Counter:
    """An HTTP listener on the host that counts its connections and answers ``tag``."""

    def __init__(self, host: str, tag: str) -> None:
        self.host, self.tag, self.count = host, tag, 0
        self.port = free_port(host)
        self._server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.count += 1
        writer.write(f"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n{self.tag}\n".encode())
        await writer.drain()
        writer.close()

    async def __aenter__(self) -> Counter:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()


# --- the config -------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mux.toml"
    path.write_text(text)
    return path


@pytest.mark.pure
def test_a_user_network_is_passts_and_host_access_is_slirps(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[[persona]]\nname = "a"\nnetwork = "user"\n'
                                         'forward = ["tcp:2222:22"]\n[[persona]]\nname = "b"\n'
                                         'network = "user"\nhost_access = true\n'))
    a, b = config.persona("a"), config.persona("b")
    assert (a.host_access, b.host_access) == (False, True)
    netdevs = [arg for arg in qemu_argv(a, tmp_path, TCG, None) if arg.startswith(("stream,", "user,"))]
    assert netdevs == [f"stream,id=mux-net,server=off,addr.type=unix,addr.path={tmp_path / 'a.net'}"]
    argv = passt.passt_argv(a, tmp_path)
    assert {"--no-map-gw", "--one-off", "--foreground"} <= set(argv)
    assert argv[argv.index("--tcp-ports") + 1] == "127.0.0.1/2222:22"
    assert "user,id=mux-net" in qemu_argv(b, tmp_path, TCG, None)


@pytest.mark.pure
def test_host_access_needs_a_user_network_and_passt_is_required_without_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, '[[persona]]\nname = "a"\nhost_access = true\n'))
    assert f"{tmp_path / 'mux.toml'}:3" in str(caught.value) and 'host_access needs network = "user"' in str(
        caught.value)
    monkeypatch.setenv("PATH", str(tmp_path))  # no passt on it
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, '[[persona]]\nname = "a"\nnetwork = "user"\n'))
    assert f"{tmp_path / 'mux.toml'}:3" in str(caught.value) and "apt-get install passt" in str(caught.value)
    # No silent fallback; the old network only when asked for (it needs no passt).
    assert load_config(write(tmp_path, '[[persona]]\nname = "a"\nnetwork = "user"\nhost_access = true\n'))


@pytest.mark.pure
async def test_host_access_is_warned_at_each_launch(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        await hardware.prepare(PersonaConfig("open", network="user", host_access=True), tmp_path, None,
                               resuming=False)
    assert "persona open: host_access = true" in caplog.text and "127.0.0.1" in caplog.text


# --- real guests ------------------------------------------------------------------------


async def fetch(ctl: Any, name: str, tag: str, url: str) -> str:
    """Type a busybox wget of ``url`` into persona ``name``; what it got (empty: no connection)."""
    await ctl.switch(name, "test")
    await StepRunner(ctl).step_type({"text": (
        f"r=$(wget -q -T 5 -O - {url} 2>&1 | tr -d '\\n'); echo \"MUX-NET {tag} [$r]\" >/dev/ttyS0\n")})
    match = await ctl.persona(name).serial.wait_for(re.compile(rf"MUX-NET {tag} \[(.*)\]"), READY_S, start=0)
    return str(match.group(1))


async def network_up(ctl: Any, name: str) -> Any:
    persona = ctl.persona(name)
    await persona.serial.wait_for(re.compile(f"MUX-READY {name}"), READY_S, start=0)
    await ctl.switch(name, "test")
    await StepRunner(ctl).step_type({"text": (
        "until ip link set eth0 up; do sleep 1; done; ip addr add 10.0.2.15/24 dev eth0;"
        " ip route add default via 10.0.2.2; mkdir -p /www; echo served-by-" + name + " >/www/index.html;"
        " httpd -p 80 -h /www; echo MUX-NET-UP $? >/dev/ttyS0\n")})
    await persona.serial.wait_for(re.compile("MUX-NET-UP 0"), READY_S, start=0)
    return persona


@pytest.mark.guests
async def test_a_user_network_guest_reaches_neither_host_loopback_nor_forwards_but_host_access_does(
        controller: Any) -> None:
    outside = host_address()
    closed_port, open_port = free_port(), free_port()
    closed = PersonaConfig("closed", network="user", forward=(Forward("tcp", closed_port, 80),))
    open_ = PersonaConfig("open", network="user", host_access=True, forward=(Forward("tcp", open_port, 80),))
    async with Counter("127.0.0.1", "host-loopback") as loopback, controller(closed, open_) as ctl:
        for name in ("closed", "open"):
            await network_up(ctl, name)

        got: dict[str, str] = {}
        got["closed->host loopback"] = await fetch(ctl, "closed", "c1", f"http://10.0.2.2:{loopback.port}/")
        closed_count = loopback.count
        got["closed->open's forward"] = await fetch(ctl, "closed", "c2", f"http://10.0.2.2:{open_port}/")
        got["open->host loopback"] = await fetch(ctl, "open", "o1", f"http://10.0.2.2:{loopback.port}/")
        got["open->closed's forward"] = await fetch(ctl, "open", "o2", f"http://10.0.2.2:{closed_port}/")
        if outside is not None:
            got["closed->open's forward at the host's address"] = await fetch(
                ctl, "closed", "c3", f"http://{outside}:{open_port}/")
            async with Counter(outside, "host-outside") as out:
                got["closed->host address (outbound)"] = await fetch(ctl, "closed", "c4",
                                                                  f"http://{outside}:{out.port}/")
                outbound_count = out.count
        print(f"connections to the host's 127.0.0.1 listener: closed {closed_count},"
              f" open {loopback.count - closed_count}; results: {got}")
        assert closed_count == 0 and "host-loopback" not in got["closed->host loopback"], got
        assert "served-by-open" not in got["closed->open's forward"], got
        # The positive control: slirp's 10.0.2.2 is the host's 127.0.0.1.
        assert loopback.count == 1 and "host-loopback" in got["open->host loopback"], got
        assert "served-by-closed" in got["open->closed's forward"], got  # passt's forward works
        if outside is not None:
            assert "served-by-open" not in got["closed->open's forward at the host's address"], got
            assert outbound_count == 1 and "host-outside" in got["closed->host address (outbound)"], got


def passts(marker: Path) -> list[int]:
    return passt.strays(marker)


@pytest.mark.guests
async def test_no_passt_outlives_its_persona(controller: Any) -> None:
    async with controller(PersonaConfig("net", network="user", restart="no")) as ctl:
        persona = ctl.persona("net")
        await persona.serial.wait_for(re.compile("MUX-READY net"), READY_S, start=0)
        socket_ = passt.socket_path(persona.runtime_dir, "net")
        assert len(passt.pids(socket_)) == 1 and socket_.exists()
        await persona.stop()
        assert passt.pids(socket_) == [] and not socket_.exists()  # stopped with its guest
        await persona.start()
        first = passt.pids(socket_)
        assert len(first) == 1
        await persona.kill()  # QEMU dies as in a crash: passt (--one-off) goes with it
        await wait_until(lambda: passt.pids(socket_) == [], 10, "passt to exit with its QEMU")
        await persona.wait_state(RunState.CRASHED, 10)
        await persona.start()  # a new passt for the new QEMU
        assert len(passt.pids(socket_)) == 1
    assert passt.pids(socket_) == []


@pytest.fixture
def state() -> Iterator[tuple[Path, dict[str, str]]]:
    import os

    directory = Path(tempfile.mkdtemp(dir=SESSION_DIR))
    env = {**os.environ, "XDG_STATE_HOME": str(directory)}
    yield directory, env
    mux("down", env=env)


@pytest.mark.guests
def test_a_kept_guests_passt_lives_on_with_it_and_goes_with_mux_down(
        tmp_path: Path, state: tuple[Path, dict[str, str]], console_image: Any) -> None:
    directory, env = state
    sock, config = tmp_path / "c.sock", tmp_path / "c.toml"
    config.write_text(f'[mux]\naccel = "tcg"\nruntime_dir = "{directory}"\ncontrol_socket = "{sock}"\n'
                      'keep_guests = "always"\n[[persona]]\nname = "work"\nnetwork = "user"\n')
    run = Run(config, env, tmp_path / "first.log")
    try:
        got = wait_for(all_running(sock, env, run), 180, "the guest")
        qemu = got["personas"][0]["pid"]
        first = passts(directory)
        assert len(first) == 1, run.output()
    finally:
        run.stop()  # a clean stop that keeps the guests
    assert passts(directory) == first and session_qemus([str(directory)]), run.output()
    again = Run(config, env, tmp_path / "second.log")
    try:
        got = wait_for(all_running(sock, env, again), 60, "the adopted guest")
        assert got["personas"][0]["pid"] == qemu and "work: adopted" in again.output()
        assert passts(directory) == first  # found again: the same passt serves it
        again.kill()  # SIGKILL: a kept guest runs on, and its passt with it
    finally:
        again.stop()
    assert passts(directory) == first
    result = mux("down", env=env)
    assert result.returncode == 0, result.stderr
    wait_for(lambda: not passts(directory) and not session_qemus([str(directory)]), 10, "passt to go")
    assert not list(directory.rglob("*.net"))


@pytest.mark.guests
def test_a_never_kept_guests_passt_dies_with_a_sigkilled_controller(
        tmp_path: Path, state: tuple[Path, dict[str, str]], console_image: Any) -> None:
    directory, env = state
    sock, config = tmp_path / "c.sock", tmp_path / "c.toml"
    config.write_text(f'[mux]\naccel = "tcg"\nruntime_dir = "{directory}"\ncontrol_socket = "{sock}"\n'
                      'keep_guests = "never"\n[[persona]]\nname = "work"\nnetwork = "user"\n')
    run = Run(config, env, tmp_path / "never.log")
    try:
        wait_for(all_running(sock, env, run), 180, "the guest")
        assert len(passts(directory)) == 1, run.output()
        run.kill()
    finally:
        run.stop()
    wait_for(lambda: not passts(directory) and not session_qemus([str(directory)]), 10,
             "QEMU and passt to die with mux run")
