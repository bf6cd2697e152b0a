"""``mux doctor``: what this machine has of everything mux can use, against what a config needs.

Theory. Each check looks for one piece (QEMU, KVM, OVMF, passt, tesseract's data, the
sound server, the MQTT broker, the input devices, room for the guest images) the way mux
itself looks for it when it needs it, by calling the same lookup, and returns a
:class:`Finding`: found, or not, with what its absence costs and the command that
installs it (an apt package on Debian and Ubuntu, else the piece's generic name). A
piece the config needs and lacks is ``missing`` (``mux doctor`` exits 1); one it does not
need is listed as ``optional`` and fails nothing.

The config loader itself refuses ``firmware = "uefi"`` without OVMF and ``network =
"user"`` without passt, which would stop the doctor before it could say so: it loads the
config with those two lookups left out (:func:`load_for_doctor`) and reports them as
pieces like the others. Every other mistake in the file is still a ConfigError.

The module sits beside the command line, above the layers of the data flow: it calls
lookups of several of them (mux.app.sound, mux.guest, mux.images, mux.needles) and is
called by ``mux doctor`` alone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import glob
import importlib
import os
import shutil
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from mux import images
from mux.config import Config, parse_config
from mux.errors import ImageError
from mux.guest import passt
from mux.guest.accel import kvm_obstacle
from mux.guest.cmdline import QEMU_BINARY
from mux.sourcemap import load_file

Status = Literal["ok", "missing", "optional"]
PROBE_S = 3.0  # how long a probe (QEMU's --version, a TCP connect) may take
KVM_GET_API_VERSION = 0xAE00
#: Free space a build of the built-in images wants in the cache (downloads and the result).
BUILD_SPACE = {"debian": 3 << 30, "desktop": 4 << 30}
BUILD_SPACE_DEFAULT = 1 << 30


@dataclass(frozen=True)
class Finding:
    """One piece: ``needed_by`` says which part of the config needs it ("" for none)."""

    piece: str
    found: bool
    detail: str
    needed_by: str = ""
    costs: str = ""  # what its absence costs
    fix: str = ""  # the command that brings it

    @property
    def status(self) -> Status:
        return "ok" if self.found else "missing" if self.needed_by else "optional"


def apt_host(os_release: Path = Path("/etc/os-release")) -> bool:
    """Debian, Ubuntu or a derivative, with apt-get: fixes name apt packages."""
    try:
        fields = dict(line.split("=", 1) for line in os_release.read_text().splitlines() if "=" in line)
    except OSError:
        return False
    family = f"{fields.get('ID', '')} {fields.get('ID_LIKE', '')}".replace('"', "").split()
    return shutil.which("apt-get") is not None and bool({"debian", "ubuntu"} & set(family))


def install(apt: str, generic: str) -> str:
    """The command that installs a piece here: apt's on Debian/Ubuntu, else the generic name."""
    if apt_host():
        return f"{'sudo ' if os.geteuid() else ''}apt-get install {apt}"
    return f"install {generic} with your package manager"


def _names(personas: list[str], why: str) -> str:
    return (f"persona{'s' if len(personas) > 1 else ''} {', '.join(personas)} ({why})") if personas else ""


# --- the checks ------------------------------------------------------------------------------


def check_qemu(config: Config) -> Finding:
    path = shutil.which(QEMU_BINARY)
    fix = install("qemu-system-x86", "QEMU for x86-64 (qemu-system-x86_64)")
    if path is None:
        return Finding("QEMU", False, f"{QEMU_BINARY} is not on PATH", "every persona",
                       "no persona can run", fix)
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=PROBE_S * 3)
        version = (out.stdout.splitlines() or ["no version"])[0]
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Finding("QEMU", False, f"{path} does not run: {exc}", "every persona", "no persona can run",
                       fix)
    return Finding("QEMU", True, f"{path}: {version}")


def check_qemu_img(config: Config) -> Finding:
    users = [p.name for p in config.personas if (p.disk is not None and p.overlay)
             or (p.image is not None and p.image in images.image_names()
                 and images.load_recipe(p.image).kind == "disk")]
    path = shutil.which("qemu-img")
    return Finding("qemu-img", path is not None, path or "qemu-img is not on PATH",
                   _names(users, "a throwaway overlay over a disk"),
                   "overlays over disks (overlay = true, the debian image)",
                   install("qemu-utils", "qemu-img (QEMU's tools)"))


