"""The controller's private runtime directory (mode 0700), removed on exit.

QMP and VNC sockets, screendumps and serial logs live here and nowhere else, so no
other user can reach a guest. One directory per controller, created fresh with
``mkdtemp`` (which makes it 0700 atomically) under the configured base.

Each directory names its controller in an ``owner`` file (pid and start time). A
controller that was killed (SIGKILL: no clean-up ran) leaves its directory behind; the
next one to start under the same base removes those whose owner is gone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mux.errors import ConfigError, Location
from mux.guest.record import same_process, start_ticks

log = logging.getLogger(__name__)
#: The file in a runtime directory naming its controller: "<pid> <start ticks>".
OWNER = "owner"


@contextlib.contextmanager
def private_runtime_dir(base: Path, keep: Path | None = None) -> Iterator[Path]:
    """Create ``base/mux-XXXXXX`` with mode 0700; remove it on exit.

    ``keep``, if given, is a directory that receives a copy of the serial logs before the
    runtime directory goes (so nothing the guests said is lost).

    Raises:
        ConfigError: the base directory does not exist or is not writable.
    """
    try:
        path = Path(tempfile.mkdtemp(prefix="mux-", dir=base))
    except OSError as exc:
        raise ConfigError.one(Location("mux.runtime_dir"),
                              f"cannot create a runtime directory in {base}: {exc}") from exc
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    (path / OWNER).write_text(f"{os.getpid()} {start_ticks(os.getpid())}\n")
    _remove_orphans(base, path)
    try:
        yield path
    finally:
        if keep is not None:
            with contextlib.suppress(OSError):
                keep.mkdir(parents=True, exist_ok=True)
                for log in path.glob("*.serial.log"):
                    shutil.copy2(log, keep / log.name)
        shutil.rmtree(path, ignore_errors=True)


def _remove_orphans(base: Path, own: Path) -> None:
    """Remove ``base/mux-*`` directories of this user whose controller no longer runs."""
    for other in base.glob("mux-*"):
        try:
            if other == own or other.stat().st_uid != os.getuid():
                continue
            pid, ticks = (int(field) for field in (other / OWNER).read_text().split())
        except (OSError, ValueError):
            continue  # not a runtime directory of ours (or from before owner files)
        if not same_process(pid, ticks):
            log.info("removing %s, left by a controller that was killed (pid %d)", other, pid)
            shutil.rmtree(other, ignore_errors=True)


#: The longest path a unix socket may have (``sun_path`` is 108 bytes with its NUL).
SOCKET_PATH_MAX = 107
_SOCKET_SUFFIXES = (".qmp", ".vnc", ".serial", ".agent")  # mux.guest.cmdline and hardware's


def check_socket_paths(directory: Path, names: list[str]) -> None:
    """Refuse a directory whose guests' socket paths would be too long for a unix socket.

    QEMU would fail each guest with a terse "path too long"; this names the directory.

    Raises:
        ConfigError: a persona's socket path is longer than :data:`SOCKET_PATH_MAX` bytes.
    """
    longest = max((str(directory / f"{name}{suffix}") for name in names for suffix in _SOCKET_SUFFIXES),
                  key=lambda path: len(path.encode()), default="")
    if len(longest.encode()) > SOCKET_PATH_MAX:
        raise ConfigError.one(Location("mux.runtime_dir"),
                              f"socket path {longest} is {len(longest.encode())} bytes, over the"
                              f" {SOCKET_PATH_MAX} a unix socket allows: use a shorter XDG_RUNTIME_DIR,"
                              " XDG_STATE_HOME or [mux] runtime_dir, or shorter persona names")
