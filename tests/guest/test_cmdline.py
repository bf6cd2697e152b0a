"""The one QEMU command-line builder: ``--dry-run`` prints exactly what the launch runs,
and nothing outside :mod:`mux.guest` talks to QEMU."""

from __future__ import annotations

import ast
import shlex
from pathlib import Path
from typing import Any

import pytest

from mux import cli
from mux.config import Config, DisplaySection, InputSection, PersonaConfig
from mux.devices.model import DeviceConfig
from mux.guest.accel import AccelChoice
from mux.guest.cmdline import INCOMING, TABLET, LaunchOptions
from mux.guest.persona import Persona
from tests.conftest import make_config

MUX = Path(cli.__file__).parent


def devices(tmp_path: Path) -> tuple[DeviceConfig, ...]:
    disk, stick = tmp_path / "work.img", tmp_path / "stick.img"
    for path in (disk, stick):
        path.write_bytes(b"\0" * (1 << 20))
    return (DeviceConfig("workdisk", "disk", "work", file=disk, format="raw"),
            DeviceConfig("stick", "usb-storage", "work", file=stick, readonly=True, follow="active"))


def dry_run(config: Config, capsys: pytest.CaptureFixture[str]) -> dict[str, list[str]]:
    """``mux run --dry-run``'s command lines, by persona."""
    assert cli._dry_run(config) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("#")]
    return {name: shlex.split(rest) for name, rest in (line.split(": ", 1) for line in lines)}


@pytest.mark.pure
def test_dry_run_has_the_tablet_a_window_gets_and_the_boot_devices(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    personas = (PersonaConfig("work", image=None, devices=devices(tmp_path)),
                PersonaConfig("home", image=None))
    window = make_config(tmp_path, *personas, display=DisplaySection(output="window"))
    argvs = dry_run(window, capsys)
    assert set(argvs) == {"work", "home"}
    for argv in argvs.values():
        assert " ".join(TABLET) in " ".join(argv)
        assert " ".join(INCOMING) not in " ".join(argv)
    assert any("id=workdisk" in arg or '"id":"workdisk"' in arg for arg in argvs["work"])
    assert not any("stick" in arg for arg in argvs["work"])  # follows the active persona: hotplugged
    keyboards = make_config(tmp_path, *personas, display=DisplaySection(output="window"),
                            input=InputSection(devices=("/dev/input/event0",)))
    assert not any(" ".join(TABLET) in " ".join(argv) for argv in dry_run(keyboards, capsys).values())
    headless = dry_run(make_config(tmp_path, *personas), capsys)["work"]
    assert " ".join(TABLET) not in " ".join(headless)  # no window: no absolute pointer
    assert any("id=workdisk" in arg or '"id":"workdisk"' in arg for arg in headless)
    assert not any("stick" in arg for arg in headless)
    assert option(headless, "-machine").endswith("accel=tcg")  # the config's [mux] accel
    assert option(headless, "-name") == "work"


def option(argv: list[str], name: str) -> str:
    """The value after ``name`` in ``argv`` (its only occurrence)."""
    assert argv.count(name) == 1, (name, argv)
    return argv[argv.index(name) + 1]


@pytest.mark.pure
def test_a_personas_launch_argv_has_its_sockets_its_devices_and_its_qemu_args_last(tmp_path: Path) -> None:
    """What a launch runs, against what the docs and the persona's config say it holds
    (that ``--dry-run`` prints the same: the guests test below, from the running QEMU)."""
    tcg = AccelChoice("tcg", "test", proven=True)
    qemu_args = ("-device", "virtio-rng-pci")
    config = PersonaConfig("work", image=None, devices=devices(tmp_path), qemu_args=qemu_args)
    persona = Persona(config, tmp_path, tcg, options=LaunchOptions(tablet=True, extra_args=("-no-reboot",)))
    try:
        argv = persona.argv()
        assert option(argv, "-name") == "work"
        assert option(argv, "-machine").endswith("accel=tcg")
        # QMP and VNC on unix sockets in the persona's private directory, nothing on TCP
        assert option(argv, "-qmp").startswith(f"unix:{tmp_path / 'work.qmp'},")
        assert option(argv, "-vnc") == f"unix:{tmp_path / 'work.vnc'}"
        assert " ".join(TABLET) in " ".join(argv)
        assert any("id=workdisk" in arg or '"id":"workdisk"' in arg for arg in argv)
        assert not any("stick" in arg for arg in argv)  # follows the active persona: hotplugged
        assert "-no-reboot" in argv
        assert argv[-len(qemu_args):] == list(qemu_args)  # docs: qemu_args are appended last
        assert " ".join(INCOMING) not in " ".join(argv)
        resuming = persona.argv(incoming=True)
        assert " ".join(INCOMING) in " ".join(resuming)  # waits for a saved state instead of booting
        assert resuming[-len(qemu_args):] == list(qemu_args)
        assert [arg for arg in resuming if arg not in INCOMING] == argv  # and nothing else changes
    finally:
        persona.serial.close()


def _outside_guest() -> list[Path]:
    return [p for p in MUX.rglob("*.py") if "guest" not in p.relative_to(MUX).parts]


@pytest.mark.pure
def test_only_mux_guest_imports_qemu_or_sends_raw_qmp() -> None:
    offences = []
    for path in _outside_guest():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                names = [] if node.func.attr != "execute" else ["<raw QMP: .execute()>"]
            elif isinstance(node, ast.Constant) and node.value in ("-qmp", "-vnc", "-incoming"):
                names = [f"<QEMU argument {node.value}>"]
            elif isinstance(node, ast.Attribute) and node.attr in ("vnc_path", "qmp_path", "_vnc_path"):
                names = [f"<QEMU socket {node.attr}>"]
            else:
                continue
            offences += [f"{path.relative_to(MUX)}:{node.lineno}: {name}" for name in names
                         if name == "qemu" or name.startswith(("qemu.", "<"))]
    assert not offences, offences


@pytest.mark.guests
async def test_dry_run_argv_is_what_the_controller_launches_with_window_and_devices(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        controller: Any) -> None:
    from tests.display.test_window import xvfb

    personas = (PersonaConfig("work", image=None, devices=devices(tmp_path)),
                PersonaConfig("home", image=None))
    config = make_config(tmp_path, *personas, display=DisplaySection(output="window"))
    with xvfb() as display:
        monkeypatch.setenv("DISPLAY", display)
        monkeypatch.setenv("SDL_VIDEODRIVER", "x11")
        printed = dry_run(config, capsys)
        async with controller(*personas, display=DisplaySection(output="window")) as ctl:
            assert ctl.output.kind == "window"
            for name, persona in ctl.personas.items():
                assert persona.pid is not None
                raw = Path(f"/proc/{persona.pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
                dry_dir = str(config.mux.runtime_dir / "mux-DRYRUN")
                launched = [arg.decode().replace(str(ctl.runtime_dir), dry_dir) for arg in raw]
                assert launched == printed[name]
                assert " ".join(TABLET) in " ".join(launched)
            assert "stick" in ctl.personas["work"].devices  # hotplugged at the first switch, not on argv
