"""The controller's configuration as frozen dataclasses, with their defaults.

Tables: ``[mux]``, ``[[persona]]``, ``[input]``, ``[display]``, ``[audio]``, ``[mqtt]``, one dataclass
each, gathered in :class:`Config`. The same schema is TOML on disk and inline in
scenarios; :mod:`mux.config.parse` checks a file against it. Pure data: no I/O.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mux.devices.model import DeviceConfig
from mux.errors import Location, UnknownPersona

Accel = Literal["auto", "kvm", "tcg"]
RestartPolicy = Literal["no", "on-failure", "always"]
#: The guest's keyboard: the PC's PS/2 one (i8042) or a virtio one (deeper queue, faster typing).
Keyboard = Literal["ps2", "virtio"]
#: Whether guests outlive the controller: after a crash only, also a clean stop, or never.
KeepGuests = Literal["on-crash", "always", "never"]
#: How a persona's machine starts: SeaBIOS, or UEFI (OVMF, from Debian's ``ovmf`` package).
Firmware = Literal["bios", "uefi"]
Machine = Literal["pc", "q35"]
Vga = Literal["std", "virtio"]
#: No network card, or one on a user-mode network (NAT, by passt; the guest is 10.0.2.15).
Network = Literal["none", "user"]
#: What a persona with both a disk and a cdrom boots from.
BootFrom = Literal["disk", "cdrom"]
#: What the inactive personas' sound streams get: silence, or 20 dB less.
AudioBackground = Literal["mute", "duck"]
#: What a background persona's request for attention does: a banner only, or a switch to it.
OnAttention = Literal["notify", "switch"]

# Background colours handed out to personas that do not choose one.
DEFAULT_COLORS = ("c03030", "3060c0", "30a050", "c08020", "8040b0", "20a0a0", "a0a0a0", "d05090")
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def runtime_base() -> Path:
    """Where private runtime directories and the default control socket live."""
    return Path(os.environ.get("XDG_RUNTIME_DIR") or "/tmp")


def state_home() -> Path:
    """``$XDG_STATE_HOME/mux`` (default ``~/.local/state/mux``): what outlives one run
    (UEFI variable stores, the active persona, kept guests). Not created here."""
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local/state") / "mux"


def default_control_socket() -> Path:
    return runtime_base() / f"mux-{os.getuid()}" / "control.sock"


@dataclass(frozen=True)
class MuxSection:
    accel: Accel = "auto"
    runtime_dir: Path = field(default_factory=runtime_base)
    control_socket: Path = field(default_factory=default_control_socket)
    #: The persona made active on a first start (None: the first autostarted one); later
    #: starts restore the one that was active when mux last ran, if it is running.
    active: str | None = None
    #: A switch to a stopped persona starts it first (False: the switch is refused).
    start_on_switch: bool = True
    #: ``mux run`` only (replay and bench: always "never"): guests survive a crash of the
    #: controller ("on-crash"), any stop of it ("always"), or die with it ("never").
    keep_guests: KeepGuests = "on-crash"


@dataclass(frozen=True)
class Forward:
    """``forward = ["tcp:2222:22"]``: host port 2222 on 127.0.0.1 reaches guest port 22."""

    protocol: Literal["tcp", "udp"]
    host_port: int
    guest_port: int
    location: Location = field(default=Location("<built-in>"), compare=False)

    def __str__(self) -> str:
        return f"{self.protocol}:{self.host_port}:{self.guest_port}"


@dataclass(frozen=True)
class PersonaConfig:
    """One guest. It boots a built-in ``image`` (a kernel + initramfs, or ``debian``'s
    disk), its own ``kernel``, or else its ``disk`` / ``cdrom`` with their own boot
    loader; with ``image`` or ``kernel`` a ``disk`` is an extra drive."""

    name: str
    image: str | None = "console"
    kernel: Path | None = None
    initrd: Path | None = None
    append: str = ""
    disk: Path | None = None
    memory_mb: int = 256
    cdrom: Path | None = None
    boot: BootFrom = "disk"  # with no disk to boot from: the cdrom
    firmware: Firmware = "bios"
    cpus: int = 1
    machine: Machine = "pc"
    vga: Vga = "std"
    network: Network = "none"
    forward: tuple[Forward, ...] = ()
    #: ``network = "user"`` only. False (default): the network is passt's (``--no-map-gw``): outbound
    #: NAT, but no address in the guest leads to the host's 127.0.0.1 (its loopback services, other
    #: personas' forwarded ports). True: QEMU's slirp, whose 10.0.2.2 IS the host's 127.0.0.1
    #: (warned at each launch); for a guest that must reach a service on the host's loopback.
    host_access: bool = False
    #: The disk under a throwaway qcow2 overlay in the runtime directory: never written.
    overlay: bool = False
    #: Appended last to QEMU's command line (checked at load: nothing mux owns).
    qemu_args: tuple[str, ...] = ()
    #: A virtio-serial port ``org.qemu.guest_agent.0`` for ``qemu-ga`` in the guest.
    agent: bool = False
    #: A sound card (intel-hda + hda-duplex) on the host's sound server, heard only while active.
    audio: bool = False
    #: The guest's real-time clock at boot (``-rtc base=``): None, QEMU's default (UTC, which
    #: Linux guests expect); "host" the host's local time (guests that keep local time in
    #: their RTC: Windows); "utc"; or a start in UTC, "2031-05-01T09:00:00" or "2031-05-01".
    clock: str | None = None
    #: A regular expression: a serial line it matches asks for attention (besides MUX-ATTENTION).
    attention: str | None = None
    color: str = DEFAULT_COLORS[0]
    restart: RestartPolicy = "no"
    autostart: bool = True
    devices: tuple[DeviceConfig, ...] = ()
    keyboard: Keyboard = "ps2"
    location: Location = Location("<built-in>")  # noqa: RUF009 - frozen, shared safely


@dataclass(frozen=True)
class InputSection:
    devices: tuple[str, ...] = ()
    hotkeys: dict[str, str] | None = None  # None: the built-in defaults
    autorepeat: Literal["pass", "drop"] = "pass"


@dataclass(frozen=True)
class DisplaySection:
    output: Literal["headless", "window", "auto"] = "headless"
    backbuffer_interval_s: float = 1.0
    fullscreen: bool = False
    #: A background persona asks for attention: a banner ("notify"), or also a switch to it
    #: once no key is held and no input came for 2 s ("switch").
    on_attention: OnAttention = "notify"


@dataclass(frozen=True)
class AudioSection:
    #: The inactive personas' streams: muted, or "duck"ed (20 dB down).
    background: AudioBackground = "mute"


@dataclass(frozen=True)
class MqttSection:
    url: str
    username: str | None = None
    password: str | None = None
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    base_topic: str = "mux"
    discovery_prefix: str = "homeassistant"
    node_id: str = field(default_factory=socket.gethostname)
    screenshot_interval_s: float = 5.0
    #: Home Assistant discovery: one config per entity, or one per device (HA 2024.11+).
    discovery: Literal["entities", "device"] = "entities"


@dataclass(frozen=True)
class Config:
    mux: MuxSection
    personas: tuple[PersonaConfig, ...]
    input: InputSection = InputSection()
    display: DisplaySection = DisplaySection()
    mqtt: MqttSection | None = None
    source: Path | str = "<built-in>"
    audio: AudioSection = AudioSection()

    def persona(self, name: str) -> PersonaConfig:
        """The persona called ``name``.

        Raises:
            UnknownPersona: no persona of that name is configured.
        """
        for persona in self.personas:
            if persona.name == name:
                return persona
        raise UnknownPersona(name, self.names)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.personas]


def demo_config() -> Config:
    """The built-in demo: two ``console`` personas, "work" and "home", headless."""
    return Config(
        mux=MuxSection(),
        personas=(
            PersonaConfig("work", color="c03030", restart="on-failure"),
            PersonaConfig("home", color="3060c0", restart="on-failure"),
        ),
    )