@dataclass(frozen=True)
class KvmState:
    obstacle: str | None  # why guests cannot use KVM here; None: they can
    fix: str = ""
    api_version: int = 0


def kvm_state(device: str = "/dev/kvm") -> KvmState:
    """Whether KVM is usable: the device must really open and answer, and the host must not
    have a KVM that hangs guests (:func:`mux.guest.accel.kvm_obstacle`)."""
    try:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return KvmState(f"{device} does not exist", "turn on virtualisation (VT-x, AMD-V) in the firmware"
                        " settings, then: sudo modprobe kvm_intel (or kvm_amd)")
    except OSError as exc:
        return KvmState(f"{device} does not open: {exc.strerror}", "sudo usermod -aG kvm $USER (then log in"
                        " again)")
    try:
        version = int(fcntl.ioctl(fd, KVM_GET_API_VERSION))
    except OSError as exc:
        return KvmState(f"{device} opens but does not answer: {exc.strerror}")
    finally:
        os.close(fd)
    obstacle = kvm_obstacle()
    if obstacle:
        return KvmState(obstacle, "none on this host; accel = \"tcg\" in [mux] skips the KVM attempt",
                        version)
    return KvmState(None, "", version)


def check_kvm(config: Config) -> Finding:
    kvm = kvm_state()
    if kvm.obstacle is None:
        return Finding("KVM", True, f"/dev/kvm opens (API version {kvm.api_version}); accel = \"auto\" uses"
                       " it once a guest proves it boots")
    needed = "accel = \"kvm\"" if config.mux.accel == "kvm" else ""
    return Finding("KVM", False, f"TCG only: {kvm.obstacle}", needed,
                   "accel = \"kvm\" cannot start a guest" if needed
                   else "guests run under TCG, software emulation: several times slower", kvm.fix)


def check_ovmf(config: Config) -> Finding:
    from mux.images.disk import OVMF_DIRS, OVMF_NAMES, find_ovmf

    users = [p.name for p in config.personas if p.firmware == "uefi"]
    fix = install("ovmf", "the OVMF UEFI firmware (edk2-ovmf)")
    try:
        code, _template = find_ovmf()
    except ImageError:
        looked = ", ".join(str(d / c) for d in OVMF_DIRS for c, _ in OVMF_NAMES)
        return Finding("OVMF", False, f"no UEFI firmware ({looked})", _names(users, 'firmware = "uefi"'),
                       'UEFI boot (firmware = "uefi")', fix)
    return Finding("OVMF", True, str(code))


def check_passt(config: Config) -> Finding:
    users = [p.name for p in config.personas if passt.needed(p)]
    path = shutil.which(passt.PASST)
    return Finding("passt", path is not None, path or "passt is not on PATH",
                   _names(users, 'network = "user"'),
                   'network = "user" without host_access (a guest network with no way to the host)',
                   install("passt", "passt") + ' (or host_access = true: QEMU\'s own network, which'
                   " reaches the host's 127.0.0.1)")


def check_ocr(config: Config) -> Finding:
    fix = install("tesseract-ocr-eng", "tesseract's English data (eng.traineddata), or set TESSDATA_PREFIX")
    costs = "OCR: the assert_text and check_text steps of scenarios, mux ctl text"
    try:
        importlib.import_module("tesserocr")  # whether it loads: it bundles libtesseract
        from mux.needles.ocr import OcrUnavailable, tessdata_dir
    except ImportError as exc:
        return Finding("tesseract", False, f"tesserocr does not load: {exc}", "", costs,
                       "reinstall mux (pip install mux) to get tesserocr")
    try:
        return Finding("tesseract", True, f"English data in {tessdata_dir()}")
    except OcrUnavailable:
        return Finding("tesseract", False, "no English data (eng.traineddata)", "", costs, fix)


