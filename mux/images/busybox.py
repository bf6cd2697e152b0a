"""The busybox images (``console``, ``palette``): a stock Debian kernel and an initramfs.

Theory: the packages resolved by :mod:`mux.images.builder` (the kernel and
busybox-static) are fetched and checked by :mod:`mux.images.archive` and unpacked by
:mod:`mux.images.deb` (no apt, dpkg or root); busybox, the recipe's scripts and the
dependency closure of the recipe's modules are packed into a newc cpio
(:mod:`mux.images.initramfs`). The output directory gets ``vmlinuz`` (the package's own
file), ``initrd.img`` and ``image.json`` (with each file's SHA256).

Reproducible: the cpio has fixed owners, times and order, and it is not compressed, so
the same packages give the same bytes whatever the host's zlib (Debian's, Fedora's
zlib-ng and Python's builds do not all deflate alike). The kernel reads an uncompressed
initramfs as it is; it is about twice the size of a gzip'd one and boots no slower.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from mux.errors import ImageError
from mux.images import archive, deb
from mux.images.initramfs import Cpio, module_bytes, module_closure

Progress = Callable[[str], None]


class Recipe(Protocol):
    """What this module reads of a :class:`mux.images.builder.Recipe` (which imports
    this module, so it is described here rather than imported)."""

    @property
    def name(self) -> str: ...
    @property
    def modules(self) -> tuple[str, ...]: ...
    @property
    def append(self) -> str: ...
    @property
    def files(self) -> dict[str, bytes]: ...
    def recipe_hash(self) -> str: ...


def build(
    recipe: Recipe,
    src: archive.Source,
    packages: dict[str, archive.Package],
    key: str,
    work: Path,
    out: Path,
    progress: Progress,
) -> None:
    """Fetch, unpack and pack the image into ``out``. Raises ImageError (a package that
    cannot be fetched or fails its check, no kernel or busybox in the packages, a missing
    module)."""
    tree = work / "tree"
    tree.mkdir(parents=True)
    for package in packages.values():
        path = archive.fetch_deb(src, package, lambda m: progress(f"{recipe.name}: {m}"))
        progress(f"{recipe.name}: unpacking {package.name} {package.version}")
        deb.unpack(path, tree)
    versions = {name: package.version for name, package in packages.items()}

    kernels = sorted((tree / "boot").glob("vmlinuz-*"))
    # Debian 12 ships /bin/busybox; Debian 13 (merged /usr) ships /usr/bin/busybox.
    busybox = next((p for p in (tree / "bin" / "busybox", tree / "usr" / "bin" / "busybox")
                    if p.is_file()), None)
    if not kernels or busybox is None:
        found = sorted(p.relative_to(tree).as_posix() for p in (*kernels, *tree.rglob("busybox")))
        raise ImageError(f"{recipe.name}: packages {', '.join(versions)} gave no /boot/vmlinuz-* "
                         f"or no busybox in /bin or /usr/bin (found: {', '.join(found) or 'nothing'})")
    release = kernels[-1].name.removeprefix("vmlinuz-")
    module_dirs = [tree / "lib" / "modules" / release, tree / "usr" / "lib" / "modules" / release]
    module_dir = next((d for d in module_dirs if d.is_dir()), module_dirs[0])
    modules = module_closure(module_dir, recipe.modules)

    progress(f"{recipe.name}: packing initramfs ({len(modules)} modules)")
    initrd = _initramfs(recipe, busybox, release, modules)
    shutil.copyfile(kernels[-1], out / "vmlinuz")
    (out / "initrd.img").write_bytes(initrd)
    meta = {
        "name": recipe.name,
        "hash": key,
        "recipe_hash": recipe.recipe_hash(),
        "suite": src.suite,
        "packages": versions,
        "files": {f: archive.sha256_of(out / f) for f in ("vmlinuz", "initrd.img")},
        "kernel_release": release,
        "modules": [m for m, _ in modules],
        "append": recipe.append,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (out / "image.json").write_text(json.dumps(meta, indent=2) + "\n")


def _initramfs(recipe: Recipe, busybox: Path, release: str, modules: list[tuple[str, Path]]) -> bytes:
    cpio = Cpio()
    for directory in ("dev", "proc", "sys", "run", "tmp", "root", "etc/mux"):
        cpio.add_dir(directory)
    cpio.add_chardev("dev/console", 5, 1)
    cpio.add_chardev("dev/null", 1, 3)
    cpio.add_file("bin/busybox", busybox.read_bytes(), 0o755)
    cpio.add_file("etc/mux/image", f"{recipe.name}\n".encode())
    for rel, data in sorted(recipe.files.items()):
        if rel == "recipe.toml":
            continue
        target = "init" if rel == "init" else "lib/mux/" + rel.rsplit("/", 1)[-1]
        executable = rel == "init" or rel.endswith(".sh")
        cpio.add_file(target, data, 0o755 if executable else 0o644)
    order = []
    for module, path in modules:
        target = f"lib/modules/{release}/{path.name.removesuffix('.xz')}"
        cpio.add_file(target, module_bytes(path))
        order.append(f"{module} /{target}\n")
    cpio.add_file("etc/mux/modules", "".join(order).encode())
    return cpio.finish()
