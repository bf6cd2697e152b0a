"""Device assignment and hotplug on real QEMU (TCG).

The first tests run QEMUs with no guest at all (SeaBIOS finds nothing to boot): USB
unplugs complete without a guest, and a PCI unplug never does, which is exactly a guest
that ignores the unplug request. The acceptance tests boot `console` guests and check
from the guest side, through its ``MUX-UEVENT`` reports and by reading the devices.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from mux.app.controller import Controller
from mux.app.events import DevicesChanged, Event
from mux.cli import frontends
from mux.config import PersonaConfig
from mux.devices.model import DeviceConfig
from mux.errors import DeviceError, DeviceTimeout
from mux.frontends import control
from mux.guest.persona import Persona
from mux.scenario.runner import StepRunner
from tests.conftest import READY_S, make_config

pytestmark = pytest.mark.guests
ADD_BLOCK = re.compile(r"MUX-UEVENT add block (sd[a-z]+)")
REMOVE_BLOCK = re.compile(r"MUX-UEVENT remove block sd[a-z]+")
UEVENT_S = 60.0


# --- helpers ----------------------------------------------------------------------------


def device_events(ctl: Controller) -> list[DevicesChanged]:
    """Every device move ``ctl`` publishes from now on, in order."""
    events: list[DevicesChanged] = []

    def keep(event: Event) -> None:
        if isinstance(event, DevicesChanged):
            events.append(event)

    ctl.subscribe(keep)
    return events


@asynccontextmanager
async def running(tmp_path: Path, *personas: PersonaConfig) -> AsyncIterator[Controller]:
    config = make_config(tmp_path, *personas)
    async with Controller(config, frontends=frontends(config), logs_dir=tmp_path / "logs",
                          progress=lambda m: None) as ctl:
        yield ctl


def no_guest(name: str, *devices: DeviceConfig, autostart: bool = True) -> PersonaConfig:
    """A persona whose QEMU runs no guest at all: quick to start, and deaf to PCI unplugs."""
    return PersonaConfig(name, image=None, devices=devices, autostart=autostart)


def raw_file(path: Path, size: int = 1 << 20) -> Path:
    with open(path, "wb") as file:
        file.truncate(size)
    return path


def ext2_image(path: Path, files: dict[str, str]) -> Path:
    """A 4 MiB ext2 image holding ``files`` (mke2fs -d, from e2fsprogs)."""
    mke2fs = shutil.which("mke2fs") or shutil.which("mke2fs", path="/usr/sbin:/sbin")
    if mke2fs is None:
        pytest.fail("mke2fs is missing (Debian's e2fsprogs): run ./bootstrap test")
    content = path.with_suffix(".d")
    content.mkdir()
    for name, text in files.items():
        (content / name).write_text(text + "\n")
    subprocess.run([mke2fs, "-q", "-F", "-t", "ext2", "-d", str(content), str(path), "4M"], check=True)
    return path


async def qdev_ids(persona: Persona) -> set[str]:
    """The user-created devices QEMU itself has, by id (QMP qom-list)."""
    children = await persona.execute("qom-list", {"path": "/machine/peripheral"})
    return {c["name"] for c in children if c["type"].startswith("child<")} - {"xhci"}


async def ready(*personas: Persona) -> None:
    await asyncio.gather(*(p.serial.wait_for(re.compile(f"MUX-READY {p.name}"), READY_S, start=0)
                           for p in personas))


async def guest_says(ctl: Controller, persona: Persona, tag: str, command: str, timeout: float = 60) -> str:
    """Type ``command`` into the active persona's shell; returns what it printed after ``tag:``."""
    assert ctl.active == persona.name
    await StepRunner(ctl).step_type({"text": f'echo "{tag}: $({command})" >/dev/ttyS0\n'})
    match = await persona.serial.wait_for(re.compile(f"{tag}: (.*?)\r?\n"), timeout, start=0)  # whole line
    return match.group(1).strip()


def read_file_command(devname: str, name: str) -> str:
    """Mount ``devname`` and print file ``name``. The console image loads its ext4 module in
    the background after its shell is up, so the mount is tried for up to 10 s."""
    return (f"mkdir -p /tmp/m; i=0; until mount -r /dev/{devname} /tmp/m 2>/tmp/m.err; do i=$((i+1)); "
            "[ $i -ge 50 ] && cat /tmp/m.err && break; sleep 0.2; done; "
            f"cat /tmp/m/{name} 2>/dev/null; umount /tmp/m 2>/dev/null")


# --- without guests: timeouts, the control socket, usb-host, cold moves -----------------


