"""The built-in guest images: recipes, the cache, and the build dispatch.

Theory: a recipe is a directory ``mux/images/recipes/<name>/`` holding ``recipe.toml``
(its ``kind``, the kernel package, extra packages, shared directories to include, the
kernel command line) and its scripts. Two kinds exist: ``initramfs`` (``console``,
``palette``: a stock Debian kernel plus a busybox initramfs, built without root by
:mod:`mux.images.busybox`) and ``disk`` (``debian``: a bootable qcow2 made with
mmdebstrap, as root, by :mod:`mux.images.debian`). A recipe with ``on_demand = true``
is built only when named, never by ``default_image_names()``.

Nothing binary is committed. A build lands in ``cache_root()/<name>-<key>/``
(``vmlinuz``, ``initrd.img``, for a disk ``disk.qcow2``, and ``image.json``) where the
key hashes the recipe files, the package versions ``apt-cache`` resolves and
``BUILD_FORMAT``: a new kernel in the archive or an edited recipe gives a new key, an
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
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from mux.errors import ImageError
from mux.images import busybox, debian
from mux.images.tools import run

#: Bump when the image layout made here or in mux.initramfs changes, to invalidate caches.
BUILD_FORMAT = 2
#: Where the recipes live; a module attribute so tests can point it elsewhere.
RECIPE_DIR = Path(__file__).resolve().parent / "recipes"

Progress = Callable[[str], None]


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


@dataclass(frozen=True)
class Recipe:
    """One parsed ``recipe.toml`` and the files (relative path -> bytes) it packs."""

    name: str
    kernel: str
    packages: tuple[str, ...]
    modules: tuple[str, ...]
    append: str
    files: dict[str, bytes]
    kind: str = "initramfs"  # or "disk": see mux.images.debian
    on_demand: bool = False  # built only when named: not by ``default_image_names()``

    def recipe_hash(self) -> str:
        """Hash of the recipe files alone (without package versions)."""
        h = hashlib.sha256(f"mux-image {BUILD_FORMAT} {self.name}\n".encode())
        for rel in sorted(self.files):
            h.update(f"{rel}\0{len(self.files[rel])}\0".encode())
            h.update(self.files[rel])
        return h.hexdigest()


def image_names() -> list[str]:
    """The names of the built-in images (directories with a ``recipe.toml``)."""
    if not RECIPE_DIR.is_dir():
        return []
    return sorted(p.parent.name for p in RECIPE_DIR.glob("*/recipe.toml"))


def default_image_names() -> list[str]:
    """The images built when none is named: all but the on-demand ones (``debian``)."""
    return [name for name in image_names() if not load_recipe(name).on_demand]


def cache_root() -> Path:
    """``$MUX_CACHE_DIR``, else ``$XDG_CACHE_HOME/mux/images``, else ``~/.cache/mux/images``."""
    if env := os.environ.get("MUX_CACHE_DIR"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mux" / "images"


def load_recipe(name: str) -> Recipe:
    """Read ``recipes/<name>``. Raises ImageError for an unknown or broken recipe."""
    directory = RECIPE_DIR / name
    toml_path = directory / "recipe.toml"
    if "/" in name or not toml_path.is_file():
        known = ", ".join(image_names()) or "none"
        raise ImageError(f"unknown guest image {name!r} (known: {known})")
    try:
        data = tomllib.loads(toml_path.read_text())
        kernel = str(data["kernel"])
        packages = tuple(str(p) for p in data.get("packages", []))
        modules = tuple(str(m) for m in data.get("modules", []))
        append = str(data["append"])
        include = [str(i) for i in data.get("include", [])]
        kind, on_demand = str(data.get("kind", "initramfs")), bool(data.get("on_demand", False))
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise ImageError(f"broken recipe {toml_path}: {exc!r}") from exc
    if kind not in ("initramfs", "disk"):
        raise ImageError(f"recipe {name!r}: kind must be initramfs or disk, not {kind!r}")
    if kind == "initramfs" and not (directory / "init").is_file():
        raise ImageError(f"recipe {name!r} has no init script in {directory}")
    files: dict[str, bytes] = {}
    for source, prefix in [(directory, ""), *((RECIPE_DIR / i, f"{i}/") for i in include)]:
        if not source.is_dir():
            raise ImageError(f"recipe {name!r} includes missing directory {source}")
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            try:
                files[prefix + path.relative_to(source).as_posix()] = path.read_bytes()
            except OSError as exc:
                raise ImageError(f"recipe {name!r}: cannot read {path}: {exc}") from exc
    return Recipe(name, kernel, packages, modules, append, files, kind, on_demand)


# --- package resolution -------------------------------------------------------


def _candidates(packages: Iterable[str]) -> dict[str, str]:
    """Candidate version of each package apt knows and can install."""
    out = run(["apt-cache", "policy", *packages], "apt-cache policy")
    found: dict[str, str] = {}
    current = ""
    for line in out.splitlines():
        if line and not line[0].isspace() and line.endswith(":"):
            current = line[:-1]
        elif line.strip().startswith("Candidate:") and current:
            version = line.split(":", 1)[1].strip()
            if version and version != "(none)":
                found[current] = version
    return found


_RESOLVED: dict[tuple[str, tuple[str, ...]], tuple[float, dict[str, str]]] = {}
_RESOLVE_TTL_S = 60.0


def resolve_packages(recipe: Recipe) -> dict[str, str]:
    """Package -> exact version, the kernel first (newest ABI matching the pattern).

    Answers are remembered for a minute (apt-cache takes about a second).
    Raises ImageError if apt does not know a package or cannot run.
    """
    memo_key = (recipe.kernel, recipe.packages)
    memo = _RESOLVED.get(memo_key)
    if memo and time.monotonic() - memo[0] < _RESOLVE_TTL_S:
        return dict(memo[1])
    resolved = _resolve(recipe.kernel, recipe.packages)
    _RESOLVED[memo_key] = (time.monotonic(), resolved)
    return dict(resolved)


def _resolve(kernel: str, packages: tuple[str, ...]) -> dict[str, str]:
    kernel_package = _kernel_package(kernel)
    versions = _candidates([kernel_package, *packages])
    if kernel_package not in versions:
        raise ImageError(f"apt knows no installable kernel package {kernel_package!r}{_NEEDS}")
    resolved = {kernel_package: versions[kernel_package]}
    for package in packages:
        if package not in versions:
            raise ImageError(f"apt knows no installable package {package!r}{_NEEDS}")
        resolved[package] = versions[package]
    return resolved


_NEEDS = (
    " (the built-in images are built from Debian 12 or 13 packages: the host needs apt with"
    " Debian's main archive in its sources and an up-to-date package list, `apt-get update`)"
)


def _kernel_package(kernel: str) -> str:
    """The real kernel package behind ``kernel``.

    A metapackage such as ``linux-image-amd64`` is followed to the ABI-versioned
    package its candidate depends on (``linux-image-6.1.0-57-amd64`` on Debian 12,
    ``linux-image-6.12.57+deb13-amd64`` on Debian 13), so a recipe names no release.
    A name that depends on no other ``linux-image-*`` is used as it is.
    """
    try:
        out = run(["apt-cache", "depends", "--important", kernel], "apt-cache depends")
    except ImageError as exc:
        raise ImageError(f"apt knows no kernel package {kernel!r}{_NEEDS}: {exc}") from exc
    for line in out.splitlines():
        key, _, value = line.strip().partition(":")
        target = value.strip()
        if key.lstrip("|") == "Depends" and target.startswith("linux-image-") and target != kernel:
            return target
    return kernel


def cache_key(recipe: Recipe, versions: dict[str, str]) -> str:
    """The cache key: recipe files + exact package versions, 16 hex digits."""
    h = hashlib.sha256(recipe.recipe_hash().encode())
    for package, version in versions.items():
        h.update(f"\n{package}={version}".encode())
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

    Without a working apt (another distribution), or with ``offline`` (no apt-cache
    look-up, which takes about a second: ``mux run --dry-run``), falls back to the newest
    entry built from the same recipe files. Raises ImageError for an unknown name.
    """
    recipe = load_recipe(name)
    if offline:
        return _newest_entry_for(recipe)
    try:
        key = cache_key(recipe, resolve_packages(recipe))
    except ImageError:
        return _newest_entry_for(recipe)
    return _load_entry(cache_root() / f"{name}-{key}")


