"""The disk images (``kind = "disk"``: ``debian``, ``desktop``): a real Debian system on a
bootable disk.

Theory: ``mmdebstrap`` (as root: it installs packages in a chroot of its own) builds a
minbase tree of the images' suite (:mod:`mux.images.archive`: ``MUX_IMAGE_SUITE``, default
trixie, whatever the host runs) from the same mirror, checked against the same archive
keys as the other images, with the Debian kernel (its initramfs made by initramfs-tools in
the chroot) and the recipe's packages, without recommends; a recipe's ``dpkg_exclude`` /
``dpkg_include`` globs keep files out (``desktop``: documentation, translations). Python
then writes the recipe's files into the tree (``[install]``: for ``debian`` getty drop-ins
for root autologin on tty1 and ttyS0, the ``mux-report`` service with the ``console``
image's reporters, networkd DHCP, MUX-READY from the tty1 login shell; ``desktop``
includes those files as ``debian/...`` and adds its X session), fstab and the hostname (the
recipe's name), enables :data:`BASE_UNITS` and the recipe's ``[enable]`` units by writing
their ``.wants`` symlinks and masks its ``mask`` ones. :mod:`mux.images.disk` turns the
tree into a GPT disk that boots by itself with BIOS (SYSLINUX) and UEFI (systemd-boot).

The persona's name reaches the guest through QEMU's firmware configuration device,
``-fw_cfg name=opt/mux/persona,string=NAME`` (and optionally ``opt/mux/color``): the
boot loaders hold a fixed kernel command line. Without it the guest calls itself
``debian``. The guest agent starts when QEMU offers the virtio-serial port
``org.qemu.guest_agent.0`` (Debian's udev rule).

No loop devices and no mounts: every step works on files.
"""

from __future__ import annotations

import os
import pwd
import shutil
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mux.errors import ImageError
from mux.images import archive, disk
from mux.images.tools import run

Progress = Callable[[str], None]


def check_host(name: str = "debian") -> None:
    """Raises ImageError naming what this host lacks to build the disk image ``name``."""
    if os.geteuid() != 0:
        raise ImageError(
            f"building the {name} image needs root (mmdebstrap installs packages in a chroot):"
            f" run `sudo MUX_CACHE_DIR=$HOME/.cache/mux/images mux images build {name}`")
    missing = ([] if shutil.which("mmdebstrap") else ["mmdebstrap (mmdebstrap)"]) + disk.missing_tools()
    if missing:
        packages = sorted({m.rsplit("(", 1)[1].rstrip(")") for m in missing})
        raise ImageError(f"building the {name} image needs {', '.join(missing)}:"
                         f" apt-get install {' '.join(packages)} (the same names on Fedora)")


def give_to_sudo_user(entry: Path) -> None:
    """After ``sudo mux images build debian`` with the cache in the user's home: the cache
    entry, and the cache directories above it that root made, go to the user who ran
    sudo (``SUDO_UID``/``SUDO_GID``), so their own mux can replace and delete them.
    Otherwise nothing. Raises OSError if a chown fails."""
    uid, gid = os.environ.get("SUDO_UID", ""), os.environ.get("SUDO_GID", "")
    if os.geteuid() != 0 or not uid.isdigit() or not gid.isdigit():
        return
    try:
        home = Path(pwd.getpwuid(int(uid)).pw_dir).resolve()
    except KeyError:
        return
    entry = entry.resolve()
    if not entry.is_relative_to(home) or entry == home:
        return
    for directory, _dirs, names in os.walk(entry):
        for name in (".", *names):
            os.lchown(os.path.join(directory, name), int(uid), int(gid))
    parent = entry.parent
    while parent != home and parent.is_relative_to(home) and parent.stat().st_uid == 0:
        os.chown(parent, int(uid), int(gid))
        parent = parent.parent


@contextmanager
def _phase(progress: Progress, name: str, what: str) -> Iterator[None]:
    started = time.monotonic()
    progress(f"{name}: {what} ...")
    yield
    progress(f"{name}: {what}: {time.monotonic() - started:.1f} s")