async def test_a_guest_that_never_releases_keeps_the_device_and_the_switch_is_refused(
        tmp_path: Path) -> None:
    disk = DeviceConfig("d", "disk", "a", file=raw_file(tmp_path / "d.img"), follow="active",
                        release_timeout_s=1)
    async with running(tmp_path, no_guest("a", disk), no_guest("b")) as ctl:
        a, b = ctl.persona("a"), ctl.persona("b")
        assert ctl.active == "a"
        assert "d" in await qdev_ids(a)  # plugged in by the startup switch
        began = time.monotonic()
        with pytest.raises(DeviceTimeout, match=r"switch to 'b' refused: persona 'a' did not release device "
                                                r"'d' within 1s .*; device 'd' is attached to persona 'a'"):
            await ctl.switch("b", "test")
        assert time.monotonic() - began >= 0.95  # refused once its release timeout (1 s) ran out
        assert ctl.active == "a"
        assert [d["id"] for d in ctl.devices("a")] == ["d"] and ctl.devices("b") == []
        assert "did not release" in ctl.status()["devices"][0]["error"]
        assert "d" in await qdev_ids(a) and "d" not in await qdev_ids(b)
        with pytest.raises(DeviceTimeout, match="did not release"):
            await ctl.detach("d", timeout=0.5)
        assert ctl.devices("a")[0]["persona"] == "a"
        # The user is told through the control socket as well.
        reply = await asyncio.to_thread(control.request, tmp_path / "control.sock",
                                        {"cmd": "switch", "persona": "b"})
        assert reply["ok"] is False and "did not release device 'd'" in reply["error"]


async def test_ctl_moves_usb_devices_between_running_and_stopped_personas(tmp_path: Path) -> None:
    stick = DeviceConfig("stick", "usb-storage", "a", file=raw_file(tmp_path / "stick.img"))
    cam = DeviceConfig("cam", "usb-host", "b", vendor=0x046D, product=0x0825)  # no such device here
    sock = tmp_path / "control.sock"
    personas = no_guest("a", stick), no_guest("b", cam), no_guest("c", autostart=False)
    async with running(tmp_path, *personas) as ctl:
        a, b, c = ctl.persona("a"), ctl.persona("b"), ctl.persona("c")
        events = device_events(ctl)
        assert "stick" in await qdev_ids(a) and "cam" in await qdev_ids(b)  # from the command lines

        cli = [sys.executable, "-m", "mux", "ctl", "--socket", str(sock)]
        moved = await asyncio.to_thread(subprocess.run, [*cli, "attach", "stick", "b"],
                                        capture_output=True, text=True, timeout=60)
        assert moved.returncode == 0, moved.stderr
        assert moved.stdout.strip() == "stick: attached to b"
        assert "stick" not in await qdev_ids(a) and {"stick", "cam"} <= await qdev_ids(b)
        assert events == [DevicesChanged("stick", "a", "b", "b")]

        refused = await asyncio.to_thread(subprocess.run, [*cli, "detach", "stick", "a"],
                                          capture_output=True, text=True, timeout=60)
        assert refused.returncode == 1 and "not attached to persona 'a'" in refused.stderr

        reply = await asyncio.to_thread(control.request, sock, {"cmd": "attach", "device": "cam",
                                                                "persona": "a"})
        assert reply["ok"], reply
        assert reply["device"]["persona"] == "a" and reply["device"]["vendor"] == "0x046d"
        assert "cam" in await qdev_ids(a) and "cam" not in await qdev_ids(b)

        # A stopped persona gets the device on its next command line.
        await StepRunner(ctl).step_attach({"device": "stick", "persona": "c"})
        assert ctl.devices("c")[0]["live"] is False and "stick" not in await qdev_ids(b)
        await ctl.start_personas(["c"])
        assert '"id":"stick"' in " ".join(c.argv())
        assert "stick" in await qdev_ids(c)
        status = (await asyncio.to_thread(control.request, sock, {"cmd": "status"}))["status"]
        assert {d["id"]: (d["persona"], d["live"]) for d in status["devices"]} == {
            "stick": ("c", True), "cam": ("a", True)}
        assert [p["devices"] for p in status["personas"]] == [["cam"], [], ["stick"]]

        await StepRunner(ctl).step_detach({"device": "stick"})
        assert "stick" not in await qdev_ids(c) and ctl.devices("c") == []
        bad = await asyncio.to_thread(control.request, sock, {"cmd": "attach", "device": "nope",
                                                              "persona": "a"})
        assert bad == {"ok": False, "error": "unknown device 'nope' (devices: stick, cam)"}


