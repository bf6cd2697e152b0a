"""Quick boot (docs/guides/running.md, "Quick boot"): a clean stop saves each running
persona and the next start of the same config resumes it, checked against its config and
disks; ``mux ps`` shows the saved states' sizes; ``mux replay`` never quick-boots.

Proven on real console guests under TCG: a file written in the guest's tmpfs and its
``/proc/uptime`` survive a stop and start; a resumed persona is ready at once (it prints
no ``MUX-READY``: nothing boots), takes typed keys and reports its LEDs over its VNC
link; a disk changed between the stop and the start, or a changed config, gives a cold
boot with the line saying why; a writable disk without a guest agent is not saved, and
the stop says so. How fast a resume is belongs to ``mux bench`` (``quick_boot_s``).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mux import cli
from mux.app.controller import Controller
from mux.app.keep import config_key
from mux.config import Config, MuxSection, PersonaConfig, load_config
from mux.errors import ConfigError
from mux.guest import quickboot
from mux.input.events import EV_KEY, EV_SYN, InputEvent
from tests.app.test_attention import run_in
from tests.app.test_keep_guests import MUX, Run, all_running, home, mux, wait_for
from tests.conftest import READY_S, SESSION_DIR, wait_until

__all__ = ["home"]  # the fixture, shared with tests/app/test_keep_guests.py
KEY_CAPSLOCK = 58


def console_config(tmp_path: Path, *personas: PersonaConfig) -> Config:
    """A config as ``mux run`` would load it (guests die with the controller: ``never``)."""
    return Config(mux=MuxSection(accel="tcg", runtime_dir=SESSION_DIR, keep_guests="never",
                                 control_socket=tmp_path / "c.sock"), personas=personas)


async def uptime(persona: Any, tag: str) -> float:
    """The guest's ``/proc/uptime`` (seconds since its boot), read through its shell."""
    start = persona.serial.end
    await run_in(persona, f"echo MUX-UPTIME-{tag} $(cut -d' ' -f1 /proc/uptime) > /dev/ttyS0",
                 f"MUX-UPTIME-{tag} ")
    found = await persona.serial.wait_for(re.compile(rf"MUX-UPTIME-{tag} ([0-9.]+)\s"), 30, start,
                                          move_cursor=False)
    return float(found.group(1))


# --- pure: the config key and the checks of a saved state's files --------------------------


@pytest.mark.pure
def test_quick_boot_is_on_by_default_and_checked_with_its_line(tmp_path: Path) -> None:
    def load(line: str) -> MuxSection:
        config = tmp_path / "c.toml"
        config.write_text(f'[mux]\naccel = "tcg"\n{line}\n[[persona]]\nname = "w"\n')
        return load_config(config).mux

    assert load("").quick_boot is True
    assert load("quick_boot = false").quick_boot is False
    with pytest.raises(ConfigError) as caught:
        load('quick_boot = "yes"')
    assert f"{tmp_path / 'c.toml'}:3" in str(caught.value)


@pytest.mark.pure
def test_a_disk_mark_sees_a_change_of_size_time_or_contents(tmp_path: Path) -> None:
    import os

    disk = tmp_path / "d.img"
    disk.write_bytes(b"a" * 4096)
    marks = [quickboot.mark(disk, "disk")]
    assert quickboot.changed(marks) is None  # the control: an untouched file passes
    disk.write_bytes(b"b" * 4096)  # same size, other contents, its time put back
    os.utime(disk, ns=(marks[0]["mtime_ns"], marks[0]["mtime_ns"]))
    assert quickboot.changed(marks) == f"its disk {disk} changed since it was saved (contents)"
    os.utime(disk, ns=(1, 1))
    assert "(modification time)" in str(quickboot.changed(marks))
    disk.write_bytes(b"a" * 10)
    assert "(size)" in str(quickboot.changed(marks))
    disk.unlink()
    assert quickboot.changed(marks) == f"its disk {disk} is gone"
    runtime = tmp_path / "mux-abc"
    assert quickboot.fingerprint([f"{runtime}/w.qmp"], runtime) == quickboot.fingerprint(
        [f"{tmp_path}/mux-xyz/w.qmp"], tmp_path / "mux-xyz")  # the runtime directory blanked
    assert quickboot.fingerprint(["-m", "256"], runtime) != quickboot.fingerprint(["-m", "320"], runtime)


# --- real guests, the controller as mux run makes it ---------------------------------------


