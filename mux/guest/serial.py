"""A persona's serial output: everything in a log file, a bounded tail in memory for waits.

The guest's first serial port is QEMU's stdout. :class:`SerialLog` writes every chunk to
the log file (which keeps all of it) and keeps the last :data:`TAIL_CHARS` characters
(1 MiB; a little more, up to one chunk) in memory, so a guest that prints for days costs
the controller no more memory than one that printed a megabyte. Carriage returns are
dropped, so ``^hi$`` matches a line the guest printed as ``hi\\r\\n``. Output survives
restarts of the guest; each boot appends to the same log.

Offsets are absolute: 0 is the first character the persona printed since the controller
began, :attr:`SerialLog.end` is one past the newest, :attr:`SerialLog.start` the oldest
still in memory. Waits follow openQA's ``wait_serial``: each search starts at the
log's :attr:`~SerialLog.cursor`, where the previous match on that log ended, so the same
line is not matched twice. **At the bound:** if more than the tail has been printed since
the previous match, the cursor has fallen out of memory and the search starts at the
oldest character kept; what came in between is only in the log file and is not searched.

A wait does not rescan the whole log: each check (one per arriving chunk at most)
searches only the text that arrived since its previous check plus the
:data:`OVERLAP` characters before it, so a match may span chunks and lines as long as it
is at most 4 KiB long (a longer one is found only if it arrived within one check).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

TAIL_CHARS = 1 << 20  # kept in memory; the log file keeps everything
OVERLAP = 4096  # re-searched before new text, for matches that span chunks
_CONTEXT = 256  # kept before a search's start, so ^, \b and lookbehinds see real text
_COALESCE = 4096  # small chunks are joined, so a byte-at-a-time guest makes few strings
_MARKER_TAIL = 256  # an endless line's last characters kept for its next piece (a marker's)


class SerialLog:
    """What one persona has written to its serial port since the controller began."""

    def __init__(self, log_path: Path, tail_chars: int = TAIL_CHARS, *, own_file: bool = True) -> None:
        """``own_file=False``: someone else (QEMU's ``logfile=``) writes ``log_path``."""
        self.path = log_path
        self.tail_chars = tail_chars
        self.cursor = 0  # absolute offset where the next wait_for search starts
        self._chunks: collections.deque[str] = collections.deque()
        self._kept = 0  # characters in _chunks
        self._start = 0  # absolute offset of _chunks[0][0]
        self._printed = False
        self._file: IO[str] | None = (
            open(log_path, "a", encoding="utf-8", errors="replace") if own_file else None)  # noqa: SIM115
        self._changed = asyncio.Condition()
        #: Called with each whole line (no "\n") and the time.time() it was completed at, in
        #: order, as it arrives (mux.app's attention watcher and tagged log): must not block.
        self.line_listeners: list[Callable[[str, float], None]] = []
        self._partial = ""  # the last line, until its "\n" arrives

    # --- appending ----------------------------------------------------------------------

    async def append(self, chunk: str) -> None:
        """Add what the guest printed: to the file, to the tail; wake the waits."""
        # A tty ends lines in "\r\n"; without the "\r" a regex's "$" means end of line.
        chunk = chunk.replace("\r", "")
        if not chunk:
            return
        if self._file is not None:
            self._file.write(chunk)
            self._file.flush()
        self._keep(chunk)
        if self.line_listeners:
            self._tell_lines(chunk)
        async with self._changed:
            self._changed.notify_all()

    def _tell_lines(self, chunk: str) -> None:
        *lines, self._partial = (self._partial + chunk).split("\n")
        if len(self._partial) > _COALESCE:  # a "line" that never ends: told in pieces
            # Cut before a marker near its end (else before its last word), so a marker
            # that straddles the bound (``... MUX-ATTENTION ring``) is told whole, with
            # its text, in the next piece, however the guest's output was chunked.
            cut = self._partial.rfind("MUX-", len(self._partial) - _MARKER_TAIL)
            if cut <= 0:
                cut = max(self._partial.rfind(" "), self._partial.rfind("\t"))
            if cut <= 0 or len(self._partial) - cut > _MARKER_TAIL:
                cut = len(self._partial)
            lines.append(self._partial[:cut])
            self._partial = self._partial[cut:]
        now = time.time()
        for line in lines:
            for listener in list(self.line_listeners):
                try:
                    listener(line, now)
                except Exception:
                    log.exception("serial %s: line listener %r failed", self.path, listener)

    def _keep(self, chunk: str) -> None:
        self._printed = self._printed or not chunk.isspace()
        if len(chunk) > self.tail_chars:  # only its end can stay
            self._start += self._kept + len(chunk) - self.tail_chars
            self._chunks.clear()
            self._kept = 0
            chunk = chunk[-self.tail_chars:]
        if self._chunks and len(self._chunks[-1]) + len(chunk) <= _COALESCE:
            self._chunks[-1] += chunk
        else:
            self._chunks.append(chunk)
        self._kept += len(chunk)
        while self._kept - len(self._chunks[0]) >= self.tail_chars:
            dropped = self._chunks.popleft()
            self._kept -= len(dropped)
            self._start += len(dropped)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    # --- reading ------------------------------------------------------------------------

    @property
    def start(self) -> int:
        """Absolute offset of the oldest character still in memory."""
        return self._start

    @property
    def end(self) -> int:
        """Absolute offset one past the newest character (how much was printed in all)."""
        return self._start + self._kept

    @property
    def text(self) -> str:
        """The tail kept in memory (everything, while less than the bound was printed)."""
        return "".join(self._chunks)

    def since(self, offset: int) -> str:
        """The kept text from absolute ``offset`` on (from :attr:`start` if that is later)."""
        wanted = self.end - max(offset, self._start)
        if wanted <= 0:
            return ""
        parts: list[str] = []
        have = 0
        for chunk in reversed(self._chunks):
            parts.append(chunk)
            have += len(chunk)
            if have >= wanted:
                break
        return "".join(reversed(parts))[-wanted:]

    def printed(self) -> bool:
        """Whether the guest has printed anything but white space."""
        return self._printed

    def find(self, pattern: re.Pattern[str], start: int = 0) -> tuple[re.Match[str], int] | None:
        """The first match of ``pattern`` that begins at or after absolute ``start`` (or at
        :attr:`start` if that is later), with the absolute offset of its end; None if none.

        The match's own offsets are relative to the text searched, not absolute.
        """
        start = max(start, self._start)
        context = max(start - _CONTEXT, self._start)
        text = self.since(context)
        match = pattern.search(text, start - context)
        return None if match is None else (match, context + match.end())

    def search(self, pattern: re.Pattern[str], start: int = 0) -> re.Match[str] | None:
        """Like :meth:`find`, without the offset."""
        found = self.find(pattern, start)
        return None if found is None else found[0]

    def watch(self, pattern: re.Pattern[str], start: int) -> SerialWatch:
        """A search from ``start`` that, checked again, looks only at what came since."""
        return SerialWatch(self, pattern, start)

    async def wait_for(self, pattern: re.Pattern[str], timeout: float,
                       start: int | None = None, *, move_cursor: bool = True) -> re.Match[str]:
        """Wait until ``pattern`` appears after absolute ``start`` (default: the cursor).

        The cursor then moves to the end of the match (unless not ``move_cursor``: a
        watcher that is not a scenario's wait). See the module docstring for what
        happens when ``start`` is older than the tail kept in memory.

        Raises:
            TimeoutError: the pattern did not appear within ``timeout`` seconds.
        """
        watch = self.watch(pattern, self.cursor if start is None else start)
        async with asyncio.timeout(timeout), self._changed:
            while (match := watch.check()) is None:
                await self._changed.wait()
        if move_cursor:
            self.cursor = watch.match_end
        return match

    def tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines (of the last 8 KiB), for error messages."""
        return "\n".join(self.since(self.end - 8192).splitlines()[-lines:])


class SerialWatch:
    """One pattern searched in a :class:`SerialLog` from an offset on, incrementally.

    Each :meth:`check` searches what arrived since the previous check plus the
    :data:`OVERLAP` before it (see the module docstring), never the whole log again.
    """

    def __init__(self, log: SerialLog, pattern: re.Pattern[str], start: int) -> None:
        self.log = log
        self.pattern = pattern
        self.begin = start
        self.match_end = start  # absolute end of the match, once found
        self._scanned: int | None = None  # log.end at the previous check

    def check(self) -> re.Match[str] | None:
        """The first match in text not yet searched (with the overlap), or None."""
        begin = self.begin if self._scanned is None else max(self.begin, self._scanned - OVERLAP)
        self._scanned = self.log.end
        found = self.log.find(self.pattern, begin)
        if found is None:
            return None
        match, self.match_end = found
        return match
