"""The ``debian`` image: host release and mirror parsing, the file-only disk assembly,
and real boots under QEMU/TCG with BIOS and with UEFI until the guest agent answers.

The slow tests boot the image, built before the tests start (tests/tiers.py; cached,
needs root and mmdebstrap, skipped otherwise), with plain QEMU: the disk is opened with
``snapshot=on`` so the cached image is never written, the persona's name goes in
through ``-fw_cfg``, the agent is reached through a virtio-serial port on a unix socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import time
import tomllib
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image
from qemu.qmp import QMPClient

from mux.errors import ImageError, PersonaError
from mux.guest.agent import GuestAgent
from mux.images import archive, builder, debian, disk

AGENT_S = 600.0  # TCG on a busy 2-core machine
# Linux key codes of the QEMU key names the tests type.
KEY_CODES = {"e": 18, "c": 46, "h": 35, "o": 24, "spc": 57, "t": 20, "y": 21, "p": 25, "d": 32,
             "dot": 52, "slash": 53, "m": 50, "ret": 28}
DIAGNOSE = ("ps -ef | grep -v '\\['; systemctl status mux-report --no-pager; cat /tmp/t;"
            " stty -F /dev/ttyS0 -a; tail -20 /sys/kernel/tracing/trace")


# --- fast: the host, the mirror, the disk layout -----------------------------------------


@pytest.mark.pure
def test_mirror_from_deb822_and_one_line_files(tmp_path: Path) -> None:
    """The host's Debian mirror (not its security archive, not a third-party one)."""
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "node.sources").write_text(
        "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\nComponents: main\n")
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://ftp.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\n\n"
        "Types: deb\nURIs: http://ftp.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
    assert archive.host_mirror(tmp_path) == "http://ftp.example/debian"
    (tmp_path / "sources.list").write_text(
        "# comment\ndeb [arch=amd64] http://mirror.example/debian bookworm-updates contrib\n"
        "deb http://mirror.example/debian bookworm main\n")
    assert archive.host_mirror(tmp_path) == "http://mirror.example/debian"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert archive.host_mirror(empty) is None


