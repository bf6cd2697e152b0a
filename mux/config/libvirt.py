"""``mux import libvirt``: a libvirt domain (``virsh dumpxml NAME``) as a ``[[persona]]`` table.

Theory. A virt-manager VM is mostly a disk, maybe an install ISO, memory, vCPUs,
firmware, a machine type and a NIC: the parts a persona has keys for. Those are
converted (pure: :mod:`xml.etree`, no libvirt); everything else in the domain (graphics,
sound, USB redirection, the CPU model, clock, features, extra disks, the NVRAM file, ...)
is named in a comment above the table, so the user sees what mux will not reproduce.
The ``nvram`` file in particular is not reused: mux keeps its own copy of OVMF's
variable store per persona, and the libvirt VM's stays untouched.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from mux.errors import ConfigError, Location

#: ``<memory unit=...>``: bytes per unit (libvirt's default unit is KiB).
UNITS = {"b": 1, "bytes": 1, "kb": 1000, "k": 1024, "kib": 1024, "mb": 1000**2, "m": 1024**2,
         "mib": 1024**2, "gb": 1000**3, "g": 1024**3, "gib": 1024**3, "tb": 1000**4, "t": 1024**4,
         "tib": 1024**4}
AGENT_CHANNEL = "org.qemu.guest_agent.0"


@dataclass
class Imported:
    """The persona's keys, in the order they are printed, and what was left out."""

    keys: dict[str, object] = field(default_factory=dict)
    left_out: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def persona_name(domain_name: str) -> str:
    """A persona name (1-32 of ``a-z0-9_-``, not starting with ``-``/``_``) from a domain's."""
    name = re.sub(r"[^a-z0-9_-]+", "-", domain_name.lower()).strip("-_")[:32]
    return name or "vm"


