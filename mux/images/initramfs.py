"""Initramfs building blocks: a newc cpio writer and the kernel-module closure.

Theory: the kernel unpacks an initramfs from a "newc" cpio archive (magic
``070701``): each entry is a 110-byte ASCII header of thirteen 8-digit hex fields
(inode, mode, uid, gid, nlink, mtime, file size, device major/minor, rdev
major/minor, name size, checksum), then the NUL-terminated name and the data,
each padded to a multiple of 4 bytes; a ``TRAILER!!!`` entry ends the archive.
:class:`Cpio` writes one byte by byte, every entry root-owned with mtime 0 (so
the same inputs give the same bytes) and parent directories created before their
children; it does not compress (the caller gzips).

Kernel modules must be loaded dependencies first. Debian's kernel packages ship
no ``modules.dep`` (``depmod`` runs at install time), so :func:`module_closure`
reads the dependencies from each module's own ELF ``.modinfo`` section instead:
``depends=`` (required) and the ``pre:`` part of ``softdep=`` (loaded when
present). Modules listed in ``modules.builtin`` are in the kernel already and are
skipped. Names are normalised as the kernel does (``usb-storage`` is
``usb_storage``). Debian 13 ships its modules xz-compressed (``*.ko.xz``) under
``/usr/lib/modules``; :func:`module_bytes` unpacks them, so the initramfs holds plain
``.ko`` files that busybox's ``insmod`` loads on either release.
"""

from __future__ import annotations

import lzma
import struct
from collections.abc import Iterable
from pathlib import Path

from mux.errors import ImageError

# --- kernel modules ---------------------------------------------------------------


def module_bytes(path: Path) -> bytes:
    """A module file's ELF bytes, unpacked if it is ``*.ko.xz``. Raises ImageError."""
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        try:
            return lzma.decompress(data)
        except lzma.LZMAError as exc:
            raise ImageError(f"{path}: broken xz-compressed module: {exc}") from exc
    return data


def modinfo(path: Path) -> dict[str, list[str]]:
    """The ``key=value`` strings of a module's ``.modinfo`` ELF section."""
    data = module_bytes(path)
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise ImageError(f"{path} is not a 64-bit ELF kernel module")
    try:
        return _modinfo_strings(data)
    except (struct.error, ValueError) as exc:
        raise ImageError(f"{path}: unreadable ELF section table: {exc}") from exc


def _modinfo_strings(data: bytes) -> dict[str, list[str]]:
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def section(i: int) -> tuple[int, int, int]:
        name, _t, _f, _a, offset, size = struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
        return name, offset, size

    _, str_off, _ = section(shstrndx)
    info: dict[str, list[str]] = {}
    for i in range(shnum):
        name, offset, size = section(i)
        if data[str_off + name : data.index(b"\0", str_off + name)] == b".modinfo":
            for item in data[offset : offset + size].split(b"\0"):
                k, eq, v = item.decode(errors="replace").partition("=")
                if eq:
                    info.setdefault(k, []).append(v)
    return info


def module_closure(moddir: Path, wanted: Iterable[str]) -> list[tuple[str, Path]]:
    """``wanted`` modules and their ``depends=`` (and ``softdep pre:``), load order first.

    Raises ImageError for a module that is neither a file nor built in.
    """
    wanted = list(wanted)
    if not wanted:
        return []
    files = {_modname(p.name): p for pattern in ("*.ko", "*.ko.xz") for p in moddir.rglob(pattern)}
    builtin_list = moddir / "modules.builtin"
    builtin: set[str] = set()
    if builtin_list.is_file():
        builtin = {_modname(line) for line in builtin_list.read_text().split()}
    order: list[tuple[str, Path]] = []
    seen: set[str] = set()

    def visit(name: str, required: bool) -> None:
        name = _modname(name)
        if name in seen or name in builtin:
            return
        if name not in files:
            if required:
                raise ImageError(f"kernel module {name!r} not found in {moddir}")
            return
        seen.add(name)
        info = modinfo(files[name])
        for dep in ",".join(info.get("depends", [])).split(","):
            if dep:
                visit(dep, True)
        for soft in info.get("softdep", []):
            pre = soft.split("pre:", 1)[1].split("post:")[0] if "pre:" in soft else ""
            for dep in pre.split():
                visit(dep, False)
        order.append((name, files[name]))

    for name in wanted:
        visit(name, True)
    return order


def _modname(file_or_name: str) -> str:
    """``kernel/drivers/usb/storage/usb-storage.ko[.xz]`` -> ``usb_storage``."""
    return file_or_name.rsplit("/", 1)[-1].removesuffix(".xz").removesuffix(".ko").replace("-", "_")


# --- the cpio writer ------------------------------------------------------------------


class Cpio:
    """A minimal newc ("070701") cpio writer; entries are root-owned, mtime 0."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._dirs: set[str] = set()
        self._ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        parent = name.rpartition("/")[0]
        if parent and parent not in self._dirs:
            self.add_dir(parent)
        self._ino += 1
        encoded = name.encode() + b"\0"
        fields = (self._ino, mode, 0, 0, 1, 0, len(data), 0, 0, *rdev, len(encoded), 0)
        header = b"070701" + b"".join(b"%08x" % f for f in fields)
        self._chunks += [header, encoded, _pad(len(header) + len(encoded)), data, _pad(len(data))]

    def add_dir(self, name: str, mode: int = 0o755) -> None:
        name = name.strip("/")
        if name in self._dirs:
            return
        self._dirs.add(name)
        self._entry(name, 0o040000 | mode)

    def add_file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name.strip("/"), 0o100000 | mode, data)

    def add_symlink(self, name: str, target: str) -> None:
        self._entry(name.strip("/"), 0o120777, target.encode())

    def add_chardev(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        self._entry(name.strip("/"), 0o020000 | mode, rdev=(major, minor))

    def finish(self) -> bytes:
        """The archive with its trailer."""
        self._ino = 0
        self._entry("TRAILER!!!", 0)
        return b"".join(self._chunks)


def _pad(length: int) -> bytes:
    return b"\0" * (-length % 4)
