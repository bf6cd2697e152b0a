"""The device model without QEMU: QMP commands, legal moves, config checks, the dry run,
and the move transaction against fake personas."""

from __future__ import annotations

import itertools
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mux import cli
from mux.config import PersonaConfig, load_config
from mux.devices.hotplug import DeviceEvent, Hotplug
from mux.devices.model import (
    Assignment,
    DeviceConfig,
    attach_commands,
    blockdev_args,
    command_line,
    device_args,
    is_device_deleted,
    release_commands,
    unplug_command,
)
from mux.errors import ConfigError, DeviceError, DeviceTimeout, ScenarioError
from mux.guest.accel import AccelChoice
from mux.guest.cmdline import qemu_argv
from mux.guest.state import RunState
from mux.scenario.parse import load_scenario

pytestmark = pytest.mark.pure

TCG = AccelChoice("tcg", "test", proven=True)
DISK = DeviceConfig("workdisk", "disk", "work", file=Path("/srv/work.qcow2"), format="qcow2")
STICK = DeviceConfig("stick", "usb-storage", "work", file=Path("/srv/stick.img"), follow="active")
CAM = DeviceConfig("cam", "usb-host", "work", vendor=0x046D, product=0x0825, follow="active")


# --- QMP commands ----------------------------------------------------------------------


def test_disk_is_a_virtio_blk_on_pci_backed_by_its_own_node() -> None:
    assert attach_commands(DISK) == [
        ("blockdev-add", {"driver": "qcow2", "node-name": "workdisk.blk", "read-only": False,
                          "file": {"driver": "file", "filename": "/srv/work.qcow2", "read-only": False}}),
        ("device_add", {"driver": "virtio-blk-pci", "id": "workdisk", "bus": "pci.0",
                        "drive": "workdisk.blk", "serial": "workdisk"}),
    ]


def test_usb_storage_sits_on_the_xhci_bus_and_readonly_reaches_the_file() -> None:
    stick = DeviceConfig("stick", "usb-storage", "work", file=Path("/srv/stick.img"), readonly=True)
    assert device_args(stick) == {"driver": "usb-storage", "id": "stick", "bus": "xhci.0",
                                  "drive": "stick.blk", "serial": "stick"}
    node = blockdev_args(stick)
    assert node is not None and node["driver"] == "raw"
    assert node["read-only"] is True and node["file"]["read-only"] is True


def test_usb_host_has_no_block_node_and_passes_vendor_and_product() -> None:
    assert blockdev_args(CAM) is None
    assert attach_commands(CAM) == [("device_add", {"driver": "usb-host", "id": "cam", "bus": "xhci.0",
                                                    "vendorid": 0x046D, "productid": 0x0825})]
    assert release_commands(CAM) == []
    assert unplug_command(CAM) == ("device_del", {"id": "cam"})
    assert CAM.describe() == "usb-host 046d:0825"


def test_detach_is_device_del_then_blockdev_del_of_the_node() -> None:
    assert unplug_command(STICK) == ("device_del", {"id": "stick"})
    assert release_commands(STICK) == [("blockdev-del", {"node-name": "stick.blk"})]


def test_only_the_event_naming_the_device_counts_as_its_release() -> None:
    child = {"event": "DEVICE_DELETED", "data": {"path": "/machine/peripheral/stick/stick.0/legacy[0]"}}
    own = {"event": "DEVICE_DELETED", "data": {"device": "stick", "path": "/machine/peripheral/stick"}}
    assert not is_device_deleted(child, "stick")
    assert is_device_deleted(own, "stick")
    assert not is_device_deleted(own, "cam")


def test_command_line_is_the_qmp_arguments_as_json_so_commas_in_names_survive() -> None:
    odd = DeviceConfig("d", "disk", "p", file=Path("/srv/a,b=c.img"))
    argv = command_line([odd, CAM])
    assert argv[0::2] == ["-blockdev", "-device", "-device"]
    expected = [args for _, args in attach_commands(odd) + attach_commands(CAM)]
    assert [json.loads(a) for a in argv[1::2]] == expected