@pytest.mark.pure
def test_the_mirror_comes_from_the_environment_the_host_or_the_default(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MUX_IMAGE_SUITE", raising=False)
    monkeypatch.setenv("MUX_DEBIAN_MIRROR", "http://127.0.0.1:9/debian")
    assert archive.source(tmp_path) == archive.Source("http://127.0.0.1:9/debian", "trixie",
                                                      "MUX_DEBIAN_MIRROR")
    monkeypatch.delenv("MUX_DEBIAN_MIRROR")
    assert archive.source(tmp_path).mirror == "https://deb.debian.org/debian"
    (tmp_path / "sources.list").write_text("deb http://mirror.example/debian bookworm main\n")
    monkeypatch.setenv("MUX_IMAGE_SUITE", "bookworm")
    assert archive.source(tmp_path) == archive.Source(
        "http://mirror.example/debian", "bookworm", f"the host's apt sources ({tmp_path})")


@pytest.mark.pure
def test_building_needs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(ImageError, match=r"needs root .*sudo"):
        builder.build("debian", progress=lambda m: None)


@pytest.mark.pure
def test_missing_ovmf_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(disk, "OVMF_DIRS", (tmp_path,))
    with pytest.raises(ImageError, match="apt-get install ovmf"):
        disk.find_ovmf()
    (tmp_path / "OVMF_CODE.fd").write_bytes(b"code")  # Debian 12's older names
    (tmp_path / "OVMF_VARS.fd").write_bytes(b"vars")
    assert disk.find_ovmf() == (tmp_path / "OVMF_CODE.fd", tmp_path / "OVMF_VARS.fd")


@pytest.mark.pure
def test_a_sudo_build_belongs_to_the_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to chown")
    home = tmp_path / "home"
    entry = home / ".cache" / "mux" / "images" / "debian-0123"
    (entry / "sub").mkdir(parents=True)
    (entry / "disk.qcow2").write_bytes(b"qcow")
    monkeypatch.setenv("SUDO_UID", "4242")
    monkeypatch.setenv("SUDO_GID", "4343")
    monkeypatch.setattr("pwd.getpwuid", lambda uid: SimpleNamespace(pw_dir=str(home)))
    debian.give_to_sudo_user(entry)
    for path in (entry, entry / "sub", entry / "disk.qcow2", entry.parent, home / ".cache"):
        assert (path.stat().st_uid, path.stat().st_gid) == (4242, 4343), path
    assert home.stat().st_uid == 0 and tmp_path.stat().st_uid == 0  # not above the cache

    outside = tmp_path / "elsewhere" / "debian-0123"
    outside.mkdir(parents=True)
    debian.give_to_sudo_user(outside)  # not in the user's home: left to root
    assert outside.stat().st_uid == 0


@pytest.mark.pure
def test_configure_writes_the_recipe_files_and_enables_units(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "boot").mkdir(parents=True)
    (root / "boot" / "vmlinuz-6.1.0-9-amd64").write_bytes(b"kernel")
    units = root / "usr" / "lib" / "systemd" / "system"
    units.mkdir(parents=True)
    for unit in ("systemd-networkd.service", "systemd-networkd.socket"):
        (units / unit).write_text("[Unit]\n")
    recipe = builder.load_recipe("debian")
    install = tomllib.loads(recipe.files["recipe.toml"].decode())["install"]
    ids = disk.DiskIds.derive("k")
    with pytest.raises(ImageError, match=r"no /boot/initrd\.img-6\.1\.0-9-amd64"):
        debian.configure(root, recipe.files, install, ids)
    (root / "boot" / "initrd.img-6.1.0-9-amd64").write_bytes(b"initrd")
    assert debian.configure(root, recipe.files, install, ids) == "6.1.0-9-amd64"

    report = root / "usr" / "lib" / "mux" / "mux-report"
    assert report.stat().st_mode & 0o777 == 0o755
    assert (root / "usr" / "lib" / "mux" / "input.awk").read_bytes() == recipe.files["common/input.awk"]
    assert (root / "etc" / "profile.d" / "mux.sh").stat().st_mode & 0o777 == 0o644
    dropin = root / "etc/systemd/system/getty@tty1.service.d/autologin.conf"
    assert "--autologin root" in dropin.read_text()
    assert (root / "etc" / "fstab").read_text().startswith(f"UUID={ids.root_fs} / ext4 ")
    wants = root / "etc" / "systemd" / "system"
    assert (wants / "multi-user.target.wants" / "mux-report.service").readlink() == Path(
        "/etc/systemd/system/mux-report.service")
    assert (wants / "sockets.target.wants" / "systemd-networkd.socket").readlink() == Path(
        "/usr/lib/systemd/system/systemd-networkd.socket")
    assert debian.configure(root, recipe.files, install, ids) == "6.1.0-9-amd64"  # again: same


@pytest.mark.pure
def test_disk_ids_follow_the_cache_key() -> None:
    ids = disk.DiskIds.derive("0123456789abcdef")
    assert ids == disk.DiskIds.derive("0123456789abcdef")
    assert ids.root_fs != disk.DiskIds.derive("fedcba9876543210").root_fs
    assert len({ids.disk, ids.esp, ids.root_part, ids.root_fs}) == 4
    assert len(ids.fat_serial) == 8


@pytest.mark.services
def test_disk_assembly_from_files(tmp_path: Path) -> None:
    if missing := disk.missing_tools():
        pytest.skip(f"missing {', '.join(missing)}")
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "hostname").write_text("debian\n")
    kernel, initrd = tmp_path / "vmlinuz", tmp_path / "initrd.img"
    kernel.write_bytes(b"K" * 5000)
    initrd.write_bytes(b"I" * 7000)
    ids = disk.DiskIds.derive("test")
    esp, root, raw = tmp_path / "esp.img", tmp_path / "root.img", tmp_path / "disk.raw"
    disk.make_esp(esp, 40, disk.ALIGN, ids.fat_serial,
                  debian.esp_files(kernel, initrd, "root=UUID=x rw quiet"))
    disk.make_ext4(root, tree, 16, ids.root_fs, "debian")
    disk.assemble(raw, esp, root, ids)

    table = json.loads(subprocess.run(["sfdisk", "--json", str(raw)], capture_output=True,
                                      text=True, check=True).stdout)["partitiontable"]
    assert table["label"] == "gpt" and table["id"] == str(ids.disk).upper()
    first, second = table["partitions"]
    assert first["start"] == disk.ALIGN and first["type"] == disk.ESP_TYPE
    assert first["attrs"] == "LegacyBIOSBootable" and first["uuid"] == str(ids.esp).upper()
    assert second["uuid"] == str(ids.root_part).upper()
    data = raw.read_bytes()
    assert data[:440] == disk.SYSLINUX_MBR.read_bytes()[:440]  # BIOS boot code
    assert data[510:512] == b"\x55\xaa"
    offset = first["start"] * disk.SECTOR
    assert data[offset:offset + esp.stat().st_size] == esp.read_bytes()
    offset = second["start"] * disk.SECTOR
    assert data[offset:offset + root.stat().st_size] == root.read_bytes()

    listing = subprocess.run(["mdir", "-a", "-b", "-/", "-i", str(esp), "::/"], capture_output=True,
                             text=True, check=True, env={"MTOOLS_SKIP_CHECK": "1"}).stdout
    for name in ("VMLINUZ", "INITRD.IMG", "LDLINUX.SYS", "LDLINUX.C32", "SYSLINUX.CFG",
                 "EFI/BOOT/BOOTX64.EFI", "LOADER/ENTRIES/DEBIAN.CONF"):
        assert f"::/{name}".lower() in listing.lower(), listing
    cfg = subprocess.run(["mtype", "-i", str(esp), "::/syslinux.cfg"], capture_output=True,
                         text=True, check=True, env={"MTOOLS_SKIP_CHECK": "1"}).stdout
    assert "APPEND root=UUID=x rw quiet" in cfg
    blkid = subprocess.run(["blkid", "-p", "-o", "export", str(root)], capture_output=True, text=True)
    assert f"UUID={ids.root_fs}" in blkid.stdout and "TYPE=ext4" in blkid.stdout


