"""Personas from the user's own VMs: disks and cdroms that boot themselves, firmware,
overlays, user networking with forwards on 127.0.0.1, qemu_args, the guest agent's port,
and the built-in debian image as a persona. Fast checks of the config and the command
line; real guests under TCG for the overlay, the network and the debian boot."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mux import images
from mux.config import PersonaConfig, load_config, parse_config
from mux.config.schema import Forward
from mux.errors import ConfigError, Location
from mux.guest import hardware, passt
from mux.guest.accel import AccelChoice
from mux.guest.cmdline import qemu_argv
from mux.guest.hardware import ImageBoot
from mux.images import disk as image_disk
from mux.scenario.runner import StepRunner
from tests.conftest import READY_S, wait_until

TCG = AccelChoice("tcg", "test", proven=True)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mux.toml"
    path.write_text(text)
    return path


def qcow2(path: Path, size: str = "16M") -> Path:
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], check=True)
    return path


def option_values(argv: list[str], option: str) -> list[str]:
    return [argv[i + 1] for i, word in enumerate(argv[:-1]) if word == option]


def dry_run(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mux", "run", "--dry-run", str(config)],
                          capture_output=True, text=True, timeout=120)


# --- config: what boots, defaults, and every mistake with file:line -------------------


@pytest.mark.services
def test_a_disk_alone_boots_by_itself_and_no_keys_mean_the_console(tmp_path: Path) -> None:
    vm = qcow2(tmp_path / "vm.qcow2")
    qcow2(tmp_path / "x.qcow2")
    config = load_config(write(tmp_path, '[[persona]]\nname = "own"\ndisk = "vm.qcow2"\n'
                                         '[[persona]]\nname = "plain"\n'
                                         '[[persona]]\nname = "extra"\nimage = "console"\ndisk = "x.qcow2"\n'
                                         'overlay = true\n'))
    own, plain, extra = config.personas
    assert (own.image, own.disk, own.overlay, own.memory_mb) == (None, vm, False, 1024)
    assert (plain.image, plain.memory_mb) == ("console", 256)
    argv = qemu_argv(own, tmp_path, TCG, None)
    assert "-kernel" not in argv
    assert f"file={vm},if=none,id=mux-disk,format=qcow2" in option_values(argv, "-drive")
    assert "virtio-blk-pci,drive=mux-disk,id=mux-disk,bootindex=1" in option_values(argv, "-device")
    # with an image the disk is an extra drive: no boot index, the image's kernel boots
    argv = qemu_argv(extra, tmp_path, TCG, (Path("/k"), Path("/i"), ""))
    assert "-kernel" in argv and "virtio-blk-pci,drive=mux-disk,id=mux-disk" in option_values(argv, "-device")
    overlay = tmp_path / "extra.disk.qcow2"
    assert f"file={overlay},if=none,id=mux-disk,format=qcow2" in option_values(argv, "-drive")


@pytest.mark.services
def test_a_disks_format_is_read_from_the_file_not_its_name(tmp_path: Path) -> None:
    qcow2(tmp_path / "vm.img")  # a qcow2 image with a raw-looking name
    (tmp_path / "raw.qcow2").write_bytes(b"\0" * 4096)  # and the other way round
    assert [hardware.disk_format(tmp_path / n) for n in ("vm.img", "raw.qcow2")] == ["qcow2", "raw"]
    assert hardware.disk_format(tmp_path / "missing.qcow2") == "qcow2"  # unreadable: by its name
    argv = qemu_argv(PersonaConfig("a", image=None, disk=tmp_path / "vm.img"), tmp_path, TCG, None)
    assert f"file={tmp_path / 'vm.img'},if=none,id=mux-disk,format=qcow2" in option_values(argv, "-drive")


@pytest.mark.services
def test_machine_keys_reach_the_command_line(tmp_path: Path) -> None:
    qcow2(tmp_path / "vm.qcow2")
    (tmp_path / "setup.iso").write_bytes(b"\0" * 2048)
    config = load_config(write(tmp_path, """
