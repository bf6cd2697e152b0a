"""Personas' life with real console guests (TCG), as README/docs ("Personas' life",
"Accelerator", "Guests that outlive mux", "Key names and timeouts") tell it:

- ``restart = "always"``: a guest killed again and again is started again each time,
  the gap between crash and restart growing from 0.2 s; ``"on-failure"`` restarts a
  crash but not a guest that powered itself off, which ``"always"`` restarts;
- stopping escalates: the agent (the console image has none: its port never answers,
  so it is not asked; the debian image's answers, but its shutdown is made to do
  nothing), ``system_powerdown`` (the console guest has no ACPI power button handler;
  the debian one is told to ignore it), ``quit``, and, for a QEMU that answers nothing
  (SIGSTOPped), the kill; each step logged, in order;
- ``accel = "kvm"`` on a host whose KVM cannot run guests is refused, naming why; where
  KVM works a console guest boots under it (skipped here, with the reason);
- ``keep_guests = "always"``: a guest outlives a clean stop, the next ``mux run`` adopts
  it, ``mux down`` stops it;
- ``MUX_TIMEOUT_SCALE`` multiplies step timeouts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from mux.app.controller import Controller
from mux.app.events import Event, StateChanged
from mux.config import Config, MuxSection, PersonaConfig
from mux.errors import StepFailed
from mux.guest.accel import kvm_obstacle
from mux.guest.record import start_ticks
from mux.guest.state import RunState
from mux.scenario.runner import StepRunner
from tests.app.test_agent_personas import AGENT_S
from tests.app.test_keep_guests import Run, all_running, mux, status, wait_for
from tests.conftest import READY_S, SESSION_DIR, session_qemus, wait_until

MUX = [sys.executable, "-m", "mux"]


def states(ctl: Controller, name: str) -> list[tuple[str, float]]:
    """Every run state ``name`` enters from now on, with the monotonic time it did."""
    seen: list[tuple[str, float]] = []

    def heard(event: Event) -> None:
        if isinstance(event, StateChanged) and event.persona == name:
            seen.append((event.state, time.monotonic()))

    ctl.subscribe(heard)
    return seen


async def ready(ctl: Controller, name: str, since: int = 0) -> Any:
    """``name``'s persona once its guest (booted after serial offset ``since``) is ready."""
    persona = ctl.persona(name)
    await persona.serial.wait_for(re.compile(f"MUX-READY {name}"), READY_S, start=since)
    return persona


async def type_at(ctl: Controller, name: str, text: str) -> None:
    await ctl.switch(name, "test")
    await StepRunner(ctl).step_type({"text": text})


# --- restart policies ------------------------------------------------------------------


