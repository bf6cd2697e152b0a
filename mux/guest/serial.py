"""A persona's serial output: kept in memory for waits, and written to a log file.

The guest's first serial port is QEMU's stdout. :class:`SerialLog` appends every chunk
to one growing string (so a pattern may span lines and chunk borders) and to the log
file, and wakes whoever waits. Waits follow openQA's ``wait_serial``: each search starts
where the previous match on that log ended, so the same line is not matched twice.
Output survives restarts of the guest; each boot appends to the same log. Carriage
returns are dropped, so ``^hi$`` matches a line the guest printed as ``hi\r\n``.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import IO


class SerialLog:
    """Everything one persona has written to its serial port since the controller began."""

    def __init__(self, log_path: Path, *, own_file: bool = True) -> None:
        """``own_file=False``: someone else (QEMU's ``logfile=``) writes ``log_path``."""
        self.path = log_path
        self.text = ""
        self.cursor = 0  # where the next wait_serial search starts
        self._file: IO[str] | None = (
            open(log_path, "a", encoding="utf-8", errors="replace") if own_file else None)  # noqa: SIM115
        self._changed = asyncio.Condition()

    async def append(self, chunk: str) -> None:
        # A tty ends lines in "\r\n"; without the "\r" a regex's "$" means end of line.
        chunk = chunk.replace("\r", "")
        self.text += chunk
        if self._file is not None:
            self._file.write(chunk)
            self._file.flush()
        async with self._changed:
            self._changed.notify_all()

    def printed(self) -> bool:
        """Whether the guest has printed anything but white space."""
        return bool(self.text.strip())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def search(self, pattern: re.Pattern[str], start: int = 0) -> re.Match[str] | None:
        return pattern.search(self.text, start)

    async def wait_for(self, pattern: re.Pattern[str], timeout: float,
                       start: int | None = None) -> re.Match[str]:
        """Wait until ``pattern`` appears after ``start`` (default: the cursor).

        The cursor then moves to the end of the match.

        Raises:
            TimeoutError: the pattern did not appear within ``timeout`` seconds.
        """
        begin = self.cursor if start is None else start
        async with asyncio.timeout(timeout), self._changed:
            while (match := self.search(pattern, begin)) is None:
                await self._changed.wait()
        self.cursor = match.end()
        return match

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.text.splitlines()[-lines:])
