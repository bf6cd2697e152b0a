"""The built-in guest images: recipes (package data in ``recipes/``), the builder and
the initramfs writer. The builder's public face is re-exported here."""

from mux.images.builder import (
    BuiltImage,
    Recipe,
    build,
    cache_key,
    cache_root,
    find_built,
    image_names,
    list_images,
    load_recipe,
    resolve_packages,
)

__all__ = [
    "BuiltImage",
    "Recipe",
    "build",
    "cache_key",
    "cache_root",
    "find_built",
    "image_names",
    "list_images",
    "load_recipe",
    "resolve_packages",
]
