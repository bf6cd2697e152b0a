"""``mux import libvirt`` output boots: virt-manager's UEFI, q35, 2-vCPU domain with a user
network and an agent channel (tests/config/test_libvirt_import.py's, its memory made
smaller for this shared machine) over a blank qcow2 and a blank ISO is imported, its
printed ``[[persona]]`` written into a config, and ``mux run`` (a real process, TCG)
runs it: the persona is ``running`` in ``mux ctl status``, OVMF drew on its screen, its
variable store was made from the template, its passt serves the network; SIGTERM stops
it cleanly, QEMU and passt gone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from PIL import Image

from mux.images.disk import find_ovmf
from tests.config.test_libvirt_import import DOMAIN
from tests.conftest import READY_S, SESSION_DIR, session_qemus

pytestmark = pytest.mark.guests

MUX = [sys.executable, "-m", "mux"]


def mux(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MUX, *args], capture_output=True, text=True, timeout=120)


def processes_naming(marker: str, program: str) -> list[int]:
    """Pids of ``program`` processes whose command line names ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            words = (entry / "cmdline").read_bytes().split(b"\0") if entry.name.isdigit() else []
        except OSError:
            continue
        if words and Path(words[0].decode()).name == program and marker.encode() in b" ".join(words):
            found.append(int(entry.name))
    return found


def test_an_imported_virt_manager_domain_boots_under_mux_run(tmp_path: Path) -> None:
    disk, iso = tmp_path / "work.qcow2", tmp_path / "netinst.iso"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "64M"], check=True)
    iso.write_bytes(b"\0" * (1 << 20))
    xml = tmp_path / "work.xml"
    xml.write_text(DOMAIN.replace("DISK", str(disk)).replace("ISO", str(iso))
                   .replace("<memory unit='KiB'>4194304", "<memory unit='KiB'>524288"))
    imported = mux("import", "libvirt", str(xml))
    assert imported.returncode == 0, imported.stderr
    assert 'firmware = "uefi"' in imported.stdout and 'network = "user"' in imported.stdout, imported.stdout

    private = Path(tempfile.mkdtemp(dir=SESSION_DIR))  # in every command line QEMU and passt get
    env = {**os.environ, "XDG_STATE_HOME": str(private / "state")}
    sock = tmp_path / "control.sock"
    config = tmp_path / "mux.toml"
    config.write_text(f'[mux]\naccel = "tcg"\nkeep_guests = "never"\nruntime_dir = "{private}"\n'
                      f'control_socket = "{sock}"\n\n' + imported.stdout)
    with open(tmp_path / "run.log", "w") as out:
        run = subprocess.Popen([*MUX, "run", str(config)], stdout=out, stderr=subprocess.STDOUT, text=True,
                               env=env)
    try:
        deadline = time.monotonic() + READY_S
        while True:
            assert run.poll() is None, (tmp_path / "run.log").read_text()
            got = mux("ctl", "--socket", str(sock), "status")
            status = json.loads(got.stdout) if got.returncode == 0 else {"personas": []}
            states = {p["name"]: p["state"] for p in status["personas"]}
            if states.get("debian-13-work") == "running":
                break
            assert time.monotonic() < deadline, (states, (tmp_path / "run.log").read_text())
            time.sleep(0.5)
        (persona,) = status["personas"]
        pid = persona["pid"]
        assert pid in session_qemus([str(private)])  # the control for "gone" below
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        code, template = find_ovmf()
        assert f"if=pflash,format=raw,unit=0,readonly=on,file={code}".encode() in argv
        assert processes_naming(str(private), "passt"), "no passt serves the persona's network"
        variables = next((private / "state" / "mux" / "uefi").glob("debian-13-work-*.fd"))
        assert variables.stat().st_size == template.stat().st_size

        def drew() -> bool:  # OVMF's logo and boot messages: more than one colour on the screen
            shot = tmp_path / "screen.png"
            taken = mux("ctl", "--socket", str(sock), "screenshot", "debian-13-work", str(shot))
            return taken.returncode == 0 and len(Image.open(shot).getcolors(1 << 16) or []) > 1

        while not drew():
            assert time.monotonic() < deadline + READY_S, "OVMF drew nothing on the screen"
            time.sleep(1)
        run.send_signal(signal.SIGTERM)
        assert run.wait(120) == 0, (tmp_path / "run.log").read_text()
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert pid not in session_qemus([str(private)])
    assert not processes_naming(str(private), "passt")
