"""``mux import libvirt``: a virt-manager domain becomes a persona that loads and runs."""

from __future__ import annotations

import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mux.config import load_config
from mux.config.libvirt import convert, memory_mb, persona_name
from mux.images.disk import find_ovmf

#: What virt-manager writes for a Debian guest with UEFI (trimmed of addresses only).
DOMAIN = """<domain type='kvm'>
  <name>Debian 13 (work)</name>
  <uuid>5f2d6c1e-1b8e-4c55-9a44-0c1d6e7c2a10</uuid>
  <metadata>
    <libosinfo:libosinfo xmlns:libosinfo="http://libosinfo.org/xmlns/libvirt/domain/1.0">
      <libosinfo:os id="http://debian.org/debian/13"/>
    </libosinfo:libosinfo>
  </metadata>
  <memory unit='KiB'>4194304</memory>
  <currentMemory unit='KiB'>4194304</currentMemory>
  <vcpu placement='static'>2</vcpu>
  <os firmware='efi'>
    <type arch='x86_64' machine='pc-q35-8.2'>hvm</type>
    <firmware>
      <feature enabled='no' name='enrolled-keys'/>
      <feature enabled='no' name='secure-boot'/>
    </firmware>
    <loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>
    <nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'>/var/lib/libvirt/qemu/nvram/debian13_VARS.fd</nvram>
    <boot dev='hd'/>
  </os>
  <features><acpi/><apic/><vmport state='off'/></features>
  <cpu mode='host-passthrough' check='none' migratable='on'/>
  <clock offset='utc'><timer name='rtc' tickpolicy='catchup'/></clock>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' discard='unmap'/>
      <source file='DISK'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='ISO'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>
    <controller type='usb' index='0' model='qemu-xhci' ports='15'/>
    <interface type='user'>
      <mac address='52:54:00:12:34:56'/>
      <model type='virtio'/>
    </interface>
    <serial type='pty'><target type='isa-serial' port='0'/></serial>
    <channel type='unix'>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
    </channel>
    <input type='tablet' bus='usb'/>
    <graphics type='spice' autoport='yes'><listen type='address'/></graphics>
    <sound model='ich9'/>
    <video><model type='virtio' heads='1' primary='yes'/></video>
    <memballoon model='virtio'/>
  </devices>
</domain>
"""


def mux(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mux", *args], capture_output=True, text=True, timeout=120)


def option_values(argv: list[str], option: str) -> list[str]:
    return [argv[i + 1] for i, word in enumerate(argv[:-1]) if word == option]


@pytest.mark.services
def test_a_virt_manager_domain_loads_and_runs_as_a_persona(tmp_path: Path) -> None:
    disk, iso = tmp_path / "debian13.qcow2", tmp_path / "debian-13-netinst.iso"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "64M"], check=True)
    iso.write_bytes(b"\0" * 4096)
    xml = tmp_path / "debian13.xml"
    xml.write_text(DOMAIN.replace("DISK", str(disk)).replace("ISO", str(iso)))

    imported = mux("import", "libvirt", str(xml))
    assert imported.returncode == 0, imported.stderr
    comments = "\n".join(line for line in imported.stdout.splitlines() if line.startswith("#"))
    for part in ("<nvram> /var/lib/libvirt/qemu/nvram/debian13_VARS.fd", "<graphics type='spice'>",
                 "<sound model='ich9'>", "<cpu mode='host-passthrough'>", "<features>", "<clock>",
                 "<memballoon model='virtio'>", "<uuid>"):
        assert part in comments, comments
    assert "<disk" not in comments and "<interface" not in comments  # those were taken

    toml = tmp_path / "mux.toml"
    toml.write_text('[mux]\naccel = "tcg"\n\n' + imported.stdout)
    persona = load_config(toml).persona("debian-13-work")
    assert (persona.disk, persona.cdrom, persona.boot) == (disk, iso, "disk")
    assert (persona.firmware, persona.machine, persona.memory_mb, persona.cpus) == ("uefi", "q35", 4096, 2)
    assert (persona.network, persona.vga, persona.agent, persona.image) == ("user", "virtio", True, None)

    result = mux("run", "--dry-run", str(toml))
    assert result.returncode == 0, result.stderr
    name, line = result.stdout.splitlines()[0].split(": ", 1)
    argv = shlex.split(line)
    assert name == "debian-13-work" and "-kernel" not in argv
    assert option_values(argv, "-machine") == ["q35,accel=tcg"]
    assert option_values(argv, "-m") == ["4096"] and option_values(argv, "-smp") == ["2"]
    code, _template = find_ovmf()
    drives = option_values(argv, "-drive")
    assert f"if=pflash,format=raw,unit=0,readonly=on,file={code}" in drives
    assert f"file={disk},if=none,id=mux-disk,format=qcow2" in drives
    assert f"file={iso},if=none,id=mux-cdrom,media=cdrom,readonly=on,format=raw" in drives
    devices = option_values(argv, "-device")
    assert "virtio-blk-pci,drive=mux-disk,id=mux-disk,bootindex=1" in devices
    assert "ide-cd,drive=mux-cdrom,id=mux-cdrom,bootindex=2" in devices
    (netdev,) = option_values(argv, "-netdev")  # the user network through passt (no host access)
    assert netdev.startswith("stream,id=mux-net,server=off,addr.type=unix,addr.path=")
    assert any("name=org.qemu.guest_agent.0" in d for d in devices)
    variables = next(d for d in drives if "unit=1" in d)
    assert "/var/lib/libvirt" not in variables  # mux's own store, not the domain's nvram