# --- acceptance: guests see only their own devices ---------------------------------------


async def test_a_stick_follows_the_active_persona_and_a_third_never_sees_it(
        controller: Any, tmp_path: Path) -> None:
    token = f"stick-{time.time_ns()}"
    image = ext2_image(tmp_path / "stick.img", {"hello.txt": token})
    stick = DeviceConfig("stick", "usb-storage", "work", file=image, follow="active")
    async with controller(PersonaConfig("work", devices=(stick,)), PersonaConfig("home"),
                          PersonaConfig("third")) as ctl:
        work, home, third = (ctl.persona(n) for n in ("work", "home", "third"))
        events = device_events(ctl)
        await ready(work, home, third)
        assert ctl.active == "work" and [d["id"] for d in ctl.devices("work")] == ["stick"]
        added = await work.serial.wait_for(ADD_BLOCK, UEVENT_S, start=0)
        assert await guest_says(ctl, work, "read-1", read_file_command(added[1], "hello.txt")) == token

        for n, (old, new) in enumerate([(work, home), (home, work), (work, home)], start=2):
            old_mark, new_mark = len(old.serial.text), len(new.serial.text)
            assert await ctl.switch(new.name, "test") == new.name
            assert [d["id"] for d in ctl.devices(new.name)] == ["stick"] and ctl.devices(old.name) == []
            added = await new.serial.wait_for(ADD_BLOCK, UEVENT_S, start=new_mark)
            await old.serial.wait_for(REMOVE_BLOCK, UEVENT_S, start=old_mark)
            assert await guest_says(ctl, new, f"read-{n}", read_file_command(added[1], "hello.txt")) == token
        assert [(e.source, e.persona, e.error) for e in events] == [
            ("work", "home", None), ("home", "work", None), ("work", "home", None)]

        # The third guest reports uevents (its root hubs), but none ever for the stick.
        assert re.search(r"MUX-UEVENT add usb bus/usb/\d+/001", third.serial.text)
        assert not re.search(r"MUX-UEVENT \S+ block", third.serial.text)
        assert not re.search(r"MUX-UEVENT \S+ usb bus/usb/\d+/(?!001)", third.serial.text)
        assert "stick" not in await qdev_ids(third)


async def test_each_persona_sees_its_own_disk_and_never_anothers(controller: Any, tmp_path: Path) -> None:
    disks = {name: DeviceConfig(f"{name}disk", "disk", name,
                                file=ext2_image(tmp_path / f"{name}.img", {"owner.txt": f"{name}-secret"}))
             for name in ("work", "home")}
    async with controller(PersonaConfig("work", devices=(disks["work"],)),
                          PersonaConfig("home", devices=(disks["home"],))) as ctl:
        personas = [ctl.persona("work"), ctl.persona("home")]
        await ready(*personas)
        for persona in personas:
            other = "home" if persona.name == "work" else "work"
            await persona.serial.wait_for(re.compile("MUX-UEVENT add block vda"), UEVENT_S, start=0)
            await ctl.switch(persona.name, "test")
            disks_seen = "ls /sys/block | grep -E '^(vd|sd)' | tr '\\n' ' '"
            assert await guest_says(ctl, persona, "disks", disks_seen) == "vda"
            serial = await guest_says(ctl, persona, "serial", "cat /sys/block/vda/serial")
            assert serial == f"{persona.name}disk"
            assert await guest_says(ctl, persona, "owner", read_file_command("vda", "owner.txt")) == (
                f"{persona.name}-secret")
            assert f"{other}-secret" not in persona.serial.text and f"{other}disk" not in persona.serial.text
            assert await qdev_ids(persona) == {f"{persona.name}disk"}
            assert str(disks[other].file) not in " ".join(persona.argv())