def check_audio(config: Config) -> list[Finding]:
    from mux.app.sound import qemu_has_pa, server_address
    from mux.audio.server import SoundServer, SoundUnavailable

    users = _names([p.name for p in config.personas if p.audio], "audio = true")
    costs = "sound for audio personas (they run silent)"

    async def server() -> str | None:
        probe = SoundServer("mux-doctor", server_address() or None)
        try:
            await probe.connect()
        except SoundUnavailable as exc:
            return str(exc)
        finally:
            probe.close()
        return None

    has_pa = asyncio.run(qemu_has_pa())
    why = asyncio.run(server())
    server_fix = install("libpulse0 pulseaudio" if why and "libpulse" in why else "pulseaudio",
                         "PulseAudio or PipeWire's pipewire-pulse") + ", then start it: pulseaudio --start"
    return [
        Finding("QEMU's PulseAudio backend", has_pa, f"{QEMU_BINARY} -audiodev help"
                f" {'lists' if has_pa else 'does not list'} pa", users, costs,
                install("qemu-system-gui", "QEMU's PulseAudio audio backend (audio-pa)")),
        Finding("sound server", why is None,
                why or f"PulseAudio answers ({server_address() or 'at its default place'})", users,
                costs, server_fix),
    ]


def check_mqtt(config: Config) -> Finding:
    if config.mqtt is None:
        path = shutil.which("mosquitto")
        return Finding("MQTT broker", path is not None,
                       f"mosquitto: {path}" if path else "the config has no [mqtt]; no mosquitto here", "",
                       "a broker on this machine for [mqtt] (Home Assistant and other panels)",
                       install("mosquitto", "mosquitto"))
    url = urlparse(config.mqtt.url)
    host, port = url.hostname or "localhost", url.port or (8883 if url.scheme == "mqtts" else 1883)
    try:
        with socket.create_connection((host, port), timeout=PROBE_S):
            pass
    except OSError as exc:
        local = host in ("localhost", "127.0.0.1", "::1")
        return Finding("MQTT broker", False, f"{host}:{port} does not answer: {exc.strerror or exc}",
                       f"[mqtt] url = \"{config.mqtt.url}\"", "the MQTT frontend: panels cannot see or"
                       " switch the personas", install("mosquitto", "mosquitto") if local
                       else f"start the broker at {host}:{port}, or correct [mqtt] url")
    return Finding("MQTT broker", True, f"{host}:{port} answers (TCP)")


def check_input(config: Config) -> Finding:
    fix = "sudo usermod -aG input $USER (then log in again), or run mux as root"
    present = sorted(glob.glob("/dev/input/event*"))
    usable = [p for p in present if os.access(p, os.R_OK | os.W_OK)]
    costs = "grabbing the physical keyboard and mouse, and their LEDs ([input] devices)"
    if not present:
        fix = "none: this machine has no keyboard or mouse (no /dev/input/event*)"
    if not config.input.devices:
        return Finding("input devices", bool(usable), f"{len(usable)} of {len(present)} event devices"
                       " readable and writable; the config grabs none", "", costs, fix)
    needed = f"[input] devices = {list(config.input.devices)}"
    bad = [f"{d}: {'no such device' if not os.path.exists(d) else 'not readable and writable'}"
           for d in config.input.devices if d != "auto" and not os.access(d, os.R_OK | os.W_OK)]
    if "auto" in config.input.devices and not usable:
        bad.append(f"auto: none of the {len(present)} event devices is readable and writable")
    return Finding("input devices", not bad, "; ".join(bad) or f"{len(usable)} event devices usable",
                   needed, costs, fix)


