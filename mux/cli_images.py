"""``mux images``: build, list and key the built-in guest images (see :mod:`mux.images`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mux import images
from mux.cli_common import add_command, add_subcommands


def add_images_parser(sub: Any) -> None:
    """Add ``images`` and its actions to the ``mux`` command's subparsers."""
    p = add_command(sub, "images", "build or list the built-in guest images",
                    "They are built from Debian packages that mux fetches and checks itself, into"
                    " ~/.cache/mux/images (or $MUX_CACHE_DIR).")
    isub = add_subcommands(p, "ACTION", "what to do with the images")
    b = add_command(isub, "build", "build one image, or those built by default (all but debian)",
                    "An image already built from the same recipe and packages is not built again.")
    b.add_argument("name", nargs="?", choices=images.image_names(), metavar="NAME",
                   help=f"the image to build: {', '.join(images.image_names())}")
    b.add_argument("--all", action="store_true",
                   help="also the images built only on demand (debian: needs root, takes minutes)")
    b.add_argument("--force", action="store_true", help="build again even if already built")
    b.set_defaults(func=cmd_images_build)
    add_command(isub, "list", "list the images and whether each is built").set_defaults(func=cmd_images_list)
    k = add_command(isub, "key", "print one cache key for the default images (or those named)",
                    "The key changes whenever the cache entry of any of them would: use it as the key"
                    " of a CI cache of ~/.cache/mux. What it fetched goes to standard error.")
    k.add_argument("names", nargs="*", metavar="NAME", help="the images (default: those built by default)")
    k.set_defaults(func=cmd_images_key)


def cmd_images_build(args: argparse.Namespace) -> int:
    names = images.image_names() if args.all else images.default_image_names()
    for name in [args.name] if args.name else names:
        built = images.build(name, progress=lambda m: print(f"mux: {m}"), force=args.force)
        print(f"{name}: {built.kernel.parent}")
    return 0


def cmd_images_key(args: argparse.Namespace) -> int:
    """The key on stdout alone; what it fetched on stderr."""
    print(images.images_key(args.names or None, progress=lambda m: print(f"mux: {m}", file=sys.stderr)))
    return 0


def cmd_images_list(args: argparse.Namespace) -> int:
    for name, built in images.list_images():
        print(f"{name:10} {'built at ' + str(built.kernel.parent) if built else 'not built'}")
    return 0
