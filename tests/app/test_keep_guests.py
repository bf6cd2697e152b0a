"""Guests outlive their controller and are adopted again, or die with it: ``mux run`` as a
real process, SIGKILLed; real console guests; keys from a real X server (Xvfb, XTest)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from mux.config import MuxSection, load_config
from mux.errors import ConfigError
from mux.guest.record import HeldKeys, start_ticks
from tests.conftest import SESSION_DIR, session_qemus

MUX = [sys.executable, "-m", "mux"]
LSHIFT, KEY_A = 42, 30


@pytest.mark.pure
def test_keep_guests_is_checked_with_its_line(tmp_path: Path) -> None:
    def load(line: str) -> MuxSection:
        config = tmp_path / "c.toml"
        config.write_text(f'[mux]\naccel = "tcg"\n{line}\n[[persona]]\nname = "w"\n')
        return load_config(config).mux

    assert load("").keep_guests == "on-crash"
    assert load('keep_guests = "always"').keep_guests == "always"
    with pytest.raises(ConfigError) as caught:
        load('keep_guests = "sometimes"')
    assert f"{tmp_path / 'c.toml'}:3" in str(caught.value) and "on-crash, always, never" in str(caught.value)


@pytest.mark.services
def test_a_state_directory_too_deep_for_unix_sockets_is_refused_by_name(tmp_path: Path) -> None:
    """Socket paths over 107 bytes: QEMU's terse failure becomes one message naming the path."""
    deep = tmp_path / ("s" * 60) / ("t" * 60)
    deep.mkdir(parents=True)
    config = tmp_path / "c.toml"
    config.write_text('[mux]\naccel = "tcg"\nkeep_guests = "always"\n[[persona]]\nname = "work"\n')
    env = {**os.environ, "XDG_STATE_HOME": str(deep)}
    result = subprocess.run([*MUX, "run", "--for", "5", str(config)], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "over the 107 a unix socket allows" in result.stderr and str(deep) in result.stderr
    assert not session_qemus([str(deep)])


@pytest.mark.pure
def test_held_keys_file_follows_presses_and_gives_their_releases(tmp_path: Path) -> None:
    held = HeldKeys(tmp_path / "w.held")
    shift = {"type": "key", "data": {"down": True, "key": {"type": "qcode", "data": "shift"}}}
    a_down = {"type": "key", "data": {"down": True, "key": {"type": "qcode", "data": "a"}}}
    a_up = {"type": "key", "data": {"down": False, "key": {"type": "qcode", "data": "a"}}}
    held.sent([shift, a_down])
    held.sent([a_up, {"type": "rel", "data": {"axis": "x", "value": 3}}])
    again = HeldKeys(tmp_path / "w.held")  # as a later controller reads it
    assert again.take_releases() == [{"type": "key", "data": {"down": False, "key": shift["data"]["key"]}}]
    assert not (tmp_path / "w.held").exists() and again.take_releases() == []


# --- real processes ------------------------------------------------------------------------


def mux(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MUX, *args], capture_output=True, text=True, timeout=300, env=env)


class Run:
    """One ``mux run`` process, its output in a file."""

    def __init__(self, config: Path, env: dict[str, str], log: Path, *args: str) -> None:
        self.log = log
        self._out: IO[str] = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([*MUX, "run", str(config), *args], stdout=self._out,
                                     stderr=subprocess.STDOUT, text=True, env=env)

    def output(self) -> str:
        return self.log.read_text()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._out.close()


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)
    return result


def status(sock: Path, env: dict[str, str]) -> dict[str, Any] | None:
    result = mux("ctl", "--socket", str(sock), "status", env=env)
    return json.loads(result.stdout) if result.returncode == 0 else None


def all_running(sock: Path, env: dict[str, str], run: Run) -> Callable[[], dict[str, Any] | None]:
    def check() -> dict[str, Any] | None:
        assert run.proc.poll() is None, run.output()
        got = status(sock, env)
        return got if got and all(p["state"] == "running" for p in got["personas"]) else None
    return check


def serial(got: dict[str, Any], name: str) -> str:
    path = next(p["serial_log"] for p in got["personas"] if p["name"] == name)
    return Path(path).read_text(errors="replace")


