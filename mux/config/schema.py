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
#: What background personas get of the CPU: as much as the active one, the lowest priority, or none.
Background = Literal["run", "low", "pause"]

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
    """``[mux]``: the controller itself."""

    #: The accelerator: "auto" (KVM only where the host is proven able to run it, else TCG),
    #: "kvm" (forced) or "tcg" (software emulation: always works).
    accel: Accel = "auto"
    #: Where the controller makes its private 0700 runtime directory (default: ``$XDG_RUNTIME_DIR``,
    #: else ``/tmp``).
    runtime_dir: Path = field(default_factory=runtime_base)
    #: The control socket ``mux ctl`` talks to (default: ``<runtime base>/mux-<uid>/control.sock``).
    control_socket: Path = field(default_factory=default_control_socket)
    #: The persona made active on a first start (not set: the first autostarted one); later
    #: starts restore the one that was active when mux last ran, if it is running.
    active: str | None = None
    #: A switch to a stopped persona starts it first (false: the switch is refused).
    start_on_switch: bool = True
    #: ``mux run`` only (replay and bench: always "never"): guests survive a crash of the
    #: controller ("on-crash"), any stop of it ("always"), or die with it ("never").
    keep_guests: KeepGuests = "on-crash"
    #: ``mux run`` only (never replay or bench): a clean stop saves each running persona's
    #: machine, and the next start of this config resumes it instead of booting, unless its
    #: config or a disk changed meanwhile (docs/guides/running.md, "Quick boot").
    quick_boot: bool = True
    #: What the personas in the background get of the CPU: "low" (their QEMU threads the lowest
    #: priority, nice 19 and SCHED_IDLE for the vCPUs; the active persona's normal), "run" (the
    #: same as the active one) or "pause" (stopped until switched to: for laptops on battery;
    #: they no longer keep running, their picture is the last one).
    background: Background = "low"
    #: A seat's switch to a persona active on another seat moves it there (that seat goes back to
    #: the persona it showed before); false: the switch is refused, naming the other seat.
    steal: bool = False


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

    #: 1-32 lower-case letters, digits, "-" and "_" (not next, previous or overview).
    name: str
    #: A built-in guest image; the default "console" applies only when none of ``kernel``,
    #: ``image``, ``disk`` and ``cdrom`` is given.
    image: str | None = "console"
    #: Your own kernel instead of a built-in image (paths are relative to the config file).
    kernel: Path | None = None
    #: The initramfs of ``kernel`` (with ``kernel`` only).
    initrd: Path | None = None
    #: The kernel's command line (with ``kernel`` only).
    append: str = ""
    #: A disk image (qcow2 or raw, read from the file): with neither ``image`` nor ``kernel`` it
    #: boots by itself through the firmware, otherwise it is an extra drive (``/dev/vda``).
    disk: Path | None = None
    #: Memory in MiB, 32 to 65536 (default: 1024 for a persona that boots a disk, its own or the
    #: ``debian`` image; 256 otherwise).
    memory_mb: int = 256
    #: An ISO image, read-only: an installer or any CD.
    cdrom: Path | None = None
    #: What a persona with both a disk and a cdrom boots from; the other is tried next (default:
    #: "disk" when it has one to boot from, else "cdrom").
    boot: BootFrom = "disk"
    #: "bios" (SeaBIOS) or "uefi" (OVMF, from Debian's ``ovmf`` package, with a variable store of
    #: the persona's own, kept between runs).
    firmware: Firmware = "bios"
    #: Virtual CPUs, 1 to 64.
    cpus: int = 1
    #: QEMU's machine type.
    machine: Machine = "pc"
    #: The display adapter.
    vga: Vga = "std"
    #: "none", or "user": a ``virtio-net-pci`` card on a user-mode network served by passt
    #: (outbound NAT; the guest is 10.0.2.15, with no way to the host's 127.0.0.1).
    network: Network = "none"
    #: Host ports on 127.0.0.1 forwarded to guest ports, such as "tcp:2222:22" (protocol:host
    #: port:guest port, tcp or udp); with ``network = "user"`` only.
    forward: tuple[Forward, ...] = ()
    #: ``network = "user"`` only. false (default): the network is passt's (``--no-map-gw``): outbound
    #: NAT, but no address in the guest leads to the host's 127.0.0.1 (its loopback services, other
    #: personas' forwarded ports). true: QEMU's slirp, whose 10.0.2.2 IS the host's 127.0.0.1
    #: (warned at each launch); for a guest that must reach a service on the host's loopback.
    host_access: bool = False
    #: The disk under a throwaway qcow2 overlay in the runtime directory: never written (default:
    #: false for ``mux run``, true for the personas of a scenario).
    overlay: bool = False
    #: Appended last to QEMU's command line (checked at load: nothing mux owns).
    qemu_args: tuple[str, ...] = ()
    #: A virtio-serial port ``org.qemu.guest_agent.0`` for ``qemu-ga`` in the guest.
    agent: bool = False
    #: A sound card (intel-hda + hda-duplex) on the host's sound server, heard only while active.
    audio: bool = False
    #: The guest's real-time clock at boot (``-rtc base=``): not set, QEMU's default (UTC, which
    #: Linux guests expect); "host" the host's local time (guests that keep local time in
    #: their RTC: Windows); "utc"; or a start in UTC, "2031-05-01T09:00:00" or "2031-05-01".
    clock: str | None = None
    #: A regular expression: a serial line it matches asks for attention (besides MUX-ATTENTION).
    attention: str | None = None
    #: The background colour of the built-in images, six hex digits such as "c03030" (default:
    #: one of eight, by the persona's place in the file).
    color: str = DEFAULT_COLORS[0]
    #: When its QEMU exits on its own: stay down ("no"), restart after a crash ("on-failure"),
    #: or after a crash or a power-off ("always"); with a back-off from 0.2 s to 20 s.
    restart: RestartPolicy = "no"
    #: Start the persona when mux starts.
    autostart: bool = True
    #: Disks, USB sticks and host USB devices that belong to this persona and can move between
    #: personas (the ``[[persona.devices]]`` table).
    devices: tuple[DeviceConfig, ...] = ()
    #: The guest's keyboard: "ps2" (the PC's i8042) or "virtio" (a ``virtio-keyboard-pci``: a
    #: deeper queue, faster typing).
    keyboard: Keyboard = "ps2"
    #: QEMU's clipboard agent (``qemu-vdagent``) on a ``com.redhat.spice.0`` port: its clipboard
    #: moves to and from mux's own only by an explicit copy or paste (default: true for the
    #: ``desktop`` image, else false).
    clipboard: bool = False
    location: Location = Location("<built-in>")  # noqa: RUF009 - frozen, shared safely