def build_disk(name: str, files: dict[str, bytes], key: str, src: archive.Source, work: Path,
               out: Path, progress: Progress) -> dict[str, object]:
    """Build the disk of recipe ``name`` (its ``files``, ``recipe.toml`` among them) into
    ``out`` (``disk.qcow2``, ``vmlinuz``, ``initrd.img``); the image.json fields it adds.
    Raises ImageError (with the failing tool's stderr)."""
    started = time.monotonic()
    check_host(name)
    try:
        settings = tomllib.loads(files["recipe.toml"].decode())
        packages = [str(settings["kernel"]), *(str(p) for p in settings.get("packages", []))]
        install = {str(k): str(v) for k, v in settings.get("install", {}).items()}
        units = Units({str(k): str(v) for k, v in settings.get("enable", {}).items()},
                      tuple(str(u) for u in settings.get("mask", [])))
        esp_mb = int(settings.get("esp_mb", 300))
        append = str(settings["append"])
        dpkg_paths = ([f"--dpkgopt=path-exclude={p}" for p in settings.get("dpkg_exclude", [])]
                      + [f"--dpkgopt=path-include={p}" for p in settings.get("dpkg_include", [])])
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError, UnicodeError,
            AttributeError) as exc:
        raise ImageError(f"{name}: broken recipe.toml: {exc!r}") from exc
    ids = disk.DiskIds.derive(key)
    root = work / "root"
    work.mkdir(parents=True, exist_ok=True)
    source = f"deb {src.mirror} {src.suite} main"
    with _phase(progress, name, f"mmdebstrap {src.suite} from {src.mirror} ({src.mirror_from})"):
        run(["mmdebstrap", "--mode=root", "--variant=minbase", f"--include={','.join(packages)}",
             *dpkg_paths, f"--keyring={archive.keyring()}", src.suite, str(root), source], "mmdebstrap")
    with _phase(progress, name, "configuring"):
        release = configure(root, files, install, ids, name, units)
    cmdline = f"root=UUID={ids.root_fs} {append}"
    kernel, initrd = root / "boot" / f"vmlinuz-{release}", root / "boot" / f"initrd.img-{release}"
    with _phase(progress, name, f"EFI system partition ({esp_mb} MiB, SYSLINUX and systemd-boot)"):
        esp = work / "esp.img"
        disk.make_esp(esp, esp_mb, disk.ALIGN, ids.fat_serial, esp_files(kernel, initrd, cmdline))
    size_mb = disk.tree_size_mb(root) * 13 // 10 + 512
    with _phase(progress, name, f"root file system (ext4, {size_mb} MiB)"):
        root_img = work / "root.img"
        disk.make_ext4(root_img, root, size_mb, ids.root_fs, name)
    with _phase(progress, name, "disk (GPT) and qcow2"):
        raw = work / "disk.raw"
        disk.assemble(raw, esp, root_img, ids)
        esp.unlink()
        root_img.unlink()
        disk.to_qcow2(raw, out / "disk.qcow2")
        raw.unlink()
    shutil.copyfile(kernel, out / "vmlinuz")
    shutil.copyfile(initrd, out / "initrd.img")
    shutil.rmtree(root, ignore_errors=True)
    size = (out / "disk.qcow2").stat().st_size
    build_s = round(time.monotonic() - started, 1)
    progress(f"{name}: disk.qcow2 {size >> 20} MiB (virtual {(size_mb + esp_mb + 2)} MiB),"
             f" built in {build_s} s")
    return {"disk": "disk.qcow2", "append": cmdline, "kernel_release": release,
            "codename": src.suite, "sources": [source], "root_uuid": str(ids.root_fs),
            "disk_bytes": size, "build_s": build_s}


@dataclass(frozen=True)
class Units:
    """A recipe's own systemd units: ``enable`` (``[enable]``: unit -> the target that
    wants it, besides :data:`BASE_UNITS`) and ``mask`` (linked to /dev/null)."""

    enable: dict[str, str] = field(default_factory=dict)
    mask: tuple[str, ...] = ()


