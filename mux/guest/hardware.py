"""A persona's virtual hardware on QEMU's command line, and the files it needs at launch.

Theory. :func:`hardware_argv` is the part of :func:`mux.guest.cmdline.qemu_argv` that
comes from the persona's machine keys (:mod:`mux.config.machine`): firmware, the boot
disk, the user's disk and cdrom, the network card with its port forwards (on passt,
:mod:`mux.guest.passt`, or with ``host_access`` on QEMU's slirp), the guest
agent's port, the clipboard agent's port (``clipboard``), the real-time clock's start, the
sound card (``audio``) and the name the built-in ``debian`` image reads. It is pure: every file
it names has a fixed place, so ``--dry-run`` prints what the launch runs.

Disks. A built-in disk image (``debian``) is always used under a qcow2 overlay, so the
cache is never written; the user's disk is too with ``overlay = true``. Overlays live
in the persona's private directory and are made afresh at each boot (a launch that
resumes a saved machine keeps the one it finds). The disk or cdrom the firmware boots
from carries ``bootindex``; with a kernel (``-kernel``) nothing does.

Clipboard. ``clipboard = true`` gives QEMU's ``qemu-vdagent`` chardev (``clipboard=on``,
``mouse=off``) on a ``com.redhat.spice.0`` port of the same virtio-serial bus as the guest
agent's: a guest's ``spice-vdagent`` relays its clipboard to QEMU's, which mux reaches over
the VNC link it already has (:mod:`mux.guest.rfb_requests`).

UEFI. OVMF's code is read from Debian's ``ovmf`` package; its variable store is copied
once per persona and disk into the state directory (``$XDG_STATE_HOME/mux/uefi/``) and
kept between runs, so boot entries persist; the packaged template is never written.

Sound. ``audio = true`` gives an ``intel-hda`` card with an ``hda-duplex`` codec (output and
microphone) on QEMU's ``pa`` backend: one output and one input stream on the host's sound
server, both named after the persona (:func:`audio_argv`). Whether a server and the
backend are there is decided before launch, outside (``sound``, see :mod:`mux.app.sound`);
without them the card stays, on ``-audiodev none``. The codec has no mixer of its own
(``mixer=off``): with one, QEMU copies the guest's volume and mute onto the streams
whenever the guest touches its mixer, undoing mux's muting of a background persona; so
mux is the streams' one owner, and a guest's volume is turned on the host.

:func:`prepare` makes those files before QEMU starts (the only part with I/O).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from pathlib import Path
from typing import NamedTuple

from mux.config import PersonaConfig
from mux.config.schema import state_home
from mux.errors import ImageError, LaunchError
from mux.guest import passt
from mux.images.disk import find_ovmf

#: The virtio-serial port name ``qemu-ga`` opens in the guest.
AGENT_PORT = "org.qemu.guest_agent.0"
#: The network card of ``network = "user"`` (Linux guests drive it; others: qemu_args).
NIC = "virtio-net-pci"
#: The virtio-serial port name the guest's ``spice-vdagent`` opens.
VDAGENT_PORT = "com.redhat.spice.0"
#: ``clipboard = true``: QEMU's own clipboard agent on the guest's vdagent port (its mouse
#: off: mux's pointer goes through QMP's input-send-event, never the vdagent).
CLIPBOARD_AGENT = ("-chardev", "qemu-vdagent,id=mux-vdagent,name=vdagent,clipboard=on,mouse=off",
                   "-device", f"virtserialport,bus=mux-vserial.0,chardev=mux-vdagent,name={VDAGENT_PORT}")


class ImageBoot(NamedTuple):
    """What a built-in image boots: a kernel (initrd, command line), or a ``disk`` with its
    own boot loader (``debian``). A plain ``(kernel, initrd, append)`` tuple is one too."""

    kernel: Path | None
    initrd: Path | None = None
    append: str = ""
    disk: Path | None = None


#: What :func:`mux.guest.cmdline.qemu_argv` takes as a built-in image's boot.
Boot = ImageBoot | tuple[Path, Path | None, str]


#: The first bytes of every qcow2 image.
QCOW2_MAGIC = b"QFI\xfb"


def disk_format(path: Path) -> str:
    """``qcow2`` when the file starts with qcow2's magic, else ``raw``; a file that cannot
    be read goes by its name (``.qcow2``). Read, not guessed from the name: a qcow2 image
    opened as raw would show the guest its container, and the guest's writes would break it.
    (The only bytes of a file the command line depends on.)"""
    try:
        with path.open("rb") as image:
            return "qcow2" if image.read(4) == QCOW2_MAGIC else "raw"
    except OSError:
        return "qcow2" if path.suffix in (".qcow2", ".qcow") else "raw"


def overlay_path(runtime_dir: Path, name: str, of: str) -> Path:
    """Where persona ``name``'s throwaway overlay over its ``of`` ("disk" or "image") is."""
    return runtime_dir / f"{name}.{of}.qcow2"


