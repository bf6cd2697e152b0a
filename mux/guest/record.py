"""What mux started, written down so a later controller can find its guests again.

Theory. A kept guest (``[mux] keep_guests``) lives in a private directory of its own
config (its QMP, VNC and serial sockets, its serial log, its stderr) together with a
:class:`Record` in ``record.json``: the config file, the controller that runs it (if
one does), and for each persona the QEMU pid, the process's start time and a hash of
its command line. A pid alone is not an identity (pids are reused), so a process is
"the same" only if ``/proc/PID/stat`` still gives the recorded start time (field 22,
clock ticks since boot). The hash says whether the config still asks for that guest.

Keys held in a guest are written down too (``NAME.held``, rewritten only when the set
of held keys or buttons changes: a few dozen bytes per keystroke, no fsync), so a
controller that adopts the guest after a crash can release exactly those keys.
Reading never fails: a missing or unreadable file is "nothing recorded".
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RECORD_FILE = "record.json"


def start_ticks(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot), or None if there is none
    (or only its zombie: it exited and its parent has not reaped it yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces or ")".
    fields = stat[stat.rindex(")") + 2:].split()
    return None if fields[0] in ("Z", "X") else int(fields[19])  # fields 3 and 22 of the line


def same_process(pid: int | None, ticks: int | None) -> bool:
    """Whether ``pid`` still is the process that started at ``ticks`` (not a reused pid)."""
    return pid is not None and ticks is not None and start_ticks(pid) == ticks


def uptime_s(ticks: int) -> float:
    """How long ago a process that started at ``ticks`` started, in seconds."""
    with open("/proc/uptime") as f:
        since_boot = float(f.read().split()[0])
    return max(0.0, since_boot - ticks / os.sysconf("SC_CLK_TCK"))


def unrecorded_qemus(directory: Path, recorded: Iterable[int]) -> list[int]:
    """QEMU processes whose command line names a socket in ``directory`` but that are not
    ``recorded``: started by a controller that died before its guest was running (and
    so before it was written down)."""
    marker, known = f"{directory}/".encode(), set(recorded)
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) not in known:
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"qemu-system" in cmdline.split(b"\0", 1)[0] and marker in cmdline:
                found.append(int(entry.name))
    return found


def argv_hash(argv: Iterable[str]) -> str:
    """The hash that says whether a running guest was started from this command line."""
    return hashlib.sha256("\0".join(argv).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class GuestEntry:
    """One QEMU mux started: its persona, pid, start time (ticks) and command-line hash."""

    persona: str
    pid: int
    ticks: int
    argv_hash: str
    started_at: float = field(default_factory=time.time)

    def alive(self) -> bool:
        return same_process(self.pid, self.ticks)


@dataclass
class Record:
    """The kept guests of one config and the controller attached to them (if any)."""

    config: str
    control_socket: str = ""
    controller_pid: int | None = None
    controller_ticks: int | None = None
    guests: dict[str, GuestEntry] = field(default_factory=dict)

    def attached(self) -> bool:
        """Whether the controller that wrote this record still runs."""
        return same_process(self.controller_pid, self.controller_ticks)


def load(directory: Path) -> Record | None:
    """The record in ``directory`` (None: none, or unreadable)."""
    try:
        data: dict[str, Any] = json.loads((directory / RECORD_FILE).read_text(encoding="utf-8"))
        guests = {name: GuestEntry(**entry) for name, entry in data.pop("guests", {}).items()}
        return Record(**data, guests=guests)
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def save(directory: Path, record: Record) -> None:
    """Write ``record`` atomically.

    Raises:
        OSError: the directory cannot be written.
    """
    data = asdict(record)
    tmp = directory / (RECORD_FILE + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    tmp.replace(directory / RECORD_FILE)


class HeldKeys:
    """The keys and buttons a guest holds, mirrored to a file whenever the set changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._held: dict[str, dict[str, Any]] = {}

    def sent(self, events: Iterable[dict[str, Any]]) -> None:
        """Note an ``input-send-event`` batch; rewrite the file if what is held changed.
        A failure to write is ignored (the cost is a key left held after a crash)."""
        changed = False
        for event in events:
            data = event.get("data")
            if event.get("type") not in ("key", "btn") or not isinstance(data, dict):
                continue
            release = {"type": event["type"], "data": {**data, "down": False}}
            ident = json.dumps(release, sort_keys=True)
            if data.get("down"):
                changed |= ident not in self._held
                self._held[ident] = release
            else:
                changed |= self._held.pop(ident, None) is not None
        if changed:
            with contextlib.suppress(OSError):
                tmp = self.path.with_name(self.path.name + ".tmp")
                tmp.write_text(json.dumps(list(self._held.values())), encoding="utf-8")
                tmp.replace(self.path)

    def take_releases(self) -> list[dict[str, Any]]:
        """The release events for what the file says is held (by a controller now gone);
        the file and the set are cleared."""
        try:
            events = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            events = []
        self.path.unlink(missing_ok=True)
        self._held.clear()
        return [e for e in events if isinstance(e, dict)] if isinstance(events, list) else []
