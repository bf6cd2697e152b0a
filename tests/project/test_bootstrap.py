"""``./bootstrap`` on other hosts: the real script, a written os-release, a bare PATH.

Each test runs a copy of the script (so the checkout's ``.venv`` is never touched) with
``MUX_OS_RELEASE`` pointing at a written os-release and PATH set to a directory holding
only the basic tools bash needs, plus fakes where a test needs apt or a Python of a given
version. Nothing is installed and nothing goes to the network: on a host without apt the
script must only say what to install; on Debian and Ubuntu ``MUX_BOOTSTRAP_DRY_RUN=1``
prints the packages it would install and stops.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.services

CHECKOUT = Path(__file__).resolve().parent.parent.parent
BASIC_TOOLS = ("bash", "env", "dirname", "id", "grep", "sed", "cat", "touch", "mkdir", "ls")
#: What a host without apt must not have here, or the script would take another path.
ABSENT = ("apt-get", "dpkg-query", "qemu-system-x86_64", "qemu-img", "gpgv", "python3", "sudo")

OS_RELEASES = {
    "fedora": 'NAME="Fedora Linux"\nVERSION="41 (Workstation Edition)"\nID=fedora\nVERSION_ID=41\n'
              'PRETTY_NAME="Fedora Linux 41 (Workstation Edition)"\n',
    "arch": 'NAME="Arch Linux"\nPRETTY_NAME="Arch Linux"\nID=arch\nBUILD_ID=rolling\n',
    "tumbleweed": 'NAME="openSUSE Tumbleweed"\nID="opensuse-tumbleweed"\nID_LIKE="opensuse suse"\n'
                  'VERSION_ID="20250101"\nPRETTY_NAME="openSUSE Tumbleweed"\n',
    "alpine": 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.21.0\nPRETTY_NAME="Alpine Linux v3.21"\n',
    "unknown": 'NAME="Nowhere OS"\nID=nowhere\nVERSION_ID=1\nPRETTY_NAME="Nowhere OS 1"\n',
    "ubuntu-22.04": 'PRETTY_NAME="Ubuntu 22.04.5 LTS"\nNAME="Ubuntu"\nVERSION_ID="22.04"\n'
                    'VERSION_CODENAME=jammy\nID=ubuntu\nID_LIKE=debian\nUBUNTU_CODENAME=jammy\n',
    "ubuntu-24.04": 'PRETTY_NAME="Ubuntu 24.04.1 LTS"\nNAME="Ubuntu"\nVERSION_ID="24.04"\n'
                    'VERSION_CODENAME=noble\nID=ubuntu\nID_LIKE=debian\nUBUNTU_CODENAME=noble\n',
    "debian-12": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
                 'VERSION_ID="12"\nVERSION_CODENAME=bookworm\nID=debian\n',
}

#: The packages ./bootstrap test installs on Debian besides the runtime ones.
TEST_DEBS = ("mosquitto xvfb e2fsprogs mmdebstrap dosfstools mtools syslinux syslinux-common "
             "{systemd_boot} fdisk ovmf tesseract-ocr-eng qemu-system-gui pulseaudio pulseaudio-utils "
             "xdotool zsh fish")


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of what the script reads: the script and pyproject.toml."""
    copy = tmp_path / "mux"
    copy.mkdir()
    for name in ("bootstrap", "pyproject.toml"):
        shutil.copy2(CHECKOUT / name, copy / name)
    return copy