def agent_path(runtime_dir: Path, name: str) -> Path:
    """Where persona ``name``'s QEMU serves its guest agent's port."""
    return runtime_dir / f"{name}.agent"


def uefi_vars_path(config: PersonaConfig, boot: ImageBoot) -> Path:
    """The persona's own UEFI variable store: one per persona name and boot disk."""
    disk = boot.disk or config.disk or config.cdrom
    key = hashlib.sha256(os.path.realpath(disk).encode() if disk else b"").hexdigest()[:12]
    return state_home() / "uefi" / f"{config.name}-{key}.fd"


def _file(path: Path) -> str:
    return str(path).replace(",", ",,")  # QEMU's option syntax doubles commas


def audio_argv(name: str, sound: bool, server: str = "") -> list[str]:
    """The sound card of an ``audio`` persona: its streams named ``name`` on the sound server
    (``sound``; at ``server`` if not "": QEMU's own default needs ``$XDG_RUNTIME_DIR/pulse/pid``),
    else on QEMU's ``none`` backend (silent, same guest hardware)."""
    n = name.replace(",", ",,")
    at = f",server={server.replace(',', ',,')}" if server else ""
    backend = f"pa,id=mux-audio{at},out.stream-name={n},in.stream-name={n}" if sound else "none,id=mux-audio"
    return ["-audiodev", backend, "-device", "intel-hda,id=mux-hda",
            "-device", "hda-duplex,id=mux-codec,audiodev=mux-audio,mixer=off"]


def hardware_argv(config: PersonaConfig, runtime_dir: Path, boot: ImageBoot,
                  ovmf: tuple[Path, Path] | None = None, *, sound: bool = True,
                  sound_server: str = "") -> list[str]:
    """Firmware, drives, network, agent, clipboard and sound options of a persona (pure).

    ``ovmf`` is (code, template) for ``firmware = "uefi"``; None looks it up. ``sound``:
    a sound server (at ``sound_server``, if not "") and QEMU's ``pa`` backend are there.

    Raises:
        ImageError: UEFI is asked for and OVMF is not installed.
    """
    argv: list[str] = []
    if config.firmware == "uefi":
        code, _template = ovmf or find_ovmf()
        argv += ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={_file(code)}",
                 "-drive", f"if=pflash,format=raw,unit=1,file={_file(uefi_vars_path(config, boot))}"]
    firmware_boots = boot.kernel is None  # no -kernel: the firmware boots a disk or cdrom
    user_disk_boots = firmware_boots and boot.disk is None and config.disk is not None
    order = ["disk", "cdrom"] if config.boot == "disk" else ["cdrom", "disk"]
    index = {what: order.index(what) + 1 for what in order} if firmware_boots else {}
    if boot.disk is not None:
        argv += _drive("mux-image", overlay_path(runtime_dir, config.name, "image"), "qcow2",
                       index.get("disk"))
        argv += ["-fw_cfg", f"name=opt/mux/persona,string={config.name}",
                 "-fw_cfg", f"name=opt/mux/color,string={config.color}"]
    if config.disk is not None:
        path, fmt = ((overlay_path(runtime_dir, config.name, "disk"), "qcow2") if config.overlay
                     else (config.disk, disk_format(config.disk)))
        argv += _drive("mux-disk", path, fmt, index.get("disk") if user_disk_boots else None)
    if config.cdrom is not None:
        argv += ["-drive", f"file={_file(config.cdrom)},if=none,id=mux-cdrom,media=cdrom,readonly=on,"
                           "format=raw",
                 "-device", "ide-cd,drive=mux-cdrom,id=mux-cdrom"
                 + (f",bootindex={index['cdrom']}" if "cdrom" in index else "")]
    if config.network == "user" and config.host_access:  # slirp: 10.0.2.2 is the host's loopback
        forwards = "".join(f",hostfwd={f.protocol}:127.0.0.1:{f.host_port}-:{f.guest_port}"
                           for f in config.forward)
        argv += ["-netdev", f"user,id=mux-net{forwards}", "-device", f"{NIC},netdev=mux-net,id=mux-nic"]
    elif config.network == "user":  # passt (mux.guest.passt) serves it, forwards included
        sock = _file(passt.socket_path(runtime_dir, config.name))
        argv += ["-netdev", f"stream,id=mux-net,server=off,addr.type=unix,addr.path={sock}",
                 "-device", f"{NIC},netdev=mux-net,id=mux-nic"]
    if config.clock is not None:
        argv += ["-rtc", f"base={'localtime' if config.clock == 'host' else config.clock}"]
    if config.agent or config.clipboard:
        argv += ["-device", "virtio-serial-pci,id=mux-vserial"]
    if config.agent:
        argv += ["-chardev", f"socket,id=mux-agent,path={_file(agent_path(runtime_dir, config.name))},"
                             "server=on,wait=off",
                 "-device", f"virtserialport,bus=mux-vserial.0,chardev=mux-agent,name={AGENT_PORT}"]
    if config.clipboard:
        argv += list(CLIPBOARD_AGENT)
    if config.audio:
        argv += audio_argv(config.name, sound, sound_server)
    return argv


