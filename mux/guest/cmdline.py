"""QEMU's command line for a persona: the one builder, used by the launch and by ``--dry-run``.

Theory. A persona's argv is a pure function of what the controller knows before QEMU
runs: the persona's config, its private directory (QEMU serves QMP, VNC and the serial
port on unix sockets there), the accelerator, the boot files of a built-in image, the
devices the guest has from boot (and its keyboard: PS/2, or virtio), the
:class:`LaunchOptions` (an absolute pointer for a window that routes its mouse,
arguments added by hand) and, for a launch that resumes a saved machine, ``-incoming
defer`` (the state file itself is then fed over QMP, see :mod:`mux.guest.migration`).
The persona's machine keys (firmware, disks, cdrom, network, agent) are
:func:`mux.guest.hardware.hardware_argv`'s part; its ``qemu_args`` come last.
Nothing here touches a process or a file, so ``mux run --dry-run`` prints exactly what
:class:`~mux.guest.persona.Persona` runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mux.config import PersonaConfig
from mux.devices.model import DeviceConfig, command_line, initial_devices
from mux.guest.accel import AccelChoice
from mux.guest.hardware import Boot as Boot  # what a built-in image boots (re-exported)
from mux.guest.hardware import ImageBoot, hardware_argv

QEMU_BINARY = os.environ.get("MUX_QEMU", "qemu-system-x86_64")

#: The device that gives a guest an absolute pointer (QMP ``abs`` events land as-is).
TABLET = ("-device", "usb-tablet,bus=xhci.0,id=tablet")
#: The virtio keyboard of a ``keyboard = "virtio"`` persona. QEMU sends typed keys to the
#: keyboard the guest activated last (its driver loaded: ``virtio_input``), the PS/2 one
#: until then. Its event queue (64 entries) is deeper than PS/2's 16 bytes.
VIRTIO_KEYBOARD = ("-device", "virtio-keyboard-pci,id=mux-keyboard")
#: Its virtio device's QOM path (for QMP ``x-query-virtio-status``).
VIRTIO_KEYBOARD_PATH = "/machine/peripheral/mux-keyboard/virtio-backend"
#: A launch that waits for a saved machine state instead of booting.
INCOMING = ("-incoming", "defer")


@dataclass(frozen=True)
class LaunchOptions:
    """How a persona's QEMU is launched, beyond its config (fixed when the persona is made).

    ``tablet``: an absolute pointer (``usb-tablet``), for a window whose mouse is routed
    to the guest. ``extra_args``: appended verbatim to every launch's argv. ``sound``: a
    sound server and QEMU's ``pa`` backend are there (``audio`` personas' cards use them;
    else ``-audiodev none``), at ``sound_server`` if not "" (decided by :mod:`mux.app.sound`).
    """

    tablet: bool = False
    extra_args: tuple[str, ...] = ()
    sound: bool = True
    sound_server: str = ""


def qemu_argv(config: PersonaConfig, runtime_dir: Path, accel: AccelChoice,
              boot: Boot | None, devices: Iterable[DeviceConfig] | None = None,
              options: LaunchOptions | None = None, *, incoming: bool = False) -> list[str]:
    """QEMU's command line for a persona (pure: no process, no files).

    ``boot`` is what a built-in image boots (:class:`~mux.guest.hardware.Boot`: a kernel,
    or a disk with its own boot loader); None boots the config's kernel, or its disk or
    cdrom through the firmware.
    ``devices`` are those the guest has from boot (``-blockdev``/``-device``); None means
    the config's initial ones (its devices that do not follow the active persona).
    ``incoming`` makes QEMU wait for a saved state (``-incoming defer``) instead of booting.
    QEMU listens on every socket (QMP, VNC, the serial port, which it also writes to the
    serial log), all in ``runtime_dir`` (private: the runtime directory, or a kept guest's
    state directory), and starts paused (``-S``) until the controller has connected.
    """
    options = options or LaunchOptions()
    boot = ImageBoot(*boot) if boot else ImageBoot(config.kernel, config.initrd, config.append)
    kernel, initrd, append = (None, None, "") if boot.disk else boot[:3]  # a disk boots itself
    argv = [
        QEMU_BINARY, "-name", config.name, "-nodefaults", "-no-user-config",
        "-machine", f"{config.machine},accel={accel.accel}", "-m", str(config.memory_mb),
        *(["-smp", str(config.cpus)] if config.cpus != 1 else []),
        "-vga", config.vga, "-display", "none", "-vnc", f"unix:{vnc_path(runtime_dir, config.name)}",
        "-qmp", f"unix:{qmp_path(runtime_dir, config.name)},server=on,wait=off",
        "-chardev", f"socket,id=serial0,path={serial_path(runtime_dir, config.name)},server=on,wait=off,"
                    f"logfile={serial_log_path(runtime_dir, config.name)},logappend=on",
        "-serial", "chardev:serial0", "-S", "-device", "qemu-xhci,id=xhci",
    ]
    if kernel:
        argv += ["-kernel", str(kernel)]
        if initrd:
            argv += ["-initrd", str(initrd)]
        argv += ["-append", f"{append} mux.persona={config.name} mux.color={config.color}".strip()]
    argv += hardware_argv(config, runtime_dir, ImageBoot(kernel, initrd, append, boot.disk),
                          sound=options.sound, sound_server=options.sound_server)
    argv += command_line(initial_devices(config.devices) if devices is None else devices)
    if config.keyboard == "virtio":
        argv += VIRTIO_KEYBOARD
    if options.tablet:
        argv += TABLET
    argv += options.extra_args
    if incoming:
        argv += INCOMING
    return argv + list(config.qemu_args)


def keyboard_in_use(virtio_status: object) -> str:
    """Which keyboard gets typed keys, from QMP ``x-query-virtio-status`` of the virtio one.

    QEMU gives keys to the keyboard a guest activated last: the virtio one once its driver
    has set DRIVER_OK, the PS/2 one until then (also when the answer is not understood:
    the slower pace is the safe one).
    """
    status = virtio_status.get("status") if isinstance(virtio_status, dict) else None
    statuses = status.get("statuses", []) if isinstance(status, dict) else []
    return "virtio" if any(str(s).startswith("VIRTIO_CONFIG_S_DRIVER_OK") for s in statuses) else "ps2"


def qmp_path(runtime_dir: Path, name: str) -> Path:
    """Where persona ``name``'s QEMU serves its QMP monitor."""
    return runtime_dir / f"{name}.qmp"


def vnc_path(runtime_dir: Path, name: str) -> Path:
    """Where persona ``name``'s QEMU serves VNC."""
    return runtime_dir / f"{name}.vnc"


def serial_path(runtime_dir: Path, name: str) -> Path:
    """Where persona ``name``'s QEMU serves its first serial port."""
    return runtime_dir / f"{name}.serial"


def serial_log_path(runtime_dir: Path, name: str) -> Path:
    """Where persona ``name``'s QEMU writes everything its serial port says (appending)."""
    return runtime_dir / f"{name}.serial.log"
