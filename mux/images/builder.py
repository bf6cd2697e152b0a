"""The built-in guest images: a stock Debian kernel plus a busybox initramfs.

Theory: a recipe is a directory ``mux/images/recipes/<name>/`` holding ``recipe.toml``
(kernel package pattern, extra packages, kernel modules, shared directories to
include, the kernel command line) and an ``init`` script. Building one means:
resolve the packages to exact versions with ``apt-cache``, fetch them with
``apt-get download`` (no root needed), unpack them with ``dpkg -x``, and pack
busybox, the recipe's scripts and the dependency closure of the listed modules
into a gzip'd newc cpio (both made by :mod:`mux.initramfs`).

Nothing binary is committed. A build lands in ``cache_root()/<name>-<key>/``
(``vmlinuz``, ``initrd.img``, ``image.json``) where the key hashes the recipe
files, the resolved package versions and ``BUILD_FORMAT``: a new kernel in the
archive or an edited recipe gives a new key, an unchanged one is a cache hit.
Builds happen in a staging directory next to the cache and are renamed into
place whole, so a failed or interrupted build never leaves a usable-looking
entry, and two concurrent builders of the same key both end with one entry.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from mux.errors import ImageError
from mux.images.initramfs import Cpio, module_bytes, module_closure

#: Bump when the image layout made here or in mux.initramfs changes, to invalidate caches.
BUILD_FORMAT = 2
#: Where the recipes live; a module attribute so tests can point it elsewhere.
RECIPE_DIR = Path(__file__).resolve().parent / "recipes"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BuiltImage:
    """A built guest: boot it with ``-kernel kernel -initrd initrd -append append``."""

    name: str
    kernel: Path
    initrd: Path
    append: str


@dataclass(frozen=True)
class Recipe:
    """One parsed ``recipe.toml`` and the files (relative path -> bytes) it packs."""

    name: str
    kernel: str
    packages: tuple[str, ...]
    modules: tuple[str, ...]
    append: str
    files: dict[str, bytes]

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
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise ImageError(f"broken recipe {toml_path}: {exc!r}") from exc
    if not (directory / "init").is_file():
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
    return Recipe(name, kernel, packages, modules, append, files)


# --- package resolution -------------------------------------------------------


def _run(argv: list[str], what: str, cwd: Path | None = None) -> str:
    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise ImageError(f"{what}: cannot run {argv[0]}: {exc}") from exc
    if proc.returncode != 0:
        raise ImageError(
            f"{what} failed (exit code {proc.returncode}): {' '.join(argv)}\n"
            f"{proc.stderr.strip() or proc.stdout.strip()}"
        )
    return proc.stdout


def _candidates(packages: Iterable[str]) -> dict[str, str]:
    """Candidate version of each package apt knows and can install."""
    out = _run(["apt-cache", "policy", *packages], "apt-cache policy")
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
        out = _run(["apt-cache", "depends", "--important", kernel], "apt-cache depends")
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
        image = BuiltImage(
            name=str(meta["name"]),
            kernel=directory / "vmlinuz",
            initrd=directory / "initrd.img",
            append=str(meta["append"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if image.kernel.is_file() and image.initrd.is_file():
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
            _build_into(recipe, versions, key, staging / "work", out, progress)
            _install(out, final, force)
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


def _build_into(
    recipe: Recipe,
    versions: dict[str, str],
    key: str,
    work: Path,
    out: Path,
    progress: Progress,
) -> None:
    debs, tree = work / "debs", work / "tree"
    debs.mkdir(parents=True)
    tree.mkdir()
    specs = [f"{p}={v}" for p, v in versions.items()]
    progress(f"{recipe.name}: downloading {', '.join(specs)}")
    argv = ["apt-get", "download", "-q"]
    if os.geteuid() == 0:  # the _apt sandbox user cannot write our private dir
        argv += ["-o", "APT::Sandbox::User=root"]
    _run([*argv, *specs], "apt-get download", cwd=debs)
    for deb in sorted(debs.glob("*.deb")):
        progress(f"{recipe.name}: unpacking {deb.name} ({deb.stat().st_size >> 20} MB)")
        _run(["dpkg", "-x", str(deb), str(tree)], "dpkg -x")

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
    archive = _initramfs(recipe, busybox, release, modules)
    shutil.copyfile(kernels[-1], out / "vmlinuz")
    (out / "initrd.img").write_bytes(gzip.compress(archive, compresslevel=6, mtime=0))
    meta = {
        "name": recipe.name,
        "hash": key,
        "recipe_hash": recipe.recipe_hash(),
        "packages": versions,
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