@dataclass(frozen=True)
class InputSection:
    """``[input]``: the physical keyboards and mice, and the hotkeys."""

    #: evdev devices to grab exclusively: "auto" (every keyboard and mouse) or paths such as
    #: ``/dev/input/by-id/...-event-kbd``; empty (the default): grab nothing.
    devices: tuple[str, ...] = ()
    #: Chord = target: a persona's name, "next", "previous", "overview", "copy" or "paste" (default:
    #: scrolllock+right next, scrolllock+left previous, scrolllock+down overview, scrolllock+c copy
    #: (the active persona's clipboard into mux's), scrolllock+v paste; setting it replaces them all).
    hotkeys: dict[str, str] | None = None
    #: A held key's repeats: "pass" (each is sent as another key-down) or "drop".
    autorepeat: Literal["pass", "drop"] = "pass"


@dataclass(frozen=True)
class DisplaySection:
    """``[display]``: the one screen, the back-buffer, requests for attention."""

    #: "headless" (pictures kept in memory only), "window" (pygame-ce, SDL2) or "auto" (a window
    #: when a display can be opened, else headless).
    output: Literal["headless", "window", "auto"] = "headless"
    #: How often the inactive personas' screens are captured, in seconds (above 0).
    backbuffer_interval_s: float = 1.0
    #: The window covers the whole screen (on a kiosk SDL draws through KMS/DRM).
    fullscreen: bool = False
    #: A background persona asks for attention: a banner ("notify"), or also a switch to it
    #: once no key is held and no input came for 2 s ("switch").
    on_attention: OnAttention = "notify"
    #: A resized window asks the active persona's guest for the window's size (``vga = "virtio"``
    #: and ``clipboard``'s agent needed; a background persona is asked when it becomes active).
    #: Not set: true for the personas of the ``desktop`` image, false for the others.
    resize_guest: bool | None = None