def _drive(id_: str, path: Path, fmt: str, bootindex: int | None) -> list[str]:
    return ["-drive", f"file={_file(path)},if=none,id={id_},format={fmt}",
            "-device", f"virtio-blk-pci,drive={id_},id={id_}"
            + (f",bootindex={bootindex}" if bootindex is not None else "")]


async def prepare(config: PersonaConfig, runtime_dir: Path, boot: Boot | None, *,
                  resuming: bool, kept: bool = False) -> None:
    """Make the files :func:`hardware_argv` names: overlays (afresh, unless ``resuming``
    a saved machine and one is there), the persona's UEFI variable store (copied
    from OVMF's template once, then kept), and the network's socket: its passt is
    started (it outlives the controller if ``kept``; :func:`release` stops it).

    Raises:
        LaunchError: ``qemu-img`` failed, OVMF is missing, a file cannot be written, or
            passt did not start.
    """
    boot = ImageBoot(*boot) if boot else ImageBoot(config.kernel)
    overlays = []
    if boot.disk is not None:
        overlays.append((boot.disk, "qcow2", overlay_path(runtime_dir, config.name, "image")))
    if config.disk is not None and config.overlay:
        overlays.append((config.disk, disk_format(config.disk),
                         overlay_path(runtime_dir, config.name, "disk")))
    for base, fmt, overlay in overlays:
        if resuming and overlay.exists():
            continue
        overlay.unlink(missing_ok=True)
        await _qemu_img(config.name, ["create", "-q", "-f", "qcow2", "-b", str(base.absolute()), "-F", fmt,
                                      str(overlay)])
    if config.firmware == "uefi":
        variables = uefi_vars_path(config, boot)
        if not variables.exists():
            try:
                _code, template = find_ovmf()
                variables.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                shutil.copyfile(template, variables.with_suffix(".tmp"))
                variables.with_suffix(".tmp").replace(variables)
            except (ImageError, OSError) as exc:
                raise LaunchError(config.name, None, [], f"UEFI variable store {variables}: {exc}") from exc
    passt.warn_host_access(config)
    if passt.needed(config):
        await passt.start(config, runtime_dir, die_with_controller=not kept)


def release(config: PersonaConfig, runtime_dir: Path) -> None:
    """Stop what :func:`prepare` started for a guest that is gone: its passt, if any."""
    if passt.needed(config):
        passt.stop(runtime_dir, config.name)


async def _qemu_img(name: str, args: list[str]) -> None:
    argv = ["qemu-img", *args]
    try:
        proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.STDOUT)
    except OSError as exc:
        raise LaunchError(name, None, argv, f"cannot run qemu-img (Debian's qemu-utils): {exc}") from exc
    output, _ = await proc.communicate()
    if proc.returncode != 0:
        raise LaunchError(name, proc.returncode, argv, output.decode(errors="replace"))