[[persona]]
name = "inst"
disk = "vm.qcow2"
cdrom = "setup.iso"
boot = "cdrom"
machine = "q35"
cpus = 2
vga = "virtio"
network = "user"
forward = ["tcp:2222:22", "udp:5353:53"]
agent = true
qemu_args = ["-device", "virtio-rng-pci"]
"""))
    persona = config.persona("inst")
    argv = qemu_argv(persona, tmp_path, TCG, None)
    assert option_values(argv, "-machine") == ["q35,accel=tcg"]
    assert option_values(argv, "-smp") == ["2"] and option_values(argv, "-vga") == ["virtio"]
    devices = option_values(argv, "-device")
    assert "ide-cd,drive=mux-cdrom,id=mux-cdrom,bootindex=1" in devices
    assert "virtio-blk-pci,drive=mux-disk,id=mux-disk,bootindex=2" in devices
    assert option_values(argv, "-netdev") == [  # passt serves it (forwards: tests/guest/test_network.py)
        f"stream,id=mux-net,server=off,addr.type=unix,addr.path={tmp_path / 'inst.net'}"]
    passt_argv = passt.passt_argv(persona, tmp_path)
    assert option_values(passt_argv, "--tcp-ports") == ["127.0.0.1/2222:22"]
    assert option_values(passt_argv, "--udp-ports") == ["127.0.0.1/5353:53"]
    assert f"socket,id=mux-agent,path={tmp_path / 'inst.agent'},server=on,wait=off" in option_values(
        argv, "-chardev")
    assert "virtserialport,bus=mux-vserial.0,chardev=mux-agent,name=org.qemu.guest_agent.0" in devices
    assert argv[-2:] == ["-device", "virtio-rng-pci"]  # qemu_args come last
    assert persona.forward == (Forward("tcp", 2222, 22), Forward("udp", 5353, 53))


@pytest.mark.services
def test_overlay_is_on_in_scenarios_and_off_for_mux_run(tmp_path: Path) -> None:
    qcow2(tmp_path / "vm.qcow2")
    data = {"persona": [{"name": "a", "disk": "vm.qcow2"}]}
    source = tmp_path / "s.yaml"
    in_scenario = parse_config(data, lambda _p: Location(source), source, prefix=("config",))
    in_file = parse_config(data, lambda _p: Location(source), source)
    assert in_scenario.persona("a").overlay is True
    assert in_file.persona("a").overlay is False


@pytest.mark.services
def test_a_snapshots_saved_config_keeps_the_scenario_default(tmp_path: Path) -> None:
    from mux.scenario.snapshot import MANIFEST, saved_config

    qcow2(tmp_path / "a.qcow2")
    qcow2(tmp_path / "b.qcow2")
    (tmp_path / "snap").mkdir()
    (tmp_path / "snap" / MANIFEST).write_text(json.dumps({
        "source": str(tmp_path / "s.yaml"),
        "config": {"persona": [{"name": "a", "disk": "a.qcow2"}, {"name": "b", "disk": "b.qcow2",
                                                                  "overlay": False}]}}))
    config = saved_config(tmp_path, "snap")
    assert config is not None
    assert [p.overlay for p in config.personas] == [True, False]


@pytest.mark.parametrize(("body", "line", "words"), [
    ('disk = "missing.qcow2"\n', 3, "missing.qcow2: no such file"),
    ('cdrom = "/"\n', 3, "cdrom /: not a file"),
    ('image = "console"\nboot = "cdrom"\n', 4, "no cdrom to boot from"),
    ('firmware = "efi"\n', 3, "must be one of bios, uefi"),
    ('machine = "virt"\n', 3, "must be one of pc, q35"),
    ('cpus = 0\n', 3, "between 1 and 64"),
    ('network = "bridge"\n', 3, "must be one of none, user"),
    ('forward = ["tcp:2222:22"]\n', 3, 'forward needs network = "user"'),
    ('network = "user"\nforward = ["2222:22"]\n', 4, "must look like"),
    ('network = "user"\nforward = ["tcp:70000:22"]\n', 4, "ports 1-65535"),
    ('overlay = true\n', 3, "for a persona with a disk"),
    ('qemu_args = ["-monitor", "stdio"]\n', 3, "-monitor is set by mux"),
    ('qemu_args = ["--serial", "stdio"]\n', 3, "--serial is set by mux"),
    ('qemu_args = ["-chardev", "socket,id=serial0,path=/x"]\n', 3, "uses id 'serial0'"),
    ('qemu_args = ["-netdev", "user,id=mux-net"]\n', 3, "uses id 'mux-net'"),
    ('qemu_args = ["-m", 512]\n', 3, "list of strings"),
    ('agent = "yes"\n', 3, "must be bool"),
])
@pytest.mark.pure
def test_bad_machine_keys_name_file_and_line(tmp_path: Path, body: str, line: int, words: str) -> None:
    path = write(tmp_path, '[[persona]]\nname = "a"\n' + body)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert f"{path}:{line}" in str(caught.value), str(caught.value)
    assert words in str(caught.value), str(caught.value)


@pytest.mark.pure
def test_a_host_port_forwarded_twice_is_refused_with_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path, '[[persona]]\nname = "a"\nnetwork = "user"\nforward = ["tcp:2222:22"]\n\n'
                           '[[persona]]\nname = "b"\nnetwork = "user"\n'
                           'forward = ["tcp:8080:80", "tcp:2222:2222"]\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert [(str(loc), "forwarded twice" in message and f"{path}:4" in message)
            for loc, message in caught.value.problems] == [(f"{path}:9:1", True)]


@pytest.mark.pure
def test_uefi_without_ovmf_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image_disk, "OVMF_DIRS", (tmp_path / "no-ovmf",))
    path = write(tmp_path, '[[persona]]\nname = "a"\nfirmware = "uefi"\n')
    with pytest.raises(ConfigError, match=rf"{path}:3:.*apt-get install ovmf"):
        load_config(path)


@pytest.mark.services
def test_qemu_args_taking_the_display_exit_2_with_file_and_line(tmp_path: Path) -> None:
    head = '[mux]\naccel = "tcg"\n[[persona]]\nname = "a"\n'
    path = write(tmp_path, head + 'qemu_args = ["-vnc", "0.0.0.0:0"]\n')
    result = dry_run(path)
    assert result.returncode == 2, result.stdout
    assert f"{path}:5" in result.stderr and "-vnc" in result.stderr
    path.write_text(head + 'qemu_args = ["-device", "virtio-rng-pci"]\n')
    result = dry_run(path)  # the control: the same file with a harmless argument runs
    assert result.returncode == 0, result.stderr
    assert shlex.split(result.stdout.split(": ", 1)[1])[-2:] == ["-device", "virtio-rng-pci"]


@pytest.mark.services
def test_debian_image_boots_its_own_disk_with_the_persona_name(tmp_path: Path) -> None:
    path = write(tmp_path, '[mux]\naccel = "tcg"\n[[persona]]\nname = "deb"\nimage = "debian"\n')
    assert load_config(path).persona("deb").memory_mb == 1024
    result = dry_run(path)
    assert result.returncode == 0, result.stderr
    argv = shlex.split(result.stdout.split(": ", 1)[1])
    assert "-kernel" not in argv
    assert "name=opt/mux/persona,string=deb" in option_values(argv, "-fw_cfg")
    assert "virtio-blk-pci,drive=mux-image,id=mux-image,bootindex=1" in option_values(argv, "-device")
    drives = option_values(argv, "-drive")
    assert any("deb.image.qcow2,if=none,id=mux-image,format=qcow2" in v for v in drives)


# --- the files a launch makes: overlays and the UEFI variable store --------------------


@pytest.mark.services
async def test_prepare_makes_overlays_and_keeps_the_uefi_store(tmp_path: Path) -> None:
    base = qcow2(tmp_path / "base.qcow2")
    _code, template = image_disk.find_ovmf()
    template_sum = hashlib.sha256(template.read_bytes()).hexdigest()
    config = PersonaConfig("u", image=None, disk=base, overlay=True, firmware="uefi")
    boot = ImageBoot(None)
    await hardware.prepare(config, tmp_path, boot, resuming=False)
    overlay = tmp_path / "u.disk.qcow2"
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(overlay)], check=True,
                                     capture_output=True, text=True).stdout)
    assert info["backing-filename"] == str(base) and info["backing-filename-format"] == "qcow2"
    variables = hardware.uefi_vars_path(config, boot)
    assert variables.read_bytes() == template.read_bytes()
    assert f"if=pflash,format=raw,unit=1,file={variables}" in option_values(
        qemu_argv(config, tmp_path, TCG, None), "-drive")
    variables.write_bytes(b"boot entries")  # what the guest's firmware wrote last run
    overlay.write_bytes(b"last run")
    await hardware.prepare(config, tmp_path, boot, resuming=False)
    assert variables.read_bytes() == b"boot entries"  # kept between runs
    assert overlay.read_bytes() != b"last run"  # the overlay is made afresh at each boot
    assert hashlib.sha256(template.read_bytes()).hexdigest() == template_sum


# --- real guests ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listeners(port: int) -> set[str]:
    """Addresses listening on TCP ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:
                raw = bytes.fromhex(address)
                words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                found.add(socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, words))
    return found


