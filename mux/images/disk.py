"""A bootable GPT disk assembled from files: no loop devices, no mounts, no root needed.

Theory: the disk has two partitions, and each is built as a file of its own first.

- Partition 1, the EFI system partition (FAT32, GPT attribute ``LegacyBIOSBootable``),
  holds the kernel and initrd and both boot loaders: systemd-boot as
  ``/EFI/BOOT/BOOTX64.EFI`` (the removable-media path UEFI firmware boots without any
  boot entry) reading ``/loader/``, and SYSLINUX for BIOS (``ldlinux.sys`` and the boot
  sector written by the mtools-based ``syslinux --install``, ``ldlinux.c32``,
  ``syslinux.cfg``). It is made with ``mkfs.vfat -h <start sector>`` so the boot sector
  knows where it lives, and filled with ``mcopy``.
- Partition 2 is an ext4 file system made from a directory tree with ``mke2fs -d``.

The partition table is written by ``sfdisk`` on the (sparse) disk file; BIOS boots
through the protective MBR's boot code, SYSLINUX's ``gptmbr.bin``, which chains to the
partition marked LegacyBIOSBootable. The partition files are then copied in at their
offsets (holes stay holes) and ``qemu-img convert`` makes a compressed qcow2.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mux.errors import ImageError
from mux.images.tools import run

SECTOR = 512
ALIGN = 2048  # sectors: partitions start on 1 MiB boundaries
ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
LINUX_DATA = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
SYSLINUX_MBR = Path("/usr/lib/syslinux/mbr/gptmbr.bin")
SYSLINUX_MODULES = Path("/usr/lib/syslinux/modules/bios")
SYSTEMD_BOOT = Path("/usr/lib/systemd/boot/efi/systemd-bootx64.efi")

#: Host tool -> the Debian package that has it.
TOOLS = {
    "mkfs.vfat": "dosfstools",
    "mcopy": "mtools",
    "mmd": "mtools",
    "syslinux": "syslinux",
    "sfdisk": "fdisk",
    "mke2fs": "e2fsprogs",
    "qemu-img": "qemu-utils",
}
FILES = {SYSLINUX_MBR: "syslinux-common", SYSLINUX_MODULES / "ldlinux.c32": "syslinux-common",
         SYSTEMD_BOOT: "systemd-boot-efi"}


@dataclass(frozen=True)
class DiskIds:
    """The identifiers written into the disk: fixed per cache key, so rebuilds agree."""

    disk: uuid.UUID
    esp: uuid.UUID
    root_part: uuid.UUID
    root_fs: uuid.UUID
    fat_serial: str  # 8 hex digits

    @classmethod
    def derive(cls, key: str) -> DiskIds:
        def make(purpose: str) -> uuid.UUID:
            return uuid.uuid5(uuid.NAMESPACE_URL, f"mux-image:{key}:{purpose}")

        return cls(make("disk"), make("esp"), make("root-part"), make("root-fs"),
                   make("fat").hex[:8])


def missing_tools() -> list[str]:
    """``tool (package)`` for every host tool or file the assembly needs but lacks."""
    missing = [f"{tool} ({pkg})" for tool, pkg in TOOLS.items() if shutil.which(tool) is None]
    missing += [f"{path} ({pkg})" for path, pkg in FILES.items() if not path.is_file()]
    return missing


def make_esp(path: Path, size_mb: int, start_sector: int, serial: str,
             files: Mapping[str, bytes | Path]) -> None:
    """A FAT32 ESP image at ``path`` holding ``files`` (ESP path -> bytes or host file),
    with SYSLINUX installed. Raises ImageError."""
    path.unlink(missing_ok=True)
    run(["mkfs.vfat", "-C", "-F", "32", "-h", str(start_sector), "-i", serial, "-n", "MUX-ESP",
         str(path), str(size_mb * 1024)], "mkfs.vfat")
    mtools = {"MTOOLS_SKIP_CHECK": "1"}
    dirs = sorted({"/".join(name.split("/")[:i]) for name in files
                   for i in range(1, name.count("/") + 1)} - {""})
    if dirs:
        run(["mmd", "-i", str(path), *(f"::/{d}" for d in dirs)], "mmd", env=mtools)
    staging = path.with_name(path.name + ".files")
    staging.mkdir(exist_ok=True)
    try:
        for i, (name, content) in enumerate(sorted(files.items())):
            source = content if isinstance(content, Path) else staging / str(i)
            if isinstance(content, bytes):
                source.write_bytes(content)
            run(["mcopy", "-o", "-i", str(path), str(source), f"::/{name}"], "mcopy", env=mtools)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    run(["syslinux", "--install", str(path)], "syslinux --install", env=mtools)


def make_ext4(path: Path, tree: Path, size_mb: int, fs_uuid: uuid.UUID, label: str) -> None:
    """An ext4 image of ``size_mb`` MiB holding ``tree``. Raises ImageError."""
    path.unlink(missing_ok=True)
    run(["mke2fs", "-q", "-F", "-t", "ext4", "-U", str(fs_uuid), "-L", label,
         "-E", f"hash_seed={fs_uuid}", "-d", str(tree), str(path), f"{size_mb}M"], "mke2fs")


def tree_size_mb(tree: Path) -> int:
    """The space ``tree``'s files take, in MiB (hard links counted once)."""
    seen: set[int] = set()
    total = 0
    for directory, _dirs, names in os.walk(tree):
        for name in names:
            st = os.lstat(os.path.join(directory, name))
            if st.st_ino not in seen:
                seen.add(st.st_ino)
                total += st.st_blocks * 512
    return total >> 20