@pytest.fixture
def bare_bin(tmp_path: Path) -> Path:
    """A PATH directory with links to the basic tools only."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in BASIC_TOOLS:
        found = shutil.which(tool)
        assert found, f"{tool} is missing on this host"
        (bin_dir / tool).symlink_to(found)
    return bin_dir


def fake(bin_dir: Path, name: str, body: str) -> None:
    """A stand-in command: a /bin/sh script that logs its arguments to ``calls``."""
    path = bin_dir / name
    path.write_text(f'#!/bin/sh\necho "{name} $*" >> "{bin_dir}/calls"\n{body}\n')
    path.chmod(0o755)


def fake_python(bin_dir: Path, name: str, version: str) -> None:
    fake(bin_dir, name, f'[ "$1" = --version ] && echo "Python {version}"\nexit 0')


def bootstrap(checkout: Path, bin_dir: Path, distro: str, mode: str = "setup",
              dry_run: bool = False) -> subprocess.CompletedProcess[str]:
    os_release = checkout.parent / f"os-release-{distro}"
    os_release.write_text(OS_RELEASES[distro])
    env = {"PATH": str(bin_dir), "HOME": str(checkout.parent), "MUX_OS_RELEASE": str(os_release)}
    if dry_run:
        env["MUX_BOOTSTRAP_DRY_RUN"] = "1"
    return subprocess.run([str(checkout / "bootstrap"), mode], capture_output=True, text=True,
                          env=env, timeout=30)


@pytest.mark.parametrize(("distro", "command"), [
    ("fedora", "dnf install qemu-system-x86-core qemu-img python3 gnupg2"),
    ("arch", "pacman -S"),
    ("tumbleweed", "zypper install qemu-x86 qemu-tools"),
    ("alpine", "apk add qemu-system-x86_64 qemu-img python3 gpgv"),
    ("unknown", "your package manager: QEMU for x86-64"),
])
def test_without_apt_it_names_what_to_install_and_installs_nothing(
        checkout: Path, bare_bin: Path, distro: str, command: str) -> None:
    assert not any(shutil.which(tool, path=str(bare_bin)) for tool in ABSENT)
    before = sorted(p.name for p in checkout.iterdir())
    result = bootstrap(checkout, bare_bin, distro)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert command in result.stderr, output
    assert "missing: qemu-system-x86_64, qemu-img, gpgv, Python >= 3.11" in result.stderr, output
    assert f"pipx install {checkout}" in result.stderr and "mux images build" in result.stderr, output
    assert "Traceback" not in output
    assert sorted(p.name for p in checkout.iterdir()) == before  # no .venv, nothing else
    assert not (bare_bin / "calls").exists()


def test_without_apt_but_with_everything_it_goes_on_to_the_venv(checkout: Path, bare_bin: Path) -> None:
    for tool in ("qemu-system-x86_64", "qemu-img", "gpgv"):
        fake(bare_bin, tool, "exit 0")
    fake_python(bare_bin, "python3", "3.13.1")
    result = bootstrap(checkout, bare_bin, "fedora", dry_run=True)
    assert result.returncode == 0, result.stderr
    assert "nothing to install; python: python3" in result.stdout
    assert not (checkout / ".venv").exists()


@pytest.mark.parametrize(("distro", "pythons", "mode", "debs", "python"), [
    ("ubuntu-22.04", {"python3": "3.10.12"}, "setup", "python3.11 python3.11-venv", "python3.11"),
    ("ubuntu-22.04", {"python3": "3.10.12", "python3.12": "3.12.8"}, "setup", "python3.12-venv",
     "python3.12"),
    ("ubuntu-22.04", {"python3": "3.10.12"}, "test",
     "python3.11 python3.11-venv " + TEST_DEBS.format(systemd_boot="systemd"), "python3.11"),
    ("ubuntu-24.04", {"python3": "3.12.3"}, "test",
     "passt python3-venv " + TEST_DEBS.format(systemd_boot="systemd-boot-efi"), "python3"),
    ("debian-12", {"python3": "3.11.2"}, "demo", "passt python3-venv", "python3"),
    ("debian-12", {}, "setup", "passt python3 python3-venv", "python3"),
])
def test_on_debian_and_ubuntu_the_dry_run_names_the_apt_packages(
        checkout: Path, bare_bin: Path, distro: str, pythons: dict[str, str], mode: str, debs: str,
        python: str) -> None:
    fake(bare_bin, "apt-get", "exit 1")
    fake(bare_bin, "dpkg-query", "exit 1")
    for name, version in pythons.items():
        fake_python(bare_bin, name, version)
    result = bootstrap(checkout, bare_bin, distro, mode=mode, dry_run=True)
    assert result.returncode == 0, result.stderr
    assert f"apt packages: qemu-system-x86 qemu-utils gpgv ca-certificates {debs}\n" in result.stdout
    assert f"python: {python}\n" in result.stdout
    calls = (bare_bin / "calls").read_text() if (bare_bin / "calls").exists() else ""
    assert "apt-get" not in calls and "dpkg-query" not in calls
    assert not (checkout / ".venv").exists()
