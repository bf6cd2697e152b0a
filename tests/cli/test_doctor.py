"""``mux doctor``: each piece found or not as this machine really has it, needed or optional
as the config says, with the exit code that follows.

The pieces are taken away for real where a test can do so without root: a PATH without
passt, a QEMU binary (``MUX_QEMU``) that does not exist, a broker that stopped, an input
device path that is not there. The report's format is the contract the fresh-machine
tests read (tests/end_to_end/test_fresh_machines.py): ``STATUS PIECE: detail`` a line,
and for a piece not found its ``needed by``, ``costs`` and ``fix`` lines.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mux.doctor import Finding, apt_host, kvm_state, load_for_doctor, report
from mux.errors import ConfigError
from tests.mqtt_helpers import MOSQUITTO, Broker

MUX = [sys.executable, "-m", "mux"]
QEMU = shutil.which("qemu-system-x86_64")


def doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MUX, "doctor", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def statuses(output: str) -> dict[str, str]:
    """Piece -> ok / missing / optional, from a report."""
    return {piece: status for status, piece in re.findall(r"^(ok|missing|optional) +([^:]+):", output, re.M)}


def block(output: str, piece: str) -> str:
    """A piece's lines: its status line and the indented ones under it."""
    match = re.search(rf"^\w+ +{re.escape(piece)}:.*\n(?: +.*\n)*", output, re.M)
    assert match, output
    return match.group(0)


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mux.toml"
    path.write_text('[mux]\naccel = "tcg"\n\n' + text)
    return path


