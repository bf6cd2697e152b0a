"""``mux run --dry-run``: each persona's QEMU command line, without booting anything.

The lines come from the builder the launch uses (:func:`mux.guest.cmdline.qemu_argv`),
with the same options: an absolute pointer when a window will route the mouse
(``output = "window"``, or ``"auto"`` with a display, and no ``[input]`` devices).
Nothing is built or asked of apt: a built-in image that is not cached yet shows as
``<NAME kernel>`` (or ``<NAME disk>``). Devices that follow the active persona are on
no command line (the first switch plugs them in); a comment line says so. ``audio``
personas are shown with the sound server mux would use, as if it answered (it is not asked).
"""

from __future__ import annotations

import shlex
from pathlib import Path

from mux import images
from mux.app.keep import keep_dir
from mux.app.sound import server_address
from mux.config import Config
from mux.config.seats import seats_of
from mux.display.output import display_available
from mux.guest.accel import choose_accel
from mux.guest.cmdline import LaunchOptions, qemu_argv
from mux.guest.hardware import ImageBoot


def dry_run_lines(config: Config) -> list[str]:
    """``NAME: ARGV`` per persona (shell-quoted), then the comments on follow devices.

    Raises:
        ImageError: a persona names an image whose recipe is broken.
    """
    accel = choose_accel(config.mux.accel)
    # Kept guests' sockets are in their state directory (mux.app.keep), others' in the runtime one.
    keep = config.mux.keep_guests != "never"
    runtime = keep_dir(config) if keep else config.mux.runtime_dir / "mux-DRYRUN"
    # A persona a seat's window types into (a seat that grabs no device) has an absolute pointer.
    tablet: set[str] = set()
    for seat in seats_of(config):
        window = seat.output in ("window", "fullscreen") or (seat.output == "auto" and display_available())
        if window and not seat.input:
            tablet.update(seat.personas if seat.personas is not None else config.names)
    lines = []
    for persona in config.personas:
        # audio personas: as if the sound server answers (nothing is probed), at the address used
        options = LaunchOptions(tablet=persona.name in tablet, sound_server=server_address())
        boot = None
        if persona.image:
            built = images.find_built(persona.image, offline=True)
            is_disk = images.load_recipe(persona.image).kind == "disk"
            boot = ImageBoot(built.kernel, built.initrd, built.append, built.disk) if built else ImageBoot(
                Path(f"<{persona.image} kernel>"), Path(f"<{persona.image} initrd>"), "",
                Path(f"<{persona.image} disk>") if is_disk else None)
        lines.append(f"{persona.name}: {shlex.join(qemu_argv(persona, runtime, accel, boot, None, options))}")
    for persona in config.personas:
        for device in (d for d in persona.devices if d.follows_active):
            lines.append(f"# device {device.id} ({device.describe()}) follows the active persona:"
                         " hotplugged at the first switch")
    return lines
