"""``[mux] background``: the active persona first for the CPU (docs/guides/running.md,
"Background personas").

With ``low`` the background personas' QEMU threads run at nice 19 and their vCPU threads
under SCHED_IDLE, the active persona's at normal priority (nice 0, SCHED_OTHER), swapped
at each switch; read from ``/proc/PID/task/TID/stat`` (nice: field 19, policy: field 41).
Only a ready persona is sent back (one that boots keeps normal
priority). With ``pause`` the background guests are stopped (QMP ``query-status``) and the one
switched to resumed, its picture still there; ``run`` leaves them alone. Each time,
``mux ctl status`` says what each persona gets (``background``: low, paused or null). Raising a
priority back needs CAP_SYS_NICE (or RLIMIT_NICE): without it mux is refused, which a
process without that capability shows.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import resource
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from mux.app.controller import Controller
from mux.cli import frontends
from mux.config import PersonaConfig
from mux.config.schema import Background
from mux.guest.persona import Persona
from mux.guest.state import RunState
from tests.conftest import READY_S, make_config, wait_until

SCHED_OTHER, SCHED_IDLE = 0, 5  # sched(7)'s policy numbers, as /proc/TID/stat shows them


def controller(tmp_path: Path, background: Background) -> Controller:
    config = make_config(tmp_path, PersonaConfig("work"), PersonaConfig("home"))
    config = dataclasses.replace(config, mux=dataclasses.replace(config.mux, background=background))
    return Controller(config, frontends=frontends(config), logs_dir=tmp_path / "logs",
                      progress=lambda m: None)


def priorities(persona: Persona) -> dict[int, tuple[int, int]]:
    """{thread id: (nice, policy)} of every thread of the persona's QEMU, from /proc."""
    found: dict[int, tuple[int, int]] = {}
    for tid in os.listdir(f"/proc/{persona.pid}/task"):
        try:
            with open(f"/proc/{persona.pid}/task/{tid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue  # a thread that ended meanwhile
        found[int(tid)] = (int(fields[16]), int(fields[38]))  # fields 19 and 41 of proc(5)
    return found


async def vcpus(persona: Persona) -> set[int]:
    return {int(cpu["thread-id"]) for cpu in await persona.execute("query-cpus-fast")}


async def is_low(persona: Persona) -> bool:
    """Every thread at nice 19, the vCPU threads (and only they) under SCHED_IDLE."""
    idle = await vcpus(persona)
    now = priorities(persona)
    return bool(idle) and all(nice == 19 and policy == (SCHED_IDLE if tid in idle else SCHED_OTHER)
                              for tid, (nice, policy) in now.items())


def is_normal(persona: Persona) -> bool:
    return all(p == (0, SCHED_OTHER) for p in priorities(persona).values())


async def running(ctl: Controller) -> None:
    """Both personas ready (a booting one keeps normal priority: only a ready one is sent
    back), work active, and the switcher's queue past the readiness news."""
    await wait_until(lambda: all(p.state == RunState.RUNNING and p.readiness.ready
                                 for p in ctl.personas.values()), READY_S, "both personas ready")
    await wait_until(lambda: ctl.active == "work", READY_S, "work active")


async def paused(persona: Persona) -> None:
    """Wait until QMP says the guest is paused (the readiness news that sends a persona
    back is paced: it may come a moment after ``ready``)."""
    deadline = time.monotonic() + READY_S
    while (await status(persona))["status"] != "paused":
        assert time.monotonic() < deadline, f"{persona.name} was not paused in {READY_S} s"
        await asyncio.sleep(0.05)


def shares(ctl: Controller) -> dict[str, str | None]:
    """What ``mux ctl status`` says each persona gets: its ``background``."""
    return {entry["name"]: entry["background"] for entry in ctl.status()["personas"]}


async def status(persona: Persona) -> dict[str, Any]:
    result: dict[str, Any] = await persona.execute("query-status")
    return result


@pytest.mark.guests
async def test_low_gives_the_background_the_lowest_priority_swapped_at_each_switch(tmp_path: Path) -> None:
    assert os.getpriority(os.PRIO_PROCESS, 0) == 0, "the test expects to run at nice 0"
    async with controller(tmp_path, "low") as ctl:
        await running(ctl)
        work, home = ctl.persona("work"), ctl.persona("home")
        await wait_until(lambda: all(nice == 19 for nice, _ in priorities(home).values()), READY_S,
                         "home sent back once ready")
        assert await is_low(home) and is_normal(work), (priorities(home), priorities(work))
        assert shares(ctl) == {"work": None, "home": "low"}
        assert await ctl.switch("home", "test") == "home"
        assert await is_low(work) and is_normal(home), (priorities(work), priorities(home))
        assert shares(ctl) == {"work": "low", "home": None}
        assert await ctl.switch("work", "test") == "work"
        assert await is_low(home) and is_normal(work)
        # the background one keeps running (only its priority changed), unlike with pause
        assert (await status(home))["running"] is True


@pytest.mark.guests
async def test_pause_stops_the_background_and_resumes_the_one_switched_to(tmp_path: Path) -> None:
    async with controller(tmp_path, "pause") as ctl:
        await running(ctl)
        work, home = ctl.persona("work"), ctl.persona("home")
        await wait_until(lambda: ctl.display.backbuffer.get("home") is not None, READY_S, "home's picture")
        await paused(home)
        assert (await status(home))["status"] == "paused" and (await status(work))["running"] is True
        assert shares(ctl) == {"work": None, "home": "paused"}
        assert is_normal(home) and is_normal(work)  # pause leaves the priorities alone
        picture = await ctl.screenshot("home")  # a paused guest still has its picture
        assert picture.size[0] > 0
        assert await ctl.switch("home", "test") == "home"
        assert (await status(home))["running"] is True and (await status(work))["status"] == "paused"
        assert shares(ctl) == {"work": "paused", "home": None}
        assert await ctl.switch("work", "test") == "work"
        assert (await status(work))["running"] is True and (await status(home))["status"] == "paused"


@pytest.mark.guests
async def test_run_leaves_every_persona_at_normal_priority_and_running(tmp_path: Path) -> None:
    async with controller(tmp_path, "run") as ctl:
        await running(ctl)
        work, home = ctl.persona("work"), ctl.persona("home")
        for target in ("home", "work"):
            assert await ctl.switch(target, "test") == target
            assert is_normal(home) and is_normal(work), (priorities(home), priorities(work))
            assert shares(ctl) == {"work": None, "home": None}
            assert (await status(home))["running"] is True and (await status(work))["running"] is True
        # positive control: a lowered thread would have been seen by the same reading
        tid = next(iter(await vcpus(home)))
        os.setpriority(os.PRIO_PROCESS, tid, 19)
        try:
            assert priorities(home)[tid][0] == 19 and not is_normal(home)
        finally:
            os.setpriority(os.PRIO_PROCESS, tid, 0)
        assert is_normal(home)


PROBE = textwrap.dedent("""
    import json, subprocess
    from mux.guest.priority import may_raise, set_threads, thread_priority
    child = subprocess.Popen(["sleep", "60"])
    try:
        out = {"may_raise": may_raise(child.pid, 0),
               "lowered": set_threads(child.pid, True, {child.pid}, 0)}
        out["low"] = thread_priority(child.pid)
        out["raised"] = set_threads(child.pid, False, set(), 0)
        out["after"] = thread_priority(child.pid)
    finally:
        child.kill()
    print(json.dumps(out))
""")


@pytest.mark.services
def test_without_cap_sys_nice_a_lowered_thread_cannot_be_raised_and_mux_knows_it() -> None:
    """The documented privilege rule, on a real process: mux's own calls in a Python that
    lacks CAP_SYS_NICE (dropped from its bounding set) with RLIMIT_NICE 0."""
    import json

    if subprocess.run(["setpriv", "--version"], capture_output=True, check=False).returncode != 0:
        pytest.fail("setpriv (util-linux) is missing")
    hard = resource.getrlimit(resource.RLIMIT_NICE)[1]
    assert hard == 0, f"the test expects a hard RLIMIT_NICE of 0, not {hard}"
    result = subprocess.run(["setpriv", "--inh-caps=-sys_nice", "--bounding-set=-sys_nice",
                             sys.executable, "-c", PROBE], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[2])
    out = json.loads(result.stdout)
    assert out["lowered"] == [] and out["low"] == [19, SCHED_IDLE]  # lowering: always allowed
    assert out["may_raise"] is False  # so mux would not have lowered a persona's QEMU
    assert out["raised"] and out["after"] == [19, SCHED_IDLE], out  # refused, reported, unchanged