def path_without(tmp_path: Path, *left_out: str) -> str:
    """A PATH of one directory with the tools the doctor looks for, but those ``left_out``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("qemu-system-x86_64", "qemu-img", "gpgv", "passt", "mosquitto"):
        if tool not in left_out and (found := shutil.which(tool)):
            (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


# --- with the real machine -------------------------------------------------------------------


@pytest.mark.services
def test_demo_config_report_matches_the_exit_code() -> None:
    result = doctor()
    assert result.returncode in (0, 1), result.stderr
    found = statuses(result.stdout)
    assert {"QEMU", "KVM", "OVMF", "passt", "tesseract", "MQTT broker", "input devices",
            "image cache"} <= set(found), result.stdout
    assert result.returncode == (1 if "missing" in found.values() else 0), result.stdout
    assert result.stdout.startswith("mux doctor: this machine, for the built-in demo config")
    if QEMU:
        assert found["QEMU"] == "ok" and re.search(r"QEMU emulator version \d", result.stdout)
    assert found["OVMF"] != "missing" and found["passt"] != "missing"  # the demo needs neither


@pytest.mark.services
def test_passt_missing_fails_only_a_config_that_needs_it(tmp_path: Path) -> None:
    if QEMU is None:
        pytest.skip("QEMU is not installed")
    env = {"PATH": path_without(tmp_path, "passt")}
    net = config_file(tmp_path, '[[persona]]\nname = "net"\nnetwork = "user"\n')
    result = doctor(str(net), env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert statuses(result.stdout)["passt"] == "missing"
    passt = block(result.stdout, "passt")
    assert re.search(r'needed by: +persona net \(network = "user"\)', passt), passt
    assert re.search(r"fix: +.*passt", passt), passt
    assert "missing what the config needs: passt" in result.stdout
    # mux run itself refuses the file for the same reason: the doctor had to load it without
    dry = subprocess.run([*MUX, "run", str(net), "--dry-run"], capture_output=True, text=True, timeout=120,
                         env={**os.environ, **env})
    assert dry.returncode == 2 and "needs passt" in dry.stderr
    plain = config_file(tmp_path, '[[persona]]\nname = "plain"\n')
    result = doctor(str(plain), env=env)
    assert statuses(result.stdout)["passt"] == "optional", result.stdout
    needed = [p for p, s in statuses(result.stdout).items() if s == "missing"]
    assert result.returncode == (1 if needed else 0), result.stdout


@pytest.mark.services
def test_qemu_missing_is_reported_with_its_fix() -> None:
    result = doctor(env={"MUX_QEMU": "/nonexistent/qemu-system-x86_64"})
    assert result.returncode == 1
    qemu = block(result.stdout, "QEMU")
    assert qemu.startswith("missing   QEMU: /nonexistent/qemu-system-x86_64 is not on PATH"), qemu
    assert re.search(r"costs: +no persona can run", qemu) and re.search(r"fix: +.*qemu-system-x86", qemu)


@pytest.mark.services
def test_mqtt_broker_reachability(tmp_path: Path) -> None:
    if not Path(MOSQUITTO).exists():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    broker = Broker(tmp_path)
    broker.start()
    config = config_file(tmp_path, f'[[persona]]\nname = "work"\n\n[mqtt]\nurl = "{broker.url}"\n')
    try:
        up = doctor(str(config))
    finally:
        broker.stop()
    down = doctor(str(config))
    assert f"ok        MQTT broker: 127.0.0.1:{broker.port} answers" in up.stdout, up.stdout
    assert statuses(down.stdout)["MQTT broker"] == "missing" and down.returncode == 1, down.stdout
    assert f'needed by: [mqtt] url = "{broker.url}"' in block(down.stdout, "MQTT broker")


@pytest.mark.services
def test_input_device_that_is_not_there(tmp_path: Path) -> None:
    config = config_file(tmp_path, '[[persona]]\nname = "work"\n\n[input]\n'
                         'devices = ["/nonexistent/by-id/kbd-event-kbd"]\n')
    result = doctor(str(config))
    assert result.returncode == 1
    devices = block(result.stdout, "input devices")
    assert devices.startswith("missing   input devices: /nonexistent/by-id/kbd-event-kbd: no such device")


@pytest.mark.services
def test_kvm_is_needed_only_with_accel_kvm(tmp_path: Path) -> None:
    kvm = kvm_state()
    path = tmp_path / "kvm.toml"
    path.write_text('[mux]\naccel = "kvm"\n\n[[persona]]\nname = "work"\n')
    forced = doctor(str(path))
    auto = doctor()
    if kvm.obstacle is None:
        assert statuses(forced.stdout)["KVM"] == statuses(auto.stdout)["KVM"] == "ok"
    else:
        assert statuses(forced.stdout)["KVM"] == "missing" and forced.returncode == 1
        assert statuses(auto.stdout)["KVM"] == "optional"
        assert f"TCG only: {kvm.obstacle}" in forced.stdout


@pytest.mark.services
def test_a_broken_config_is_a_usage_error(tmp_path: Path) -> None:
    config = config_file(tmp_path, '[[persona]]\nname = "work"\nfirmware = "uefi"\nmemroy_mb = 3\n')
    result = doctor(str(config))
    assert result.returncode == 2
    assert f"{config}:7" in result.stderr and "memroy_mb" in result.stderr


# --- pure: the report and the config ---------------------------------------------------------


@pytest.mark.pure
def test_report_fails_only_on_what_is_needed() -> None:
    findings = [Finding("QEMU", True, "/usr/bin/qemu-system-x86_64: 7.2"),
                Finding("OVMF", False, "no UEFI firmware", "", "UEFI boot", "apt-get install ovmf"),
                Finding("passt", False, "passt is not on PATH", 'persona net (network = "user")',
                        "a network", "apt-get install passt")]
    text, code = report(findings, "x.toml")
    assert code == 1
    assert text.splitlines() == [
        "mux doctor: this machine, for x.toml",
        "ok        QEMU: /usr/bin/qemu-system-x86_64: 7.2",
        "optional  OVMF: no UEFI firmware",
        "            costs:     UEFI boot",
        "            fix:       apt-get install ovmf",
        "missing   passt: passt is not on PATH",
        '            needed by: persona net (network = "user")',
        "            costs:     a network",
        "            fix:       apt-get install passt",
        "mux doctor: missing what the config needs: passt",
    ]
    text, code = report(findings[:2], "x.toml")
    assert code == 0 and text.endswith("everything the config needs is here (optional, not here: OVMF)\n")


@pytest.mark.pure
def test_load_for_doctor_keeps_what_the_host_lookups_would_refuse(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[[persona]]\nname = "a"\nfirmware = "uefi"\nnetwork = "user"\n\n'
                    '[[persona]]\nname = "b"\nnetwork = "user"\nhost_access = true\n\n'
                    '[[persona]]\nname = "c"\n')
    config = load_for_doctor(path)
    assert [(p.firmware, p.network, p.host_access) for p in config.personas] == [
        ("uefi", "user", False), ("bios", "user", True), ("bios", "none", False)]
    path.write_text('[[persona]]\nname = "a"\nfirmware = "uefi"\nfirmwear = "bios"\n')
    with pytest.raises(ConfigError, match=r"c\.toml:4.*firmwear"):
        load_for_doctor(path)


@pytest.mark.pure
def test_fixes_name_apt_packages_only_on_debian_and_ubuntu(tmp_path: Path, monkeypatch: Any) -> None:
    release = tmp_path / "os-release"
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    for text, apt in (('ID=debian\n', True), ('ID=linuxmint\nID_LIKE="ubuntu debian"\n', True),
                      ('ID=fedora\n', False), ('ID=arch\n', False)):
        release.write_text(text)
        assert apt_host(release) is apt, text
    monkeypatch.setattr(shutil, "which", lambda name: None)
    release.write_text("ID=debian\n")
    assert apt_host(release) is False  # apt and dpkg removed (the fresh "no apt" machine)
    assert apt_host(tmp_path / "none") is False