async def ready(ctl: Any, name: str) -> Any:
    persona = ctl.persona(name)
    await persona.serial.wait_for(re.compile(f"MUX-READY {name}"), READY_S, start=0)
    await ctl.switch(name, "test")
    return persona


@pytest.mark.guests
async def test_a_forwarded_port_reaches_the_guest_on_127_0_0_1_only(controller: Any) -> None:
    port = free_port()
    config = PersonaConfig("net", network="user", forward=(Forward("tcp", port, 22),))
    async with controller(config) as ctl:
        persona = await ready(ctl, "net")
        assert listeners(port) == {"127.0.0.1"}  # QEMU listens, on loopback and nowhere else
        await StepRunner(ctl).step_type({"text": (
            "until ip link set eth0 up; do sleep 1; done; ip addr add 10.0.2.15/24 dev eth0;"
            " echo served-by-guest >/root/index.html; httpd -p 22 -h /root;"
            " echo MUX-HTTPD-UP $? >/dev/ttyS0; (ip addr; netstat -ltn) >/dev/ttyS0\n")})
        await persona.serial.wait_for(re.compile("MUX-HTTPD-UP"), READY_S, start=0)
        answer = b""
        for _ in range(60):
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"GET /index.html HTTP/1.0\r\n\r\n")
                answer = await asyncio.wait_for(reader.read(), 10)
                writer.close()
            except (OSError, TimeoutError):
                answer = b""
            if b"served-by-guest" in answer:
                break
            await asyncio.sleep(1)
        said = [line for line in persona.serial.text.splitlines() if not line.startswith("MUX-KEY")]
        assert b"served-by-guest" in answer, said[-40:]
        assert listeners(port) == {"127.0.0.1"}


