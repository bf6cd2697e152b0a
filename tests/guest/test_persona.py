"""Personas on real QEMU guests (TCG): lifecycle, crashes, restarts, isolation."""

from __future__ import annotations

import asyncio
import os
import re
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from mux.config import PersonaConfig
from mux.errors import LaunchError, StateError
from mux.guest import cmdline as cmdline_module
from mux.guest import policy as policy_module
from mux.guest.accel import AccelChoice
from mux.guest.cmdline import LaunchOptions
from mux.guest.persona import Persona
from mux.guest.state import RunState
from tests.conftest import READY_S, wait_until

pytestmark = pytest.mark.guests
TCG = AccelChoice("tcg", "test", proven=True)


async def test_two_personas_boot_and_typing_reaches_only_the_active_one(controller: Any) -> None:
    from mux.scenario.runner import StepRunner
    from tests.input.test_input_routing import CONTROL, guest_keys, tap_in

    async with controller(PersonaConfig("work"), PersonaConfig("home", color="3060c0")) as ctl:
        work, home = ctl.persona("work"), ctl.persona("home")
        await asyncio.gather(work.serial.wait_for(re.compile("MUX-READY work"), READY_S),
                             home.serial.wait_for(re.compile("MUX-READY home"), READY_S))
        assert ctl.active == "work"
        await tap_in(ctl, "home")  # home's reporter is alive (positive control, before)
        await ctl.switch("work", "test")

        await StepRunner(ctl).step_type({"text": "echo typed-at-work > /dev/ttyS0\n"})
        await work.serial.wait_for(re.compile("typed-at-work"), 30)
        # 'e' down, as the guest saw it (its key reporter may print after the shell's echo)
        await work.serial.wait_for(re.compile("MUX-KEY 18 1"), 30, start=0)
        # ... and after: a key typed in home now is reported after anything typed before
        await tap_in(ctl, "home")
        assert guest_keys(home.serial.text) == CONTROL * 2
        assert "typed-at-work" not in home.serial.text


async def test_kill_is_a_crash_then_a_restart_with_a_new_qemu(controller: Any) -> None:
    async with controller(PersonaConfig("work", restart="on-failure"), PersonaConfig("home")) as ctl:
        work, home = ctl.persona("work"), ctl.persona("home")
        home_pid = home.pid
        first_pid = work.pid
        seen: list[tuple[RunState, int | None]] = []
        work.listeners.append(lambda p: seen.append((p.state, p.pid)))
        await work.kill()
        await wait_until(lambda: RunState.RUNNING in [state for state, _ in seen], 60, "work's restart")
        # in this order: the crash (no QEMU), a new launch, running on a new QEMU
        states = [state for state, _ in seen]
        assert states[:3] == [RunState.CRASHED, RunState.STARTING, RunState.RUNNING], seen
        assert seen[0][1] is None and seen[2][1] not in (None, first_pid), seen
        assert work.pid is not None and work.pid != first_pid
        assert home.pid == home_pid and home.state == RunState.RUNNING
        await work.serial.wait_for(re.compile("MUX-READY work"), READY_S)


async def test_restart_no_leaves_a_crashed_persona_crashed(controller: Any) -> None:
    never, again = PersonaConfig("work", restart="no"), PersonaConfig("home", restart="on-failure")
    async with controller(never, again) as ctl:
        work, home = ctl.persona("work"), ctl.persona("home")
        home_pid = home.pid
        await asyncio.gather(work.kill(), home.kill())
        await work.wait_state(RunState.CRASHED, 30)
        # the positive control: killed at the same moment, home is restarted by now
        await wait_until(lambda: home.state == RunState.RUNNING and home.pid not in (None, home_pid), 60,
                         "home's restart")
        assert work.state == RunState.CRASHED and work.pid is None
        with pytest.raises(StateError, match="crashed"):
            await work.send_input([])


async def test_launch_failure_carries_qemu_stderr(tmp_path: Path) -> None:
    config = PersonaConfig("bad", image=None, disk=tmp_path / "missing.qcow2")
    async with Persona(config, tmp_path, TCG) as bad:
        with pytest.raises(LaunchError) as caught:
            await bad.start()
        assert caught.value.returncode == 1
        assert "missing.qcow2" in caught.value.stderr
        assert "-drive" in caught.value.argv
        assert bad.state == RunState.STOPPED


async def test_missing_qemu_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cmdline_module, "QEMU_BINARY", "/nonexistent/qemu-system-x86_64")
    async with Persona(PersonaConfig("p", image=None), tmp_path, TCG) as p:
        with pytest.raises(LaunchError, match="cannot run /nonexistent/qemu-system-x86_64"):
            await p.start()


async def test_sockets_only_in_the_private_runtime_dir(controller: Any) -> None:
    async with controller(PersonaConfig("work"), PersonaConfig("home")) as ctl:
        runtime = ctl.runtime_dir
        assert stat.S_IMODE(runtime.stat().st_mode) == 0o700
        pids = [p.pid for p in ctl.personas.values()]
        inodes = {inode for pid in pids for inode in _socket_inodes(pid)}
        assert inodes, "QEMU should hold sockets"
        unix_paths = _unix_paths(inodes)
        assert unix_paths, "QEMU should hold unix sockets"
        for path in unix_paths:
            assert Path(path).parent == runtime, path
        assert not _tcp_listeners(inodes), "QEMU listens on TCP"
        assert (runtime / "work.vnc").exists() and (runtime / "work.qmp").exists()
    assert not runtime.exists()


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _unix_paths(inodes: set[str]) -> list[str]:
    paths = []
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[6] in inodes:
            paths.append(fields[7])
    return paths