def _newest_entry_for(recipe: Recipe) -> BuiltImage | None:
    wanted = recipe.recipe_hash()
    best: tuple[float, BuiltImage] | None = None
    for directory in cache_root().glob(f"{recipe.name}-*"):
        try:
            meta = json.loads((directory / "image.json").read_text())
            mtime = directory.stat().st_mtime
        except (OSError, ValueError):
            continue
        image = _load_entry(directory)
        if image and meta.get("recipe_hash") == wanted and (best is None or mtime > best[0]):
            best = (mtime, image)
    return best[1] if best else None


def list_images() -> list[tuple[str, BuiltImage | None]]:
    """Every built-in image name with its current cached build (or None)."""
    return [(name, find_built(name)) for name in image_names()]


# --- building -----------------------------------------------------------------------


def build(name: str, progress: Progress = print, force: bool = False) -> BuiltImage:
    """Build image ``name`` unless the current recipe is cached; return it.

    ``force`` rebuilds and replaces a cached entry. Raises ImageError for an
    unknown name, an apt/dpkg failure (with its stderr) or a missing module.
    """
    recipe = load_recipe(name)
    if recipe.kind == "disk":
        debian.check_host()  # before the apt look-up: say first what this host lacks
    progress(f"{name}: resolving packages with apt-cache")
    versions = resolve_packages(recipe)
    key = cache_key(recipe, versions)
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
                _build_disk(recipe, versions, key, staging / "work", out, progress)
            else:
                busybox.build(recipe, versions, key, staging / "work", out, progress)
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


def _build_disk(recipe: Recipe, versions: dict[str, str], key: str, work: Path, out: Path,
                progress: Progress) -> None:
    extra = debian.build_disk(recipe.name, recipe.files, key, work, out, progress)
    meta = {"name": recipe.name, "hash": key, "recipe_hash": recipe.recipe_hash(),
            "packages": versions, **extra,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (out / "image.json").write_text(json.dumps(meta, indent=2) + "\n")