# --- slow: build and boot ---------------------------------------------------------------


@dataclass
class Boot:
    """A running guest: its QMP session, agent, serial log and the seconds to agent-ready."""

    qmp: QMPClient
    agent: GuestAgent
    serial: Path
    agent_ready_s: float = 0.0
    seen: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return self.serial.read_bytes().decode(errors="replace").replace("\r", "").split("\n")

    async def wait_line(self, wanted: str, timeout: float, start: int = 0) -> int:
        deadline = time.monotonic() + timeout
        while True:
            lines = self.lines()
            for i in range(start, len(lines)):
                if lines[i].startswith(wanted) and (i < len(lines) - 1 or lines[i] == wanted):
                    return i
            if time.monotonic() > deadline:
                raise AssertionError(f"no {wanted!r} in {timeout} s; serial: {lines[-40:]}")
            await asyncio.sleep(0.1)

    async def key(self, qcode: str, down: bool) -> None:
        event = {"type": "key", "data": {"down": down, "key": {"type": "qcode", "data": qcode}}}
        await self.qmp.execute("input-send-event", {"events": [event]})

    async def tap(self, qcode: str, shift: bool = False) -> None:
        """Press and release one key (with shift); wait until the guest reports the
        release, so keys are never sent faster than a busy TCG guest takes them."""
        mark = len(self.lines()) - 1
        if shift:
            await self.key("shift", True)
        await self.key(qcode, True)
        await self.key(qcode, False)
        if shift:
            await self.key("shift", False)
        await self.wait_line(f"MUX-KEY {KEY_CODES[qcode]} 0", 30, mark)

    async def type(self, text: str) -> None:
        names = {" ": "spc", "/": "slash", "\n": "ret", ">": "dot"}
        for ch in text:
            await self.tap(names.get(ch, ch), shift=ch == ">")


@contextlib.asynccontextmanager
async def boot(image: builder.BuiltImage, tmp: Path, firmware: str, persona: str) -> AsyncIterator[Boot]:
    assert image.disk is not None
    firmware_args: list[str] = []
    if firmware == "uefi":
        code, template = disk.find_ovmf()
        variables = tmp / "OVMF_VARS.fd"
        shutil.copyfile(template, variables)  # the packaged store is never written
        firmware_args = ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
                         "-drive", f"if=pflash,format=raw,unit=1,file={variables}"]
    serial, qmp_sock, qga_sock = tmp / "serial.log", tmp / "qmp.sock", tmp / "qga.sock"
    argv = [
        "qemu-system-x86_64", "-accel", "tcg", "-machine", "pc", "-m", "1024",
        "-nodefaults", "-no-user-config", "-vga", "std", "-display", "none",
        *firmware_args,
        "-drive", f"file={image.disk},format=qcow2,if=virtio,snapshot=on",
        "-serial", f"file:{serial}",
        "-qmp", f"unix:{qmp_sock},server=on,wait=off",
        "-fw_cfg", f"name=opt/mux/persona,string={persona}",
        "-fw_cfg", "name=opt/mux/color,string=c03030",
        "-device", "virtio-serial",
        "-chardev", f"socket,path={qga_sock},server=on,wait=off,id=qga0",
        "-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
    ]
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.PIPE)
    qmp = QMPClient(persona)
    agent = GuestAgent(qga_sock, persona)
    try:
        for _ in range(200):
            if (qmp_sock.exists() and qga_sock.exists()) or proc.returncode is not None:
                break
            await asyncio.sleep(0.05)
        await qmp.connect(str(qmp_sock))
        await agent.connect(AGENT_S)
        yield Boot(qmp, agent, serial, time.monotonic() - started)
    finally:
        await agent.close()
        with contextlib.suppress(Exception):
            await qmp.disconnect()
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