@pytest.mark.guests
async def test_a_resumed_persona_has_its_files_uptime_readiness_input_and_leds(
        tmp_path: Path, console_image: Any, capsys: pytest.CaptureFixture[str]) -> None:
    rw_disk = tmp_path / "rw.img"
    rw_disk.write_bytes(b"\0" * (1 << 20))
    config = console_config(tmp_path, PersonaConfig("work"),
                            PersonaConfig("rw", image="console", disk=rw_disk, overlay=False))
    directory = quickboot.config_dir(config_key(config))
    lines: list[str] = []
    async with Controller(config, progress=lines.append, quick_boot=True) as ctl:
        work = ctl.persona("work")
        for persona in ctl.personas.values():
            await persona.readiness.wait(READY_S)
        await run_in(work, "echo kept-$((6*7)) > /tmp/quick; echo MUX-WROTE > /dev/ttyS0", "MUX-WROTE")
        before = await uptime(work, "BEFORE")
    said = "\n".join(lines)
    assert "saving work (256 MiB)..." in said and "saved work for quick boot (" in said, said
    assert (f"persona rw: not saved, it boots afresh next time: its disk {rw_disk} is writable"
            " (overlay = false) and it has no guest agent") in said, said
    assert quickboot.saved(directory) == ["work"]
    assert cli.main(["ps"]) == 0
    listed = capsys.readouterr().out
    rows = saved_rows(listed, config_key(config))
    assert set(rows) == {"work"} and rows["work"][1] == "MiB", listed
    assert float(rows["work"][0]) * (1 << 20) == pytest.approx(quickboot.size(directory, "work"), rel=0.01)

    lines.clear()
    async with Controller(config, progress=lines.append, quick_boot=True) as ctl:
        work, rw = ctl.persona("work"), ctl.persona("rw")
        said = "\n".join(lines)
        assert "persona work: quick boot: resumed its saved state" in said, said
        assert quickboot.saved(directory) == []  # removed once used
        assert work.readiness.ready and work.status()["ready"] is True  # at once: nothing boots
        await rw.serial.wait_for(re.compile("MUX-READY"), READY_S)  # rw booted afresh: a boot says so
        assert "MUX-READY" not in work.serial.text  # ... and work did not boot
        await run_in(work, "cat /tmp/quick > /dev/ttyS0", "kept-42")  # typed keys reach its shell
        after = await uptime(work, "AFTER")
        assert after >= before, (before, after)  # its clock went on from where it was
        assert ctl.active == "work"
        leds = ctl.leds("work")
        assert leds is None or not leds.caps
        await ctl.input([InputEvent(EV_KEY, KEY_CAPSLOCK, 1), InputEvent(EV_SYN, 0, 0),
                         InputEvent(EV_KEY, KEY_CAPSLOCK, 0), InputEvent(EV_SYN, 0, 0)])
        await wait_until(lambda: (now := ctl.leds("work")) is not None and now.caps, 60,
                         "work's caps LED reported over its VNC link")


@pytest.mark.guests
async def test_a_changed_config_boots_afresh_saying_why_and_removes_the_saved_state(
        tmp_path: Path, console_image: Any) -> None:
    config = console_config(tmp_path, PersonaConfig("work"))
    directory = quickboot.config_dir(config_key(config))
    lines: list[str] = []
    async with Controller(config, progress=lines.append, quick_boot=True) as ctl:
        await ctl.persona("work").readiness.wait(READY_S)
    assert quickboot.saved(directory) == ["work"], lines  # the control: there was one to resume
    bigger = console_config(tmp_path, PersonaConfig("work", memory_mb=320))
    lines.clear()
    async with Controller(bigger, progress=lines.append, quick_boot=True) as ctl:
        said = "\n".join(lines)
        assert ("persona work: boots afresh, not from its saved state: its config (or image, devices,"
                " accelerator) changed since it was saved") in said, said
        assert "quick boot: resumed" not in said
        assert quickboot.saved(directory) == []
        await ctl.persona("work").serial.wait_for(re.compile("MUX-READY"), READY_S)  # it booted


# --- mux run, as a process ---------------------------------------------------------------


def write_config(tmp_path: Path, state: Path, store: Path) -> tuple[Path, Path]:
    sock, config = tmp_path / "c.sock", tmp_path / "c.toml"
    config.write_text(f'[mux]\naccel = "tcg"\nruntime_dir = "{state}"\ncontrol_socket = "{sock}"\n'
                      '[[persona]]\nname = "work"\n'
                      f'[[persona]]\nname = "store"\nimage = "console"\nmemory_mb = 256\n'
                      f'disk = "{store}"\noverlay = true\n')
    return config, sock


def all_ready(sock: Path, env: dict[str, str], run: Run) -> Callable[[], dict[str, Any] | None]:
    running = all_running(sock, env, run)

    def check() -> dict[str, Any] | None:
        got = running()
        return got if got and all(p["ready"] for p in got["personas"]) else None
    return check


def saved_rows(listed: str, config: str) -> dict[str, list[str]]:
    """``mux ps``'s rows of saved states (below its ``SAVED`` header) of ``config``, by persona."""
    lines = listed.splitlines()
    below = lines[next((i for i, line in enumerate(lines) if line.startswith("SAVED ")), len(lines)):]
    return {line.split()[0]: line.split()[1:] for line in below if line.endswith(config)}


def serial_of(got: dict[str, Any], name: str) -> str:
    path = next(p["serial_log"] for p in got["personas"] if p["name"] == name)
    return Path(path).read_text(errors="replace")


