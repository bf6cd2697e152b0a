"""The built-in guest images: recipes (``guest_images/``, shipped as ``mux.guest_images``),
Debian packages fetched and checked by mux (archive, deb), the builder (cache and
dispatch), the busybox images (kernel + initramfs, with the initramfs writer) and the
``debian`` disk image (with the file-only disk assembly). The builder's public face is
re-exported here."""

from mux.images.builder import (
    BuiltImage,
    Recipe,
    build,
    cache_key,
    cache_root,
    default_image_names,
    find_built,
    image_names,
    images_key,
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
    "default_image_names",
    "find_built",
    "image_names",
    "images_key",
    "list_images",
    "load_recipe",
    "resolve_packages",
]
