"""A persona's user-mode network without a way to the host: one ``passt`` per persona.

Theory. QEMU's own user-mode network (slirp, ``-netdev user``) maps the gateway
10.0.2.2 to the host's 127.0.0.1, and nothing turns that off: a guest could reach every
service the host keeps on loopback (an MQTT broker without a password) and the other
personas' forwarded ports. So ``network = "user"`` runs ``passt`` instead: the same NAT
(the guest is 10.0.2.15, its gateway 10.0.2.2, as with slirp), with ``--no-map-gw``, so
that no address in the guest leads to the host's loopback. Outbound connections are made
by passt with ordinary sockets on the host; ``forward`` becomes ``-t 127.0.0.1/2222:22``.
``host_access = true`` keeps slirp (see :func:`mux.guest.hardware.hardware_argv`).

Lifetime. passt serves a unix socket in the persona's private directory (0700, the
runtime directory or the kept guests' one) and QEMU connects to it (``-netdev stream``,
in QEMU 7.2 and later). It is started before QEMU (:func:`start`, which waits until it
listens) with ``--one-off``: it exits when QEMU's connection closes, so it dies with its
QEMU however QEMU dies, and a kept guest's passt simply runs on with it. :func:`stop`
kills it too (a QEMU that never connected) and removes the socket; passt is found by
its command line (the socket's path), so an adopting controller needs no record of it.
passt sandboxes itself (namespaces, seccomp, no capabilities). Run as root it would
switch to ``nobody``, which cannot make its socket in a root-owned 0700 directory: mux
passes ``--runas`` with its own user, so passt keeps the controller's user (root,
without capabilities, in its own user namespace) and its socket stays private.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from mux.config import PersonaConfig
from mux.errors import LaunchError

log = logging.getLogger(__name__)

PASST = "passt"
#: What to install where passt is missing (Debian, Fedora and Arch all call it passt).
INSTALL = "apt-get install passt (dnf install passt, pacman -S passt)"
#: The guest's address, netmask and gateway: slirp's, so a guest set up for one works on the other.
ADDRESS, NETMASK, GATEWAY = "10.0.2.15", "24", "10.0.2.2"
LISTEN_S = 10.0  # how long passt may take to listen on its socket
_SO_ACCEPTCON = 0x10000  # /proc/net/unix: a listening socket
PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def needed(config: PersonaConfig) -> bool:
    """Whether the persona's network is passt's (``network = "user"`` without ``host_access``)."""
    return config.network == "user" and not config.host_access


def socket_path(runtime_dir: Path, name: str) -> Path:
    """Where persona ``name``'s passt serves its QEMU."""
    return runtime_dir / f"{name}.net"


def passt_argv(config: PersonaConfig, runtime_dir: Path) -> list[str]:
    """passt's command line for ``config`` (pure)."""
    argv = [PASST, "--foreground", "--quiet", "--one-off", "--no-map-gw",
            "--socket", str(socket_path(runtime_dir, config.name)),
            "--runas", f"{os.getuid()}:{os.getgid()}",
            "--address", ADDRESS, "--netmask", NETMASK, "--gateway", GATEWAY]
    for forward in config.forward:
        argv += ["--tcp-ports" if forward.protocol == "tcp" else "--udp-ports",
                 f"127.0.0.1/{forward.host_port}:{forward.guest_port}"]
    return argv


def pids(socket: Path) -> list[int]:
    """The passt processes serving ``socket`` (found by their command line)."""
    return _find(lambda words: str(socket) in words)


def strays(directory: Path, keep: Iterable[str] = ()) -> list[int]:
    """The passt processes serving a socket in ``directory``, but not those of the personas in ``keep``."""
    kept = {str(socket_path(directory, name)) for name in keep}
    return _find(lambda words: any(w.startswith(f"{directory}/") and w.endswith(".net") and w not in kept
                                   for w in words))


def _find(match: Callable[[list[str]], bool]) -> list[int]:
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            words = [w.decode(errors="replace") for w in (entry / "cmdline").read_bytes().split(b"\0")]
        except OSError:
            continue
        if words and os.path.basename(words[0]).startswith(PASST) and match(words):
            found.append(int(entry.name))
    return found


def kill(pids_: Iterable[int]) -> None:
    for pid in pids_:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def stop(runtime_dir: Path, name: str) -> None:
    """Kill persona ``name``'s passt (if it still runs) and remove its socket."""
    socket = socket_path(runtime_dir, name)
    kill(pids(socket))
    socket.unlink(missing_ok=True)


def _listening(socket: Path) -> bool:
    try:
        lines = Path("/proc/net/unix").read_text().splitlines()[1:]
    except OSError:
        return socket.exists()
    for line in lines:
        fields = line.split()
        if len(fields) >= 8 and fields[7] == str(socket) and int(fields[3], 16) & _SO_ACCEPTCON:
            return True
    return False


async def start(config: PersonaConfig, runtime_dir: Path, *, die_with_controller: bool) -> None:
    """Start the persona's passt (after killing one left from an earlier launch) and wait
    until it listens; its stderr goes to ``NAME.passt.stderr``. ``die_with_controller``:
    killed when the controller dies (besides dying with its QEMU).

    Raises:
        LaunchError: passt is not installed, or exited, or did not listen in time.
    """
    stop(runtime_dir, config.name)
    argv = passt_argv(config, runtime_dir)
    if shutil.which(PASST) is None:
        raise LaunchError(config.name, None, argv, f"network = \"user\" needs passt: {INSTALL}")
    stderr_path = runtime_dir / f"{config.name}.passt.stderr"
    with open(stderr_path, "wb") as stderr:  # in a session of its own, as QEMU (mux.guest.process)
        try:
            child = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=stderr,
                start_new_session=True, preexec_fn=_die_with(os.getpid()) if die_with_controller else None)
        except OSError as exc:
            raise LaunchError(config.name, None, argv, f"cannot run passt ({INSTALL}): {exc}") from exc
    socket, deadline = socket_path(runtime_dir, config.name), time.monotonic() + LISTEN_S
    while not _listening(socket):
        if child.returncode is not None or time.monotonic() > deadline:
            kill([child.pid])
            code = await child.wait()
            said = [line for line in stderr_path.read_text(errors="replace").splitlines()
                    if line.strip() and not line.startswith("Failed to send")]  # its syslog's absence
            why = "; ".join(said) or f"it did not listen on {socket} in {LISTEN_S:.0f} s"
            raise LaunchError(config.name, code, argv, f"passt: {why}")
        await asyncio.sleep(0.01)


def _die_with(parent: int) -> Callable[[], None]:
    """SIGKILL the child when the controller's thread that started it exits (see
    :mod:`mux.guest.process`: the same for QEMU), and at once if that already happened."""
    def preexec() -> None:  # between fork and exec
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def warn_host_access(config: PersonaConfig) -> None:
    """The warning a ``host_access = true`` persona gets at each launch."""
    if config.network == "user" and config.host_access:
        log.warning("persona %s: host_access = true: its guest reaches the host's 127.0.0.1 (every service"
                    " listening there, such as an MQTT broker, and other personas' forwarded ports)"
                    " through 10.0.2.2", config.name)