async def test_a_failed_attach_leaves_the_stick_where_it_was(controller: Any, tmp_path: Path) -> None:
    token = f"stays-{time.time_ns()}"
    image = ext2_image(tmp_path / "stick.img", {"hello.txt": token})
    stick = DeviceConfig("stick", "usb-storage", "work", file=image, follow="active")
    async with controller(PersonaConfig("work", devices=(stick,)), PersonaConfig("home")) as ctl:
        work, home = ctl.persona("work"), ctl.persona("home")
        await ready(work, home)
        await work.serial.wait_for(ADD_BLOCK, UEVENT_S, start=0)

        # 1. The backing file is missing: found before work's guest is asked for anything.
        hidden = image.rename(tmp_path / "hidden.img")
        work_mark, home_mark = len(work.serial.text), len(home.serial.text)
        assert await ctl.switch("home", "test") == "home"  # the switch itself goes ahead
        assert [d["id"] for d in ctl.devices("work")] == ["stick"] and ctl.devices("home") == []
        assert "stick.img does not exist" in ctl.devices("work")[0]["error"]
        assert "stick" in await qdev_ids(work) and "stick" not in await qdev_ids(home)
        await asyncio.sleep(3)  # time for any uevent to show
        assert not REMOVE_BLOCK.search(work.serial.text, work_mark)
        assert not ADD_BLOCK.search(home.serial.text, home_mark)

        # 2. home's device_add itself fails (an id that is taken there): the stick goes back to work.
        hidden.rename(image)
        await home.execute("device_add", {"driver": "usb-kbd", "id": "stick", "bus": "xhci.0"})
        work_mark = len(work.serial.text)
        with pytest.raises(DeviceError, match=r"QMP device_add failed: .*stick.*; device 'stick' is "
                                              r"attached to persona 'work'$"):
            await ctl.attach("stick", "home")
        assert [d["id"] for d in ctl.devices("work")] == ["stick"] and ctl.devices("home") == []
        assert "stick" in await qdev_ids(work)
        await work.serial.wait_for(REMOVE_BLOCK, UEVENT_S, start=work_mark)
        again = await work.serial.wait_for(ADD_BLOCK, UEVENT_S)  # plugged back in
        assert not ADD_BLOCK.search(home.serial.text, home_mark)
        await ctl.switch("work", "test")
        assert await guest_says(ctl, work, "read", read_file_command(again[1], "hello.txt")) == token

        # 3. Once home can take it, the next switch moves it there.
        await home.execute("device_del", {"id": "stick"})
        await asyncio.sleep(1)
        await ctl.switch("home", "test")
        assert [d["id"] for d in ctl.devices("home")] == ["stick"]
        assert ctl.devices("home")[0]["error"] is None
        await home.serial.wait_for(ADD_BLOCK, UEVENT_S, start=home_mark)


async def test_a_disk_moves_between_guests_and_a_late_release_detaches_it(
        controller: Any, tmp_path: Path) -> None:
    image = ext2_image(tmp_path / "disk.img", {"owner.txt": "moved-disk"})
    disk = DeviceConfig("workdisk", "disk", "work", file=image, release_timeout_s=30)
    async with controller(PersonaConfig("work", devices=(disk,)), PersonaConfig("home")) as ctl:
        work, home = ctl.persona("work"), ctl.persona("home")
        events = device_events(ctl)
        await ready(work, home)
        vda = re.compile("MUX-UEVENT add block vda")
        await work.serial.wait_for(vda, UEVENT_S, start=0)
        await home.serial.wait_for(re.compile("MUX-UEVENT add usb bus/usb/002/001"), UEVENT_S, start=0)

        # A PCI unplug needs the guest's cooperation (ACPI eject); the move waits for it.
        home_mark = len(home.serial.text)
        status = await ctl.attach("workdisk", "home")
        assert (status["persona"], status["live"]) == ("home", True)
        assert re.search("MUX-UEVENT remove block vda", work.serial.text)  # released before the move went on
        await home.serial.wait_for(vda, UEVENT_S, start=home_mark)
        await ctl.switch("home", "test")
        assert await guest_says(ctl, home, "owner", read_file_command("vda", "owner.txt")) == "moved-disk"

        # A guest that does not answer (paused) times out; the device stays. When it
        # completes the unplug later, the device is detached and listeners are told.
        await home.execute("stop")
        with pytest.raises(DeviceTimeout, match="did not release device 'workdisk' within 1s"):
            await ctl.detach("workdisk", timeout=1)
        assert ctl.devices("home")[0]["id"] == "workdisk"
        events.clear()
        await home.execute("cont")
        await home.serial.wait_for(re.compile("MUX-UEVENT remove block vda"), UEVENT_S, start=home_mark)
        for _ in range(100):
            if not ctl.devices("home"):
                break
            await asyncio.sleep(0.1)
        assert ctl.devices("home") == [] and ctl.status()["devices"][0]["persona"] is None
        assert events == [DevicesChanged("workdisk", "home", None, None)]
        assert "workdisk" not in await qdev_ids(home)
        # Detached and closed: it can go back to work.
        await ctl.attach("workdisk", "work")
        await work.serial.wait_for(re.compile("MUX-UEVENT add block vda"), UEVENT_S)
