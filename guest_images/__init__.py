"""The recipes of mux's built-in guest images, shipped with mux as ``mux.guest_images``.

One directory per image, each with a ``recipe.toml`` (read by :mod:`mux.images.builder`);
``common/`` holds the scripts several images include; ``keys/`` the Debian archive's
public signing keys that every package the images are built from is verified against.
Nothing here is Python but this file, which makes the directory a package so that a
wheel, ``pipx install`` and an editable install all find it.
"""
