"""A persona's machine keys and its own kernel, booted for real (TCG), as the guest sees them.

- ``machine``, ``cpus`` and ``vga``, each documented value: two console guests report
  their DMI product name (QEMU's i440FX ``pc`` or ``q35``), their processor count and
  their PCI display adapter (std VGA 1234:1111, virtio-vga 1af4:1050);
- ``disk`` + ``cdrom`` + ``boot``: a blank qcow2 and a blank ISO boot through SeaBIOS,
  whose own log (QEMU's debug console, port 0x402, through ``qemu_args``) shows it tried
  the one ``boot`` names first and the other next; QEMU runs and the firmware drew;
- ``kernel`` / ``initrd`` / ``append``: the console image's own files as a persona's
  kernel, with a marker in ``append`` that the guest reads back from ``/proc/cmdline``.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from mux import images
from mux.config import PersonaConfig
from mux.scenario.runner import StepRunner
from tests.conftest import READY_S, wait_until

pytestmark = pytest.mark.guests

#: The DMI product names QEMU gives its two PC machines, and the PCI ids of the adapters.
PRODUCT = {"pc": "i440FX", "q35": "Q35"}
ADAPTER = {"std": "0x1111", "virtio": "0x1050"}


async def report(ctl: Any, name: str, commands: str) -> list[str]:
    """Type ``commands`` at ``name``'s shell, their output sent to ttyS0, and return the
    lines they printed (the guest's own reports of the keys typed left out)."""
    persona = ctl.persona(name)
    await persona.serial.wait_for(re.compile(f"MUX-READY {name}"), READY_S, start=0)
    await ctl.switch(name, "test")
    mark = persona.serial.end
    await StepRunner(ctl).step_type({"text": f"(echo MUX-BEGIN; {commands}; echo MUX-END) >/dev/ttyS0\n"})
    await persona.serial.wait_for(re.compile("^MUX-END", re.M), READY_S, start=mark)
    lines = [line.strip() for line in persona.serial.since(mark).splitlines()
             if not re.match(r"MUX-(KEY|LED|PTR|UEVENT) ", line)]
    return lines[lines.index("MUX-BEGIN") + 1:lines.index("MUX-END")]


async def test_machine_cpus_and_vga_are_what_the_guest_finds(controller: Any) -> None:
    personas = {"plain": ("pc", 1, "std"), "modern": ("q35", 2, "virtio")}
    configs = [PersonaConfig(name, machine=m, cpus=c, vga=v) for name, (m, c, v) in personas.items()]
    async with controller(*configs) as ctl:
        for name, (machine, cpus, vga) in personas.items():
            lines = await report(ctl, name, "cat /sys/class/dmi/id/product_name;"
                                 " grep -c ^processor /proc/cpuinfo; cat /sys/bus/pci/devices/*/device")
            product, count, adapters = lines[0], lines[1], lines[2:]
            other = "q35" if machine == "pc" else "pc"
            assert PRODUCT[machine] in product and PRODUCT[other] not in product, (name, lines)
            assert count == str(cpus), (name, lines)
            assert ADAPTER[vga] in adapters, (name, lines)
            assert ADAPTER["virtio" if vga == "std" else "std"] not in adapters, (name, lines)


def seabios(log: Path) -> list[str]:
    """qemu_args that send SeaBIOS's own log to ``log`` (QEMU's debug console)."""
    return ["-chardev", f"file,id=fwlog,path={log}", "-device", "isa-debugcon,iobase=0x402,chardev=fwlog"]


async def test_a_blank_disk_and_cdrom_boot_through_the_firmware_in_the_order_of_boot(
        controller: Any, tmp_path: Path) -> None:
    disks = {name: tmp_path / f"{name}.qcow2" for name in ("cd", "hd")}
    for disk in disks.values():
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "16M"], check=True)
    iso = tmp_path / "blank.iso"
    iso.write_bytes(b"\0" * (1 << 20))
    logs = {"cd": tmp_path / "cd.fw.log", "hd": tmp_path / "hd.fw.log"}
    cd = PersonaConfig("cd", image=None, disk=disks["cd"], cdrom=iso, boot="cdrom", machine="q35", cpus=2,
                       qemu_args=tuple(seabios(logs["cd"])))
    hd = PersonaConfig("hd", image=None, disk=disks["hd"], cdrom=iso, boot="disk",
                       qemu_args=tuple(seabios(logs["hd"])))
    async with controller(cd, hd) as ctl:
        def tried_all(name: str) -> bool:
            return logs[name].exists() and "No bootable device" in logs[name].read_text(errors="replace")

        for name in logs:
            await wait_until(lambda n=name: tried_all(n), READY_S, f"SeaBIOS of {name} to try every device")
            status = await ctl.persona(name).execute("query-status")
            assert status["running"] and status["status"] == "running", status
            picture = Image.open(await ctl.persona(name).screendump(tmp_path / f"{name}.ppm"))
            assert len(picture.getcolors(1 << 16) or []) > 1, f"{name}: the firmware drew nothing"
        found = {name: log.read_text(errors="replace") for name, log in logs.items()}
    cdrom, hard = "Booting from DVD/CD", "Booting from Hard Disk"
    assert cdrom in found["cd"] and hard in found["cd"], found["cd"]
    assert found["cd"].index(cdrom) < found["cd"].index(hard), found["cd"]  # boot = "cdrom": CD first
    assert found["hd"].index(hard) < found["hd"].index(cdrom), found["hd"]  # boot = "disk": disk first
    assert "Found 2 cpu(s)" in found["cd"] and "Found 1 cpu(s)" in found["hd"]


async def test_an_own_kernel_boots_with_its_initrd_and_the_append_reaches_the_guest(
        controller: Any, console_image: images.BuiltImage) -> None:
    marker = "mux.test-marker=own-kernel-7f3a"
    mine = PersonaConfig("mine", image=None, kernel=console_image.kernel, initrd=console_image.initrd,
                         append=f"{console_image.append} {marker}")
    async with controller(mine) as ctl:
        persona = ctl.persona("mine")
        assert persona.argv()[persona.argv().index("-kernel") + 1] == str(console_image.kernel)
        (line,) = await report(ctl, "mine", "cat /proc/cmdline")
        cmdline = line.split()
        assert marker in cmdline, line  # the guest kernel got the persona's append
        assert "mux.persona=mine" in cmdline and "console=ttyS0" in cmdline, line