def test_qemu_argv_has_the_initial_devices_but_not_the_following_ones(tmp_path: Path) -> None:
    config = PersonaConfig("work", image=None, devices=(DISK, STICK, CAM))
    argv = qemu_argv(config, tmp_path, TCG, None)
    assert argv.index("-device") < argv.index("-blockdev")  # qemu-xhci comes first: its bus is needed
    devices = [json.loads(a) for o, a in itertools.pairwise(argv) if o == "-device" and a[0] == "{"]
    assert [d["id"] for d in devices] == ["workdisk"]
    later = qemu_argv(config, tmp_path, TCG, None, [STICK])
    assert '"id":"stick"' in " ".join(later) and "workdisk" not in " ".join(later)


# --- the model: who holds what, legal moves --------------------------------------------


def test_devices_start_on_their_persona_unless_they_follow_the_active_one() -> None:
    model = Assignment([DISK, STICK, CAM], ["work", "home"])
    assert model.owner("workdisk") == "work"
    assert model.owner("stick") is None and model.owner("cam") is None
    assert [d.id for d in model.held_by("work")] == ["workdisk"]


def test_moves_are_planned_only_between_known_places() -> None:
    model = Assignment([DISK, STICK], ["work", "home"])
    move = model.plan("workdisk", "home")
    assert move is not None and (move.source, move.target) == ("work", "home")
    assert model.plan("workdisk", "work") is None  # already there
    assert model.plan("stick", None) is None  # already detached
    with pytest.raises(DeviceError, match=r"unknown device 'nope' \(devices: workdisk, stick\)"):
        model.plan("nope", "home")
    with pytest.raises(DeviceError, match="unknown persona 'attic'"):
        model.plan("workdisk", "attic")
    with pytest.raises(DeviceError, match="used twice"):
        Assignment([DISK, DISK], ["work"])


def test_a_switch_moves_only_the_following_devices_not_yet_there() -> None:
    model = Assignment([DISK, STICK, CAM], ["work", "home"])
    assert [(m.device.id, m.source, m.target) for m in model.follow("home")] == [
        ("stick", None, "home"), ("cam", None, "home")]
    model.place("stick", "home")
    assert [m.device.id for m in model.follow("home")] == ["cam"]
    model.place("cam", "home")
    assert [(m.device.id, m.source) for m in model.follow("work")] == [("stick", "home"), ("cam", "home")]


# --- config ----------------------------------------------------------------------------

