"""A new user's first commands, on machines that have nothing this one was given.

The development machines came with gcc, kernel headers and many packages, so a green
run here proves nothing about a fresh Debian. These tests make one: a minimal Debian 13
and Debian 12 root file system from ``mmdebstrap --variant=minbase`` plus git and
python3 (cached in ``~/.cache/mux/fresh/``, rebuilt weekly), clone this checkout into it
and run the README's demo command there, in ``chroot``, until both personas' guests
report ``MUX-READY``. Then ``mux doctor`` must report exactly what such a machine lacks:
nothing for the demo config (exit 0), OVMF for a persona with ``firmware = "uefi"``
(exit 1), with the fix in apt's words there and in generic words on the host without apt.

A host without apt stands in for Ubuntu CI runners and other distributions: a minimal
Debian 13 with QEMU, Python and gpgv, then apt and dpkg removed and ``/etc/os-release``
saying Ubuntu 24.04; mux's wheel is installed with pip and builds its images from the
mirror named in ``MUX_DEBIAN_MIRROR`` alone. Every one of these machines must build the
``console`` image byte for byte as this host did.

The chroot runs in its own mount and PID namespaces (``unshare``): /proc, /sys and /dev
are bound inside the namespace only, and when the demo's shell exits the kernel ends
every process left in it and drops every mount, so nothing can leak onto the host. The
host's CA bundle, pip settings (and the local package directories they name) and proxy
variables go in, so downloads work as they do here.

A test that cannot run here (not root, no mmdebstrap, no unshare, no network to the
Debian archive) is skipped with the reason, never silently; with CI=true it fails.

Also here: mux installed the way ``pipx install`` does it (not editable) into a fresh
venv works from a directory outside the checkout.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from mux.images import archive, cache_root

CHECKOUT = Path(__file__).resolve().parent.parent.parent
FRESH_CACHE = cache_root().parent / "fresh"
MAX_TARBALL_AGE_S = 7 * 24 * 3600
MIRROR = "http://deb.debian.org/debian"
DEMO_SECONDS = 60
#: Replayed after the demo, on the fresh machine's own QEMU and kernel: keys, LEDs, needles.
SCENARIOS = ("scenarios/caps-lock-led.yaml", "scenarios/two-personas-isolation.yaml")
#: ``mux doctor`` on the demo config, then on this one: its exit codes and reports, in the root.
UEFI_CONFIG = '[[persona]]\nname = "work"\nfirmware = "uefi"\n'
DOCTOR = ("mux doctor > /root/doctor-demo.txt 2>&1; echo DOCTOR-DEMO=$?; "
          "mux doctor /root/uefi.toml > /root/doctor-uefi.txt 2>&1; echo DOCTOR-UEFI=$?")

pytestmark = pytest.mark.heavy


def _missing_tools() -> str | None:
    if os.geteuid() != 0:
        return "needs root (chroot, mounts)"
    for tool in ("mmdebstrap", "unshare", "chroot", "git"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (./bootstrap test installs mmdebstrap)"
    probe = subprocess.run(["unshare", "--mount", "--pid", "--fork", "true"], capture_output=True)
    if probe.returncode != 0:
        return f"unshare cannot make mount/PID namespaces here: {probe.stderr.decode().strip()}"
    return None


def minbase_tarball(suite: str, include: tuple[str, ...] = ("git", "python3"),
                    name: str = "minbase") -> Path:
    """``~/.cache/mux/fresh/<suite>-<name>.tar``, made by mmdebstrap when missing or old."""
    tarball = FRESH_CACHE / f"{suite}-{name}.tar"
    if tarball.is_file() and time.time() - tarball.stat().st_mtime < MAX_TARBALL_AGE_S:
        return tarball
    FRESH_CACHE.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_suffix(".partial.tar")
    proc = subprocess.run(
        ["mmdebstrap", "--quiet", "--variant=minbase", f"--include={','.join(include)}", suite,
         str(partial), MIRROR],
        capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        partial.unlink(missing_ok=True)
        skip_unless_ci(f"mmdebstrap could not make a {suite} root file system "
                       f"(no route to {MIRROR}?): {proc.stderr.strip()[-500:]}")
    partial.rename(tarball)
    return tarball


def skip_unless_ci(reason: str) -> NoReturn:
    """Skip, naming why; under ``CI=true`` (as .ci/run and CI systems set it) fail instead,
    so "tested on every CI run" cannot silently mean never."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: a fresh machine that cannot be made fails the run)")
    pytest.skip(reason)