def memory_mb(element: ET.Element) -> int:
    """``<memory unit="KiB">4194304</memory>`` in MiB. Raises ValueError on a bad value."""
    unit = element.get("unit", "KiB").lower()
    return int(int((element.text or "").strip()) * UNITS[unit] // 1024**2)


def _describe(element: ET.Element) -> str:
    shown = ("type", "device", "model", "mode")
    attrs = " ".join(f"{k}={v!r}" for k, v in element.attrib.items() if k in shown)
    return f"<{element.tag}{' ' + attrs if attrs else ''}>"


def convert(root: ET.Element) -> Imported:
    """The persona a ``<domain>`` becomes. Raises ValueError when it is not a domain."""
    if root.tag != "domain":
        raise ValueError(f"the root element is <{root.tag}>, not <domain> (virsh dumpxml NAME)")
    out = Imported()
    used: set[ET.Element] = set()

    def take(path: str) -> ET.Element | None:
        element = root.find(path)
        if element is not None:
            used.add(element)
        return element

    name = take("name")
    out.keys["name"] = persona_name(name.text or "" if name is not None else "")
    _os(root, out, used)
    devices = root.find("devices")
    if devices is not None:
        used.add(devices)
        _devices(devices, out, used)
    if (memory := take("memory")) is not None:
        try:
            out.keys["memory_mb"] = memory_mb(memory)
        except (ValueError, KeyError):
            out.left_out.append(f"<memory> {memory.text!r} {memory.get('unit')!r} (not understood)")
    if (vcpu := take("vcpu")) is not None:
        try:
            out.keys["cpus"] = int((vcpu.text or "").strip())
        except ValueError:
            out.left_out.append(f"<vcpu> {vcpu.text!r} (not understood)")
    take("currentMemory")  # the balloon's target: mux gives the guest memory_mb
    boot = out.keys.get("boot")
    if boot not in out.keys or (boot == "disk" and "disk" in out.keys):
        out.keys.pop("boot", None)  # nothing to boot it from, or the default
    for child in root:
        if child not in used:
            out.left_out.append(_describe(child))
    return out


def _os(root: ET.Element, out: Imported, used: set[ET.Element]) -> None:
    os_ = root.find("os")
    if os_ is None:
        return
    used.add(os_)
    for child in os_:
        if child.tag == "type":
            machine = child.get("machine", "")
            out.keys["machine"] = "q35" if "q35" in machine else "pc"
            if machine not in ("", "pc", "q35") and not re.match(r"pc-(q35|i440fx)-", machine):
                out.notes.append(f"machine {machine!r} became {out.keys['machine']!r}")
        elif child.tag == "loader":
            text = child.text or ""
            if child.get("type") == "pflash" or "OVMF" in text or "edk2" in text:
                out.keys["firmware"] = "uefi"
            if child.get("secure") == "yes" or "secboot" in text or ".ms." in text:
                out.notes.append("secure boot: mux boots OVMF without it")
        elif child.tag == "firmware":  # <os firmware="efi">'s wishes
            if any(f.get("name") == "secure-boot" and f.get("enabled") == "yes" for f in child):
                out.notes.append("secure boot: mux boots OVMF without it")
        elif child.tag == "nvram":
            out.left_out.append(f"<nvram> {child.text or child.get('template') or ''}".rstrip()
                                + " (mux keeps its own UEFI variable store: boot entries start afresh)")
        elif child.tag == "boot":
            out.keys.setdefault("boot", {"hd": "disk", "cdrom": "cdrom"}.get(child.get("dev", ""), "disk"))
        else:
            out.left_out.append(f"<os>{_describe(child)}")
    if os_.get("firmware") == "efi":
        out.keys["firmware"] = "uefi"


def _devices(devices: ET.Element, out: Imported, used: set[ET.Element]) -> None:
    for device in devices:
        kind = device.tag
        if kind == "disk":
            if _disk(device, out):
                used.add(device)
        elif kind == "interface" and "network" not in out.keys:
            out.keys["network"] = "user"
            used.add(device)
            model = device.find("model")
            source = device.find("source")
            if device.get("type") != "user":
                where = "" if source is None else source.get("network") or source.get("bridge") or ""
                out.notes.append(f"the {device.get('type')} interface {where!r} became QEMU user"
                                 " networking (NAT; reach guest ports with forward)")
            if model is not None and model.get("type") != "virtio":
                out.notes.append(f"the NIC model {model.get('type')!r} became virtio-net")
        elif kind == "video":
            model = device.find("model")
            kind_of = model.get("type") if model is not None else None
            out.keys["vga"] = "virtio" if kind_of == "virtio" else "std"
            used.add(device)
            if kind_of not in ("virtio", "vga", None):
                out.notes.append(f"the video model {kind_of!r} became std VGA")
        elif kind == "channel" and (target := device.find("target")) is not None \
                and target.get("name") == AGENT_CHANNEL:
            out.keys["agent"] = True
            used.add(device)
        elif kind == "emulator":
            used.add(device)  # mux runs qemu-system-x86_64 ($MUX_QEMU)
        if device not in used:
            out.left_out.append(f"<devices>{_describe(device)}")


def _disk(disk: ET.Element, out: Imported) -> bool:
    """Take a disk or cdrom (the first of each); False when it is left out."""
    source = disk.find("source")
    path = (source.get("file") or source.get("dev")) if source is not None else None
    key = {"cdrom": "cdrom", "disk": "disk"}.get(disk.get("device", "disk"))
    if key is None or path is None or key in out.keys:
        return False
    out.keys[key] = path
    if key == "disk":
        driver = disk.find("driver")
        fmt = driver.get("type") if driver is not None else None
        if fmt not in ("qcow2", "raw", None):
            out.notes.append(f"the disk is {fmt}: mux opens qcow2 or raw (qemu-img convert -O qcow2)")
        target = disk.find("target")
        if target is not None and target.get("bus") not in ("virtio", None):
            out.notes.append(f"the disk was on bus {target.get('bus')!r}; mux attaches it as virtio-blk"
                             " (the guest needs virtio drivers)")
    boot = disk.find("boot")
    if boot is not None and boot.get("order") == "1":
        out.keys["boot"] = key
    return True


def to_toml(imported: Imported, source: str) -> str:
    """The ``[[persona]]`` table, with comments naming what was left out or changed."""
    lines = [f"# mux import libvirt {source}"]
    if imported.left_out:
        lines.append("# Left out of the domain (mux has no key for them; qemu_args may add some):")
        lines += [f"#   {part}" for part in imported.left_out]
    if imported.notes:
        lines.append("# Changed:")
        lines += [f"#   {note}" for note in imported.notes]
    lines.append("[[persona]]")
    order = ["name", "disk", "cdrom", "boot", "firmware", "machine", "memory_mb", "cpus", "vga", "network",
             "agent"]
    for key in sorted(imported.keys, key=order.index):
        value = imported.keys[key]
        lines.append(f"{key} = {'true' if value is True else json.dumps(value)}")
    return "\n".join(lines) + "\n"


def import_domain(path: Path) -> str:
    """Read ``virsh dumpxml`` output from ``path`` and return the persona's TOML.

    Raises:
        ConfigError: the file is unreadable, not XML, or not a libvirt domain.
    """
    try:
        root = ET.parse(path).getroot()
        return to_toml(convert(root), str(path))
    except OSError as exc:
        raise ConfigError.one(Location(path), f"cannot read {path}: {exc.strerror or exc}") from exc
    except ET.ParseError as exc:
        line, column = exc.position
        raise ConfigError.one(Location(path, line, column + 1), f"not XML: {exc}") from exc
    except ValueError as exc:
        raise ConfigError.one(Location(path), str(exc)) from exc
