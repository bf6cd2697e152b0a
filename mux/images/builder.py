"""The built-in guest images: the cache, and the build dispatch.

Theory: a recipe (:mod:`mux.images.recipes`) names Debian packages; they are resolved in
one Debian suite's verified index (:mod:`mux.images.archive`: the suite and mirror are
the user's choice, never the host's release). Nothing binary is committed. A build lands
in ``cache_root()/<name>-<key>/`` (``vmlinuz``, ``initrd.img``, for a disk
``disk.qcow2``, and ``image.json`` with the suite, the package versions and each file's
SHA256) where the key hashes the recipe files, the suite, the package versions and
``BUILD_FORMAT``: a new kernel in the suite or an edited recipe gives a new key, an
unchanged one is a cache hit. Builds happen in a staging directory next to the cache
and are renamed into place whole, so a failed or interrupted build never leaves a
usable-looking entry, and two concurrent builders of the same key both end with one
entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mux.errors import ImageError
from mux.images import archive, busybox, debian
from mux.images.recipes import Recipe, default_image_names, image_names, load_recipe

Progress = Callable[[str], None]
__all__ = ["BuiltImage", "Recipe", "build", "cache_key", "cache_root", "default_image_names",
           "find_built", "image_names", "images_key", "list_images", "load_recipe",
           "resolve_packages"]


@dataclass(frozen=True)
class BuiltImage:
    """A built guest: boot it with ``-kernel kernel -initrd initrd -append append``, or,
    for a disk image (``debian``), from ``disk`` with its own boot loader (BIOS or UEFI;
    the kernel and initrd it holds are also here, with the command line it boots)."""

    name: str
    kernel: Path
    initrd: Path
    append: str
    disk: Path | None = None


def cache_root() -> Path:
    """``$MUX_CACHE_DIR``, else ``$XDG_CACHE_HOME/mux/images``, else ``~/.cache/mux/images``."""
    if env := os.environ.get("MUX_CACHE_DIR"):
        return Path(env).expanduser()
    return archive.cache_home() / "images"


# --- package resolution -------------------------------------------------------


def resolve_packages(recipe: Recipe, *, online: bool = True,
                     progress: Progress = print) -> dict[str, archive.Package]:
    """Package name -> its stanza in the suite's index, the kernel first (a metapackage
    followed to its ABI package). ``online`` refreshes an old index from the mirror.
    Raises ImageError (no index to be had, a package the suite lacks, a failed check)."""
    index = archive.load_index(archive.source(), online=online, progress=progress)
    return index.resolve(recipe.kernel, recipe.packages)


def cache_key(recipe: Recipe, versions: dict[str, str], suite: str) -> str:
    """The cache key: recipe files + suite + exact package versions, 16 hex digits."""
    h = hashlib.sha256(f"{recipe.recipe_hash()}\nsuite={suite}".encode())
    for package, version in versions.items():
        h.update(f"\n{package}={version}".encode())
    return h.hexdigest()[:16]


def _key(recipe: Recipe, packages: dict[str, archive.Package]) -> str:
    return cache_key(recipe, {n: p.version for n, p in packages.items()}, archive.source().suite)


def images_key(names: list[str] | None = None, progress: Progress = print) -> str:
    """One key for the cache entries of ``names`` (default: the default images), for CI
    caches: it changes when any of their keys does. Raises ImageError."""
    h = hashlib.sha256()
    for name in names or default_image_names():
        recipe = load_recipe(name)
        h.update(f"{name}={_key(recipe, resolve_packages(recipe, progress=progress))}\n".encode())
    return h.hexdigest()[:16]


# --- cache lookup ---------------------------------------------------------------


def _load_entry(directory: Path) -> BuiltImage | None:
    try:
        meta = json.loads((directory / "image.json").read_text())
        disk = directory / str(meta["disk"]) if meta.get("disk") else None
        image = BuiltImage(str(meta["name"]), directory / "vmlinuz", directory / "initrd.img",
                           str(meta["append"]), disk)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if image.kernel.is_file() and image.initrd.is_file() and (disk is None or disk.is_file()):
        return image
    return None


def find_built(name: str, *, offline: bool = False) -> BuiltImage | None:
    """The cached build of the current recipe, or None.

    Resolves the packages in the cached index, without the network. With no cached index
    (never built here), or with ``offline`` (no look-up at all, ``mux run --dry-run``),
    falls back to the newest entry built from the same recipe files and suite. Raises
    ImageError for an unknown name or suite.
    """
    recipe = load_recipe(name)
    suite = archive.source().suite
    if offline:
        return _newest_entry_for(recipe, suite)
    try:
        key = _key(recipe, resolve_packages(recipe, online=False, progress=lambda m: None))
    except ImageError:
        return _newest_entry_for(recipe, suite)
    return _load_entry(cache_root() / f"{name}-{key}")


def _newest_entry_for(recipe: Recipe, suite: str) -> BuiltImage | None:
    wanted = recipe.recipe_hash()
    best: tuple[float, BuiltImage] | None = None
    for directory in cache_root().glob(f"{recipe.name}-*"):
        try:
            meta = json.loads((directory / "image.json").read_text())
            mtime = directory.stat().st_mtime
        except (OSError, ValueError):
            continue
        image = _load_entry(directory)
        if (image and meta.get("recipe_hash") == wanted and meta.get("suite") == suite
                and (best is None or mtime > best[0])):
            best = (mtime, image)
    return best[1] if best else None


def list_images() -> list[tuple[str, BuiltImage | None]]:
    """Every built-in image name with its current cached build (or None)."""
    return [(name, find_built(name)) for name in image_names()]


# --- building -----------------------------------------------------------------------


def build(name: str, progress: Progress = print, force: bool = False) -> BuiltImage:
    """Build image ``name`` unless the current recipe is cached; return it.

    ``force`` rebuilds and replaces a cached entry. Raises ImageError for an unknown
    name, a package that cannot be fetched or fails its check, or a missing module.
    """
    recipe = load_recipe(name)
    if recipe.kind == "disk":
        debian.check_host(name)  # before any download: say first what this host lacks
    src = archive.source()
    packages = resolve_packages(recipe, progress=lambda m: progress(f"{name}: {m}"))
    key = _key(recipe, packages)
    root = cache_root()
    final = root / f"{name}-{key}"
    if not force and (cached := _load_entry(final)):
        progress(f"{name}: cached in {final}")
        return cached
    started = time.monotonic()
    try:
        root.mkdir(parents=True, exist_ok=True)
        _remove_stale_staging(root)
        staging = Path(tempfile.mkdtemp(prefix=f".build-{name}-", dir=root))
        try:
            out = staging / "out"
            out.mkdir()
            if recipe.kind == "disk":
                _build_disk(recipe, src, packages, key, staging / "work", out, progress)
            else:
                busybox.build(recipe, src, packages, key, staging / "work", out, progress)
            _install(out, final, force)
            if recipe.kind == "disk":
                debian.give_to_sudo_user(final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except OSError as exc:
        raise ImageError(f"{name}: cannot build in {root}: {exc}") from exc
    image = _load_entry(final)
    if image is None:  # pragma: no cover - only if someone deletes it under us
        raise ImageError(f"{name}: build vanished from {final}")
    progress(f"{name}: built in {time.monotonic() - started:.1f} s -> {final}")
    return image


def _remove_stale_staging(root: Path, max_age: float = 6 * 3600) -> None:
    for directory in root.glob(".build-*"):
        try:
            if time.time() - directory.stat().st_mtime > max_age:
                shutil.rmtree(directory, ignore_errors=True)
        except OSError:
            continue


def _install(out: Path, final: Path, force: bool) -> None:
    """Rename a finished build into place; a concurrent identical build may win."""
    if force and final.exists():
        trash = final.with_name(f".build-old-{final.name}-{os.getpid()}")
        os.rename(final, trash)
        shutil.rmtree(trash, ignore_errors=True)
    try:
        os.rename(out, final)
    except OSError:
        if _load_entry(final) is None:
            raise


def _build_disk(recipe: Recipe, src: archive.Source, packages: dict[str, archive.Package],
                key: str, work: Path, out: Path, progress: Progress) -> None:
    extra = debian.build_disk(recipe.name, recipe.files, key, src, work, out, progress)
    meta = {"name": recipe.name, "hash": key, "recipe_hash": recipe.recipe_hash(),
            "suite": src.suite, "packages": {n: p.version for n, p in packages.items()}, **extra,
            "files": {f: archive.sha256_of(out / f) for f in ("vmlinuz", "initrd.img")},
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (out / "image.json").write_text(json.dumps(meta, indent=2) + "\n")
