"""What each persona boots: its built-in image, built on first use."""

from __future__ import annotations

from collections.abc import Callable

from mux import images
from mux.config import Config
from mux.guest.cmdline import Boot
from mux.guest.hardware import ImageBoot


def resolve_boots(config: Config, offline: bool, progress: Callable[[str], None]) -> dict[str, Boot]:
    """The boot of every persona with a built-in ``image``, building images not cached yet
    (``offline``: only what is cached, as when adopting kept guests). Blocking: call it in a
    thread.

    Raises:
        ImageError: an image could not be built.
    """
    boots: dict[str, Boot] = {}
    for pc in config.personas:
        if pc.image is not None:
            built = images.find_built(pc.image, offline=offline)
            if built is None:
                progress(f"building guest image {pc.image!r} (first run only)")
                built = images.build(pc.image, progress=progress)
            boots[pc.name] = ImageBoot(built.kernel, built.initrd, built.append, built.disk)
    return boots