@pytest.mark.pure
def test_a_bios_domain_on_a_libvirt_network_booting_its_cdrom() -> None:
    root = ET.fromstring("""<domain type='kvm'><name>win</name><memory unit='GiB'>2</memory>
      <os><type machine='pc-i440fx-7.2'>hvm</type><boot dev='cdrom'/><boot dev='hd'/></os>
      <devices><disk type='file' device='disk'><driver type='qcow2'/><source file='/v/win.img'/>
      <target bus='sata'/></disk><disk type='file' device='cdrom'><source file='/v/win.iso'/></disk>
      <disk type='file' device='disk'><source file='/v/data.qcow2'/></disk>
      <interface type='network'><source network='default'/><model type='e1000e'/></interface>
      </devices></domain>""")
    imported = convert(root)
    assert imported.keys == {"name": "win", "machine": "pc", "boot": "cdrom", "disk": "/v/win.img",
                             "cdrom": "/v/win.iso", "network": "user", "memory_mb": 2048}
    assert "<devices><disk type='file' device='disk'>" in imported.left_out  # the second disk
    notes = " ".join(imported.notes)
    assert "bus 'sata'" in notes and "e1000e" in notes and "'default'" in notes
    assert "vmdk" not in notes
    vmdk = ("<domain><name>v</name><devices><disk device='disk'><driver type='vmdk'/>"
            "<source file='/v/v.vmdk'/></disk></devices></domain>")
    imported = convert(ET.fromstring(vmdk))
    assert imported.keys["disk"] == "/v/v.vmdk" and "qemu-img convert" in " ".join(imported.notes)


@pytest.mark.parametrize(("unit", "value", "mib"), [
    (None, "4194304", 4096), ("KiB", "1048576", 1024), ("MiB", "512", 512), ("GiB", "4", 4096),
    ("bytes", str(256 * 1024 * 1024), 256), ("G", "1", 1024),
])
@pytest.mark.pure
def test_memory_units(unit: str | None, value: str, mib: int) -> None:
    element = ET.Element("memory", {"unit": unit} if unit else {})
    element.text = value
    assert memory_mb(element) == mib


@pytest.mark.pure
def test_names_become_persona_names() -> None:
    assert persona_name("Windows 11 Pro") == "windows-11-pro"
    assert persona_name("__") == "vm"
    assert len(persona_name("x" * 80)) == 32


@pytest.mark.parametrize(("text", "words"), [
    ("<domain><name>x</name>", ":2:"),  # not XML: file:line
    ("<network><name>x</name></network>", "not <domain>"),
])
@pytest.mark.services
def test_bad_files_exit_2_naming_the_file(tmp_path: Path, text: str, words: str) -> None:
    xml = tmp_path / "bad.xml"
    xml.write_text(text + "\n")
    result = mux("import", "libvirt", str(xml))
    assert result.returncode == 2 and str(xml) in result.stderr and words in result.stderr, result.stderr