def _tcp_listeners(inodes: set[str]) -> list[str]:
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A = LISTEN
                found.append(fields[1])
    return found


async def test_unproven_kvm_proves_itself_or_falls_back_to_tcg(
        tmp_path: Path, console_image: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the host shows an obstacle (kvm_pvm, no /dev/kvm, no vmx/svm), KVM hangs the
    guest or does not start: both end in TCG. Where KVM looks usable (e.g. GitHub's
    runners), the first boot proves it, or, if it still fails, ends in TCG all the same."""
    from mux.guest.accel import kvm_obstacle

    obstacle = kvm_obstacle()
    monkeypatch.setattr(policy_module, "KVM_PROOF_S", 3.0)
    unproven = AccelChoice("kvm", "auto: must prove itself", proven=False)
    boot = (console_image.kernel, console_image.initrd, console_image.append)
    async with Persona(PersonaConfig("p"), tmp_path, unproven, boot) as p:
        await p.start()
        await p.serial.wait_for(re.compile("MUX-READY p"), READY_S)
        deadline = time.monotonic() + 5  # the proof polls the serial log every 0.2 s
        while not p.accel.proven and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert p.accel.proven, p.accel
        if p.accel.accel == "kvm":
            assert obstacle is None, f"KVM booted the guest despite: {obstacle}"
            assert p.accel.reason == "auto: proven by the first boot", p.accel
        else:
            assert p.accel.reason in ("auto: KVM would not start",
                                      "auto: KVM did not boot the guest in time"), p.accel
        assert p.state == RunState.RUNNING


def test_auto_accel_refuses_kvm_that_cannot_work(tmp_path: Path) -> None:
    from mux.guest.accel import choose_accel

    root = tmp_path
    (root / "dev").mkdir()
    (root / "proc").mkdir()
    (root / "sys/module/kvm_pvm").mkdir(parents=True)
    (root / "proc/cpuinfo").write_text("flags\t\t: fpu vme vmx sse\n")
    assert choose_accel("auto", root).accel == "tcg"
    assert "does not exist" in choose_accel("auto", root).reason
    (root / "dev/kvm").write_text("")
    assert "kvm_pvm" in choose_accel("auto", root).reason
    (root / "sys/module/kvm_pvm").rmdir()
    auto = choose_accel("auto", root)
    assert (auto.accel, auto.proven) == ("kvm", False)
    (root / "proc/cpuinfo").write_text("flags\t\t: fpu vme sse\n")
    assert "no vmx or svm" in choose_accel("auto", root).reason
    assert choose_accel("tcg", root).accel == "tcg"


async def test_a_window_persona_gets_an_absolute_pointer_that_takes_abs_events(tmp_path: Path) -> None:
    from mux.input.events import ABS_X, ABS_Y, EV_ABS, EV_SYN, InputEvent
    from mux.input.router import Router

    async with Persona(PersonaConfig("p", image=None), tmp_path, TCG,
                       options=LaunchOptions(tablet=True)) as p:
        await p.start()
        mice = await p.execute("query-mice")
        assert any(m["absolute"] for m in mice), mice
        router = Router(["p"], active="p")
        actions = [a for e in (InputEvent(EV_ABS, ABS_X, 100), InputEvent(EV_ABS, ABS_Y, 200),
                               InputEvent(EV_SYN, 0, 0)) for a in router.feed(e)]
        (send,) = actions
        assert send.events == [{"type": "abs", "data": {"axis": "x", "value": 100}},  # type: ignore[attr-defined]
                               {"type": "abs", "data": {"axis": "y", "value": 200}}]
        await p.send_input(send.events)  # type: ignore[attr-defined]


def test_a_killed_controllers_runtime_directory_is_removed_by_the_next_one(tmp_path: Path) -> None:
    import subprocess

    from mux.app.runtime import OWNER, private_runtime_dir
    from mux.guest.record import start_ticks

    gone = subprocess.Popen(["sleep", "30"])
    dead = tmp_path / "mux-dead"
    dead.mkdir()
    (dead / "work.ppm").write_bytes(b"P6")
    (dead / OWNER).write_text(f"{gone.pid} {start_ticks(gone.pid)}\n")
    alive = tmp_path / "mux-alive"
    alive.mkdir()
    (alive / OWNER).write_text(f"{os.getpid()} {start_ticks(os.getpid())}\n")
    foreign = tmp_path / "mux-noowner"
    foreign.mkdir()
    with private_runtime_dir(tmp_path):
        assert dead.exists()  # positive control: its owner still runs
    gone.kill()
    gone.wait()
    with private_runtime_dir(tmp_path) as own:
        assert (own / OWNER).read_text().split()[0] == str(os.getpid())
        assert not dead.exists()
        assert alive.exists() and foreign.exists()
    assert not own.exists()