@pytest.mark.guests
def test_mux_run_saves_at_sigterm_ps_shows_the_sizes_and_a_changed_disk_boots_afresh(
        tmp_path: Path, home: tuple[Path, dict[str, str]], console_image: Any) -> None:
    state, env = home
    store = tmp_path / "store.img"
    store.write_bytes(b"\0" * (1 << 20))
    config, sock = write_config(tmp_path, state, store)
    first = Run(config, env, tmp_path / "first.log")
    try:
        wait_for(all_ready(sock, env, first), READY_S * 2, "the first run's guests ready")
    finally:
        first.stop()  # SIGTERM: a clean stop
    said = first.output()
    assert first.proc.returncode == 0, said
    for name in ("work", "store"):
        assert f"saving {name} (256 MiB)..." in said and f"saved {name} for quick boot (" in said, said
    listed = mux("ps", env=env).stdout
    rows = saved_rows(listed, str(config))
    assert set(rows) == {"work", "store"} and all(r[1] == "MiB" for r in rows.values()), listed

    store.write_bytes(b"\1" * (1 << 20))  # the disk changes between the stop and the start
    second = Run(config, env, tmp_path / "second.log")
    try:
        got = wait_for(all_ready(sock, env, second), READY_S * 2, "the second run's guests ready")
        said = second.output()
        assert (f"persona store: boots afresh, not from its saved state: its disk {store} changed since"
                " it was saved") in said, said
        assert "persona work: quick boot: resumed its saved state" in said, said
        assert "persona store: quick boot" not in said
        wait_for(lambda: "MUX-READY" in serial_of(got, "store"), READY_S, "store's boot")  # booted afresh
        assert "MUX-READY" not in serial_of(got, "work")  # resumed: it did not boot
        listed = mux("ps", env=env).stdout
        assert saved_rows(listed, str(config)) == {}, listed  # used or refused: removed
    finally:
        second.stop()
    assert second.proc.returncode == 0, second.output()


@pytest.mark.guests
def test_mux_replay_never_quick_boots_where_mux_run_does(
        tmp_path: Path, home: tuple[Path, dict[str, str]], console_image: Any) -> None:
    state, env = home
    marker = state / "rt"
    marker.mkdir()
    scenario = tmp_path / "boot.yaml"
    scenario.write_text("name: boot\nconfig:\n"
                        f"  mux: {{accel: tcg, quick_boot: true, runtime_dir: '{marker}'}}\n"
                        "  persona: [{name: work, image: console}]\n"
                        "steps:\n  - wait_serial: {persona: work, match: MUX-READY, timeout: 240}\n")
    for n in (1, 2):  # the second replay boots again: a resumed guest would print no MUX-READY
        replay = subprocess.run([*MUX, "replay", str(scenario), "--artifacts", str(tmp_path / f"out{n}")],
                                capture_output=True, text=True, timeout=500, env=env)
        assert replay.returncode == 0, replay.stdout + replay.stderr
        assert "saving work" not in replay.stdout + replay.stderr
        assert not (state / "mux" / "quickboot").exists()
    # The control: mux run of the same persona in the same state directory does save it.
    config = tmp_path / "c.toml"
    config.write_text(f'[mux]\naccel = "tcg"\nquick_boot = true\nruntime_dir = "{marker}"\n'
                      f'control_socket = "{tmp_path / "c.sock"}"\n[[persona]]\nname = "work"\n')
    run = Run(config, env, tmp_path / "run.log")
    try:
        wait_for(all_ready(tmp_path / "c.sock", env, run), READY_S * 2, "mux run's guest ready")
    finally:
        run.stop()
    assert "saved work for quick boot (" in run.output(), run.output()
    assert list((state / "mux" / "quickboot").glob("*/work.state"))


@pytest.mark.heavy
async def test_a_writable_disk_is_saved_frozen_by_the_agent_and_thawed_after_the_resume(
        tmp_path: Path, debian_image: Any) -> None:
    rw_disk = tmp_path / "rw.img"
    rw_disk.write_bytes(b"\0" * (4 << 20))
    config = console_config(tmp_path, PersonaConfig("deb", image="debian", agent=True, memory_mb=1024,
                                                    disk=rw_disk, overlay=False))
    directory = quickboot.config_dir(config_key(config))
    lines: list[str] = []
    async with Controller(config, progress=lines.append, quick_boot=True) as ctl:
        deb = ctl.persona("deb")
        wrote = await deb.readiness.exec(["sh", "-c", "echo kept-deb > /tmp/quick"], READY_S * 3)
        assert wrote.exitcode == 0, wrote
    said = "\n".join(lines)
    assert "saved deb for quick boot (" in said, said
    assert quickboot.read_manifest(directory, "deb")["frozen"] is True  # type: ignore[index]
    lines.clear()
    async with Controller(config, progress=lines.append, quick_boot=True) as ctl:
        deb = ctl.persona("deb")
        assert "persona deb: quick boot: resumed its saved state" in "\n".join(lines), lines
        read = await deb.readiness.exec(["cat", "/tmp/quick"], READY_S)
        assert read.stdout == b"kept-deb\n", read
        status = await deb.readiness.exec(["sh", "-c", "touch /var/tmp/after-thaw && echo ok"], 60)
        assert status.stdout == b"ok\n", status  # the root file system takes writes: thawed