def assemble(disk: Path, esp: Path, root: Path, ids: DiskIds) -> None:
    """Write the raw GPT disk ``disk`` from the ESP and root images. Raises ImageError."""
    esp_sectors = -(-esp.stat().st_size // SECTOR)
    root_sectors = -(-root.stat().st_size // SECTOR)
    esp_start = ALIGN
    root_start = esp_start + -(-esp_sectors // ALIGN) * ALIGN
    total = root_start + -(-root_sectors // ALIGN) * ALIGN + ALIGN  # room for the backup GPT
    with disk.open("wb") as f:
        f.truncate(total * SECTOR)
    table = (
        f"label: gpt\nlabel-id: {ids.disk}\nunit: sectors\nfirst-lba: {ALIGN}\n\n"
        f'start={esp_start}, size={esp_sectors}, type={ESP_TYPE}, uuid={ids.esp}, '
        f'name="EFI system partition", attrs="LegacyBIOSBootable"\n'
        f'start={root_start}, size={root_sectors}, type={LINUX_DATA}, '
        f'uuid={ids.root_part}, name="root"\n'
    )
    try:
        proc = subprocess.run(["sfdisk", "--no-reread", "--no-tell-kernel", "-q", str(disk)],
                              input=table, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise ImageError(f"sfdisk: cannot run: {exc}") from exc
    if proc.returncode != 0:
        raise ImageError(f"sfdisk failed on {disk}: {proc.stderr.strip()}\n{table}")
    with disk.open("r+b") as f:
        f.write(SYSLINUX_MBR.read_bytes()[:440])
        _copy_at(esp, f.fileno(), esp_start * SECTOR)
        _copy_at(root, f.fileno(), root_start * SECTOR)


def _copy_at(source: Path, fd: int, offset: int, chunk: int = 1 << 20) -> None:
    """Copy ``source`` into ``fd`` at ``offset``; all-zero chunks are skipped (holes)."""
    zero = bytes(chunk)
    with source.open("rb") as f:
        position = offset
        while block := f.read(chunk):
            if block != zero[: len(block)]:
                os.pwrite(fd, block, position)
            position += len(block)


def to_qcow2(raw: Path, qcow2: Path) -> None:
    """Convert the raw disk to a compressed qcow2 (zstd; zlib where qemu-img lacks it):
    about 40% of the uncompressed size; the guest's writes land uncompressed in its
    overlay. Raises ImageError."""
    argv = ["qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-c"]
    try:
        run([*argv, "-o", "compression_type=zstd", str(raw), str(qcow2)], "qemu-img convert")
    except ImageError:
        qcow2.unlink(missing_ok=True)
        run([*argv, str(raw), str(qcow2)], "qemu-img convert")


#: Where Debian's ``ovmf`` package puts the UEFI firmware: (code, variable store template),
#: the 4 MiB build first (Debian 12 and 13), then the older 2 MiB names.
OVMF_DIRS = (Path("/usr/share/OVMF"),)
OVMF_NAMES = (("OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"), ("OVMF_CODE.fd", "OVMF_VARS.fd"))


def find_ovmf() -> tuple[Path, Path]:
    """OVMF's code (read-only) and the variable store template to copy for each guest.

    Raises:
        ImageError: neither pair is installed (names the ``ovmf`` package).
    """
    for directory in OVMF_DIRS:
        for code, variables in OVMF_NAMES:
            if (directory / code).is_file() and (directory / variables).is_file():
                return directory / code, directory / variables
    looked = ", ".join(str(d / c) for d in OVMF_DIRS for c, _ in OVMF_NAMES)
    raise ImageError(f"UEFI needs OVMF firmware ({looked}): apt-get install ovmf")