#: The units every disk image enables: unit -> (the .wants directory, where the unit is).
BASE_UNITS = {"mux-report.service": ("multi-user.target.wants", "/etc/systemd/system"),
              "systemd-networkd.service": ("multi-user.target.wants", "/usr/lib/systemd/system"),
              "systemd-networkd.socket": ("sockets.target.wants", "/usr/lib/systemd/system")}


def configure(root: Path, files: dict[str, bytes], install: dict[str, str], ids: disk.DiskIds,
              name: str = "debian", units: Units | None = None) -> str:
    """Write mux's files into the tree of recipe ``name`` (the hostname until the persona's
    name comes), enable :data:`BASE_UNITS` and the recipe's ``units``, mask the
    recipe's masked ones; the kernel release. Raises ImageError when the tree lacks what
    mmdebstrap should have installed, or a unit to enable."""
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise ImageError(f"mmdebstrap left no /boot/vmlinuz-* in {root}")
    release = kernels[-1].name.removeprefix("vmlinuz-")
    if not (root / "boot" / f"initrd.img-{release}").is_file():
        raise ImageError(f"mmdebstrap left no /boot/initrd.img-{release} (initramfs-tools)")
    for source, target in install.items():
        if source not in files:
            raise ImageError(f"recipe [install] names {source!r}, which is not a recipe file")
        path = root / target.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[source])
        executable = files[source].startswith(b"#!")
        path.chmod(0o755 if executable else 0o644)
    (root / "etc" / "fstab").write_text(f"UUID={ids.root_fs} / ext4 rw,errors=remount-ro 0 0\n")
    (root / "etc" / "hostname").write_text(f"{name}\n")
    (root / "etc" / "hosts").write_text(f"127.0.0.1\tlocalhost\n127.0.1.1\t{name}\n"
                                        "::1\tlocalhost ip6-localhost ip6-loopback\n")
    units = units or Units()
    system = root / "etc" / "systemd" / "system"
    enable = dict(BASE_UNITS)
    for unit, target in units.enable.items():
        where = [d for d in ("/etc/systemd/system", "/usr/lib/systemd/system")
                 if (root / d.lstrip("/") / unit).is_file()]
        if not where:
            raise ImageError(f"recipe [enable] names {unit!r}: the tree has no such unit"
                             " in /etc/systemd/system or /usr/lib/systemd/system")
        enable[unit] = (f"{target}.wants", where[0])
    for unit, (wants, directory) in enable.items():
        if not (root / directory.lstrip("/") / unit).is_file():
            raise ImageError(f"the tree has no {directory}/{unit} to enable")
        _relink(system / wants / unit, f"{directory}/{unit}")
    for unit in units.mask:
        _relink(system / unit, "/dev/null")
    return release


def _relink(link: Path, target: str) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.unlink(missing_ok=True)
    link.symlink_to(target)


def esp_files(kernel: Path, initrd: Path, cmdline: str) -> dict[str, bytes | Path]:
    """What the EFI system partition holds: kernel, initrd, SYSLINUX's and systemd-boot's."""
    syslinux_cfg = ("DEFAULT debian\nPROMPT 0\nTIMEOUT 0\n\nLABEL debian\n"
                    f"  LINUX /vmlinuz\n  INITRD /initrd.img\n  APPEND {cmdline}\n")
    entry = f"title Debian (mux)\nlinux /vmlinuz\ninitrd /initrd.img\noptions {cmdline}\n"
    return {
        "vmlinuz": kernel,
        "initrd.img": initrd,
        "ldlinux.c32": disk.SYSLINUX_MODULES / "ldlinux.c32",
        "syslinux.cfg": syslinux_cfg.encode(),
        "EFI/BOOT/BOOTX64.EFI": disk.SYSTEMD_BOOT,
        "loader/loader.conf": b"default debian.conf\ntimeout 0\nconsole-mode keep\neditor no\n",
        "loader/entries/debian.conf": entry.encode(),
    }
