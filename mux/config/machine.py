"""A persona's machine keys: what it boots and the virtual hardware around it.

Theory. A persona boots one of three things: a built-in ``image``, its own ``kernel``,
or, with neither, its ``disk`` / ``cdrom`` through the firmware's own boot loader
(``boot`` chooses between the two). ``image = "console"`` is the default only when
none of ``kernel``, ``image``, ``disk`` and ``cdrom`` is given, so a persona with a
disk is never silently replaced by the console. Around it: firmware (SeaBIOS, or OVMF
with a variable store of its own), machine type, CPUs, VGA, a user-mode network with
port forwards bound to 127.0.0.1, an optional throwaway overlay over the disk, the
guest agent's port, a sound card (``audio``), the real-time clock's start (``clock``),
and ``qemu_args`` for the rest.

Everything is checked here, before anything boots, with file:line: files that must
exist, OVMF being installed, host ports forwarded twice (across personas), and
``qemu_args`` that would take over what mux owns (its display, monitor, serial port,
name, and the ids of its own chardevs and devices).
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

from mux.config.checks import Checker, relative_to
from mux.config.schema import DisplaySection, Forward, PersonaConfig
from mux.errors import ImageError, Location
from mux.sourcemap import Path_

#: The keys this module reads from a ``[[persona]]`` table.
MACHINE_KEYS = frozenset({"cdrom", "boot", "firmware", "memory_mb", "cpus", "machine", "vga", "network",
                          "forward", "overlay", "qemu_args", "agent", "audio", "clock", "clipboard"})

#: QEMU options mux sets itself (without their dash: QEMU takes ``-vnc`` and ``--vnc``);
#: ``qemu_args`` may not repeat or override them.
OWNED_OPTIONS = frozenset({"display", "vnc", "qmp", "qmp-pretty", "monitor", "mon", "serial", "name",
                           "daemonize", "incoming", "nodefaults"})
#: Ids of the chardevs, drives and devices mux puts on a command line (and any ``mux-*``).
OWNED_IDS = frozenset({"serial0", "xhci", "tablet"})
OWNED_ID_PREFIX = "mux-"
FORWARD_PATTERN = re.compile(r"^(tcp|udp):(\d{1,5}):(\d{1,5})$")
#: ``clock``: "host", "utc", or a start date (and time) in UTC, as QEMU's ``-rtc base=`` takes it.
CLOCK_PATTERN = re.compile(r"^(host|utc|\d{4}-\d\d-\d\d(T\d\d:\d\d:\d\d)?)$")


def parse_machine(c: Checker, t: dict[str, Any], p: Path_, source: Path | str,
                  *, overlay_default: bool) -> dict[str, Any]:
    """The machine keys of one persona table, as :class:`PersonaConfig` keyword arguments
    (``image`` included: it depends on ``kernel``, ``disk`` and ``cdrom``).

    Every mistake is recorded on ``c`` (the values then fall back to their defaults).
    """
    kernel = c.get(t, p, "kernel", str, None)
    disk = c.get(t, p, "disk", str, None)
    cdrom = c.get(t, p, "cdrom", str, None)
    boots_itself = not kernel and "image" not in t and (disk is not None or cdrom is not None)
    image = c.get(t, p, "image", str, None if kernel or boots_itself else "console")
    if kernel and "image" in t:
        c.fail((*p, "image"), "give either image or kernel, not both")
    image_disk = False  # the built-in image is a disk that boots itself (debian)
    defaults: dict[str, Any] = {}  # the image's own persona defaults (its recipe's [persona])
    if image is not None and not kernel:
        from mux.images import image_names, load_recipe

        if image not in image_names():
            c.fail((*p, "image"), f"unknown image {image!r} (built-in: {', '.join(image_names())})")
        else:
            recipe = load_recipe(image)
            image_disk, defaults = recipe.kind == "disk", dict(recipe.persona_defaults)
    disk_path = relative_to(source, disk)
    cdrom_path = relative_to(source, cdrom)
    if disk_path is not None and not (disk_path.is_file() or disk_path.is_block_device()):
        c.fail((*p, "disk"), f"disk {disk_path}: no such file")
    if cdrom_path is not None and not cdrom_path.is_file():
        c.fail((*p, "cdrom"), f"cdrom {cdrom_path}: not a file")

    bootable = {"disk": (disk_path is not None and boots_itself) or image_disk,
                "cdrom": cdrom_path is not None}
    boot = c.choice(t, p, "boot", ("disk", "cdrom"), "disk" if bootable["disk"] or not bootable["cdrom"]
                    else "cdrom")
    if "boot" in t and boot in bootable and not bootable[boot]:
        c.fail((*p, "boot"), f"boot = {boot!r}, but the persona has no {boot} to boot from"
               + (" (it boots its image or kernel)" if boot == "disk" and disk_path else ""))

    firmware = c.choice(t, p, "firmware", ("bios", "uefi"), "bios")
    if firmware == "uefi":
        from mux.images.disk import find_ovmf

        try:
            find_ovmf()
        except ImageError as exc:
            c.fail((*p, "firmware"), f"firmware = \"uefi\": {exc} (Debian's ovmf package)")

    network = c.choice(t, p, "network", ("none", "user"), "none")
    forwards = _forwards(c, t, p)
    if forwards and network != "user":
        c.fail((*p, "forward"), "forward needs network = \"user\"")
    overlay = c.get(t, p, "overlay", bool, overlay_default)
    if "overlay" in t and overlay and disk_path is None:
        c.fail((*p, "overlay"), "overlay = true is for a persona with a disk")
    return {
        "image": None if kernel else image,
        "kernel": relative_to(source, kernel),
        "disk": disk_path,
        "cdrom": cdrom_path,
        "boot": boot,
        "firmware": firmware,
        # A whole operating system (a disk that boots itself) gets 1 GiB unless told.
        "memory_mb": c.get(t, p, "memory_mb", int,
                           defaults.get("memory_mb", 1024 if image_disk or boots_itself else 256),
                           lambda v: None if 32 <= v <= 65536 else "must be between 32 and 65536"),
        "cpus": c.get(t, p, "cpus", int, 1, lambda v: None if 1 <= v <= 64 else "must be between 1 and 64"),
        "machine": c.choice(t, p, "machine", ("pc", "q35"), "pc"),
        "vga": c.choice(t, p, "vga", ("std", "virtio"), defaults.get("vga", "std")),
        "network": network,
        "forward": forwards,
        "overlay": overlay and disk_path is not None,
        "qemu_args": _qemu_args(c, t, p),
        "agent": c.get(t, p, "agent", bool, defaults.get("agent", False)),
        "clipboard": c.get(t, p, "clipboard", bool, defaults.get("clipboard", False)),
        "audio": c.get(t, p, "audio", bool, False),
        "clock": c.get(t, p, "clock", str, None, _clock),
    }


def _clock(value: str) -> str | None:
    """Why ``value`` is not a ``clock`` (None: it is one)."""
    if CLOCK_PATTERN.match(value):
        try:
            if value not in ("host", "utc"):
                datetime.fromisoformat(value)
            return None
        except ValueError as exc:
            return f"{value!r}: {exc}"
    return ('must be "host", "utc" or a start in UTC such as "2031-05-01T09:00:00" or "2031-05-01"')


def _forwards(c: Checker, t: dict[str, Any], p: Path_) -> tuple[Forward, ...]:
    forwards: list[Forward] = []
    for index, item in enumerate(c.get(t, p, "forward", list, [])):
        match = FORWARD_PATTERN.match(item) if isinstance(item, str) else None
        ports = [int(match[2]), int(match[3])] if match else []
        if not match or not all(1 <= port <= 65535 for port in ports):
            c.fail((*p, "forward", index), f"forward[{index}] must look like \"tcp:2222:22\""
                   " (protocol:host port:guest port, ports 1-65535)")
            continue
        forwards.append(Forward("tcp" if match[1] == "tcp" else "udp", ports[0], ports[1],
                                c.locate((*p, "forward", index))))
    return tuple(forwards)


def _qemu_args(c: Checker, t: dict[str, Any], p: Path_) -> tuple[str, ...]:
    args = c.get(t, p, "qemu_args", list, [])
    if not all(isinstance(a, str) for a in args):
        c.fail((*p, "qemu_args"), "qemu_args must be a list of strings")
        return ()
    for arg in args:
        if problem := owned_by_mux(arg):
            c.fail((*p, "qemu_args"), f"qemu_args: {problem}")
    return tuple(args)


def owned_by_mux(arg: str) -> str | None:
    """Why ``arg`` (one word of ``qemu_args``) touches what mux owns, or None."""
    if arg.startswith("-") and arg.lstrip("-") in OWNED_OPTIONS:
        return f"{arg} is set by mux (its display, monitor, serial port and name are its own)"
    for id_ in re.findall(r"(?:^|,)(?:id|chardev|netdev|drive|node-name)=([^,]*)", arg):
        if id_ in OWNED_IDS or id_.startswith(OWNED_ID_PREFIX):
            return f"{arg!r} uses id {id_!r}, which mux uses (ids starting with {OWNED_ID_PREFIX!r}," \
                   f" {', '.join(sorted(OWNED_IDS))})"
    return None


def check_forwards(c: Checker, personas: list[PersonaConfig]) -> None:
    """A host port is forwarded once across all personas: a second use names the first."""
    seen: dict[tuple[str, int], tuple[str, Location]] = {}
    for persona in personas:
        for forward in persona.forward:
            key = (forward.protocol, forward.host_port)
            if key in seen:
                other, where = seen[key]
                c.problems.append((forward.location, f"host port {forward.protocol}:{forward.host_port}"
                                   f" is forwarded twice: also by persona {other!r} at {where}"))
            else:
                seen[key] = (persona.name, forward.location)


def follows_window(display: DisplaySection, persona: PersonaConfig) -> bool:
    """Whether a resized window asks ``persona``'s guest for its size: ``[display]
    resize_guest``, or when not set, what the persona's image's recipe says (``desktop``:
    true); never for a persona without ``vga = "virtio"``."""
    if persona.vga != "virtio":
        return False
    if display.resize_guest is not None:
        return display.resize_guest
    if persona.image is None or persona.kernel is not None:
        return False
    from mux.images import load_recipe

    try:
        return bool(load_recipe(persona.image).persona_defaults.get("resize_guest", False))
    except ImageError:
        return False