@pytest.fixture
def home(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A short private state directory (unix socket paths must stay under 108 bytes) and
    the environment that points mux at it; every guest left there is stopped at the end."""
    state = Path(tempfile.mkdtemp(dir=SESSION_DIR))
    env = {**os.environ, "XDG_STATE_HOME": str(state)}
    yield state, env
    mux("down", env=env)


def write_config(tmp_path: Path, state: Path, extra: str = "", home_memory: int = 256,
                 keep: str = "") -> tuple[Path, Path]:
    sock = tmp_path / "c.sock"
    config = tmp_path / "c.toml"
    config.write_text(f'[mux]\naccel = "tcg"\nruntime_dir = "{state}"\ncontrol_socket = "{sock}"\n{keep}'
                      f'{extra}[[persona]]\nname = "work"\n'
                      f'[[persona]]\nname = "home"\nmemory_mb = {home_memory}\n')
    return config, sock


@contextlib.contextmanager
def x_keyboard() -> Iterator[tuple[str, Callable[[int, bool], None]]]:
    """An Xvfb display and a function that presses (True) or releases a Linux key code
    there with XTest, the pointer in the middle of the screen (X focus follows it)."""
    from Xlib import X
    from Xlib.display import Display
    from Xlib.ext import xtest

    from tests.display.test_window import xvfb

    with xvfb() as name:
        display = Display(name)

        def key(code: int, down: bool) -> None:
            xtest.fake_input(display, X.MotionNotify, x=640, y=400)
            xtest.fake_input(display, X.KeyPress if down else X.KeyRelease, code + 8)  # evdev -> X
            display.sync()

        try:
            yield name, key
        finally:
            display.close()


@pytest.mark.guests
def test_sigkilled_controller_guests_run_on_and_are_adopted_with_held_keys_released(
        tmp_path: Path, home: tuple[Path, dict[str, str]], console_image: Any) -> None:
    state, env = home
    config, sock = write_config(tmp_path, state, extra='[display]\noutput = "window"\n')
    with x_keyboard() as (display, key):
        env = {**env, "DISPLAY": display, "SDL_VIDEODRIVER": "x11"}
        first = Run(config, env, tmp_path / "first.log")
        try:
            got = wait_for(all_running(sock, env, first), 180, "the first controller's guests")
            for name in ("work", "home"):
                wait_for(lambda n=name: "MUX-READY" in serial(got, n), 120, f"{name} ready")
            pids = {p["name"]: p["pid"] for p in got["personas"]}
            active = got["active"]
            key(LSHIFT, True)  # held while the controller dies
            wait_for(lambda: f"MUX-KEY {LSHIFT} 1" in serial(got, active), 30, "shift down in the guest")
            first.kill()
        finally:
            first.stop()
        assert all(start_ticks(pid) is not None for pid in pids.values()), "a guest died with its controller"
        listed = mux("ps", env=env).stdout
        assert all(f" {pid} " in listed for pid in pids.values()) and " no " in listed, listed

        before = len(serial(got, active))
        began = time.monotonic()
        second = Run(config, env, tmp_path / "second.log")
        try:
            again = wait_for(all_running(sock, env, second), 60, "the second controller's guests")
            adopted_s = time.monotonic() - began
            assert {p["name"]: p["pid"] for p in again["personas"]} == pids  # adopted, not restarted
            output = second.output()
            assert "work: adopted" in output and "home: adopted" in output, output
            assert "-> starting" not in output, output  # running at once, no launch
            wait_for(lambda: f"MUX-KEY {LSHIFT} 0" in serial(again, active)[before:], 30,
                     "the held shift released in the guest")
            mark = len(serial(again, again["active"]))
            key(KEY_A, True)
            key(KEY_A, False)
            wait_for(lambda: f"MUX-KEY {KEY_A} 0" in serial(again, again["active"])[mark:], 30,
                     "typing reaching the active persona")
            key(LSHIFT, False)
            for name in ("work", "home"):
                assert serial(again, name).count("MUX-READY") == 1, f"{name} booted again"
            print(f"adopted both guests {adopted_s:.1f} s after the second mux run started")
        finally:
            second.stop()
    assert all(start_ticks(pid) is None for pid in pids.values())  # a clean stop stops them (on-crash)
    assert list((state / "mux" / "guests").iterdir()) == []


@pytest.mark.guests
def test_a_changed_guest_is_left_running_until_restart_changed_and_down_removes_everything(
        tmp_path: Path, home: tuple[Path, dict[str, str]], console_image: Any) -> None:
    state, env = home
    config, sock = write_config(tmp_path, state)
    first = Run(config, env, tmp_path / "first.log")
    try:
        got = wait_for(all_running(sock, env, first), 180, "the first controller's guests")
        pids = {p["name"]: p["pid"] for p in got["personas"]}
        first.kill()
    finally:
        first.stop()
    write_config(tmp_path, state, home_memory=320)
    second = Run(config, env, tmp_path / "second.log")
    try:
        def home_reported() -> dict[str, Any] | None:
            got = status(sock, env)
            return got if got and "home: its running guest" in second.output() else None

        got = wait_for(home_reported, 60, "the second controller to report home")
        states = {p["name"]: (p["state"], p["pid"]) for p in got["personas"]}
        assert states == {"work": ("running", pids["work"]), "home": ("stopped", None)}, states
        assert "older config; left running" in second.output()
        assert start_ticks(pids["home"]) is not None
    finally:
        second.stop()
    assert start_ticks(pids["work"]) is None and start_ticks(pids["home"]) is not None  # left untouched

    third = Run(config, env, tmp_path / "third.log", "--restart-changed")
    try:
        got = wait_for(all_running(sock, env, third), 180, "the third controller's guests")
        assert start_ticks(pids["home"]) is None
        new_home = next(p["pid"] for p in got["personas"] if p["name"] == "home")
        cmdline = Path(f"/proc/{new_home}/cmdline").read_bytes().split(b"\0")
        assert b"320" in cmdline
        down = mux("down", str(config), env=env)
        assert down.returncode == 0, down.stderr
        third.proc.wait(60)
    finally:
        third.stop()
    assert session_qemus([str(state)]) == {}
    assert list((state / "mux" / "guests").iterdir()) == []


@pytest.mark.guests
def test_never_and_replay_guests_die_with_a_sigkilled_controller(
        tmp_path: Path, home: tuple[Path, dict[str, str]], console_image: Any) -> None:
    state, env = home
    config, sock = write_config(tmp_path, state, keep='keep_guests = "never"\n')
    run = Run(config, env, tmp_path / "never.log")
    try:
        got = wait_for(all_running(sock, env, run), 180, "the guests")
        pids = [p["pid"] for p in got["personas"]]
        run.kill()
    finally:
        run.stop()
    wait_for(lambda: all(start_ticks(pid) is None for pid in pids), 5, "the guests to die with mux run")

    marker = Path(tempfile.mkdtemp(dir=SESSION_DIR))
    scenario = tmp_path / "long.yaml"
    scenario.write_text(f"name: long\nconfig:\n  mux: {{accel: tcg, runtime_dir: '{marker}'}}\n"
                        "  persona: [{name: work, image: console}]\n"
                        "steps:\n  - wait_serial: {persona: work, match: NEVER-PRINTED, timeout: 600}\n")
    replay = subprocess.Popen([*MUX, "replay", str(scenario), "--artifacts", str(tmp_path / "out")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        found = wait_for(lambda: session_qemus([str(marker)]), 120, "the replay's guest")
        wait_for(lambda: list(marker.glob("mux-*/work.serial.log")), 60, "the replay's guest to run")
        replay.send_signal(signal.SIGKILL)
        replay.wait(30)
    finally:
        replay.kill()
    wait_for(lambda: all(start_ticks(pid) is None for pid in found), 5, "the replay's guest to die")


@pytest.mark.guests
def test_a_device_the_dead_controller_hotplugged_moves_again_after_adoption(
        tmp_path: Path, home: tuple[Path, dict[str, str]], console_image: Any) -> None:
    state, env = home
    stick = tmp_path / "stick.img"
    stick.write_bytes(b"\0" * (1 << 20))
    config, sock = write_config(tmp_path, state)
    device = f'{{ id = "stick", type = "usb-storage", file = "{stick}", follow = "active" }}'
    config.write_text(config.read_text().replace('name = "work"\n', f'name = "work"\ndevices = [{device}]\n'))

    def stick_with(got: dict[str, Any] | None) -> str | None:
        devices = (got or {}).get("devices", [])
        return next((d.get("persona") for d in devices if d.get("id") == "stick"), None)

    first = Run(config, env, tmp_path / "first.log")
    try:
        wait_for(all_running(sock, env, first), 180, "the first controller's guests")
        got = wait_for(lambda: (s := status(sock, env)) and stick_with(s) and s, 30, "the stick plugged in")
        assert got["active"] == "work" and stick_with(got) == "work", got
        first.kill()
    finally:
        first.stop()
    second = Run(config, env, tmp_path / "second.log")
    try:
        got = wait_for(all_running(sock, env, second), 60, "the second controller's guests")
        got = wait_for(lambda: (s := status(sock, env)) and s["active"] and stick_with(s) and s, 30,
                       "an active persona holding the stick")
        assert got["active"] == stick_with(got) == "work", (got, second.output())
        assert "unplugged device 'stick'" in second.output()
        switched = mux("ctl", "--socket", str(sock), "switch", "home", env=env)
        assert switched.returncode == 0, switched.stderr
        assert stick_with(status(sock, env)) == "home"
    finally:
        second.stop()


@pytest.mark.services
def test_dry_run_shows_a_kept_guests_sockets_in_its_state_directory(
        tmp_path: Path, home: tuple[Path, dict[str, str]]) -> None:
    state, env = home
    config, _ = write_config(tmp_path, state)
    printed = mux("run", str(config), "--dry-run", env=env)
    assert printed.returncode == 0, printed.stderr
    guests = next((state / "mux" / "guests").iterdir(), None) if (state / "mux" / "guests").exists() else None
    work = next(line for line in printed.stdout.splitlines() if line.startswith("work: "))
    assert f"{state}/mux/guests/" in work and "/work.qmp,server=on,wait=off" in work, work
    assert guests is None  # a dry run makes no directory for guests
    never, _ = write_config(tmp_path, state, keep='keep_guests = "never"\n')
    assert f"{state}/mux-DRYRUN/work.qmp" in mux("run", str(never), "--dry-run", env=env).stdout


@pytest.mark.guests
def test_mux_down_kills_a_qemu_its_dead_controller_never_recorded(
        tmp_path: Path, home: tuple[Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from mux.app import keep
    from mux.guest.record import unrecorded_qemus

    state, _ = home
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    config, _ = write_config(tmp_path, state)
    directory = keep.keep_dir(load_config(config))
    directory.mkdir(parents=True)
    # A stand-in for a QEMU started but not yet running when its controller died.
    fake = subprocess.Popen(["qemu-system-x86_64", "-c", "import time; time.sleep(600)",
                             f"unix:{directory}/work.qmp"], executable=sys.executable)
    try:
        wait_for(lambda: unrecorded_qemus(directory, []) == [fake.pid], 10, "the stand-in's command line")
        assert unrecorded_qemus(directory, [fake.pid]) == []
        assert asyncio.run(keep.down(directory, lambda m: None)) == 0
        assert fake.wait(10) == -signal.SIGKILL
        assert not directory.exists()
    finally:
        fake.kill()


@pytest.mark.guests
def test_mqtt_says_offline_when_the_controller_dies_and_everything_again_after_adoption(
        tmp_path: Path, home: tuple[Path, dict[str, str]], broker: Any, console_image: Any) -> None:
    import asyncio

    from tests.mqtt_helpers import Panel

    state, env = home
    config, sock = write_config(tmp_path, state, extra=f'[mqtt]\nurl = "{broker.url}"\nnode_id = "keep"\n')
    config.write_text(config.read_text().replace('[[persona]]\nname = "home"\nmemory_mb = 256\n', ""))

    async def scenario() -> None:
        async with Panel(broker).connected("mux/#") as panel:
            first = Run(config, env, tmp_path / "first.log")
            try:
                await panel.wait_for("mux/keep/persona/work/state", lambda p: p == b"running", timeout=180)
                got = await asyncio.to_thread(status, sock, env)
                assert got is not None
                pid = got["personas"][0]["pid"]
                first.kill()
                await panel.wait_for("mux/keep/availability", lambda p: p == b"offline", timeout=30)
            finally:
                first.stop()
            assert start_ticks(pid) is not None
            mark = len(panel.messages)
            second = Run(config, env, tmp_path / "second.log")
            try:
                await panel.wait_for("mux/keep/availability", lambda p: p == b"online", timeout=60)

                def again(topic: str, payload: bytes) -> bool:
                    return any(m[:2] == (topic, payload) for m in panel.messages[mark:])

                async with asyncio.timeout(30):  # what the dead controller published, once more
                    while not (again("mux/keep/persona/work/state", b"running")
                               and again("mux/keep/active", b"work")):
                        await asyncio.sleep(0.1)
                got = await asyncio.to_thread(status, sock, env)
                assert got is not None and got["personas"][0]["pid"] == pid  # adopted, published again
            finally:
                second.stop()

    asyncio.run(scenario())
