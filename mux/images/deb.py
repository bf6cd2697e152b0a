"""Unpacking a ``.deb`` in Python, as ``dpkg -x`` does, with no dpkg on the host.

Theory: a ``.deb`` is an ``ar`` archive (the ``!<arch>`` magic, then members each behind
a 60-byte header: name 16, mtime 12, owner 6, group 6, mode 8, size 10, ``\\x60\\n``, the
data padded to an even length) whose members are ``debian-binary``, ``control.tar.*``
and ``data.tar.*`` (xz, gzip, bzip2 or plain; Debian's own packages use xz). The data
tar is unpacked into a tree: directories and regular files only, every name checked to
stay inside the tree. Symbolic and hard links, devices and pipes are skipped: the image
builders read only regular files (kernel, modules, busybox), and a link could point out
of the tree.
"""

from __future__ import annotations

import posixpath
import tarfile
from pathlib import Path
from typing import BinaryIO

from mux.errors import ImageError

AR_MAGIC = b"!<arch>\n"


def data_member(deb: Path, f: BinaryIO) -> tuple[str, int]:
    """Seek ``f`` (``deb`` opened) to the start of its ``data.tar*`` member; its name and
    size. Raises ImageError when the file is no ``.deb``."""
    if f.read(8) != AR_MAGIC:
        raise ImageError(f"{deb}: not a Debian package (no ar archive header)")
    while header := f.read(60):
        if len(header) < 60 or header[58:60] != b"`\n":
            break
        name = header[:16].decode("ascii", errors="replace").strip().rstrip("/")
        try:
            size = int(header[48:58])
        except ValueError:
            break
        if name.startswith("data.tar"):
            return name, size
        f.seek(size + size % 2, 1)
    raise ImageError(f"{deb}: no data.tar member (a broken Debian package)")


def unpack(deb: Path, tree: Path) -> int:
    """Unpack ``deb``'s files into ``tree``; the number of regular files written.
    Raises ImageError for a broken package or a compression Python cannot read (zstd)."""
    written = 0
    root = tree.resolve()
    with deb.open("rb") as f:
        name, _size = data_member(deb, f)
        if name.endswith(".zst"):
            raise ImageError(f"{deb}: {name} is zstd-compressed, which mux cannot unpack"
                             " (Debian's own packages use xz)")
        try:
            with tarfile.open(fileobj=f, mode="r|*") as archive:
                for member in archive:
                    target = _inside(root, member.name, deb)
                    if target is None:
                        continue
                    if member.isdir():
                        target.mkdir(parents=True, exist_ok=True)
                    elif member.isfile():
                        source = archive.extractfile(member)
                        if source is None:
                            continue
                        target.parent.mkdir(parents=True, exist_ok=True)
                        with target.open("wb") as out:
                            while chunk := source.read(1 << 20):
                                out.write(chunk)
                        target.chmod(0o755 if member.mode & 0o111 else 0o644)
                        written += 1
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise ImageError(f"{deb}: cannot unpack {name}: {exc}") from exc
    return written


def _inside(root: Path, name: str, deb: Path) -> Path | None:
    """``name`` (``./usr/bin/x``) under ``root``; None for the root itself. Raises
    ImageError for a name that would leave the tree."""
    clean = posixpath.normpath(name.lstrip("/"))
    if clean in (".", ""):
        return None
    if clean.startswith("../") or clean == "..":
        raise ImageError(f"{deb}: member {name!r} would be written outside the tree: refused")
    return root / clean
