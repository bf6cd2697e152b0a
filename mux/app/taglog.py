"""One tagged log: every persona's serial lines, each with its persona's name and time.

Theory. Android's logger tags each message with the namespace it came from; mux tags
each whole line a persona prints on its serial port (told by
:attr:`mux.guest.serial.SerialLog.line_listeners`, with the time it was completed) with
the persona's name. While a controller runs, :class:`TaggedLog` keeps

- a file, ``serial.jsonl``, in the controller's logs folder (``mux run``'s
  ``$XDG_STATE_HOME/mux/logs/<time>-<suffix>/``: :func:`new_logs_folder`; a replay
  scenario's artifacts folder), written
  as the lines come, so it survives the run (and a crash of it). JSON lines: first a
  header ``{"t": <start>, "mux": "serial log", "personas": [names], "colors": {name:
  "rrggbb"}}``, then one ``{"t": <seconds since the epoch>, "persona": name, "line":
  text}`` per line, in the order they came (which is time order);
- the newest :data:`KEEP_LINES` lines in memory (at most :data:`KEEP_CHARS` characters
  of them: a guest that floods its serial port does not grow the controller), and the
  followers, for ``mux logs`` over the control socket (:meth:`TaggedLog.lines`).

Only what a persona prints while the controller runs is tagged: an adopted guest's
earlier output is in its raw serial log (``<name>.serial.log``) only, and so is a last
line the guest never ended with a newline (a prompt). A follower that falls more than
:data:`FOLLOW_BEHIND` characters behind (a client that stopped reading) is ended.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from mux.guest.serial import SerialLog

log = logging.getLogger(__name__)

FILE_NAME = "serial.jsonl"
KEEP_LINES = 50_000  # in memory for mux logs (and at most KEEP_CHARS of text); the file keeps everything
KEEP_CHARS = 4 << 20
FOLLOW_BEHIND = 8 << 20  # characters a follower may have waiting


def new_logs_folder(base: Path, now: float | None = None) -> Path:
    """A new, empty folder for one run's logs in ``base``, created now (mode 0700):
    ``YYYYmmdd-HHMMSS-<8 random characters>``, the local time it was made then a suffix
    that ``mkdtemp`` makes unique, so two controllers started in the same second each get
    their own, and the names still sort by the second they were made.

    Raises:
        OSError: ``base`` cannot be created or written.
    """
    base.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return Path(tempfile.mkdtemp(prefix=f"{stamp}-", dir=base))


class _Follower:
    def __init__(self) -> None:
        self.pending: collections.deque[dict[str, Any]] = collections.deque()
        self.chars = 0  # of the lines pending
        self.wake = asyncio.Event()
        self.ended: str | None = None

    def end(self, reason: str) -> None:
        self.ended = reason
        self.wake.set()


class TaggedLog:
    """The controller's tagged log of its personas' serial lines."""

    def __init__(self, directory: Path | None, colors: Mapping[str, str]) -> None:
        """``directory``: where ``serial.jsonl`` goes (None: memory only); ``colors``: each
        persona's colour (config order)."""
        self.directory = directory
        self.header: dict[str, Any] = {"t": time.time(), "mux": "serial log", "personas": list(colors),
                                       "colors": dict(colors)}
        self._recent: collections.deque[dict[str, Any]] = collections.deque()
        self._recent_chars = 0
        self._followers: set[_Follower] = set()
        self._file: IO[str] | None = None
        self._closed = False

    @contextlib.contextmanager
    def watching(self, serials: Mapping[str, SerialLog]) -> Iterator[TaggedLog]:
        """Tag every line of each persona's serial log while inside (``{name: serial}``);
        on the way out the followers are told the controller stopped and the file closes."""
        self.header["t"] = time.time()
        if self.directory is not None:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                self._file = open(self.directory / FILE_NAME, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
                self._write(self.header)
            except OSError as exc:
                log.warning("the tagged serial log cannot be written in %s: %s", self.directory, exc)
        listeners = {name: self._listener(name) for name in serials}
        for name, serial in serials.items():
            serial.line_listeners.append(listeners[name])
        try:
            yield self
        finally:
            for name, serial in serials.items():
                with contextlib.suppress(ValueError):
                    serial.line_listeners.remove(listeners[name])
            for follower in list(self._followers):
                follower.end("stopped")
            self._followers.clear()
            self._closed = True
            if self._file is not None:
                self._file.close()
                self._file = None

    def _listener(self, name: str) -> Any:
        def heard(line: str, when: float) -> None:
            self.add(name, line, when)
        return heard

    def add(self, persona: str, line: str, when: float) -> None:
        """Tag one line (what each serial log's listener calls)."""
        entry = {"t": when, "persona": persona, "line": line}
        self._recent.append(entry)
        self._recent_chars += len(line)
        while len(self._recent) > KEEP_LINES or self._recent_chars > KEEP_CHARS:
            self._recent_chars -= len(self._recent.popleft()["line"])
        self._write(entry)
        for follower in list(self._followers):
            if follower.chars + len(line) > FOLLOW_BEHIND:
                self._followers.discard(follower)
                follower.end("behind")
            else:
                follower.pending.append(entry)
                follower.chars += len(line)
                follower.wake.set()

    def _write(self, entry: dict[str, Any]) -> None:
        if self._file is None:
            return
        try:
            self._file.write(json.dumps(entry, ensure_ascii=False) + "\n")
        except OSError as exc:  # a full disk: the run goes on, the file stops
            log.warning("the tagged serial log stops: %s", exc)
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None

    async def lines(self, since: float | None = None, follow: bool = False) -> AsyncIterator[dict[str, Any]]:
        """The header, then the lines kept in memory, then, with ``follow``, each new line
        as it comes (all of them from ``since``, seconds since the epoch, if given); last an
        ``{"end": reason}``: "done" (no follow), "stopped" (the controller stopped) or
        "behind" (the consumer fell :data:`FOLLOW_BEHIND` characters behind)."""
        yield dict(self.header)
        follower = _Follower() if follow else None
        kept = list(self._recent)  # taken with the follower's start: no line twice, none lost
        if follower is not None and self._closed:
            follower.end("stopped")
        elif follower is not None:
            self._followers.add(follower)
        try:
            for entry in kept:
                if since is None or entry["t"] >= since:
                    yield entry
            while follower is not None:
                while follower.pending:
                    entry = follower.pending.popleft()
                    follower.chars -= len(entry["line"])
                    if since is None or entry["t"] >= since:
                        yield entry
                if follower.ended:
                    break
                follower.wake.clear()
                await follower.wake.wait()
            yield {"end": follower.ended if follower else "done"}
        finally:
            if follower is not None:
                self._followers.discard(follower)