def check_images(config: Config) -> list[Finding]:
    """Room in the image cache for the images the config uses that are not built yet, and
    what building them takes (gpgv; the disk images, debian and desktop: root and its tools)."""
    root = images.cache_root()
    used = sorted({p.image for p in config.personas if p.image is not None})
    unbuilt: list[str] = []
    for name in used:
        try:
            if images.find_built(name) is None:
                unbuilt.append(name)
        except ImageError:
            unbuilt.append(name)
    existing = next(p for p in (root, *root.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    want = sum(BUILD_SPACE.get(n, BUILD_SPACE_DEFAULT) for n in unbuilt)
    writable = os.access(existing, os.W_OK)
    state = (f"{', '.join(used) or 'none'} used" + (f", not built yet: {', '.join(unbuilt)} (mux run"
             " builds them, or now: mux images build NAME)" if unbuilt else ", all built"))
    users = _names(unbuilt, "an image to build") if unbuilt else ""
    found = not unbuilt or (free >= want and writable)
    findings = [Finding("image cache", found, f"{root}: {free / 2**30:.1f} GiB free"
                        f"{'' if writable else ', not writable'}; {state}", users,
                        f"building {', '.join(unbuilt) or 'images'} (it wants about {want >> 20} MiB)",
                        "free some space there, or set MUX_CACHE_DIR to a roomier place")]
    gpgv = shutil.which("gpgv")
    findings.append(Finding("gpgv", gpgv is not None, gpgv or "gpgv is not on PATH", users,
                            "building images (Debian's signatures are checked with it)",
                            install("gpgv", "gpgv (GnuPG)")))
    for name in unbuilt:  # the disk images (debian, desktop): root, mmdebstrap, the disk tools
        try:
            if images.load_recipe(name).kind != "disk":
                continue
        except ImageError:
            continue
        from mux.images import debian

        try:
            debian.check_host(name)
            findings.append(Finding(f"{name} image tools", True, "root, mmdebstrap and the disk tools"))
        except ImageError as exc:
            what, _, fix = str(exc).rpartition(": ")
            findings.append(Finding(f"{name} image tools", False, what or fix,
                                    _names([p.name for p in config.personas if p.image == name],
                                           f'image = "{name}"'), f"building the {name} image", fix))
    return findings


CHECKS: tuple[Callable[[Config], Finding | list[Finding]], ...] = (
    check_qemu, check_qemu_img, check_kvm, check_images, check_ovmf, check_passt, check_audio,
    check_mqtt, check_input, check_ocr)


def examine(config: Config) -> list[Finding]:
    """Every check, in order (one that raises is reported as a piece that could not be checked)."""
    findings: list[Finding] = []
    for check in CHECKS:
        try:
            found = check(config)
        except Exception as exc:  # a check that breaks must not hide the others' findings
            found = Finding(check.__name__.removeprefix("check_"), False, f"the check failed: {exc!r}")
        findings += found if isinstance(found, list) else [found]
    return findings


def load_for_doctor(path: Path) -> Config:
    """The config at ``path``, checked as :func:`mux.config.load_config` does but without
    looking for OVMF and passt (the doctor reports those).

    Raises:
        ConfigError: the file cannot be read, or breaks the schema.
    """
    data, locate = load_file(path)
    tables: Any = data.get("persona") if isinstance(data, dict) else None
    uefi: set[int] = set()
    own_network: set[int] = set()
    if isinstance(tables, list):
        relaxed = []
        for index, table in enumerate(tables):
            if isinstance(table, dict):
                table = dict(table)
                if table.get("firmware") == "uefi":
                    uefi.add(index)
                    del table["firmware"]
                if table.get("network") == "user" and table.get("host_access", False) is False:
                    own_network.add(index)
                    table["host_access"] = True
            relaxed.append(table)
        data = {**data, "persona": relaxed}
    config = parse_config(data, locate, path)
    personas = tuple(dataclasses.replace(p, firmware="uefi" if i in uefi else p.firmware,
                                         host_access=p.host_access and i not in own_network)
                     for i, p in enumerate(config.personas))
    return dataclasses.replace(config, personas=personas)


def report(findings: list[Finding], what: str) -> tuple[str, int]:
    """The text ``mux doctor`` prints, and its exit code (1 when a needed piece is missing)."""
    lines = [f"mux doctor: this machine, for {what}"]
    for f in findings:
        lines.append(f"{f.status:<9} {f.piece}: {f.detail}")
        if not f.found:
            lines += [f"{'':10}  {label:<10} {text}" for label, text in
                      (("needed by:", f.needed_by), ("costs:", f.costs), ("fix:", f.fix)) if text]
    missing = [f.piece for f in findings if f.status == "missing"]
    optional = [f.piece for f in findings if f.status == "optional"]
    if missing:
        lines.append(f"mux doctor: missing what the config needs: {', '.join(missing)}")
    else:
        lines.append("mux doctor: everything the config needs is here"
                     + (f" (optional, not here: {', '.join(optional)})" if optional else ""))
    return "\n".join(lines) + "\n", 1 if missing else 0