@pytest.mark.guests
async def test_writing_an_overlaid_disk_leaves_the_base_unchanged(controller: Any, tmp_path: Path) -> None:
    base = tmp_path / "base.img"
    base.write_bytes(bytes(range(256)) * 4096)  # 1 MiB, raw
    before = hashlib.sha256(base.read_bytes()).hexdigest()
    async with controller(PersonaConfig("ov", disk=base, overlay=True)) as ctl:
        persona = await ready(ctl, "ov")
        await persona.serial.wait_for(re.compile(r"MUX-UEVENT add block vda\b"), READY_S, start=0)
        await StepRunner(ctl).step_type({"text": (
            "echo WRITTEN-BY-GUEST >/dev/vda && sync && head -c 16 /dev/vda >/tmp/r &&"
            " echo MUX-READBACK $(cat /tmp/r) >/dev/ttyS0\n")})
        await persona.serial.wait_for(re.compile("MUX-READBACK WRITTEN-BY-GUEST"), READY_S, start=0)
        overlay = ctl.runtime_dir / "ov.disk.qcow2"
        await wait_until(lambda: b"WRITTEN-BY-GUEST" in overlay.read_bytes(), 30, "the write in the overlay")
    assert hashlib.sha256(base.read_bytes()).hexdigest() == before


@pytest.mark.heavy
@pytest.mark.parametrize("firmware", ["bios", "uefi"])
async def test_the_debian_image_boots_as_a_persona(controller: Any, debian_image: images.BuiltImage,
                                                  firmware: str) -> None:
    disk = debian_image.disk  # built before the tests start (tests/tiers.py)
    assert disk is not None
    before = hashlib.sha256(disk.read_bytes()).hexdigest()
    async with controller(PersonaConfig("deb", image="debian", memory_mb=1024, firmware=firmware)) as ctl:
        persona = ctl.persona("deb")
        # 27-91 s to the agent measured here (docs/guides/images.md); MUX-READY comes with
        # the tty1 shell. 600 s of the heavy tier's 1800: the rest for hashing the image
        await persona.serial.wait_for(re.compile("MUX-READY deb"), 600, start=0)  # the fw_cfg name
    assert hashlib.sha256(disk.read_bytes()).hexdigest() == before  # the cache is never written


@pytest.mark.guests
async def test_a_uefi_persona_boots_with_its_own_variable_store(controller: Any) -> None:
    config = PersonaConfig("efi", firmware="uefi")  # the console image's kernel, loaded by OVMF
    variables = hardware.uefi_vars_path(config, ImageBoot(None))
    variables.unlink(missing_ok=True)
    async with controller(config) as ctl:
        await ready(ctl, "efi")
        argv = ctl.persona("efi").argv()
    assert f"if=pflash,format=raw,unit=1,file={variables}" in option_values(argv, "-drive")
    assert variables.stat().st_size == image_disk.find_ovmf()[1].stat().st_size  # a copy of the template


@pytest.mark.pure
def test_a_scenario_from_a_snapshot_must_have_the_same_machine(tmp_path: Path) -> None:
    from mux.errors import ScenarioError
    from mux.scenario.runner import load_all

    saver = tmp_path / "saver.yaml"
    saver.write_text("name: saver\nconfig:\n  persona: [{name: work}]\nsnapshot: booted\n"
                     "steps:\n  - switch: work\n")
    user = tmp_path / "user.yaml"
    user.write_text("name: user\nfrom_snapshot: booted\nconfig:\n  persona: [{name: work}]\n"
                    "steps:\n  - switch: work\n")
    assert load_all([saver, user], tmp_path / "snapshots")[1].config.persona("work").firmware == "bios"
    user.write_text("name: user\nfrom_snapshot: booted\nconfig:\n  persona: [{name: work, cpus: 2}]\n"
                    "steps:\n  - switch: work\n")
    with pytest.raises(ScenarioError, match=r"user.yaml:3:1: the personas differ"):
        load_all([saver, user], tmp_path / "snapshots")