ISSUE_EXAMPLE = """\
[mux]
accel = "tcg"

[[persona]]
name = "work"
devices = [
  { id = "workdisk", type = "disk", file = "work.qcow2" },              # its own "loop device"
  { id = "stick",    type = "usb-storage", file = "stick.img", follow = "active" },
  { id = "cam",      type = "usb-host", vendor = "0x046d", product = "0x0825", follow = "active" },
]

[[persona]]
name = "home"
devices = [
  { id = "homedisk", type = "disk", file = "/srv/home.img", readonly = true, release_timeout_s = 30 },
]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mux.toml"
    path.write_text(text)
    return path


def test_the_issue_example_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ISSUE_EXAMPLE))
    work, home = config.personas
    disk, stick, cam = work.devices
    assert (disk.type, disk.file, disk.format, disk.follow) == (
        "disk", tmp_path / "work.qcow2", "qcow2", "none")
    assert (stick.type, stick.file, stick.format, stick.follow) == (
        "usb-storage", tmp_path / "stick.img", "raw", "active")
    assert (cam.vendor, cam.product, cam.file) == (0x046D, 0x0825, None)
    assert all(d.persona == "work" for d in work.devices)
    assert stick.location.line == 8 and cam.location.line == 9
    (homedisk,) = home.devices
    assert homedisk.readonly and homedisk.release_timeout_s == 30


PERSONA_A = '[[persona]]\nname = "a"\n'
PERSONA_B = '[[persona]]\nname = "b"\n'


@pytest.mark.parametrize(("text", "line", "words"), [
    (PERSONA_A + 'devices = [{ id = "d", type = "disk", file = "x.img" }]\n'
     + PERSONA_B + 'devices = [\n  { id = "e", type = "usb-storage", file = "./x.img" },\n]\n',
     7, "x.img would be opened read-write by device 'e' of persona 'b' and by device 'd' of persona 'a'"),
    (PERSONA_A + 'disk = "x.img"\n' + PERSONA_B + 'devices = [{ id = "e", type = "disk", file = "x.img",'
     ' readonly = true }]\n', 6, "by device 'e' of persona 'b' and by disk of persona 'a'"),
    (PERSONA_A + 'devices = [{ id = "d", type = "disk", file = "x.img" }]\n'
     + PERSONA_B + 'devices = [{ id = "d", type = "disk", file = "y.img" }]\n', 6,
     "device id 'd' is already used by persona 'a'"),
    (PERSONA_A + 'devices = [{ id = "c", type = "usb-host", vendor = "0x046d", product = "0x0825" }]\n'
     + PERSONA_B + 'devices = [{ id = "k", type = "usb-host", vendor = 0x46d, product = 0x825 }]\n', 6,
     "USB host device 046d:0825 would be claimed"),
    (PERSONA_A + 'devices = [\n  { id = "d", type = "disk" },\n]\n', 4, "a disk device needs a file"),
    (PERSONA_A + 'devices = [\n  { id = "d", type = "disk", file = "x", colour = 1 },\n]\n', 4,
     "unknown key 'persona[0].devices[0].colour'"),
    (PERSONA_A + 'devices = [{ id = "c", type = "usb-host", vendor = "0x046d" }]\n', 3,
     "needs vendor and product"),
    (PERSONA_A + 'devices = [{ id = "c", type = "usb-host", vendor = "logitech", product = 1 }]\n', 3,
     "must be a 16-bit USB id"),
    (PERSONA_A + 'devices = [{ id = "c", type = "usb-host", vendor = 1, product = 1, file = "x" }]\n', 3,
     "file is not a key of a usb-host device"),
    (PERSONA_A + 'devices = [{ id = "Stick!", type = "usb-storage", file = "x" }]\n', 3, "lower-case"),
    (PERSONA_A + 'devices = [{ id = "xhci", type = "usb-storage", file = "x" }]\n', 3, "(not xhci)"),
    (PERSONA_A + 'devices = [{ id = "s", type = "floppy", file = "x" }]\n', 3, "disk, usb-storage, usb-host"),
    (PERSONA_A + 'devices = [{ id = "s", type = "disk", file = "x", follow = "mouse" }]\n', 3,
     "none, active"),
    (PERSONA_A + 'devices = "stick"\n', 3, "must be list"),
])
def test_device_mistakes_name_file_and_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert words in message
    assert f"{path}:{line}" in message


def test_a_shared_file_is_fine_while_nobody_writes_it(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, PERSONA_A + 'devices = [{ id = "d", type = "disk", file = "x.img",'
                               ' readonly = true }]\n' + PERSONA_B + 'devices = [{ id = "e", type = "disk",'
                               ' file = "x.img", readonly = true }]\n'))
    assert [p.devices[0].readonly for p in config.personas] == [True, True]


def test_a_symlink_to_another_personas_file_is_the_same_file(tmp_path: Path) -> None:
    (tmp_path / "real.img").write_bytes(b"")
    (tmp_path / "link.img").symlink_to(tmp_path / "real.img")
    with pytest.raises(ConfigError, match=r"real\.img would be opened read-write"):
        load_config(write(tmp_path, PERSONA_A + 'devices = [{ id = "d", type = "disk", file = "real.img" }]\n'
                          + PERSONA_B + 'devices = [{ id = "e", type = "disk", file = "link.img" }]\n'))


# --- the thirty-persona dry run --------------------------------------------------------


def thirty_personas(tmp_path: Path, shared: bool = False) -> Path:
    lines = ['[mux]\naccel = "tcg"\n']
    for n in range(30):
        disk = "shared.img" if shared and n in (7, 23) else f"disk{n:02}.qcow2"
        lines.append(f'[[persona]]\nname = "p{n:02}"\n'
                     f'devices = [{{ id = "disk{n:02}", type = "disk", file = "{disk}" }}]\n')
    return write(tmp_path, "".join(lines))


def test_thirty_personas_dry_run_gives_thirty_command_lines_with_no_shared_writable_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = thirty_personas(tmp_path)
    code = cli.main(["run", str(path), "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 30
    writers: dict[str, str] = {}
    for n, line in enumerate(lines):
        name, _, command = line.partition(": ")
        assert name == f"p{n:02}"
        argv = shlex.split(command)
        nodes = [json.loads(a) for o, a in itertools.pairwise(argv) if o == "-blockdev"]
        assert [node["file"]["filename"] for node in nodes] == [str(tmp_path / f"disk{n:02}.qcow2")]
        for node in nodes:
            if not node["read-only"]:
                assert node["file"]["filename"] not in writers, (name, writers)
                writers[node["file"]["filename"]] = name
        assert "-drive" not in argv
    assert len(writers) == 30


def test_a_dry_run_with_a_shared_writable_file_is_refused_before_anything(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = thirty_personas(tmp_path, shared=True)
    assert cli.main(["run", str(path), "--dry-run"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{path}:{5 + 3 * 23}:" in captured.err  # persona p23's devices line
    assert "shared.img would be opened read-write by device 'disk23' of persona 'p23'" in captured.err
    assert f"persona 'p07' ({path}:{5 + 3 * 7}:" in captured.err


def test_the_dry_run_says_which_devices_follow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", str(write(tmp_path, ISSUE_EXAMPLE)), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "# device stick (usb-storage" in out and "# device cam (usb-host 046d:0825)" in out


# --- scenario steps ---------------------------------------------------------------------


def test_attach_and_detach_steps_parse_and_are_checked(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text("name: s\nconfig:\n  persona: [{name: a}, {name: b}]\nsteps:\n"
                        "  - attach: {device: stick, persona: b}\n  - detach: stick\n")
    steps = load_scenario(scenario).steps
    assert [(s.kind, s.args) for s in steps] == [("attach", {"device": "stick", "persona": "b"}),
                                                ("detach", {"device": "stick"})]
    scenario.write_text("name: s\nconfig:\n  persona: [{name: a}]\nsteps:\n"
                        "  - attach: {device: stick, persona: c}\n  - detach: {}\n")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(scenario)
    assert f"{scenario}:5:" in str(caught.value) and "unknown persona 'c'" in str(caught.value)
    assert f"{scenario}:6:" in str(caught.value) and "missing argument 'device'" in str(caught.value)


# --- the move transaction, against fake personas ---------------------------------------


class FakePersona:
    """Just enough of Persona for Hotplug: records calls, fails when told to."""

    def __init__(self, name: str, calls: list[str]) -> None:
        self.name = name
        self.state = RunState.RUNNING
        self.pid = 1
        self.devices: dict[str, DeviceConfig] = {}
        self.device_released: list[Any] = []
        self.calls = calls
        self.refuse_attach = False
        self.never_release = False

    async def attach_device(self, device: DeviceConfig) -> None:
        self.calls.append(f"{self.name}: attach {device.id}")
        if self.refuse_attach:
            raise DeviceError(f"cannot attach device {device.id!r} to persona {self.name!r}: refused")
        self.devices[device.id] = device

    async def detach_device(self, device_id: str, timeout: float) -> DeviceConfig:
        self.calls.append(f"{self.name}: detach {device_id} ({timeout:g}s)")
        if self.never_release:
            raise DeviceTimeout(f"persona {self.name!r} did not release device {device_id!r}")
        return self.devices.pop(device_id)


@dataclass
class Rig:
    hp: Hotplug
    personas: dict[str, FakePersona]
    calls: list[str]
    events: list[DeviceEvent] = field(default_factory=list)


def hotplug(*devices: DeviceConfig) -> Rig:
    calls: list[str] = []
    personas = {n: FakePersona(n, calls) for n in ("work", "home", "third")}
    rig = Rig(Hotplug(devices, list(personas), personas), personas, calls)  # type: ignore[arg-type]
    for device in devices:
        owner = rig.hp.assignment.owner(device.id)
        if owner:
            personas[owner].devices[device.id] = device
    rig.hp.listeners.append(rig.events.append)
    return rig


def existing(tmp_path: Path, device: DeviceConfig, follow: str | None = None) -> DeviceConfig:
    file = tmp_path / f"{device.id}.img"
    file.write_bytes(b"\0" * 512)
    return DeviceConfig(device.id, device.type, device.persona, file=file,
                        follow=follow or device.follow, release_timeout_s=3)  # type: ignore[arg-type]


async def test_a_move_releases_in_the_old_persona_before_the_new_one_opens(tmp_path: Path) -> None:
    rig = hotplug(existing(tmp_path, DISK))
    status = await rig.hp.attach("workdisk", "home")
    assert rig.calls == ["work: detach workdisk (3s)", "home: attach workdisk"]
    assert status["persona"] == "home" and status["live"] and status["error"] is None
    assert rig.events == [DeviceEvent("workdisk", "work", "home", "home")]
    assert await rig.hp.move("workdisk", "home") is None  # already there: nothing to do
    assert len(rig.calls) == 2


async def test_a_refused_attach_puts_the_device_back_and_says_so(tmp_path: Path) -> None:
    rig = hotplug(existing(tmp_path, DISK))
    rig.personas["home"].refuse_attach = True
    with pytest.raises(DeviceError, match=r"refused; device 'workdisk' is attached to persona 'work'$"):
        await rig.hp.attach("workdisk", "home")
    assert rig.calls == ["work: detach workdisk (3s)", "home: attach workdisk", "work: attach workdisk"]
    assert rig.hp.assignment.owner("workdisk") == "work" and "workdisk" in rig.personas["work"].devices
    assert "refused" in str(rig.hp.status("workdisk")["error"])
    assert rig.events[-1].persona == "work" and rig.events[-1].error


async def test_when_even_the_way_back_fails_the_device_is_detached(tmp_path: Path) -> None:
    rig = hotplug(existing(tmp_path, DISK))
    rig.personas["home"].refuse_attach = rig.personas["work"].refuse_attach = True
    with pytest.raises(DeviceError, match=r"putting it back on persona 'work' failed too.*is detached$"):
        await rig.hp.attach("workdisk", "home")
    assert rig.hp.assignment.owner("workdisk") is None


async def test_a_missing_file_fails_before_any_guest_is_touched() -> None:
    rig = hotplug(DISK)  # /srv/work.qcow2 does not exist
    with pytest.raises(DeviceError, match=r"its file /srv/work\.qcow2 does not exist; .* to persona 'work'"):
        await rig.hp.attach("workdisk", "home")
    assert rig.calls == []
    assert rig.hp.assignment.owner("workdisk") == "work"


async def test_a_release_timeout_leaves_the_device_where_it_was(tmp_path: Path) -> None:
    rig = hotplug(existing(tmp_path, DISK))
    rig.personas["work"].never_release = True
    with pytest.raises(DeviceTimeout, match="did not release"):
        await rig.hp.detach("workdisk", timeout=0.5)
    assert rig.calls == ["work: detach workdisk (0.5s)"]
    assert rig.hp.assignment.owner("workdisk") == "work"
    with pytest.raises(DeviceError, match=r"not attached to persona 'home' \(attached to persona 'work'\)"):
        await rig.hp.detach("workdisk", "home")


async def test_a_switch_waits_for_the_release_and_is_refused_without_it(tmp_path: Path) -> None:
    other = existing(tmp_path, DeviceConfig("other", "usb-storage", "work"), follow="active")
    rig = hotplug(existing(tmp_path, STICK), other)
    hp, home, calls = rig.hp, rig.personas["home"], rig.calls
    await hp.follow_active(None, "work")
    assert calls == ["work: attach stick", "work: attach other"]
    await hp.follow_active("work", "home")
    assert {hp.assignment.owner("stick"), hp.assignment.owner("other")} == {"home"}
    # home's guest lets go of the stick but not of "other": the switch back is refused,
    # and the stick, already moved for it, goes back to home.
    calls.clear()

    async def release_only_the_stick(device_id: str, timeout: float) -> DeviceConfig:
        calls.append(f"home: detach {device_id}")
        if device_id == "other":
            raise DeviceTimeout("persona 'home' did not release device 'other'")
        return home.devices.pop(device_id)

    home.detach_device = release_only_the_stick  # type: ignore[method-assign]
    with pytest.raises(DeviceTimeout, match="switch to 'work' refused: persona 'home' did not release"):
        await hp.follow_active("home", "work")
    assert calls == ["home: detach stick", "work: attach stick", "home: detach other",
                     "work: detach stick (3s)", "home: attach stick"]
    assert {hp.assignment.owner("stick"), hp.assignment.owner("other")} == {"home"}


async def test_a_switch_goes_ahead_when_the_new_persona_refuses_a_device(tmp_path: Path) -> None:
    rig = hotplug(existing(tmp_path, STICK))
    await rig.hp.follow_active(None, "work")
    rig.personas["home"].refuse_attach = True
    await rig.hp.follow_active("work", "home")  # no exception: the switch is not held back
    assert rig.hp.assignment.owner("stick") == "work"
    assert "refused" in str(rig.hp.status("stick")["error"])


def test_a_late_release_by_the_guest_detaches_the_device() -> None:
    rig = hotplug(DISK)
    work = rig.personas["work"]
    rig.hp.watch(work)  # type: ignore[arg-type]
    work.devices.pop("workdisk")
    for released in work.device_released:
        released(work, "workdisk")
    assert rig.hp.assignment.owner("workdisk") is None
    assert rig.events == [DeviceEvent("workdisk", "work", None, None)]