@pytest.mark.heavy
@pytest.mark.parametrize("firmware", ["bios", "uefi"])
async def test_debian_boots_until_the_agent_answers(
    debian_image: builder.BuiltImage, tmp_path: Path, firmware: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert debian_image.disk is not None
    meta = json.loads((debian_image.disk.parent / "image.json").read_text())
    before = debian_image.disk.stat()
    digest = hashlib.sha256(debian_image.disk.read_bytes()).hexdigest() if firmware == "bios" else ""
    async with boot(debian_image, tmp_path, firmware, "work") as guest:
        with capsys.disabled():
            print(f"\ndebian {firmware}: agent ready after {guest.agent_ready_s:.1f} s (TCG); image built in"
                  f" {meta['build_s']} s, {debian_image.disk.stat().st_size >> 20} MiB")
        await guest.agent.ping()
        uname = await guest.agent.exec(["uname", "-r"])
        assert (uname.exitcode, uname.stdout.decode().strip()) == (0, meta["kernel_release"])
        assert (await guest.agent.exec(["/bin/sh", "-c", "exit 3"])).exitcode == 3
        hostname = await guest.agent.exec(["cat", "/proc/sys/kernel/hostname"])
        assert hostname.stdout == b"work\n"  # the persona's name came through fw_cfg

        # MUX-READY once the tty1 prompt is up: what is typed right after lands in the shell.
        await guest.wait_line("MUX-READY work", 300)
        try:
            await guest.type("echo typed > /tmp/t\n")  # every key's report is awaited
        except AssertionError as exc:  # say what the reporters were doing
            state = await guest.agent.exec(["/bin/sh", "-c", DIAGNOSE])
            raise AssertionError(f"{exc}\nguest:\n{state.stdout.decode()}{state.stderr.decode()}") from None
        deadline = time.monotonic() + 30
        while (out := await guest.agent.exec(["cat", "/tmp/t"])).exitcode and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        assert out.stdout == b"typed\n", out
        await guest.qmp.execute("screendump", {"filename": str(tmp_path / "screen.ppm")})
        with Image.open(tmp_path / "screen.ppm") as screen:
            assert screen.size == (1024, 768)  # the same with either firmware
            raw = screen.convert("RGB").tobytes()
        pixels = Counter(zip(raw[0::3], raw[1::3], raw[2::3], strict=True))
        (red, green, blue), count = pixels.most_common(1)[0]  # the fw_cfg colour, c03030
        top = pixels.most_common(3)
        assert count > 0.9 * 1024 * 768 and abs(red - 0xC0) < 8 and green < 56 and blue < 56, top
        extra = tmp_path / "extra.img"  # a hotplugged disk is reported by MUX-UEVENT
        extra.write_bytes(bytes(4 << 20))
        await guest.qmp.execute("blockdev-add", {"node-name": "extra", "driver": "raw",
                                                 "file": {"driver": "file", "filename": str(extra)}})
        mark = len(guest.lines()) - 1
        await guest.qmp.execute("device_add", {"driver": "virtio-blk-pci", "id": "extra", "drive": "extra"})
        await guest.wait_line("MUX-UEVENT add block vdb", 120, mark)
        written = await guest.agent.exec(["/bin/sh", "-c", "echo x > /root/written && sync"])
        assert written.exitcode == 0
    after = debian_image.disk.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    if digest:  # the guest wrote to its disk; the cached image is unchanged (snapshot=on)
        assert hashlib.sha256(debian_image.disk.read_bytes()).hexdigest() == digest


@pytest.mark.guests
async def test_bench_without_the_image_reports_null(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from mux.bench import debian as bench_debian

    monkeypatch.setattr(bench_debian, "find_built", lambda name: None)
    assert await bench_debian.bench_debian() == {"debian_boot_s": None}
    if shutil.which("qemu-system-x86_64") is None:
        return
    with pytest.raises(PersonaError, match="QEMU exited with 1"):
        await bench_debian.boot_to_agent(tmp_path / "missing.qcow2", tmp_path, timeout=60)