def _pip_settings() -> tuple[list[Path], list[Path]]:
    """pip's config files on the host, and the local package directories they name
    (an index ``.../simple`` stands for its parent, which holds the files it links to)."""
    files = [Path("/etc/pip.conf"), Path("/etc/xdg/pip/pip.conf"), Path("/etc/xdg/pip/constraints.txt"),
             Path.home() / ".config/pip/pip.conf", Path.home() / ".pip/pip.conf"]
    files = [f for f in files if f.is_file()]
    values = [v for k, v in os.environ.items() if k.startswith("PIP_")]
    for f in (f for f in files if f.suffix == ".conf"):
        parser = configparser.ConfigParser()
        parser.read(f)
        values += [v for section in parser.sections() for v in parser[section].values()]
    directories: list[Path] = []
    for value in values:
        for word in value.split():
            path = Path(word.removeprefix("file://"))
            if path.is_absolute() and path.is_dir():
                directories.append(path.parent if path.name == "simple" else path)
            elif path.is_absolute() and path.is_file() and path not in files:
                files.append(path)
    return files, sorted(set(directories))


def _copy_in(root: Path, path: Path, target: Path | None = None) -> None:
    target = root / (target or path).relative_to("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, target)


@pytest.fixture
def fresh_root() -> Iterator[Path]:
    """An empty directory for a root file system; removed afterwards (no mounts can be
    left in it: they live only in the test's mount namespace)."""
    if reason := _missing_tools():
        skip_unless_ci(reason)
    root = Path(tempfile.mkdtemp(prefix="mux-fresh-", dir="/var/tmp"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


#: The host's CA bundle, kept where Debian's ca-certificates (which bootstrap installs) won't
#: rewrite it; pip is pointed at it.
HOST_CA = Path("/etc/mux-fresh/host-ca.pem")


def run_in_chroot(root: Path, command: str, binds: list[Path], timeout: float
                  ) -> subprocess.CompletedProcess[str]:
    """``command`` as root in ``root``, in private mount and PID namespaces; ``binds``
    are host directories bound read-only at the same place."""
    keep = {k: v for k, v in os.environ.items()
            if k.startswith("PIP_") or k.lower() in ("http_proxy", "https_proxy", "no_proxy")}
    keep["PIP_CERT"] = str(HOST_CA)
    env = " ".join(shlex.quote(f"{k}={v}") for k, v in keep.items())
    mounts = "".join(
        f"mount --bind -o ro {shlex.quote(str(d))} {shlex.quote(str(root / d.relative_to('/')))}\n"
        for d in binds)
    script = f"""
set -e
mount -t proc proc {root}/proc
mount --rbind /sys {root}/sys
mount --rbind /dev {root}/dev
{mounts}
exec chroot {root} /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \\
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin {env} \\
    /bin/sh -c {shlex.quote(command)}
"""
    return subprocess.run(["unshare", "--mount", "--pid", "--fork", "--propagation", "private",
                           "sh", "-c", script], capture_output=True, text=True, timeout=timeout)


def prepare(root: Path, tarball: Path, *, clone: bool = True) -> list[Path]:
    """Unpack the root file system, copy the host's network and pip settings in, clone
    the checkout to /root/mux; returns the directories to bind."""
    subprocess.run(["tar", "-xf", str(tarball), "-C", str(root)], check=True)
    files, directories = _pip_settings()
    for path in [Path("/etc/resolv.conf"), *files]:
        if path.exists():
            _copy_in(root, path)
    ca = Path(os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt")
    if ca.is_file():
        _copy_in(root, ca, HOST_CA)
    for directory in directories:
        (root / directory.relative_to("/")).mkdir(parents=True, exist_ok=True)
    if clone:
        subprocess.run(["git", "clone", "-q", str(CHECKOUT), str(root / "root" / "mux")], check=True)
    return directories


def assert_both_personas_got_ready(root: Path, output: str) -> None:
    logs = sorted((root / "root/.local/state/mux/logs").glob("*/"))
    assert logs, f"no serial logs were kept:\n{output[-3000:]}"
    for persona in ("work", "home"):
        log = next(logs[-1].glob(f"{persona}*"), None)
        assert log is not None, f"no serial log for {persona} in {logs[-1]}"
        text = log.read_text(errors="replace")
        assert re.search(rf"^MUX-READY {persona}$", text, re.M), f"{persona} never got ready:\n{text[-2000:]}"


def assert_doctor_reports(root: Path, stdout: str, fix: str) -> None:
    """The :data:`DOCTOR` commands' reports: nothing missing for the demo config (exit 0),
    only OVMF for the UEFI persona (exit 1), with ``fix`` as its fix."""
    demo = (root / "root/doctor-demo.txt").read_text()
    uefi = (root / "root/doctor-uefi.txt").read_text()
    missing = [re.findall(r"^missing +([^:]+):", text, re.M) for text in (demo, uefi)]
    assert missing == [[], ["OVMF"]], f"demo config:\n{demo}\nUEFI config:\n{uefi}"
    assert "DOCTOR-DEMO=0" in stdout and "DOCTOR-UEFI=1" in stdout, f"{demo}\n{uefi}"
    assert re.search(r'^ +needed by: +persona work \(firmware = "uefi"\)$', uefi, re.M), uefi
    assert re.search(rf"^ +fix: +{re.escape(fix)}$", uefi, re.M), uefi


def assert_same_console_image(root: Path, host_image: Any, where: str) -> None:
    """The console image built in ``root`` has this host's packages and SHA256s."""
    built = sorted((root / "root/.cache/mux/images").glob("console-*/image.json"))
    assert built, f"no console image was built {where}"
    there = json.loads(built[-1].read_text())
    here = json.loads((host_image.kernel.parent / "image.json").read_text())
    assert there["packages"] == here["packages"], (
        f"{where} resolved other packages than this host (did the suite change in between?)")
    assert there["files"] == here["files"], f"{where} built other bytes from the same packages"


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("suite", ["trixie", "bookworm"])
def test_readme_demo_on_a_minimal_debian(fresh_root: Path, suite: str, console_image: Any) -> None:
    """Debian 13 and 12, minbase + git + python3: ``./bootstrap demo`` boots both personas;
    then two scenarios replay there (keys, LEDs and needles on that release's QEMU)."""
    binds = prepare(fresh_root, minbase_tarball(suite))
    for tool in ("gcc", "cc", "qemu-system-x86_64"):  # really fresh: nothing to lean on
        assert not any((fresh_root / d / tool).exists() for d in ("usr/bin", "bin")), tool
    started = time.monotonic()
    (fresh_root / "root/uefi.toml").write_text(UEFI_CONFIG)
    command = (f"cd /root/mux && ./bootstrap demo --for {DEMO_SECONDS} && echo DEMO-DONE && "
               f"{{ .venv/bin/mux replay {' '.join(SCENARIOS)} --artifacts /root/replay; replayed=$?; "
               f"PATH=/root/mux/.venv/bin:$PATH; {DOCTOR}; exit $replayed; }}")
    proc = run_in_chroot(fresh_root, command, binds, timeout=1800)
    took = time.monotonic() - started
    output = proc.stdout + proc.stderr
    print(f"{suite}: ./bootstrap demo took {took:.0f} s\n{output[-3000:]}")
    assert "DEMO-DONE" in proc.stdout, output[-4000:]
    assert "Traceback" not in output, output[-4000:]
    assert_both_personas_got_ready(fresh_root, output)
    assert proc.returncode == 0, f"the scenarios failed on {suite}:\n{output[-4000:]}"
    assert_same_console_image(fresh_root, console_image, f"on a fresh Debian {suite}")
    assert_doctor_reports(fresh_root, proc.stdout, "apt-get install ovmf")


#: What a user of another distribution installs with its package manager before mux.
NO_APT_PACKAGES = ("python3", "python3-venv", "qemu-system-x86", "qemu-utils", "gpgv",
                   "ca-certificates")
UBUNTU_OS_RELEASE = ('PRETTY_NAME="Ubuntu 24.04.1 LTS"\nNAME="Ubuntu"\nVERSION_ID="24.04"\n'
                     'VERSION="24.04.1 LTS (Noble Numbat)"\nVERSION_CODENAME=noble\nID=ubuntu\n'
                     'ID_LIKE=debian\nUBUNTU_CODENAME=noble\n')


@pytest.mark.timeout(1800)
def test_wheel_on_a_host_without_apt(fresh_root: Path, tmp_path: Path, console_image: Any) -> None:
    """No apt, no dpkg, "Ubuntu 24.04": the wheel installed with pip builds the images
    from ``MUX_DEBIAN_MIRROR`` and ``mux demo`` boots both personas."""
    wheels = tmp_path / "wheels"
    wheel = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels),
                            str(CHECKOUT)], capture_output=True, text=True, cwd=tmp_path)
    assert wheel.returncode == 0, wheel.stderr[-3000:]
    (built,) = wheels.glob("mux-*.whl")
    binds = prepare(fresh_root, minbase_tarball("trixie", NO_APT_PACKAGES, "noapt"), clone=False)
    for pattern in ("usr/bin/apt*", "usr/bin/dpkg*", "etc/apt", "var/lib/apt", "var/lib/dpkg",
                    "usr/lib/apt", "etc/os-release", "usr/lib/os-release"):
        for path in fresh_root.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    (fresh_root / "etc/os-release").write_text(UBUNTU_OS_RELEASE)
    for tool in ("apt-get", "apt", "dpkg", "dpkg-query", "gcc"):
        assert not any((fresh_root / d / tool).exists() for d in ("usr/bin", "bin")), tool
    shutil.copy(built, fresh_root / "root" / built.name)
    (fresh_root / "root/uefi.toml").write_text(UEFI_CONFIG)
    mirror = archive.source().mirror
    command = (f"python3 -m venv /opt/mux && /opt/mux/bin/pip install -q /root/{built.name} && "
               f"export MUX_DEBIAN_MIRROR={shlex.quote(mirror)} && cd /root && "
               f"/opt/mux/bin/mux images build && /opt/mux/bin/mux demo --for {DEMO_SECONDS} && "
               f"echo DEMO-DONE && PATH=/opt/mux/bin:$PATH && {{ {DOCTOR}; }}")
    started = time.monotonic()
    proc = run_in_chroot(fresh_root, command, binds, timeout=1800)
    output = proc.stdout + proc.stderr
    print(f"no apt: pip install + images + demo took {time.monotonic() - started:.0f} s\n"
          f"{output[-3000:]}")
    assert "DEMO-DONE" in proc.stdout, output[-4000:]
    assert "Traceback" not in output, output[-4000:]
    assert f"from {mirror} (MUX_DEBIAN_MIRROR)" in output, output[-4000:]
    assert_both_personas_got_ready(fresh_root, output)
    assert_same_console_image(fresh_root, console_image, "on a host without apt")
    assert_doctor_reports(fresh_root, proc.stdout,
                          "install the OVMF UEFI firmware (edk2-ovmf) with your package manager")


@pytest.mark.timeout(900)
def test_non_editable_install_works_outside_the_checkout(tmp_path: Path) -> None:
    """``pip install .`` (what pipx does) into a fresh venv: the recipes come with the
    package, so ``mux images list`` and ``mux run --dry-run`` work from anywhere."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "-q", str(CHECKOUT)],
                         capture_output=True, text=True, cwd=tmp_path)
    assert pip.returncode == 0, pip.stderr[-3000:]
    assert "deprecat" not in pip.stderr.lower(), pip.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    mux = str(venv / "bin/mux")
    listing = subprocess.run([mux, "images", "list"], capture_output=True, text=True,
                             cwd=elsewhere)
    assert listing.returncode == 0, listing.stderr
    for image in ("console", "palette"):
        assert re.search(rf"^{image}\b", listing.stdout, re.M), listing.stdout
    (elsewhere / "demo.toml").write_text(
        '[mux]\naccel = "tcg"\n\n'
        '[[persona]]\nname = "work"\nimage = "console"\ncolor = "c03030"\n\n'
        '[[persona]]\nname = "home"\nimage = "console"\ncolor = "3060c0"\n')
    dry = subprocess.run([mux, "run", "demo.toml", "--dry-run"], capture_output=True, text=True,
                         cwd=elsewhere)
    assert dry.returncode == 0, dry.stderr
    for persona in ("work", "home"):
        assert re.search(rf"^{persona}: \S*qemu-system-x86_64 .*-kernel ", dry.stdout, re.M), dry.stdout
    assert str(CHECKOUT) not in dry.stdout  # nothing is read from the checkout