@dataclass(frozen=True)
class AudioSection:
    """``[audio]``: what the personas' sound does when they are not active."""

    #: The inactive personas' streams: muted, or "duck"ed (20 dB down).
    background: AudioBackground = "mute"


@dataclass(frozen=True)
class ClipboardSection:
    """``[clipboard]``: where an explicit copy may be pasted (personas with ``clipboard = true``)."""

    #: Allowed directions, "from -> to", each a persona's name or "*" (any persona), such as
    #: "home -> work" or "* -> scratch"; not set: any explicit copy may be pasted anywhere.
    allow: tuple[str, ...] | None = None


#: A seat's output: a window (on ``display``), the whole of one monitor, none, or a window
#: when ``display`` (or the environment's display) can be opened, else none.
SeatOutput = Literal["window", "fullscreen", "headless", "auto"]


@dataclass(frozen=True)
class SeatSection:
    """``[[seat]]``: one person's keyboard, mouse, screen, LEDs and sound, with its own active
    persona. No ``[[seat]]``: one seat, ``default``, from ``[input]``, ``[display]``, ``[audio]``."""

    #: 1-32 lower-case letters, digits, "-" and "_"; the seat's MQTT topics and banner use it.
    name: str
    #: evdev devices this seat grabs, as ``[input] devices`` ("auto" or paths); empty: the seat
    #: types through its window only.
    input: tuple[str, ...] = ()
    #: "window", "fullscreen" (the whole of ``monitor``), "headless" or "auto" (a window when
    #: one can be opened, else headless).
    output: SeatOutput = "headless"
    #: The X display (":1") the seat's window opens on (not set: the environment's ``DISPLAY``).
    display: str | None = None
    #: With ``output = "fullscreen"``: which monitor, counted from 0 as SDL numbers them.
    monitor: int = 0
    #: Chord = target, as ``[input] hotkeys`` (not set: ``[input] hotkeys``, else the defaults).
    hotkeys: dict[str, str] | None = None
    #: A PulseAudio sink name: the seat's active persona plays there (not set: the default sink).
    audio_sink: str | None = None
    #: The personas this seat may show, in any order (not set: every persona).
    personas: tuple[str, ...] | None = None
    location: Location = Location("<built-in>")  # noqa: RUF009 - frozen, shared safely


@dataclass(frozen=True)
class MqttSection:
    """``[mqtt]``: the MQTT bridge and Home Assistant discovery (no table: no MQTT)."""

    #: The broker: ``mqtt://host:1883``, or ``mqtts://host:8883`` for TLS.
    url: str
    #: The broker's user name.
    username: str | None = None
    #: The broker's password.
    password: str | None = None
    #: A CA certificate (PEM) to check the broker's with.
    tls_ca: Path | None = None
    #: A client certificate (PEM).
    tls_cert: Path | None = None
    #: The client certificate's key (PEM).
    tls_key: Path | None = None
    #: Every topic mux publishes or reads is under it (not set: ``mux/<node_id>``, so hosts
    #: sharing a broker keep apart; set it, e.g. to ``mux``, to keep a panel's exact topics).
    base_topic: str | None = None
    #: Home Assistant's discovery prefix.
    discovery_prefix: str = "homeassistant"
    #: The Home Assistant device's id (default: the host's name; characters other than
    #: ``[a-zA-Z0-9_-]`` become ``_`` in topics).
    node_id: str = field(default_factory=socket.gethostname)
    #: At most how often a persona's screenshot is published, in seconds (above 0); only a change
    #: a person would notice is published.
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
    clipboard: ClipboardSection = ClipboardSection()
    #: The ``[[seat]]`` tables; empty: one implicit seat (see :func:`mux.config.seats.seats_of`).
    seats: tuple[SeatSection, ...] = ()

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