@pytest.mark.guests
async def test_always_restarts_a_killed_guest_each_time_after_a_growing_back_off(
        controller: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mux.guest.persona")
    async with controller(PersonaConfig("work", restart="always")) as ctl:
        persona = ctl.persona("work")
        seen = states(ctl, "work")
        pids, mark = [persona.pid], 0
        for n in range(1, 5):
            mark = persona.serial.end
            await persona.kill()
            await wait_until(lambda n=n: persona.restarts == n and persona.state == RunState.RUNNING,
                             READY_S, f"restart {n}")
            assert persona.pid not in pids  # a new QEMU each time
            pids.append(persona.pid)
        await ready(ctl, "work", mark)  # the last one boots to its shell
        assert ctl.status()["personas"][0]["restarts"] == 4
    crashed = [t for state, t in seen if state == "crashed"]
    starting = [t for state, t in seen if state == "starting"]
    assert len(crashed) == 4 and len(starting) == 4, seen
    gaps = [start - crash for crash, start in zip(crashed, starting, strict=True)]
    print("back-off gaps (s):", [round(gap, 2) for gap in gaps])
    assert gaps[0] >= 0.2, gaps  # the documented first back-off
    assert gaps == sorted(gaps) and gaps[-1] > 2 * gaps[0], gaps  # and it grows
    restarts = [m for r in caplog.records if (m := re.search(r"work: restarting \(restart (\d)", r.message))]
    assert [int(m[1]) for m in restarts] == [1, 2, 3, 4]


@pytest.mark.guests
async def test_on_failure_leaves_a_powered_off_guest_stopped_and_always_restarts_it(
        controller: Any) -> None:
    async with controller(PersonaConfig("fail", restart="on-failure"),
                          PersonaConfig("both", restart="always")) as ctl:
        fail, both = ctl.persona("fail"), ctl.persona("both")
        seen = states(ctl, "fail")
        for persona in (fail, both):  # fail powers off first, both after it
            await ready(ctl, persona.name)
            await type_at(ctl, persona.name, "poweroff -f\n")
            await wait_until(lambda p=persona: p.state != RunState.RUNNING, READY_S,
                             f"{persona.name} to power off")
        await wait_until(lambda: both.restarts == 1 and both.state == RunState.RUNNING, READY_S,
                         "always to restart the powered-off guest")
        await ready(ctl, "both")
        assert (fail.state, fail.exit_code, fail.restarts) == (RunState.STOPPED, 0, 0)
        assert [s for s, _ in seen] == ["stopped"], seen  # no restart, while both's came and went
        await ctl.start("fail")  # the control: a crash of the same persona is restarted
        await fail.kill()
        await wait_until(lambda: fail.restarts == 1 and fail.state == RunState.RUNNING, READY_S,
                         "on-failure to restart the crashed guest")
        assert [s for s, _ in seen] == ["stopped", "starting", "running", "crashed", "starting", "running"]


# --- stopping ----------------------------------------------------------------------------


def steps_logged(caplog: pytest.LogCaptureFixture, pid: int) -> list[str]:
    """The stop steps logged for QEMU ``pid``, in order."""
    found = []
    for record in caplog.records:
        if record.name == "mux.guest.process" and f"pid {pid}" in record.message:
            words = record.message.split(": ", 1)[-1]
            step = "kill" if "killed" in words else "agent" if "agent" in words else words.split(";")[0]
            found.append(step)
    return found


async def answers(ctl: Controller, name: str) -> bool:
    """Whether ``name``'s guest runs a command typed at its shell."""
    persona = ctl.persona(name)
    mark = persona.serial.end
    await type_at(ctl, name, "echo MUX-ALIVE >/dev/ttyS0\n")
    return bool(await persona.serial.wait_for(re.compile("MUX-ALIVE"), READY_S, start=mark))


@pytest.mark.guests
async def test_stop_escalates_past_a_guest_ignoring_agent_and_acpi_to_quit_then_kill(
        controller: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mux.guest.process")
    async with controller(PersonaConfig("deaf", agent=True)) as ctl:
        persona = await ready(ctl, "deaf")
        assert not persona.readiness.ready  # its agent's port: nobody answers in the guest
        await persona.execute("system_powerdown")  # the ACPI power button: the guest has no handler
        await asyncio.sleep(3)  # longer than the stop's wait for it
        assert await answers(ctl, "deaf") and persona.state == RunState.RUNNING
        pid, mark = persona.pid, persona.serial.end
        await persona.stop()  # quit ends QEMU (exit code 0) after the ignored powerdown
        assert steps_logged(caplog, pid) == ["system_powerdown", "quit"]
        assert persona.exit_code == 0 and pid not in session_qemus([str(SESSION_DIR)])

        await persona.start()  # again, with a QEMU that answers nothing at all
        await ready(ctl, "deaf", mark)
        pid = persona.pid
        os.kill(pid, signal.SIGSTOP)
        await persona.stop()
        assert steps_logged(caplog, pid) == ["system_powerdown", "quit", "kill"]
        assert persona.exit_code == -signal.SIGKILL and pid not in session_qemus([str(SESSION_DIR)])
        assert persona.state == RunState.STOPPED


@pytest.mark.heavy
async def test_stop_asks_an_answering_agent_first_then_acpi_then_quit(
        controller: Any, debian_image: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mux.guest.process")
    async with controller(PersonaConfig("deb", image="debian", agent=True)) as ctl:
        persona = ctl.persona("deb")
        await persona.readiness.wait(AGENT_S)
        # Its agent answers, but the shutdown it runs does nothing, and logind ignores the power key.
        ignore = ("ln -sf /bin/true /usr/sbin/shutdown && mkdir -p /etc/systemd/logind.conf.d &&"
                  " printf '[Login]\\nHandlePowerKey=ignore\\n' >/etc/systemd/logind.conf.d/mux.conf &&"
                  " systemctl restart systemd-logind && systemctl mask --runtime poweroff.target")
        done = await ctl.exec("deb", ["/bin/sh", "-c", ignore], 120)
        assert done["exitcode"] == 0, done
        pid = persona.pid
        await persona.stop()
        assert steps_logged(caplog, pid) == ["agent", "system_powerdown", "quit"]
        assert persona.exit_code == 0 and pid not in session_qemus([str(SESSION_DIR)])


# --- the accelerator ---------------------------------------------------------------------


@pytest.mark.services
def test_forced_kvm_where_kvm_cannot_run_guests_is_refused_naming_why(tmp_path: Path) -> None:
    obstacle = kvm_obstacle()
    if obstacle is None:
        pytest.skip("this host's KVM looks usable: test_forced_kvm_boots_a_guest covers it")
    config = tmp_path / "kvm.toml"
    config.write_text(f'[mux]\naccel = "kvm"\nkeep_guests = "never"\ncontrol_socket = "{tmp_path}/c.sock"\n'
                      '[[persona]]\nname = "work"\n')
    for args in (["run", "--for", "60"], ["run", "--dry-run"]):
        result = subprocess.run([*MUX, *args, str(config)], capture_output=True, text=True, timeout=300)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert obstacle in result.stderr and 'accel = "kvm"' in result.stderr, result.stderr
    config.write_text(config.read_text().replace('"kvm"', '"tcg"'))  # the control: the same file runs
    result = subprocess.run([*MUX, "run", "--dry-run", str(config)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0 and "accel=tcg" in result.stdout, result.stderr


@pytest.mark.guests
async def test_forced_kvm_boots_a_guest(tmp_path: Path, console_image: Any) -> None:
    if (obstacle := kvm_obstacle()) is not None:
        pytest.skip(f"no working KVM on this host: {obstacle}")
    config = Config(mux=MuxSection(accel="kvm", runtime_dir=SESSION_DIR, keep_guests="never",
                                   control_socket=tmp_path / "c.sock"), personas=(PersonaConfig("work"),))
    async with Controller(config, progress=lambda m: None) as ctl:
        await ready(ctl, "work")
        assert ctl.persona("work").status()["accel"] == "kvm"


# --- guests that outlive mux -------------------------------------------------------------


@pytest.mark.guests
def test_always_kept_guest_outlives_a_clean_stop_is_adopted_and_mux_down_stops_it(
        tmp_path: Path, console_image: Any) -> None:
    state = Path(tempfile.mkdtemp(dir=SESSION_DIR))  # short: unix socket paths stay under 108 bytes
    env = {**os.environ, "XDG_STATE_HOME": str(state)}
    sock, config = tmp_path / "c.sock", tmp_path / "c.toml"
    config.write_text(f'[mux]\naccel = "tcg"\nkeep_guests = "always"\ncontrol_socket = "{sock}"\n'
                      '[[persona]]\nname = "work"\n')
    try:
        first = Run(config, env, tmp_path / "first.log")
        try:
            got = wait_for(all_running(sock, env, first), READY_S, "the first controller's guest")
            pid = got["personas"][0]["pid"]
            first.proc.send_signal(signal.SIGTERM)  # a clean stop
            assert first.proc.wait(120) == 0, first.output()
        finally:
            first.stop()
        assert start_ticks(pid) is not None, "the guest stopped with its controller"
        listed = mux("ps", env=env).stdout
        assert f" {pid} " in listed, listed

        second = Run(config, env, tmp_path / "second.log")
        try:
            again = wait_for(all_running(sock, env, second), READY_S, "the second controller's guest")
            assert again["personas"][0]["pid"] == pid, again  # adopted, not booted again
            assert "work: adopted its running guest" in second.output(), second.output()
            down = mux("down", str(config), env=env)
            assert down.returncode == 0, down.stderr
            assert second.proc.wait(120) == 0, second.output()  # mux down stopped it cleanly too
        finally:
            second.stop()
        assert start_ticks(pid) is None  # gone: mux down stopped the kept guest
        assert status(sock, env) is None and not list((state / "mux" / "guests").iterdir())
    finally:
        mux("down", env=env)
    assert not session_qemus([str(state)])


# --- MUX_TIMEOUT_SCALE -------------------------------------------------------------------


@pytest.mark.guests
async def test_timeout_scale_multiplies_step_timeouts(controller: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    late = {"persona": "work", "match": "MUX-LATE", "timeout": 1}
    async with controller(PersonaConfig("work")) as ctl:
        await ready(ctl, "work")
        for scale, said in (("1", "within 1s"), ("3", "within 3s")):
            monkeypatch.setenv("MUX_TIMEOUT_SCALE", scale)
            began = time.monotonic()
            with pytest.raises(StepFailed, match=said):
                await StepRunner(ctl).step_wait_serial(dict(late))
            assert time.monotonic() - began >= float(scale)  # it waited the scaled time
        monkeypatch.setenv("MUX_TIMEOUT_SCALE", "60")
        waiting = asyncio.create_task(StepRunner(ctl).step_wait_serial(dict(late)))
        await asyncio.sleep(3)  # three times the unscaled timeout
        assert not waiting.done()
        await type_at(ctl, "work", "echo MUX-LATE >/dev/ttyS0\n")
        await asyncio.wait_for(waiting, READY_S)  # found within the scaled 60 s
