"""The recipes of the built-in images: where they are, and what one says.

Theory: a recipe is a directory ``guest_images/<name>/`` (shipped as the package
``mux.guest_images``) holding ``recipe.toml`` (its ``kind``, the kernel package, extra
packages, shared directories to include, the kernel command line) and its scripts. Two
kinds exist: ``initramfs`` (``console``, ``palette``: a stock Debian kernel plus a
busybox initramfs, :mod:`mux.images.busybox`) and ``disk`` (``debian``: a bootable
qcow2 made with mmdebstrap, :mod:`mux.images.debian`). A recipe with
``on_demand = true`` is built only when named, never by ``default_image_names()``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mux.errors import ImageError

#: Bump when the image layout made here or in mux.images.busybox changes, to invalidate caches.
BUILD_FORMAT = 3


def _shipped_recipes() -> Path:
    """``mux.guest_images``'s directory: the checkout's ``guest_images/`` in an editable
    install, the package's copy in a wheel. Found without importing it."""
    spec = importlib.util.find_spec("mux.guest_images")
    locations = list(spec.submodule_search_locations or []) if spec else []
    return Path(locations[0]) if locations else Path(__file__).resolve().parents[2] / "guest_images"


#: Where the recipes live; a module attribute so tests can point it elsewhere.
RECIPE_DIR = _shipped_recipes()


def recipe_dir() -> Path:
    return RECIPE_DIR


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
    #: ``[persona]`` in recipe.toml: the defaults of a persona booting this image, for the
    #: keys in :data:`PERSONA_DEFAULT_KEYS` (e.g. ``desktop``: vga = "virtio", agent = true).
    persona_defaults: Mapping[str, object] = field(default_factory=dict)

    def recipe_hash(self) -> str:
        """Hash of the recipe files alone (without package versions)."""
        h = hashlib.sha256(f"mux-image {BUILD_FORMAT} {self.name}\n".encode())
        for rel in sorted(self.files):
            h.update(f"{rel}\0{len(self.files[rel])}\0".encode())
            h.update(self.files[rel])
        return h.hexdigest()


#: The persona keys a recipe's ``[persona]`` table may give defaults for.
PERSONA_DEFAULT_KEYS = frozenset({"vga", "agent", "clipboard", "memory_mb", "resize_guest"})


def image_names() -> list[str]:
    """The names of the built-in images (directories with a ``recipe.toml``)."""
    if not RECIPE_DIR.is_dir():
        return []
    return sorted(p.parent.name for p in RECIPE_DIR.glob("*/recipe.toml"))


def default_image_names() -> list[str]:
    """The images built when none is named: all but the on-demand ones (``debian``)."""
    return [name for name in image_names() if not load_recipe(name).on_demand]


def load_recipe(name: str) -> Recipe:
    """Read ``guest_images/<name>``. Raises ImageError for an unknown or broken recipe."""
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
        defaults = dict(data.get("persona", {}))
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise ImageError(f"broken recipe {toml_path}: {exc!r}") from exc
    if kind not in ("initramfs", "disk"):
        raise ImageError(f"recipe {name!r}: kind must be initramfs or disk, not {kind!r}")
    unknown = sorted(set(defaults) - PERSONA_DEFAULT_KEYS)
    if unknown:
        raise ImageError(f"recipe {name!r}: [persona] may set {', '.join(sorted(PERSONA_DEFAULT_KEYS))},"
                         f" not {', '.join(unknown)}")
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
    return Recipe(name, kernel, packages, modules, append, files, kind, on_demand, defaults)
